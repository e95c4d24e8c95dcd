//! The wait loop of [`Event`]: a hot phase of tight polls, a backoff (or yielding) phase
//! until the spin budget is spent, then sleeps on the futex with the wake handshake;
//! slow checks at least every [`SLOW_CHECK_INTERVAL`]. Written once for a wait on one event
//! and for a wait on several at once ([`Event::wait_any`](super::Event::wait_any)): the
//! sleeper announces itself in each, and sleeps on all their sequence words together.

use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use crossbeam_utils::Backoff;

use super::adaptive::Waited;
use super::{
    handshake, Check, Event, Futex, FutexError, FutexWake, Handshake, SpinBudget, WaitStrategy,
    WaitTimeout, BARRIER_REFUSED_SLICE, HOT_SPIN, MAX_WAIT_ANY, POLLS_PER_CLOCK_READ,
    SLOW_CHECK_INTERVAL,
};

impl Event {
    /// [`wait_sliced`] on this event alone (for the stress tests, which lengthen the slice).
    #[cfg(test)]
    pub(super) fn wait_sliced<T>(
        &self,
        handshake: Handshake,
        strategy: &WaitStrategy,
        deadline: Option<Instant>,
        park_slice: Duration,
        waited: &mut Waited,
        poll: impl FnMut(Check) -> Option<T>,
    ) -> Result<T, WaitTimeout> {
        wait_sliced(
            &[(self, handshake)],
            strategy,
            deadline,
            park_slice,
            waited,
            poll,
        )
    }
}

/// A wait on `events` (each with its channel's handshake) as `strategy` says, learning into
/// `budget`: what [`Event::wait_learning`] and [`Event::wait_any`](super::Event::wait_any)
/// share. Sleeps last [`SLOW_CHECK_INTERVAL`] at most, or a batched wait's `latency`.
pub(super) fn wait_learning<T>(
    events: &[(&Event, Handshake)],
    strategy: &WaitStrategy,
    budget: &mut SpinBudget,
    deadline: Option<Instant>,
    poll: impl FnMut(Check) -> Option<T>,
) -> Result<T, WaitTimeout> {
    let mut waited = Waited::default();
    let this_wait = budget.strategy_for(strategy);
    let slice = match this_wait {
        WaitStrategy::Batched { latency } => {
            latency.clamp(Duration::from_micros(1), SLOW_CHECK_INTERVAL)
        }
        _ => SLOW_CHECK_INTERVAL,
    };
    let result = wait_sliced(events, &this_wait, deadline, slice, &mut waited, poll);
    if result.is_ok() {
        budget.record(strategy, waited);
    }
    result
}

