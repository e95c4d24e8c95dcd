//! Frame header words: one 8-byte word in front of every frame, the same encoding in every
//! ring.
//!
//! ```text
//! bits  0..32  length: payload bytes (data) or bytes to the ring end (pad)
//! bits 32..40  tag: 0xD1 data, 0xD3 data padded to the next line (lanes only), 0xAD pad
//! bits 40..48  zero
//! bits 48..64  zero (a lane: the lap of the frame's position, checked and removed before
//!              decoding)
//! 0            nothing written yet
//! ```
//!
//! Frames start aligned (8 bytes; 16 in broadcast, whose header has a stamp word first) and
//! are contiguous: a frame that would cross the end of the ring is preceded by a pad that
//! skips to the start. A *lined* frame (a lane's, see `crate::shared::lane`) is followed by
//! padding up to the next [`LINE`] boundary of the data area, so that the frame after it
//! starts on a line of its own. Each ring accepts only the tags it writes; anything else is
//! corruption.

use std::sync::atomic::{compiler_fence, Ordering};

/// Bytes of a frame header word.
pub(crate) const FRAME_HEADER_LEN: usize = 8;

const TAG_SHIFT: u32 = 32;
const LEN_MASK: u64 = u32::MAX as u64;
const TAG_DATA: u64 = 0xD1;
const TAG_LINED: u64 = 0xD3;
const TAG_PAD: u64 = 0xAD;

/// Bytes of a cache line, the unit a lined frame is padded to.
pub(crate) const LINE: u64 = 64;

/// A decoded frame header word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Word {
    /// Nothing written yet (all zero).
    Empty,
    /// A committed message of `len` payload bytes.
    Data { len: u64 },
    /// A committed message of `len` payload bytes, padded to the next line
    /// ([`lined_len`]).
    Lined { len: u64 },
    /// Filler of `len` bytes (this header included) up to the end of the ring.
    Pad { len: u64 },
}

impl Word {
    /// The header word for this frame.
    pub(crate) fn encode(self) -> u64 {
        let (tag, len) = match self {
            Word::Empty => return 0,
            Word::Data { len } => (TAG_DATA, len),
            Word::Lined { len } => (TAG_LINED, len),
            Word::Pad { len } => (TAG_PAD, len),
        };
        (len & LEN_MASK) | (tag << TAG_SHIFT)
    }

    /// Decodes a word read from the ring; `None` for anything no ring writes.
    pub(crate) fn decode(word: u64) -> Option<Word> {
        if word == 0 {
            return Some(Word::Empty);
        }
        let len = word & LEN_MASK;
        match word >> TAG_SHIFT {
            TAG_DATA => Some(Word::Data { len }),
            TAG_LINED => Some(Word::Lined { len }),
            TAG_PAD => Some(Word::Pad { len }),
            _ => None,
        }
    }
}

/// Ring bytes a frame with `payload` bytes occupies: header plus payload rounded up to 8.
/// Never overflows for payloads below 2^32.
pub(crate) const fn frame_len(payload: u64) -> u64 {
    FRAME_HEADER_LEN as u64 + payload.next_multiple_of(8)
}

/// Ring bytes a lined frame with `payload` bytes occupies at `offset` in the data area:
/// the frame, then padding up to the next [`LINE`] boundary. Never overflows for offsets
/// and payloads below 2^32.
#[inline]
pub(crate) const fn lined_len(offset: u64, payload: u64) -> u64 {
    (offset + frame_len(payload)).next_multiple_of(LINE) - offset
}

/// Copies a payload of `len` bytes from `src` to `dst`, into or out of a frame: up to 16
/// bytes (the messages of a stream of tiny ones) with two overlapping word moves instead
/// of a call to `memcpy`, which costs more than such a copy; 33 to 64 bytes by loading
/// words ([`load_words`]) and storing two overlapping 32-byte moves; the others with
/// `memcpy`.
///
/// Why words for 33 to 64 bytes: a sender has usually just written its message (a
/// sequence number, a length, a stamp: word-sized stores). A load that covers such a store
/// only in part, as `memcpy`'s 32-byte loads do, cannot take its value from the store
/// buffer: it waits until the store reaches the cache, behind every store before it, and
/// those are the previous messages' stores into the ring, each waiting for its line to
/// come back from the reader's core. A word load that matches the word stored is served at
/// once. Measured on the 2-core VM, two processes, a sender writing 8 bytes at each end of
/// its 64-byte message before each send: 47–55 M messages a second through `memcpy`,
/// 94–114 M through words; a sender that writes nothing first, 100–116 M both ways (the
/// table in docs/benchmarks.md). (At
/// 17–32 bytes the same change cost that second sender a third, so those keep `memcpy`.)
///
/// # Safety
///
/// As [`std::ptr::copy_nonoverlapping`]: `src` valid for reads and `dst` for writes of
/// `len` bytes, the ranges not overlapping.
#[inline(always)]
pub(crate) unsafe fn copy_payload(src: *const u8, dst: *mut u8, len: usize) {
    // SAFETY: in every arm, each access lies within the first `len` bytes of `src` or
    // `dst` (the second of two moves ends at `len`), which the caller vouches for;
    // unaligned reads and writes, no reference formed.
    unsafe {
        match len {
            8..=16 => {
                let head = src.cast::<u64>().read_unaligned();
                let tail = src.add(len - 8).cast::<u64>().read_unaligned();
                dst.cast::<u64>().write_unaligned(head);
                dst.add(len - 8).cast::<u64>().write_unaligned(tail);
            }
            4..=7 => {
                let head = src.cast::<u32>().read_unaligned();
                let tail = src.add(len - 4).cast::<u32>().read_unaligned();
                dst.cast::<u32>().write_unaligned(head);
                dst.add(len - 4).cast::<u32>().write_unaligned(tail);
            }
            0..=3 => {
                for i in 0..len {
                    dst.add(i).write(src.add(i).read());
                }
            }
            33..=64 => {
                let head = load_words(src);
                let tail = load_words(src.add(len - 32));
                dst.cast::<[u64; 4]>().write_unaligned(head);
                dst.add(len - 32).cast::<[u64; 4]>().write_unaligned(tail);
            }
            _ => std::ptr::copy_nonoverlapping(src, dst, len),
        }
    }
}

