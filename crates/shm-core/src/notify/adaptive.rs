//! The spin budget of [`WaitStrategy::Adaptive`]: how long the next wait polls before it
//! parks, learned from how the waits before it ended.
//!
//! Parking costs a futex wake-up on both sides (tens of µs across cores); spinning costs the
//! CPU. A fixed budget is wrong both ways: a peer that takes 200 µs to copy a large message
//! out and back makes a 50 µs budget park on every message that is already on its way, and
//! a peer that sends once a second makes a long budget burn CPU for nothing. So the budget
//! follows the peer:
//!
//! - a wait that ends while spinning refines the estimate of the time between messages
//!   (a moving average);
//! - a wait that parked, and whose message came soon after (within eight budgets), was a
//!   message on its way: the estimate jumps to that wait. Eight, not fewer: the time a
//!   parked wait measures includes its wake-up, which took ~35 µs on one of the VMs
//!   measured (a futex round trip of 67–72 µs). With four, 1 MiB round trips there (a
//!   wait of ~140 µs under a 50 µs budget) were taken for an idle peer, and parked on
//!   every message;
//! - a wait that parked for longer found an idle peer: the estimate starts over.
//!
//! The budget is twice the estimate, within the strategy's `min ..= max`. Waits that end in
//! their first polls (before the wait reads a clock) leave it alone: they cost nothing to
//! learn from and say nothing new.

use std::time::Duration;

use super::WaitStrategy;

/// A parked wait that took at most this many budgets waited for a message on its way.
const SOON: u32 = 8;

/// How a wait ended, for [`SpinBudget::record`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Waited {
    /// How long it waited, counted from its first clock read (`None`: it ended before
    /// reading one).
    pub(crate) clock: Option<Duration>,
    /// Whether it slept on the futex.
    pub(crate) parked: bool,
}

/// What an [`WaitStrategy::Adaptive`] wait remembers between waits: one per waiting side
/// (an endpoint keeps its own).
///
/// ```
/// use std::time::Duration;
/// use shm_core::notify::{SpinBudget, WaitStrategy};
///
/// let adaptive = WaitStrategy::default();
/// let budget = SpinBudget::new();
/// // Before anything is learned, the adaptive default spins for its minimum.
/// assert_eq!(
///     budget.strategy_for(&adaptive),
///     WaitStrategy::SpinThenPark { spin: Duration::from_micros(50) }
/// );
/// // Other strategies are used as they are.
/// assert_eq!(budget.strategy_for(&WaitStrategy::Park), WaitStrategy::Park);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpinBudget {
    /// The time between messages, as the waits so far suggest (zero: nothing learned).
    estimate: Duration,
}

impl SpinBudget {
    /// A budget that has learned nothing yet: an adaptive wait spins for its minimum.
    pub const fn new() -> SpinBudget {
        SpinBudget {
            estimate: Duration::ZERO,
        }
    }

    /// The strategy the next wait follows under `strategy`: an adaptive one becomes
    /// spin-then-park with the budget learned so far; any other is returned as it is.
    pub fn strategy_for(&self, strategy: &WaitStrategy) -> WaitStrategy {
        match *strategy {
            WaitStrategy::Adaptive { min, max } => WaitStrategy::SpinThenPark {
                spin: self.spin(min, max),
            },
            other => other,
        }
    }

    /// Twice the estimate, within `min ..= max`.
    fn spin(&self, min: Duration, max: Duration) -> Duration {
        self.estimate.saturating_mul(2).clamp(min, max.max(min))
    }

    /// Learns from a wait that ended with its condition met under `strategy` (a timeout
    /// teaches nothing: the caller's deadline ended it).
    pub(crate) fn record(&mut self, strategy: &WaitStrategy, waited: Waited) {
        let (WaitStrategy::Adaptive { min, max }, Some(took)) = (*strategy, waited.clock) else {
            return;
        };
        let spin = self.spin(min, max);
        self.estimate = if !waited.parked {
            (self.estimate.saturating_mul(7) + took) / 8
        } else if took <= spin.saturating_mul(SOON) {
            self.estimate.max(took)
        } else {
            Duration::ZERO
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_micros(50);
    const MAX: Duration = Duration::from_millis(1);
    const ADAPTIVE: WaitStrategy = WaitStrategy::Adaptive { min: MIN, max: MAX };

    fn spin(budget: &SpinBudget) -> Duration {
        match budget.strategy_for(&ADAPTIVE) {
            WaitStrategy::SpinThenPark { spin } => spin,
            other => panic!("{other:?}"),
        }
    }

    fn waited(micros: u64, parked: bool) -> Waited {
        Waited {
            clock: Some(Duration::from_micros(micros)),
            parked,
        }
    }

    #[test]
    fn a_message_that_came_soon_after_parking_lengthens_the_spin() {
        let mut budget = SpinBudget::new();
        assert_eq!(spin(&budget), MIN);
        // A peer that answers in 180 µs: the first wait parks, the message comes soon.
        budget.record(&ADAPTIVE, waited(180, true));
        assert_eq!(spin(&budget), Duration::from_micros(360));
        // From then on the waits end while spinning, and the budget stays above them.
        for _ in 0..100 {
            budget.record(&ADAPTIVE, waited(180, false));
            assert!(
                spin(&budget) >= Duration::from_micros(180),
                "{:?}",
                spin(&budget)
            );
        }
    }

    #[test]
    fn a_parked_wait_of_up_to_eight_budgets_counts_as_a_message_on_its_way() {
        // A 1 MiB round trip on a VM with slow wake-ups: the wait parks under the 50 µs
        // budget and ends 140 µs + a 70 µs wake-up later.
        let mut budget = SpinBudget::new();
        budget.record(&ADAPTIVE, waited(210, true));
        assert_eq!(spin(&budget), Duration::from_micros(420));
        // Just beyond eight budgets: an idle peer.
        let mut budget = SpinBudget::new();
        budget.record(&ADAPTIVE, waited(8 * 50 + 1, true));
        assert_eq!(spin(&budget), MIN);
    }

    #[test]
    fn a_long_sleep_finds_an_idle_peer_and_the_spin_starts_over() {
        let mut budget = SpinBudget::new();
        budget.record(&ADAPTIVE, waited(180, true));
        assert!(spin(&budget) > MIN);
        budget.record(&ADAPTIVE, waited(50_000, true));
        assert_eq!(spin(&budget), MIN);
    }

    #[test]
    fn the_spin_stays_within_min_and_max() {
        let mut budget = SpinBudget::new();
        for took in [1, 10, 400, 900, 3000] {
            budget.record(&ADAPTIVE, waited(took, true));
            let spin = spin(&budget);
            assert!((MIN..=MAX).contains(&spin), "{took} µs: {spin:?}");
        }
        for took in [1, 2, 3] {
            budget.record(&ADAPTIVE, waited(took, false));
        }
        assert!((MIN..=MAX).contains(&spin(&budget)));
    }

    #[test]
    fn waits_without_a_clock_and_other_strategies_teach_nothing() {
        let mut budget = SpinBudget::new();
        budget.record(
            &ADAPTIVE,
            Waited {
                clock: None,
                parked: false,
            },
        );
        budget.record(&WaitStrategy::SpinThenPark { spin: MIN }, waited(180, true));
        assert_eq!(budget, SpinBudget::new());
    }
}
