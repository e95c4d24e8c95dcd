//! The bridge's wire format: a fixed 32-byte header in front of every frame's bytes.
//!
//! ```text
//! offset  size  field
//!      0     4  magic b"SHMB"
//!      4     1  format version (FORMAT_VERSION)
//!      5     1  kind: 0 data, 1 end of stream (the exporter's local senders are gone)
//!      6     2  reserved, zero
//!      8     4  layout tag (u32 LE): the codec/layout of the payload, chosen by the user
//!     12     4  payload length (u32 LE): the bytes after the header
//!     16     8  publisher id (u64 LE): one per exporter, random
//!     24     8  sequence number (u64 LE): 0, 1, 2, ... per publisher
//! ```
//!
//! Everything that arrives from the network is untrusted: [`FrameHeader::parse`] checks
//! every field and returns a [`HeaderError`], never panics.

/// The magic at offset 0 of every bridged frame.
pub const MAGIC: [u8; 4] = *b"SHMB";

/// The version of this wire format. A peer speaking another version is refused.
pub const FORMAT_VERSION: u8 = 1;

/// Length of the header in front of every frame's bytes.
pub const HEADER_LEN: usize = 32;

/// The codec/layout of the payload a channel carries, chosen by the user and checked on
/// every frame: an importer refuses frames of another layout instead of misreading them.
///
/// ```
/// use shm_bridge::Layout;
/// assert_eq!(Layout::named("telemetry/v2"), Layout::named("telemetry/v2"));
/// assert_ne!(Layout::named("telemetry/v2"), Layout::named("telemetry/v3"));
/// assert_eq!(Layout::BYTES.tag(), 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Layout(u32);

impl Layout {
    /// Raw bytes, no codec: the default.
    pub const BYTES: Layout = Layout(0);

    /// A layout from an explicit tag.
    pub const fn new(tag: u32) -> Layout {
        Layout(tag)
    }

    /// A layout named by a string (e.g. `"my-app/Reading/postcard/v3"`), hashed with
    /// 32-bit FNV-1a: stable across builds, hosts and compiler versions.
    pub const fn named(name: &str) -> Layout {
        // FNV-1a, 32 bit: offset basis and prime from the FNV specification
        // (http://www.isthe.com/chongo/tech/comp/fnv/).
        let bytes = name.as_bytes();
        let mut hash: u32 = 0x811c_9dc5;
        let mut i = 0;
        while i < bytes.len() {
            hash ^= bytes[i] as u32;
            hash = hash.wrapping_mul(0x0100_0193);
            i += 1;
        }
        Layout(hash)
    }

    /// The tag carried in each frame's header.
    pub const fn tag(self) -> u32 {
        self.0
    }
}

/// What a bridged frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A frame read from the exporter's local channel.
    Data,
    /// The exporter's local channel ended cleanly (its senders were dropped): no more
    /// frames from this publisher.
    End,
}

/// Why a frame from the network was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Shorter than the header.
    #[error("frame of {len} bytes is shorter than the {HEADER_LEN}-byte bridge header")]
    Truncated {
        /// Length received.
        len: usize,
    },
    /// Not a bridge frame.
    #[error("not a shm-bridge frame (magic {found:02x?})")]
    BadMagic {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// Another version of the wire format.
    #[error("bridge format version {found}, this build speaks {FORMAT_VERSION}")]
    Version {
        /// The version the peer speaks.
        found: u8,
    },
    /// A kind or reserved field this version does not define.
    #[error("malformed bridge header (kind {kind}, reserved {reserved:#06x})")]
    Malformed {
        /// The kind byte.
        kind: u8,
        /// The reserved field.
        reserved: u16,
    },
    /// The payload is of another layout or codec than this importer expects.
    #[error("layout mismatch: frame carries tag {found:#010x}, importer expects {expected:#010x}")]
    Layout {
        /// The importer's layout tag.
        expected: u32,
        /// The frame's layout tag.
        found: u32,
    },
    /// The header's payload length disagrees with the bytes received.
    #[error("header announces {announced} payload bytes, {received} arrived")]
    Length {
        /// Length in the header.
        announced: u32,
        /// Bytes after the header.
        received: usize,
    },
}

/// A parsed, validated frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Data or end of stream.
    pub kind: FrameKind,
    /// The payload's layout.
    pub layout: Layout,
    /// The exporter that sent it.
    pub publisher: u64,
    /// Its sequence number in that exporter's stream.
    pub seq: u64,
}

impl FrameHeader {
    /// Writes the header for a payload of `payload_len` bytes into `out[..HEADER_LEN]`.
    ///
    /// # Panics
    ///
    /// If `out` is shorter than [`HEADER_LEN`] (a bug of this crate, never of input).
    pub(crate) fn write(&self, payload_len: u32, out: &mut [u8]) {
        let out = &mut out[..HEADER_LEN];
        out[0..4].copy_from_slice(&MAGIC);
        out[4] = FORMAT_VERSION;
        out[5] = match self.kind {
            FrameKind::Data => 0,
            FrameKind::End => 1,
        };
        out[6..8].copy_from_slice(&0u16.to_le_bytes());
        out[8..12].copy_from_slice(&self.layout.tag().to_le_bytes());
        out[12..16].copy_from_slice(&payload_len.to_le_bytes());
        out[16..24].copy_from_slice(&self.publisher.to_le_bytes());
        out[24..32].copy_from_slice(&self.seq.to_le_bytes());
    }

