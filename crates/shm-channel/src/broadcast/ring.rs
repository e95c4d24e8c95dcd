//! The broadcast ring: one writer, up to `MAX_READERS` readers that each see every frame.
//!
//! Each reader has its own cursor in a reader slot. Under back-pressure the writer waits
//! for the slowest live reader; under overwrite it never waits: it raises `oldest` past the
//! frames it is about to overwrite *before* writing, and a reader that copied a frame out
//! re-checks `oldest` (seqlock-style, after an Acquire fence): if the frame may have been
//! overwritten during the copy, the copy is discarded and the reader reports a lag. Torn
//! data is never returned.

use std::sync::atomic::Ordering;

use super::layout::{span_of, Layout};
use crate::shared::frame::Word;
use crate::shared::primitive::fence;
use crate::shared::ring::before;
use crate::Corruption;

/// What a broadcast reader can find wrong: a corruption, or that it fell behind an
/// overwriting sender and missed messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The shared state is corrupt.
    Corrupted(Corruption),
    /// This many messages were overwritten before being read.
    Lagged(u64),
}

/// Ring bytes of the frame whose frame word is `word`, if it is a data frame or pad that
/// fits in the `to_end` bytes before the ring end (a pad must fill them exactly).
pub(crate) fn frame_span(word: u64, to_end: u64) -> Option<u64> {
    match Word::decode(word)? {
        Word::Pad { len } if len == to_end => Some(len),
        Word::Data { len } if span_of(len) <= to_end => Some(span_of(len)),
        _ => None,
    }
}

/// The sequence number of the message that will be published at `at` (a tail value loaded
/// with Acquire), from the stamp of the last frame before it: frames from `oldest` are
/// walked to `at`, then `oldest` is re-checked (seqlock-style) to know that none was
/// overwritten during the walk. `None` when it cannot be known: nothing before `at` is
/// left, the sender overwrote the frames three times in a row while we walked, or they
/// are garbage (the first read then reports it).
pub(crate) fn seq_at(layout: &Layout, at: u64) -> Option<u64> {
    if at == 0 {
        return Some(0);
    }
    let capacity = layout.capacity();
    for _ in 0..3 {
        // SYNC: oldest frame. Acquire pairs with the Release store in
        // `Writer::announce_overwrite`.
        let oldest_untrusted = layout.writer().oldest.load(Ordering::Acquire);
        // Validated: at most a capacity of frames (at least 16 bytes each) is walked.
        if !before(oldest_untrusted, at)
            || oldest_untrusted % 16 != 0
            || at.wrapping_sub(oldest_untrusted) > capacity
        {
            return None;
        }
        let oldest = oldest_untrusted;
        let (mut pos, mut next) = (oldest, None);
        while before(pos, at) {
            let offset = pos & layout.mask();
            // Relaxed: published by the tail we loaded (`at`); validated by the re-check.
            let stamp = layout.data().load_word(offset, Ordering::Relaxed);
            let word = layout.data().load_word(offset + 8, Ordering::Relaxed);
            let Some(span) = frame_span(word, capacity - offset) else {
                break;
            };
            // A message's stamp is its sequence + 1, the next one's; a pad's is the next
            // message's sequence + 1.
            next = Some(match Word::decode(word) {
                Some(Word::Data { .. }) => stamp,
                _ => stamp.wrapping_sub(1),
            });
            pos = pos.wrapping_add(span);
        }
        // SYNC: overwrite announced (see `Reader::read_frame`).
        fence(Ordering::Acquire);
        // Relaxed: ordered by the fence above.
        if layout.writer().oldest.load(Ordering::Relaxed) == oldest {
            return if pos == at { next } else { None };
        }
    }
    None
}
