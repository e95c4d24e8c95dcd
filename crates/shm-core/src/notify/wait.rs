//! The wait loop of [`Event`]: a hot phase of tight polls, a backoff (or yielding) phase
//! until the spin budget is spent, then sleeps on the futex with the wake handshake;
//! slow checks at least every [`SLOW_CHECK_INTERVAL`].

use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use crossbeam_utils::Backoff;

use super::adaptive::Waited;
use super::{
    handshake, Check, Event, FutexError, Handshake, SpinBudget, WaitStrategy, WaitTimeout,
    BARRIER_REFUSED_SLICE, HOT_SPIN, POLLS_PER_CLOCK_READ, SLOW_CHECK_INTERVAL,
};

impl Event {
    /// The wait loop, sleeping at most `park_slice` at a time (tests lengthen it, so that a
    /// lost wake-up shows as a timeout instead of a slice-long delay); `waited` learns how
    /// long it waited once its clock started, and whether it parked. An adaptive
    /// `strategy` (resolved by [`SpinBudget::strategy_for`] before) spins for its minimum.
    pub(super) fn wait_sliced<T>(
        &self,
        handshake: Handshake,
        strategy: &WaitStrategy,
        deadline: Option<Instant>,
        park_slice: Duration,
        waited: &mut Waited,
        mut poll: impl FnMut(Check) -> Option<T>,
    ) -> Result<T, WaitTimeout> {
        let strategy = &SpinBudget::new().strategy_for(strategy);
        if let Some(ready) = poll(Check::Fast) {
            return Ok(ready);
        }
        let mut next_slow: Option<Instant> = None;
        // When the wait's clock started, if it did (see the hot phase).
        let mut started: Option<Instant> = None;
        if !matches!(strategy, WaitStrategy::Park | WaitStrategy::Batched { .. }) {
            // Hot phase: tight polls, one `pause` apart. Most waits on a busy peer end here,
            // within a few hundred ns; the clock is read only every `POLLS_PER_CLOCK_READ`
            // polls (a `pause` costs ~25 ns on the reference machine, so that is ~2 µs).
            // The clock starts at the first of those reads, not on entry: a wait that ends
            // within its first polls (a round trip's, typically) reads no clock at all, and
            // a message arriving then is not kept waiting behind a `clock_gettime`. The
            // spin budget and the deadline are therefore counted from ~2 µs in.
            let mut polls: u32 = 0;
            // When the hot phase and the whole spin end, for a wait whose clock started at
            // `started`.
            let limits = |started: Instant| match strategy {
                WaitStrategy::SpinThenPark { spin } => {
                    (started + HOT_SPIN.min(*spin), Some(started + *spin))
                }
                WaitStrategy::YieldThenPark { spin } => (started, Some(started + *spin)),
                _ => (started + HOT_SPIN, None),
            };
            // Yield-then-park has no hot phase: its clock starts now.
            let yielding = matches!(strategy, WaitStrategy::YieldThenPark { .. });
            let (clock, spin_until) = if yielding {
                let now = Instant::now();
                (now, limits(now).1)
            } else {
                // The last clock read, once the clock started.
                let mut last_read: Option<Instant> = None;
                loop {
                    std::hint::spin_loop();
                    polls = polls.wrapping_add(1);
                    if polls % POLLS_PER_CLOCK_READ != 0 {
                        if let Some(ready) = poll(Check::Fast) {
                            waited.clock = started.zip(last_read).map(|(s, l)| l - s);
                            return Ok(ready);
                        }
                        continue;
                    }
                    let now = Instant::now();
                    last_read = Some(now);
                    let clock = *started.get_or_insert(now);
                    let (hot_until, spin_until) = limits(clock);
                    if let Some(ready) = self.poll_timed(now, clock, &mut next_slow, &mut poll) {
                        waited.clock = Some(now - clock);
                        return Ok(ready);
                    }
                    if deadline.is_some_and(|d| now >= d) {
                        return Err(WaitTimeout);
                    }
                    if *strategy != WaitStrategy::Spin && now >= hot_until {
                        break (clock, spin_until);
                    }
                }
            };
            started = Some(clock);
            // Backoff phase (spin-then-park): crossbeam's `Backoff::snooze` spins in
            // doubling runs, then yields the CPU — so a peer sharing our core gets to run —
            // until the spin budget is spent. Yield-then-park yields between every poll.
            if let Some(spin_until) = spin_until {
                let backoff = Backoff::new();
                loop {
                    let now = Instant::now();
                    if let Some(ready) = self.poll_timed(now, clock, &mut next_slow, &mut poll) {
                        waited.clock = Some(now - clock);
                        return Ok(ready);
                    }
                    if deadline.is_some_and(|d| now >= d) {
                        return Err(WaitTimeout);
                    }
                    if now >= spin_until {
                        break;
                    }
                    if yielding {
                        std::thread::yield_now();
                    } else {
                        backoff.snooze();
                    }
                }
            }
        }
        // Park phase.
        let ready = self.park(handshake, deadline, park_slice, &mut poll)?;
        waited.parked = true;
        waited.clock = started.map(|clock| clock.elapsed());
        Ok(ready)
    }

    /// The park phase of a wait: sleeps on the futex (at most `park_slice` at a time) until
    /// `poll` returns `Some` or `deadline` passes.
    fn park<T>(
        &self,
        handshake: Handshake,
        deadline: Option<Instant>,
        park_slice: Duration,
        poll: &mut impl FnMut(Check) -> Option<T>,
    ) -> Result<T, WaitTimeout> {
        loop {
            // Acquire: a notification that bumped the sequence before this load is seen, so
            // the futex wait below returns at once instead of sleeping through it.
            let seq = self.seq.word().load(Ordering::Acquire);
            self.waiters.fetch_add(1, Ordering::SeqCst);
            // SYNC: waiter flag (see `notify`). Also orders the increment before the
            // membarrier below (which begins with a full barrier of its own anyway).
            fence(Ordering::SeqCst);
            let mut slice = park_slice;
            // SYNC: waiter flag (membarrier; see `notify_relaxed`).
            if handshake == Handshake::Membarrier && !handshake::sleeper_barrier() {
                slice = slice.min(BARRIER_REFUSED_SLICE);
            }
            if let Some(ready) = poll(Check::Slow) {
                self.waiters.fetch_sub(1, Ordering::SeqCst);
                return Ok(ready);
            }
            let now = Instant::now();
            let slice_end = now + slice;
            let wake_by = deadline.map_or(slice_end, |d| d.min(slice_end));
            let outcome = self.seq.wait(seq, Some(wake_by));
            self.waiters.fetch_sub(1, Ordering::SeqCst);
            if let Err(FutexError::Os(_)) = outcome {
                // The kernel refused to sleep (a seccomp filter, say): back off by sleeping
                // a little rather than turning this loop into a hot spin.
                std::thread::sleep(Duration::from_micros(100));
            }
            if let Some(ready) = poll(Check::Fast) {
                return Ok(ready);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(WaitTimeout);
            }
        }
    }

    /// One timed poll: a slow check when its interval is due, a fast one otherwise.
    fn poll_timed<T>(
        &self,
        now: Instant,
        started: Instant,
        next_slow: &mut Option<Instant>,
        poll: &mut impl FnMut(Check) -> Option<T>,
    ) -> Option<T> {
        let due = *next_slow.get_or_insert(started + SLOW_CHECK_INTERVAL);
        if now >= due {
            *next_slow = Some(now + SLOW_CHECK_INTERVAL);
            poll(Check::Slow)
        } else {
            poll(Check::Fast)
        }
    }
}
