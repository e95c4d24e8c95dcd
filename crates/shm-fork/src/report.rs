//! The page a parent shares with each child it forks.
//!
//! One `MAP_SHARED` anonymous page, mapped before the fork so both processes see it:
//!
//! | offset | size | written by | meaning |
//! |---|---|---|---|
//! | 0 | 4 | parent | start gate (futex word): `0` wait, `1` values handed over, go |
//! | 4 | 4 | child | outcome: `0` none, `1` panicked, `2` adopt failed, `3` failed |
//! | 8 | 8 | child | length of the message that follows |
//! | 16 | ≤ 4080 | child | UTF-8 message (panic payload or adopt error), truncated |
//!
//! The exit code alone cannot tell "the closure returned 101" from "the closure panicked";
//! the outcome word can. The child writes it before `_exit`, and the parent reads it only
//! after `waitpid` has reaped the child, which orders the two. The child is our own code but
//! the page is still read as untrusted: the length is clamped, the text decoded lossily.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use shm_core::notify::Futex;
use shm_core::{Region, RegionError, SharedMemory};

const GATE: usize = 0;
const OUTCOME: usize = 4;
const MESSAGE_LEN: usize = 8;
const MESSAGE: usize = 16;
/// One page: the smallest mapping there is.
const PAGE: usize = 4096;

const GATE_CLOSED: u32 = 0;
const GATE_OPEN: u32 = 1;

/// What a child recorded before exiting, besides its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Nothing: the closure returned (or the child died before it could say).
    None,
    /// The closure panicked.
    Panicked,
    /// [`crate::Inherit::adopt`] failed, so the closure never ran.
    AdoptFailed,
    /// The closure reported an error of its own (a pipeline stage's `Err`, say).
    Failed,
}

impl Outcome {
    fn to_raw(self) -> u32 {
        match self {
            Outcome::None => 0,
            Outcome::Panicked => 1,
            Outcome::AdoptFailed => 2,
            Outcome::Failed => 3,
        }
    }

    fn from_raw(raw: u32) -> Outcome {
        match raw {
            1 => Outcome::Panicked,
            2 => Outcome::AdoptFailed,
            3 => Outcome::Failed,
            _ => Outcome::None,
        }
    }
}

/// The shared page of one child (see the module docs for its layout).
#[derive(Debug)]
pub(crate) struct Report {
    region: Region,
}

impl Report {
    /// Maps a fresh, zeroed page: gate closed, no outcome.
    pub(crate) fn new() -> Result<Report, RegionError> {
        Ok(Report {
            region: Region::anonymous(PAGE)?,
        })
    }

    fn gate(&self) -> &Futex {
        // The offset is in bounds and aligned for any mapping of at least one page.
        Futex::from_atomic(self.region.atomic_u32(GATE).expect("gate word in the page"))
    }

    /// Parent: the values are handed over; let the child go on.
    pub(crate) fn open_gate(&self) {
        // SYNC: gate opened. Release publishes the parent's hand-over writes (also to
        // shared memory) to the child, which loads the gate with Acquire.
        self.gate().word().store(GATE_OPEN, Ordering::Release);
        // A failed wake only means the child sleeps until its next periodic check.
        let _ = self.gate().wake(1);
    }

    /// Child: waits until the parent opened the gate. Returns `false` if the parent died
    /// first (our parent pid is no longer `parent`): the values were never handed over.
    pub(crate) fn wait_for_gate(&self, parent: i32) -> bool {
        /// How often a waiting child re-checks that its parent is alive. Parent death sends
        /// no wake-up, so this bounds how long an orphan lingers.
        const RECHECK: Duration = Duration::from_millis(100);
        loop {
            // SYNC: gate opened (Acquire pairs with the Release in `open_gate`).
            if self.gate().word().load(Ordering::Acquire) == GATE_OPEN {
                return true;
            }
            if crate::sys::getppid() != parent {
                return false;
            }
            // Any result (woken, value changed, timed out, interrupted) means: re-check.
            let _ = self
                .gate()
                .wait(GATE_CLOSED, Some(Instant::now() + RECHECK));
        }
    }

    /// Child: records an outcome and its message (truncated to what fits in the page, at a
    /// character boundary).
    pub(crate) fn record(&self, outcome: Outcome, message: &str) {
        let room = PAGE - MESSAGE;
        let mut end = message.len().min(room);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let bytes = &message.as_bytes()[..end];
        // In bounds by construction; a failure would only lose the message.
        let _ = self.region.write_bytes(MESSAGE, bytes);
        if let Ok(len) = self.region.atomic_u64(MESSAGE_LEN) {
            len.store(bytes.len() as u64, Ordering::SeqCst);
        }
        if let Ok(word) = self.region.atomic_u32(OUTCOME) {
            word.store(outcome.to_raw(), Ordering::SeqCst);
        }
    }

    /// What the child recorded. Final once the child is reaped; before that, a child may
    /// record a failure and only then drop its endpoints and exit, so a recorded outcome
    /// is a reliable early sign.
    pub(crate) fn outcome(&self) -> Outcome {
        self.region
            .atomic_u32(OUTCOME)
            .map_or(Outcome::None, |word| {
                Outcome::from_raw(word.load(Ordering::SeqCst))
            })
    }

    /// The recorded message, if any (see [`outcome`](Report::outcome) on timing).
    pub(crate) fn message(&self) -> Option<String> {
        if self.outcome() == Outcome::None {
            return None;
        }
        let len_untrusted = self
            .region
            .atomic_u64(MESSAGE_LEN)
            .ok()?
            .load(Ordering::SeqCst);
        let len = usize::try_from(len_untrusted).ok()?.min(PAGE - MESSAGE);
        let mut bytes = vec![0u8; len];
        self.region.read_bytes(MESSAGE, &mut bytes).ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_page_has_no_outcome() {
        let report = Report::new().unwrap();
        assert_eq!(report.outcome(), Outcome::None);
        assert_eq!(report.message(), None);
    }

    #[test]
    fn records_round_trip() {
        let report = Report::new().unwrap();
        report.record(Outcome::Panicked, "boom");
        assert_eq!(report.outcome(), Outcome::Panicked);
        assert_eq!(report.message().as_deref(), Some("boom"));
    }

    #[test]
    fn long_messages_are_cut_at_a_char_boundary() {
        let report = Report::new().unwrap();
        let long = "é".repeat(PAGE);
        report.record(Outcome::AdoptFailed, &long);
        let message = report.message().unwrap();
        assert!(message.len() <= PAGE - MESSAGE);
        assert!(message.chars().all(|c| c == 'é'));
    }

    #[test]
    fn open_gate_lets_the_waiter_through() {
        let report = Report::new().unwrap();
        report.open_gate();
        assert!(report.wait_for_gate(crate::sys::getppid()));
    }

    #[test]
    fn gate_refuses_a_wrong_parent() {
        let report = Report::new().unwrap();
        assert!(!report.wait_for_gate(-1));
    }
}