    /// Parses and checks the header of `frame`, returning it and the payload.
    pub fn parse(frame: &[u8], expected: Layout) -> Result<(FrameHeader, &[u8]), HeaderError> {
        let Some((head, payload)) = frame.split_first_chunk::<HEADER_LEN>() else {
            return Err(HeaderError::Truncated { len: frame.len() });
        };
        let field = |at: usize| -> [u8; 8] {
            let mut word = [0u8; 8];
            word.copy_from_slice(&head[at..at + 8]);
            word
        };
        let half = |at: usize| -> [u8; 4] {
            let mut word = [0u8; 4];
            word.copy_from_slice(&head[at..at + 4]);
            word
        };
        let magic = half(0);
        if magic != MAGIC {
            return Err(HeaderError::BadMagic { found: magic });
        }
        if head[4] != FORMAT_VERSION {
            return Err(HeaderError::Version { found: head[4] });
        }
        let reserved = u16::from_le_bytes([head[6], head[7]]);
        let kind = match (head[5], reserved) {
            (0, 0) => FrameKind::Data,
            (1, 0) => FrameKind::End,
            (kind, reserved) => return Err(HeaderError::Malformed { kind, reserved }),
        };
        let found = u32::from_le_bytes(half(8));
        if found != expected.tag() {
            return Err(HeaderError::Layout {
                expected: expected.tag(),
                found,
            });
        }
        let announced = u32::from_le_bytes(half(12));
        if usize::try_from(announced).ok() != Some(payload.len()) {
            return Err(HeaderError::Length {
                announced,
                received: payload.len(),
            });
        }
        let header = FrameHeader {
            kind,
            layout: expected,
            publisher: u64::from_le_bytes(field(16)),
            seq: u64::from_le_bytes(field(24)),
        };
        Ok((header, payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(header: FrameHeader, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; HEADER_LEN + payload.len()];
        header.write(payload.len() as u32, &mut out);
        out[HEADER_LEN..].copy_from_slice(payload);
        out
    }

    const HEADER: FrameHeader = FrameHeader {
        kind: FrameKind::Data,
        layout: Layout::new(7),
        publisher: 0xdead_beef,
        seq: 42,
    };

    #[test]
    fn a_written_header_parses_back() {
        let bytes = frame(HEADER, b"payload");
        let (header, payload) = FrameHeader::parse(&bytes, Layout::new(7)).unwrap();
        assert_eq!(header, HEADER);
        assert_eq!(payload, b"payload");
    }

    #[test]
    fn every_bad_field_is_refused_with_its_reason() {
        let good = frame(HEADER, b"abc");
        assert_eq!(
            FrameHeader::parse(&good[..10], Layout::new(7)),
            Err(HeaderError::Truncated { len: 10 })
        );
        assert_eq!(
            FrameHeader::parse(&good, Layout::new(8)),
            Err(HeaderError::Layout {
                expected: 8,
                found: 7
            })
        );
        let mut bad = good.clone();
        bad[0] = b'X';
        assert!(matches!(
            FrameHeader::parse(&bad, Layout::new(7)),
            Err(HeaderError::BadMagic { .. })
        ));
        let mut bad = good.clone();
        bad[4] = 9;
        assert_eq!(
            FrameHeader::parse(&bad, Layout::new(7)),
            Err(HeaderError::Version { found: 9 })
        );
        let mut bad = good.clone();
        bad[5] = 3;
        assert!(matches!(
            FrameHeader::parse(&bad, Layout::new(7)),
            Err(HeaderError::Malformed { kind: 3, .. })
        ));
        let mut bad = good.clone();
        bad.push(0);
        assert_eq!(
            FrameHeader::parse(&bad, Layout::new(7)),
            Err(HeaderError::Length {
                announced: 3,
                received: 4
            })
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic sweep: every length up to two headers, every byte value
        // pattern of an LCG.
        let mut state = 1u64;
        for len in 0..(2 * HEADER_LEN) {
            let mut bytes = vec![0u8; len];
            for byte in &mut bytes {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                *byte = (state >> 56) as u8;
            }
            if len >= 5 {
                bytes[..4].copy_from_slice(&MAGIC);
                bytes[4] = FORMAT_VERSION;
            }
            // Random fields past magic and version: the kind, reserved, layout or length
            // check refuses every one of these (the sweep is deterministic).
            let parsed = FrameHeader::parse(&bytes, Layout::BYTES);
            assert!(parsed.is_err(), "{len} bytes accepted: {parsed:?}");
            if len < HEADER_LEN {
                assert_eq!(parsed, Err(HeaderError::Truncated { len }));
            }
        }
    }
}
