//! What a hostile peer writes: the garbage-value set every hostile test and fuzz target
//! draws from, and the tally of how our calls ended.

use crate::layout::frame;

/// A value a hostile peer writes, possibly relative to what is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Garbage {
    /// This value.
    Value(u64),
    /// The value found, plus this (wrapping).
    Plus(u64),
    /// The value found with these bits flipped.
    Flip(u64),
}

impl Garbage {
    /// The value written over `old`.
    pub fn apply(self, old: u64) -> u64 {
        match self {
            Garbage::Value(v) => v,
            Garbage::Plus(d) => old.wrapping_add(d),
            Garbage::Flip(bits) => old ^ bits,
        }
    }
}

/// An identity (pid in bits 0..22, start time above) of pid 1 with a start time it does not
/// have: names no live process.
pub const WRONG_START_TIME: u64 = 1 | (123_456 << 22);
/// An identity of a pid that does not exist (the largest), start time 0.
pub const NO_SUCH_PID: u64 = 0x3f_ffff;

/// The garbage set for a ring of `capacity` bytes (27 values): edge values, capacity-relative
/// indices, frame words with out-of-range lengths and tags, identities of no live process,
/// and small shifts and bit flips of what is there.
pub fn values(capacity: usize) -> Vec<Garbage> {
    let cap = capacity as u64;
    let mut values: Vec<Garbage> = [
        0,
        u64::MAX,
        cap,
        cap + 1,
        2 * cap - 1,
        0xFFFF_FFF8,
        1 << 63,
        7,
        frame::data(cap, 0),
        frame::data(cap - 8, 0),
        frame::data(0xFFFF_FFF8, 0),
        frame::data(0xFFFF_FFFF, 0),
        frame::pad(cap),
        frame::pad(8),
        frame::pad(0),
        WRONG_START_TIME,
        NO_SUCH_PID,
        0xdead_beef_dead_beef,
    ]
    .into_iter()
    .map(Garbage::Value)
    .collect();
    values.extend([
        Garbage::Plus(8),
        Garbage::Plus(4),
        Garbage::Plus(cap),
        Garbage::Plus(cap + 8),
        Garbage::Plus(2 * cap),
        Garbage::Plus(8u64.wrapping_neg()),
        Garbage::Flip(1 << 33), // a flipped tag bit
        Garbage::Flip(0xff << 40),
        Garbage::Flip(1),
    ]);
    values
}

/// Extra values for rings with producer slots and claim states (MPSC) or stamps
/// (broadcast): claimed and skip words, slot numbers out of range, small shifts of a
/// sequence stamp.
pub fn frame_extras(capacity: usize) -> Vec<Garbage> {
    let cap = capacity as u64;
    vec![
        Garbage::Value(frame::claimed(8, 0)),
        Garbage::Value(frame::claimed(cap, 63)),
        Garbage::Value(frame::claimed(16, 64)),
        Garbage::Value(frame::skip(cap)),
        Garbage::Value(frame::skip(8)),
        Garbage::Value(frame::data(8, 63)),
        Garbage::Value(frame::lined(8)),
        Garbage::Value(frame::lined(cap)),
        Garbage::Plus(1),
        Garbage::Plus(1u64.wrapping_neg()),
        Garbage::Plus(16),
    ]
}

/// How the calls of a hostile case ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Calls that succeeded (a message, a send, an attach).
    pub ok: u64,
    /// Calls that failed with a corruption.
    pub corrupted: u64,
    /// Calls that failed with another typed error (closed, dead, full, not owner, ...).
    pub refused: u64,
}

impl Tally {
    /// Adds another tally.
    pub fn add(&mut self, other: Tally) {
        self.ok += other.ok;
        self.corrupted += other.corrupted;
        self.refused += other.refused;
    }

    /// Counts one call: `Ok`, or an error that is (`true`) or is not a corruption.
    pub fn count(&mut self, outcome: Result<(), bool>) {
        match outcome {
            Ok(()) => self.ok += 1,
            Err(true) => self.corrupted += 1,
            Err(false) => self.refused += 1,
        }
    }

    /// Calls counted.
    pub fn calls(&self) -> u64 {
        self.ok + self.corrupted + self.refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_set_has_27_values_and_applies_relative_ones() {
        assert_eq!(values(1024).len(), 27);
        assert_eq!(Garbage::Plus(8).apply(u64::MAX), 7);
        assert_eq!(Garbage::Flip(1).apply(2), 3);
        assert_eq!(Garbage::Value(5).apply(9), 5);
        assert_eq!(frame::data(1024, 0), (0xD1 << 32) | 1024);
        let mut t = Tally::default();
        t.count(Ok(()));
        t.count(Err(true));
        t.count(Err(false));
        assert_eq!((t.ok, t.corrupted, t.refused, t.calls()), (1, 1, 1, 3));
    }
}
