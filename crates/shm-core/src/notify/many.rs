//! Waiting on several events at once ([`Event::wait_any`]): the sleeper announces itself in
//! every event's waiter count, pays the wake handshake once for all of them, and sleeps on
//! all their sequence words in one `futex_waitv` call. A notifier of any of them needs
//! nothing new: it bumps its event's sequence word and makes its `FUTEX_WAKE` as for a
//! single sleeper, which wakes this one. No thread, no descriptor, no shared word per
//! waiter.

use std::time::Instant;

use super::wait::wait_learning;
use super::{Check, Event, Handshake, SpinBudget, WaitStrategy, MAX_WAIT_ANY};

/// Why [`Event::wait_any`] returned without the condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WaitAnyError {
    /// The deadline passed before the condition held.
    #[error("timed out waiting for the condition")]
    TimedOut,
    /// More events than one sleep can watch ([`MAX_WAIT_ANY`]); nothing was waited for.
    #[error("cannot sleep on {count} events at once (at most {max})", max = MAX_WAIT_ANY)]
    TooMany {
        /// How many events were given.
        count: usize,
    },
}

impl Event {
    /// [`wait_learning`](Event::wait_learning) on several events at once: waits until
    /// `poll` returns `Some`, following `strategy` (its spin budget kept in `budget`), or
    /// until `deadline`. Each event comes with the handshake of the channel it belongs to;
    /// publishers notify each event as they would for a single sleeper.
    ///
    /// When it parks, the wait announces itself in every event's waiter count, issues one
    /// SeqCst fence and (if any event's channel uses [`Handshake::Membarrier`]) one
    /// `membarrier`, re-checks `poll` with [`Check::Slow`], then sleeps on all the events'
    /// sequence words together (`futex_waitv`, Linux 5.16+; where the kernel refuses it,
    /// on the first event alone for at most 1 ms at a time), and withdraws from each when
    /// it wakes. Sleeps last at most [`SLOW_CHECK_INTERVAL`](super::SLOW_CHECK_INTERVAL), as for one event.
    ///
    /// At most [`MAX_WAIT_ANY`] (128) events; more is [`WaitAnyError::TooMany`], at once.
    /// No events at all is a wait that only `poll` and the deadline can end.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::time::{Duration, Instant};
    /// use shm_core::notify::{Event, Handshake, SpinBudget, WaitStrategy};
    ///
    /// let (first, second) = (Event::new(), Event::new());
    /// let flag = AtomicBool::new(false);
    /// std::thread::scope(|s| {
    ///     s.spawn(|| {
    ///         std::thread::sleep(Duration::from_millis(10));
    ///         flag.store(true, Ordering::SeqCst);
    ///         second.notify(); // wakes the waiter sleeping on both
    ///     });
    ///     let events = [(&first, Handshake::SeqCst), (&second, Handshake::SeqCst)];
    ///     let deadline = Instant::now() + Duration::from_secs(10);
    ///     let seen = Event::wait_any(
    ///         &events,
    ///         &WaitStrategy::Park,
    ///         &mut SpinBudget::new(),
    ///         Some(deadline),
    ///         |_| flag.load(Ordering::SeqCst).then_some(()),
    ///     );
    ///     assert!(seen.is_ok());
    /// });
    /// ```
    pub fn wait_any<T>(
        events: &[(&Event, Handshake)],
        strategy: &WaitStrategy,
        budget: &mut SpinBudget,
        deadline: Option<Instant>,
        poll: impl FnMut(Check) -> Option<T>,
    ) -> Result<T, WaitAnyError> {
        if events.len() > MAX_WAIT_ANY {
            return Err(WaitAnyError::TooMany {
                count: events.len(),
            });
        }
        wait_learning(events, strategy, budget, deadline, poll).map_err(|_| WaitAnyError::TimedOut)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::super::adaptive::Waited;
    use super::super::wait::wait_sliced;
    use super::*;

    /// Events the waiter sleeps on, and which of them a notifier picks.
    const EVENTS: usize = 5;

    #[test]
    fn a_notification_of_any_event_wakes_a_parked_wait_on_all() {
        let events: Vec<Event> = (0..EVENTS).map(|_| Event::new()).collect();
        for which in 0..EVENTS {
            let flag = AtomicUsize::new(usize::MAX);
            std::thread::scope(|s| {
                let waiter = s.spawn(|| {
                    let all: Vec<_> = events.iter().map(|e| (e, Handshake::SeqCst)).collect();
                    // Sleeps longer than the deadline: only the wake-up can end the wait
                    // in time, never a slice's re-check.
                    wait_sliced(
                        &all,
                        &WaitStrategy::Park,
                        Some(Instant::now() + Duration::from_secs(20)),
                        Duration::from_secs(60),
                        &mut Waited::default(),
                        |_| {
                            let seen = flag.load(Ordering::SeqCst);
                            (seen != usize::MAX).then_some(seen)
                        },
                    )
                });
                // Wait until the waiter is counted in every event, then publish and wake
                // only the one.
                while !events.iter().all(Event::has_waiters) {
                    std::thread::yield_now();
                }
                flag.store(which, Ordering::SeqCst);
                assert!(events[which].notify(), "the waiter was not counted");
                assert_eq!(waiter.join().unwrap(), Ok(which));
            });
            assert!(
                events.iter().all(|e| !e.has_waiters()),
                "announcements withdrawn"
            );
        }
    }

    #[test]
    fn too_many_events_are_refused_before_waiting() {
        let events: Vec<Event> = (0..=MAX_WAIT_ANY).map(|_| Event::new()).collect();
        let all: Vec<_> = events.iter().map(|e| (e, Handshake::SeqCst)).collect();
        let mut polled = false;
        let got: Result<(), _> = Event::wait_any(
            &all,
            &WaitStrategy::Park,
            &mut SpinBudget::new(),
            None,
            |_| {
                polled = true;
                None
            },
        );
        assert_eq!(
            got,
            Err(WaitAnyError::TooMany {
                count: MAX_WAIT_ANY + 1
            })
        );
        assert!(!polled);
        // The most one sleep watches is fine (here, up to a short deadline).
        let got: Result<(), _> = Event::wait_any(
            &all[..MAX_WAIT_ANY],
            &WaitStrategy::Park,
            &mut SpinBudget::new(),
            Some(Instant::now() + Duration::from_millis(15)),
            |_| None,
        );
        assert_eq!(got, Err(WaitAnyError::TimedOut));
        assert!(events.iter().all(|e| !e.has_waiters()));
    }

    #[test]
    fn no_events_is_a_wait_that_only_the_condition_or_the_deadline_ends() {
        let start = Instant::now();
        let mut polls = 0;
        let got = Event::wait_any(
            &[],
            &WaitStrategy::Park,
            &mut SpinBudget::new(),
            Some(start + Duration::from_secs(30)),
            |_| {
                polls += 1;
                (polls == 3).then_some(polls)
            },
        );
        assert_eq!(got, Ok(3));
        let got: Result<(), _> = Event::wait_any(
            &[],
            &WaitStrategy::Park,
            &mut SpinBudget::new(),
            Some(Instant::now() + Duration::from_millis(5)),
            |_| None,
        );
        assert_eq!(got, Err(WaitAnyError::TimedOut));
    }
}