/// Loads the 32 bytes at `src` as four separate 8-byte loads (see [`copy_payload`] for
/// why). A compiler fence after each keeps the compiler from merging them back into one
/// wide load; it orders nothing at run time.
///
/// # Safety
///
/// `src` must be valid for reads of 32 bytes (any alignment).
#[inline(always)]
unsafe fn load_words(src: *const u8) -> [u64; 4] {
    let mut words = [0u64; 4];
    for (i, word) in words.iter_mut().enumerate() {
        // SAFETY: `8 * i + 8 <= 32` bytes from `src`, which the caller vouches for;
        // unaligned read, no reference formed.
        *word = unsafe { src.add(8 * i).cast::<u64>().read_unaligned() };
        compiler_fence(Ordering::SeqCst);
    }
    words
}

/// [`copy_payload`] out of a frame into private memory: also 17 to 64 bytes by two
/// overlapping moves of 16 or 32 bytes, loaded whole (the ring's bytes were stored by the
/// other process: nothing of ours waits in the store buffer). (Into a frame, 17–32 bytes
/// keep `memcpy`: overlapping moves measured slower there while the reader polls the
/// line; 33–64 bytes are loaded as words, see [`copy_payload`].)
///
/// # Safety
///
/// As [`copy_payload`].
#[inline(always)]
pub(crate) unsafe fn copy_payload_out(src: *const u8, dst: *mut u8, len: usize) {
    // SAFETY: as in `copy_payload`: each access lies within the first `len` bytes of `src`
    // or `dst`, which the caller vouches for; unaligned, no reference formed.
    unsafe {
        match len {
            33..=64 => {
                let head = src.cast::<[u64; 4]>().read_unaligned();
                let tail = src.add(len - 32).cast::<[u64; 4]>().read_unaligned();
                dst.cast::<[u64; 4]>().write_unaligned(head);
                dst.add(len - 32).cast::<[u64; 4]>().write_unaligned(tail);
            }
            17..=32 => {
                let head = src.cast::<[u64; 2]>().read_unaligned();
                let tail = src.add(len - 16).cast::<[u64; 2]>().read_unaligned();
                dst.cast::<[u64; 2]>().write_unaligned(head);
                dst.add(len - 16).cast::<[u64; 2]>().write_unaligned(tail);
            }
            _ => copy_payload(src, dst, len),
        }
    }
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
            Word::Data { len: 0 },
            Word::Data {
                len: u32::MAX as u64,
            },
            Word::Lined { len: 72 },
            Word::Pad { len: 4096 },
        ] {
            assert_eq!(Word::decode(word.encode()), Some(word));
        }
    }

    #[test]
    fn a_lined_frame_ends_on_a_line_boundary() {
        // 64 payload bytes: 72 bytes of frame, padded to 128 from a line start; from 56
        // bytes into a line the frame ends exactly on the second boundary: no padding.
        assert_eq!(lined_len(0, 64), 128);
        assert_eq!(lined_len(56, 64), 72);
        assert_eq!(lined_len(64, 8), 64);
        for offset in (0..256).step_by(8) {
            for payload in 0..200 {
                let span = lined_len(offset, payload);
                assert_eq!((offset + span) % LINE, 0);
                assert!(span >= frame_len(payload) && span < frame_len(payload) + LINE);
            }
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
            0xC1 << 32,
        ] {
            assert_eq!(Word::decode(word), None, "{word:#x}");
        }
    }

    /// Every length of every arm (and the `memcpy` beyond), at offsets that misalign both
    /// sides: the bytes copied are exactly the source's, and nothing around the destination
    /// is touched.
    #[test]
    fn payload_copies_are_exact_at_every_length_and_offset() {
        let src: Vec<u8> = (0..100u8)
            .map(|b| b.wrapping_mul(7).wrapping_add(1))
            .collect();
        let copies: [unsafe fn(*const u8, *mut u8, usize); 2] = [copy_payload, copy_payload_out];
        for (which, copy) in copies.into_iter().enumerate() {
            for len in 0..=80 {
                for (from, to) in [(0, 0), (1, 3), (5, 2), (7, 7)] {
                    let mut dst = [0xEEu8; 100];
                    // SAFETY: `src[from..]` and `dst[to..]` hold at least `len` bytes (at
                    // most 80 + 7 of 100); two distinct arrays.
                    unsafe { copy(src[from..].as_ptr(), dst[to..].as_mut_ptr(), len) };
                    let at = format!("copy {which}, len {len}, offsets {from}/{to}");
                    assert_eq!(dst[to..to + len], src[from..from + len], "{at}");
                    assert!(dst[..to].iter().all(|&b| b == 0xEE), "before: {at}");
                    assert!(dst[to + len..].iter().all(|&b| b == 0xEE), "after: {at}");
                }
            }
        }
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
