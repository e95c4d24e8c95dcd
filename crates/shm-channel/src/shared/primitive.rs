//! The one seam between the ring algorithms and their memory: the atomics and fences they
//! use, and the [`DataArea`] whose 8-byte frame words they load and store.
//!
//! Normally these are std's atomics over the shared mapping. Under `cfg(loom)` the atomics
//! and fences are loom's, and a data area keeps its frame words on the side as loom atomics
//! (one per 8 data bytes), so the models see — and interleave — every index, flag and
//! frame-word access of all three rings, on a heap region; payload bytes stay plain memory.
//! Nothing else in the crate names loom.

use std::sync::atomic::Ordering;

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64};

/// The data area of a channel: `capacity` bytes (a power of two, at least 16) of frames.
///
/// Frame words are read and written only through [`load_word`](DataArea::load_word) and
/// [`store_word`](DataArea::store_word), as atomics, so that a peer writing a word while we
/// read it is no data race on our side; payload bytes are copied through raw pointers
/// ([`ptr`](DataArea::ptr)), never through references.
#[derive(Clone)]
pub(crate) struct DataArea {
    /// Start of the area: 8-aligned (128-aligned in a page-aligned region), valid for
    /// `capacity` bytes for as long as the mapping the owner keeps alive.
    base: *mut u8,
    capacity: u64,
    /// `capacity - 1` without the low three bits: masks an offset to its word's.
    word_mask: u64,
    /// Under loom, the frame words (see the module docs) of the whole area this one is a
    /// part of, and the index of this part's first word among them.
    #[cfg(loom)]
    words: std::sync::Arc<[AtomicU64]>,
    #[cfg(loom)]
    first_word: usize,
}

impl DataArea {
    /// The area of `capacity` bytes at `base`.
    ///
    /// # Safety
    ///
    /// `base` must be 8-aligned and valid for reads and writes of `capacity` bytes (a power
    /// of two, at least 16) for as long as the area or a clone of it is used.
    pub(crate) unsafe fn new(base: *mut u8, capacity: u64) -> DataArea {
        debug_assert!(capacity.is_power_of_two() && capacity >= 16 && base as usize % 8 == 0);
        DataArea {
            base,
            capacity,
            word_mask: (capacity - 1) & !7,
            #[cfg(loom)]
            words: (0..capacity / 8).map(|_| AtomicU64::new(0)).collect(),
            #[cfg(loom)]
            first_word: 0,
        }
    }

    /// Part `index` of the area cut in `parts` equal parts (`parts` a power of two no
    /// larger than the capacity / 16; `index` is taken modulo `parts`): an area of its own,
    /// the same memory.
    pub(crate) fn part(&self, index: u64, parts: u64) -> DataArea {
        debug_assert!(parts.is_power_of_two() && self.capacity / parts >= 16);
        let capacity = self.capacity / parts;
        let start = (index % parts) * capacity;
        DataArea {
            base: self.base.wrapping_add(start as usize),
            capacity,
            word_mask: (capacity - 1) & !7,
            #[cfg(loom)]
            words: self.words.clone(),
            #[cfg(loom)]
            first_word: self.first_word + (start / 8) as usize,
        }
    }

    /// Bytes in the area.
    #[inline]
    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The 8-aligned offset of the word that holds byte `offset` (taken modulo the
    /// capacity): always inside the area.
    #[inline]
    fn word_offset(&self, offset: u64) -> u64 {
        offset & self.word_mask
    }

    /// Loads the frame word at `offset` (masked into the area, rounded down to 8).
    #[inline]
    pub(crate) fn load_word(&self, offset: u64, order: Ordering) -> u64 {
        self.word(offset).load(order)
    }

    /// Stores the frame word at `offset` (masked into the area, rounded down to 8).
    #[inline]
    pub(crate) fn store_word(&self, offset: u64, word: u64, order: Ordering) {
        self.word(offset).store(word, order);
    }

    #[cfg(not(loom))]
    #[inline]
    fn word(&self, offset: u64) -> &AtomicU64 {
        let offset = self.word_offset(offset);
        // SAFETY: `offset + 8 <= capacity` and 8-aligned (masked, capacity a multiple of 8);
        // `base` is 8-aligned and valid for the area while `self` lives (the contract of
        // `new`); an atomic tolerates a peer writing the word concurrently, and no
        // non-atomic access of ours overlaps a frame word while it is in use.
        unsafe { AtomicU64::from_ptr(self.base.add(offset as usize).cast()) }
    }

    #[cfg(loom)]
    fn word(&self, offset: u64) -> &AtomicU64 {
        &self.words[self.first_word + (self.word_offset(offset) / 8) as usize]
    }

    /// Where byte `offset` of the area is (arithmetic only: the caller keeps what it
    /// accesses through the pointer inside the area).
    #[inline]
    pub(crate) fn ptr(&self, offset: u64) -> *mut u8 {
        self.base.wrapping_add(offset as usize)
    }
}

// SAFETY: a `DataArea` is a pointer into shared memory that its owner keeps mapped; every
// access through it is atomic (frame words) or a raw copy the ring protocol orders.
unsafe impl Send for DataArea {}
// SAFETY: see `Send`.
unsafe impl Sync for DataArea {}
