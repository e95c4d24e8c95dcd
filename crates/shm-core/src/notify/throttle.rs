//! Pacing of slow checks in calls that may be polled in a loop ([`Throttle`]), and on a hot
//! path that must not read a clock per call ([`Lookout`]).

use std::time::{Duration, Instant};

use super::SLOW_CHECK_INTERVAL;
use crate::sys;

/// Paces the slow checks (liveness syscalls, say) of non-blocking calls, which a caller
/// may poll in a tight loop: one about every [`SLOW_CHECK_INTERVAL`], the bound a blocked
/// call keeps.
///
/// It reads the coarse monotonic clock (`CLOCK_MONOTONIC_COARSE`: the time at the last
/// scheduler tick, a few ns from the vDSO against ~20 ns for the precise clock), so a
/// check falls due up to a tick (1–10 ms) late; where that clock is refused, every call is
/// due.
///
/// ```
/// use shm_ipc::core::notify::Throttle;
/// let mut throttle = Throttle::default();
/// assert!(throttle.due(), "the first call is due");
/// let later = (0..1000).filter(|_| throttle.due()).count();
/// assert!(later <= 100, "a tight loop gets a check only now and then");
/// ```
#[derive(Debug, Default)]
pub struct Throttle {
    /// No slow check before this coarse-clock time, in ns (0: none yet).
    next_ns: u64,
}

impl Throttle {
    /// Whether a slow check is due now (and if so, the next one is an interval away).
    pub fn due(&mut self) -> bool {
        let Some(now) = sys::coarse_monotonic_ns() else {
            return true;
        };
        if self.next_ns != 0 && now < self.next_ns {
            return false;
        }
        self.next_ns = now.saturating_add(interval_ns(SLOW_CHECK_INTERVAL)).max(1);
        true
    }
}

/// Paces a slow check (a liveness syscall, say) on a hot path that cannot afford a clock
/// read per call: [`tick`](Lookout::tick) costs a private decrement; every `stride` calls
/// it reads the monotonic clock, and says "check now" once `interval` has passed since the
/// last check.
///
/// The stride adapts to the call rate so that the clock is read about every
/// [`LOOK_EVERY`]: doubled (up to [`MAX_STRIDE`]) while a stride's calls take less, scaled
/// down (to 1: a clock read per call) when they take more. A check therefore falls due at
/// most `interval` plus about [`LOOK_EVERY`] after the previous one at a steady call rate;
/// a caller that slows down suddenly makes at most one stride of calls (≤ [`MAX_STRIDE`])
/// before the next clock read.
///
/// ```
/// use std::time::Duration;
/// use shm_ipc::core::notify::Lookout;
/// let mut lookout = Lookout::new(Duration::from_millis(8));
/// assert!(!lookout.tick(), "the first check is an interval away");
/// let checks = (0..100_000).filter(|_| lookout.tick()).count();
/// assert!(checks <= 100, "a tight loop checks now and then: {checks}");
/// ```
#[derive(Debug)]
pub struct Lookout {
    /// Calls left before the next clock read.
    countdown: u32,
    /// Calls between clock reads.
    stride: u32,
    /// The last clock read.
    last_look: Option<Instant>,
    /// No check before this (`None`: the next clock read checks).
    next_check: Option<Instant>,
    interval: Duration,
}

/// About how often a [`Lookout`] reads the clock.
pub const LOOK_EVERY: Duration = Duration::from_millis(1);
/// Most calls between two clock reads of a [`Lookout`].
pub const MAX_STRIDE: u32 = 256;

impl Lookout {
    /// A lookout checking once per `interval`, the first time an interval after its first
    /// call.
    pub fn new(interval: Duration) -> Lookout {
        Lookout {
            countdown: 1,
            stride: 1,
            last_look: None,
            next_check: None,
            interval,
        }
    }

    /// One call: whether to make the slow check now.
    #[inline]
    pub fn tick(&mut self) -> bool {
        self.countdown -= 1;
        if self.countdown != 0 {
            return false;
        }
        self.look()
    }

    /// A clock read: adapts the stride, and says whether a check is due.
    #[cold]
    #[inline(never)]
    fn look(&mut self) -> bool {
        let now = Instant::now();
        if let Some(last) = self.last_look {
            let took = now.saturating_duration_since(last);
            self.stride = if took < LOOK_EVERY {
                self.stride.saturating_mul(2).min(MAX_STRIDE)
            } else {
                let scaled = u128::from(self.stride) * LOOK_EVERY.as_nanos() / took.as_nanos();
                u32::try_from(scaled)
                    .unwrap_or(MAX_STRIDE)
                    .clamp(1, MAX_STRIDE)
            };
        } else {
            // The first call: the first check is an interval away.
            self.next_check = now.checked_add(self.interval);
        }
        self.last_look = Some(now);
        self.countdown = self.stride;
        match self.next_check {
            Some(next) if now < next => false,
            _ => {
                self.next_check = now.checked_add(self.interval);
                true
            }
        }
    }
}

fn interval_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_falls_due_again_after_the_interval() {
        let mut throttle = Throttle::default();
        assert!(throttle.due());
        // Past the interval plus a coarse tick (at most 10 ms at HZ=100): due again,
        // however loaded the machine (sleeping only makes the gap longer).
        std::thread::sleep(SLOW_CHECK_INTERVAL + Duration::from_millis(12));
        assert!(throttle.due());
    }

    #[test]
    fn a_lookout_checks_at_most_once_per_interval_and_reads_the_clock_by_strides() {
        let interval = Duration::from_millis(5);
        let mut lookout = Lookout::new(interval);
        let start = std::time::Instant::now();
        let checks = (0..2_000_000).filter(|_| lookout.tick()).count() as u128;
        // A bound, not a timing: no two checks closer than the interval.
        let bound = start.elapsed().as_nanos() / interval.as_nanos() + 2;
        assert!(checks <= bound, "{checks} checks, bound {bound}");
        assert!(
            lookout.stride > 1,
            "a tight loop reads the clock by strides"
        );
        assert!(lookout.stride <= MAX_STRIDE);
    }

    #[test]
    fn a_slow_caller_reads_the_clock_every_call_and_checks_after_the_interval() {
        let mut lookout = Lookout::new(Duration::from_millis(4));
        assert!(!lookout.tick());
        // Calls further apart than LOOK_EVERY: the stride falls to 1, and the check falls
        // due within the interval's worth of calls (sleeping only makes each gap longer).
        let mut calls_until_check = 0;
        loop {
            std::thread::sleep(LOOK_EVERY * 2);
            calls_until_check += 1;
            if lookout.tick() {
                break;
            }
            assert!(
                calls_until_check <= 2,
                "no check after {calls_until_check} calls"
            );
        }
        assert_eq!(lookout.stride, 1);
    }

    #[test]
    fn a_tight_loop_gets_at_most_one_check_per_interval() {
        let mut throttle = Throttle::default();
        let start = std::time::Instant::now();
        let due = (0..200_000).filter(|_| throttle.due()).count() as u128;
        // A bound, not a timing: however long the loop took, no two checks fell due
        // closer than the interval (one more for the first call, one for rounding).
        let bound = start.elapsed().as_millis() / SLOW_CHECK_INTERVAL.as_millis() + 2;
        assert!(due >= 1 && due <= bound, "{due} checks due, bound {bound}");
    }
}