/// The wait loop over `events` (each with its channel's handshake; at most
/// [`MAX_WAIT_ANY`]), sleeping at most `park_slice` at a time (tests lengthen it, so that a
/// lost wake-up shows as a timeout instead of a slice-long delay); `waited` learns how long
/// it waited once its clock started, and whether it parked. An adaptive `strategy`
/// (resolved by [`SpinBudget::strategy_for`] before) spins for its minimum.
pub(super) fn wait_sliced<T>(
    events: &[(&Event, Handshake)],
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
                if let Some(ready) = poll_timed(now, clock, &mut next_slow, &mut poll) {
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
                if let Some(ready) = poll_timed(now, clock, &mut next_slow, &mut poll) {
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
    let ready = park(events, deadline, park_slice, &mut poll)?;
    waited.parked = true;
    waited.clock = started.map(|clock| clock.elapsed());
    Ok(ready)
}

/// The park phase of a wait: sleeps on the futexes of `events` (at most `park_slice` at a
/// time) until `poll` returns `Some` or `deadline` passes.
///
/// The sleeper's half of the wake handshake of every event (SYNC: waiter flag) is paid
/// once per park phase, not per slice: count itself in each waiter count, one SeqCst
/// fence, one `membarrier` if any event's channel uses [`Handshake::Membarrier`]. Then,
/// each slice: load each sequence word, re-check (a slow check), sleep on all the sequence
/// words at once (`futex_waitv` for several). The counts are withdrawn when the phase
/// ends.
///
/// Why the announcement may outlive a slice: a notifier whose load of the waiter count
/// comes after the announcement was made visible (by the fence and the barrier) sees it,
/// and bumps the sequence word after its publication; the slice that loaded the word
/// before that bump sleeps on the old value and is woken (or does not sleep), and one
/// that loaded it after sees the publication in its re-check (the bump is Release, the
/// load Acquire). A notifier that did not see the count is ordered before the barrier,
/// so every re-check sees its publication. So a slice that only timed out needs neither
/// a new fence nor a new `membarrier` (a cross-CPU interrupt when a registered process
/// runs elsewhere), and an idle wait costs one wake-up per slice and its slow check.
fn park<T>(
    events: &[(&Event, Handshake)],
    deadline: Option<Instant>,
    park_slice: Duration,
    poll: &mut impl FnMut(Check) -> Option<T>,
) -> Result<T, WaitTimeout> {
    debug_assert!(events.len() <= MAX_WAIT_ANY);
    for (event, _) in events {
        event.waiters.fetch_add(1, Ordering::SeqCst);
    }
    // SYNC: waiter flag (see `notify`). Also orders the increments before the membarrier
    // below (which begins with a full barrier of its own anyway).
    fence(Ordering::SeqCst);
    let mut barrier_owed = events.iter().any(|(_, h)| *h == Handshake::Membarrier);
    let mut seqs = [0u32; MAX_WAIT_ANY];
    let outcome = loop {
        let mut slice = park_slice;
        // SYNC: waiter flag (membarrier; see `notify_relaxed`). One barrier serves every
        // event and every slice after it; a refused one is tried again next slice, and
        // until one succeeds a missed wake-up may only cost a short slice.
        if barrier_owed {
            if handshake::sleeper_barrier() {
                barrier_owed = false;
            } else {
                slice = slice.min(BARRIER_REFUSED_SLICE);
            }
        }
        for ((event, _), seq) in events.iter().zip(&mut seqs) {
            // Acquire: pairs with the Release bump of `wake_all`: a notification that
            // bumped the sequence before this load is seen by the re-check below, one
            // that bumps it later ends the sleep.
            *seq = event.seq.word().load(Ordering::Acquire);
        }
        if let Some(ready) = poll(Check::Slow) {
            break Ok(ready);
        }
        let slice_end = Instant::now() + slice;
        let wake_by = deadline.map_or(slice_end, |d| d.min(slice_end));
        match sleep(events, &seqs, wake_by) {
            // Nothing was notified: the next slice's slow check looks again.
            Err(FutexError::TimedOut) => {}
            Err(FutexError::Os(_)) => {
                // The kernel refused to sleep (a seccomp filter, say): back off by
                // sleeping a little rather than turning this loop into a hot spin.
                std::thread::sleep(Duration::from_micros(100));
            }
            Ok(_) => {
                if let Some(ready) = poll(Check::Fast) {
                    break Ok(ready);
                }
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break Err(WaitTimeout);
        }
    };
    withdraw(events);
    outcome
}

/// Withdraws the announcements of [`park`] from each event.
fn withdraw(events: &[(&Event, Handshake)]) {
    for (event, _) in events {
        event.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One sleep of [`park`] until `wake_by`, while each event's sequence word holds its value
/// in `seqs`: `FUTEX_WAIT` for one event, `futex_waitv` for several. Where the kernel
/// refuses `futex_waitv` (before Linux 5.16, or a sandbox), the sleep falls back to the
/// first event alone for at most [`BARRIER_REFUSED_SLICE`]: a notification of another event
/// then waits that long at most.
fn sleep(
    events: &[(&Event, Handshake)],
    seqs: &[u32; MAX_WAIT_ANY],
    wake_by: Instant,
) -> Result<FutexWake, FutexError> {
    match events {
        [] => {
            // Nothing can wake us: sleep out the slice (the slow checks end the wait).
            std::thread::sleep(wake_by.saturating_duration_since(Instant::now()));
            Err(FutexError::TimedOut)
        }
        [(event, _)] => event.seq.wait(seqs[0], Some(wake_by)),
        [(first, _), ..] => {
            let mut futexes = [(&first.seq, 0); MAX_WAIT_ANY];
            for ((slot, (event, _)), seq) in futexes.iter_mut().zip(events).zip(seqs) {
                *slot = (&event.seq, *seq);
            }
            match Futex::wait_any(&futexes[..events.len()], Some(wake_by)) {
                Err(FutexError::Os(_)) => {
                    let short = wake_by.min(Instant::now() + BARRIER_REFUSED_SLICE);
                    first.seq.wait(seqs[0], Some(short))
                }
                outcome => outcome,
            }
        }
    }
}

/// One timed poll: a slow check when its interval is due, a fast one otherwise.
fn poll_timed<T>(
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
