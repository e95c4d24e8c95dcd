//! Frame headers: one 8-byte word in front of every frame in the ring.
//!
//! ```text
//! bits  0..32  length: payload bytes (data frame) or bytes skipped (padding frame)
//! bits 32..40  tag: 0xD1 data, 0xAD padding
//! bits 40..64  zero
//! ```
//!
//! Frames start 8-byte aligned and are contiguous: a frame that would cross the end of the
//! ring is preceded by a padding frame that skips to the start. Anything else in a header
//! word is corruption.

/// Bytes of a frame header.
pub(crate) const FRAME_HEADER_LEN: usize = 8;

const TAG_SHIFT: u32 = 32;
const TAG_DATA: u64 = 0xD1;
const TAG_PAD: u64 = 0xAD;
const LEN_MASK: u64 = u32::MAX as u64;

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameHeader {
    /// A message of `len` payload bytes follows.
    Data { len: u64 },
    /// Skip `len` bytes (this header included) to the start of the ring.
    Pad { len: u64 },
}

impl FrameHeader {
    /// The header word for this frame.
    pub(crate) fn encode(self) -> u64 {
        match self {
            FrameHeader::Data { len } => (TAG_DATA << TAG_SHIFT) | (len & LEN_MASK),
            FrameHeader::Pad { len } => (TAG_PAD << TAG_SHIFT) | (len & LEN_MASK),
        }
    }

    /// Decodes a header word read from the ring; `None` for anything we never write.
    pub(crate) fn decode(word: u64) -> Option<FrameHeader> {
        let len = word & LEN_MASK;
        match word >> TAG_SHIFT {
            TAG_DATA => Some(FrameHeader::Data { len }),
            TAG_PAD => Some(FrameHeader::Pad { len }),
            _ => None,
        }
    }
}

/// Ring bytes a frame with `payload` bytes occupies: header plus payload rounded up to 8.
/// Never overflows for payloads below 2^32.
pub(crate) const fn frame_len(payload: u64) -> u64 {
    FRAME_HEADER_LEN as u64 + payload.next_multiple_of(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        for header in [
            FrameHeader::Data { len: 0 },
            FrameHeader::Data {
                len: u32::MAX as u64,
            },
            FrameHeader::Pad { len: 4096 },
        ] {
            assert_eq!(FrameHeader::decode(header.encode()), Some(header));
        }
    }

    #[test]
    fn garbage_words_do_not_decode() {
        for word in [0, u64::MAX, 1 << 40 | TAG_DATA << 32, 0x7f << 32] {
            assert_eq!(FrameHeader::decode(word), None, "{word:#x}");
        }
    }

    #[test]
    fn frame_lengths_are_aligned() {
        assert_eq!(frame_len(0), 8);
        assert_eq!(frame_len(1), 16);
        assert_eq!(frame_len(8), 16);
        assert_eq!(frame_len(9), 24);
    }
}
