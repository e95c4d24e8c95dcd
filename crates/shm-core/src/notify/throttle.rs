//! Pacing of slow checks in calls that may be polled in a loop.

use std::time::Duration;

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
/// use shm_core::notify::Throttle;
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
