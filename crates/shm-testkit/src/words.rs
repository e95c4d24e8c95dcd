//! Loading and poking the words of a channel's memory, whatever holds it: implement
//! [`Words`] for a wrapper of the memory (a test's `&dyn SharedMemory`), and every hostile
//! write goes through [`Words::poke`].

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::garbage::Garbage;
use crate::layout::{Width, Word};

/// Atomic access to the words of some memory.
pub trait Words {
    /// The u64 at `offset`, if in bounds and aligned.
    fn word64(&self, offset: usize) -> Option<&AtomicU64>;
    /// The u32 at `offset`, if in bounds and aligned.
    fn word32(&self, offset: usize) -> Option<&AtomicU32>;

    /// The value of `word` (0 if out of bounds).
    fn load(&self, word: Word) -> u64 {
        match word.width {
            Width::U64 => self
                .word64(word.offset)
                .map_or(0, |w| w.load(Ordering::SeqCst)),
            Width::U32 => self
                .word32(word.offset)
                .map_or(0, |w| u64::from(w.load(Ordering::SeqCst))),
        }
    }

    /// Stores `value` (truncated to the width) into `word`; out of bounds is ignored.
    fn store(&self, word: Word, value: u64) {
        match word.width {
            Width::U64 => {
                if let Some(w) = self.word64(word.offset) {
                    w.store(value, Ordering::SeqCst);
                }
            }
            Width::U32 => {
                if let Some(w) = self.word32(word.offset) {
                    w.store(value as u32, Ordering::SeqCst);
                }
            }
        }
    }

    /// Writes `garbage` into `word`, relative to what is there where it says so; returns
    /// the value written.
    fn poke(&self, word: Word, garbage: Garbage) -> u64 {
        let value = garbage.apply(self.load(word));
        self.store(word, value);
        value
    }

    /// The u64 at `offset` (0 if out of bounds).
    fn load_u64(&self, offset: usize) -> u64 {
        self.load(Word::u64("word", offset))
    }
}
