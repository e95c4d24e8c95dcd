//! Frame header words: one 8-byte word in front of every frame, the same encoding in every
//! ring.
//!
//! ```text
//! bits  0..32  length: payload bytes (data, claimed, skip) or bytes to the ring end (pad)
//! bits 32..40  tag: 0xD1 data, 0xAD pad, 0xC1 claimed (MPSC), 0x5C skip (MPSC)
//! bits 40..48  producer slot that claimed the frame (MPSC; 0 elsewhere)
//! bits 48..64  zero (SPSC: the lap of the frame's position, checked and removed before decoding)
//! 0            nothing written yet (MPSC: the consumer zeroes what it releases)
//! ```
//!
//! Frames start aligned (8 bytes; 16 in broadcast, whose header has a stamp word first) and
//! are contiguous: a frame that would cross the end of the ring is preceded by a pad that
//! skips to the start. Each ring accepts only the tags it writes; anything else is
//! corruption.

/// Bytes of a frame header word.
pub(crate) const FRAME_HEADER_LEN: usize = 8;

const TAG_SHIFT: u32 = 32;
const SLOT_SHIFT: u32 = 40;
const LEN_MASK: u64 = u32::MAX as u64;
const TAG_DATA: u64 = 0xD1;
const TAG_PAD: u64 = 0xAD;
const TAG_CLAIMED: u64 = 0xC1;
const TAG_SKIP: u64 = 0x5C;

/// A decoded frame header word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Word {
    /// Nothing written yet (all zero).
    Empty,
    /// A committed message of `len` payload bytes, claimed by producer `slot`.
    Data { len: u64, slot: usize },
    /// Filler of `len` bytes (this header included) up to the end of the ring.
    Pad { len: u64 },
    /// Claimed by producer `slot` for `len` payload bytes, not committed yet (MPSC).
    Claimed { len: u64, slot: usize },
    /// Committed filler of `len` payload bytes (span `frame_len(len)`): skip it (MPSC).
    Skip { len: u64 },
}

impl Word {
    /// The header word for this frame.
    pub(crate) fn encode(self) -> u64 {
        let (tag, len, slot) = match self {
            Word::Empty => return 0,
            Word::Data { len, slot } => (TAG_DATA, len, slot),
            Word::Pad { len } => (TAG_PAD, len, 0),
            Word::Claimed { len, slot } => (TAG_CLAIMED, len, slot),
            Word::Skip { len } => (TAG_SKIP, len, 0),
        };
        (len & LEN_MASK) | (tag << TAG_SHIFT) | ((slot as u64 & 0xff) << SLOT_SHIFT)
    }

    /// Decodes a word read from the ring; `None` for anything no ring writes, including a
    /// slot of `max_slots` or more (`max_slots` is 1 for rings without producer slots).
    pub(crate) fn decode(word: u64, max_slots: usize) -> Option<Word> {
        if word == 0 {
            return Some(Word::Empty);
        }
        let len = word & LEN_MASK;
        let tag = (word >> TAG_SHIFT) & 0xff;
        let slot = ((word >> SLOT_SHIFT) & 0xff) as usize;
        if word >> 48 != 0 || slot >= max_slots {
            return None;
        }
        match tag {
            TAG_DATA => Some(Word::Data { len, slot }),
            TAG_CLAIMED => Some(Word::Claimed { len, slot }),
            TAG_PAD if slot == 0 => Some(Word::Pad { len }),
            TAG_SKIP if slot == 0 => Some(Word::Skip { len }),
            _ => None,
        }
    }
}

/// Ring bytes a frame with `payload` bytes occupies: header plus payload rounded up to 8.
/// Never overflows for payloads below 2^32.
pub(crate) const fn frame_len(payload: u64) -> u64 {
    FRAME_HEADER_LEN as u64 + payload.next_multiple_of(8)
}

/// Largest payload a ring of `capacity` bytes with `header`-byte frame headers carries: the
/// whole ring less one header, and at most what the 32-bit length field holds.
#[inline]
pub(crate) fn max_payload(capacity: u64, header: u64) -> usize {
    let max = capacity.saturating_sub(header).min(u32::MAX as u64);
    usize::try_from(max).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for word in [
            Word::Empty,
            Word::Data { len: 0, slot: 0 },
            Word::Data {
                len: u32::MAX as u64,
                slot: 63,
            },
            Word::Pad { len: 4096 },
            Word::Claimed { len: 5, slot: 63 },
            Word::Skip { len: 8 },
        ] {
            assert_eq!(Word::decode(word.encode(), 64), Some(word));
        }
    }

    #[test]
    fn garbage_words_do_not_decode() {
        for word in [
            u64::MAX,
            1 << 48,
            (TAG_DATA << 32) | (64 << 40),
            0x7f << 32,
            (TAG_PAD << 32) | (1 << 40),
        ] {
            assert_eq!(Word::decode(word, 64), None, "{word:#x}");
        }
        // A slot beyond what the ring has.
        let claimed = Word::Claimed { len: 1, slot: 3 }.encode();
        assert_eq!(Word::decode(claimed, 2), None);
    }

    #[test]
    fn frame_lengths_are_aligned() {
        assert_eq!(frame_len(0), 8);
        assert_eq!(frame_len(1), 16);
        assert_eq!(frame_len(8), 16);
        assert_eq!(frame_len(9), 24);
        assert_eq!(max_payload(16, 8), 8);
        assert_eq!(max_payload(1 << 33, 8), u32::MAX as usize);
    }
}
