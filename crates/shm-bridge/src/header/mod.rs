//! The bridge's wire format: each zenoh put carries one **pack**, a 32-byte header and then
//! the frames it packs, each behind its 4-byte length.
//!
//! ```text
//! offset  size  field
//!      0     4  magic b"SHMB"
//!      4     1  format version (FORMAT_VERSION = 2)
//!      5     1  kind: 0 data, 1 end (the exporter's local senders are gone),
//!                     2 stopped (the exporter stopped before its stream ended)
//!      6     2  reserved, zero
//!      8     4  layout tag (u32 LE): the codec/layout of the payloads, chosen by the user
//!     12     4  count (u32 LE): frames in a data pack (at least 1); 0 in end and stopped
//!     16     8  publisher id (u64 LE): one per exporter, random
//!     24     8  sequence number (u64 LE): a data pack's first frame (the others follow
//!               one by one); in end and stopped, the number after the last frame sent
//!     32        data: `count` times { length (u32 LE), that many payload bytes }, nothing
//!               after the last; end and stopped: frames abandoned (u64 LE), see below
//! ```
//!
//! Every frame of a pack has its own sequence number (the first one's plus its index), so
//! an importer keeps each publisher's order and counts gaps frame by frame. The final pack
//! (end or stopped) tells an importer the stream's length: every frame before its sequence
//! number was sent, and "abandoned" more were left unsent in the exporter's local channel
//! when it stopped (always 0 in an end pack).
//!
//! Version 1 (one frame per put) is refused by version 2 peers as
//! [`HeaderError::Version`], both in frames and in liveliness tokens.
//!
//! Everything that arrives from the network is untrusted: [`Pack::parse`] checks the header
//! and the length of every frame before any frame is delivered, and returns a
//! [`HeaderError`] for the whole pack otherwise, never panics.

use shm_channel::codec::CodecId;
use shm_channel::typed::Fingerprint;

mod reader;
mod writer;

pub(crate) use reader::LONE_HEAD_LEN;
pub use reader::{Frames, Pack};
pub(crate) use writer::PackWriter;

/// The magic at offset 0 of every pack.
pub const MAGIC: [u8; 4] = *b"SHMB";

/// The version of this wire format. A peer speaking another version is refused.
pub const FORMAT_VERSION: u8 = 2;

/// Length of the header in front of every pack.
pub const HEADER_LEN: usize = 32;

/// Length of the prefix (the payload length, u32 LE) in front of every frame in a pack.
pub const FRAME_PREFIX_LEN: usize = 4;

/// Length of the body of an end or stopped pack (the abandoned count, u64 LE).
const FINAL_BODY_LEN: usize = 8;

/// The codec/layout of the payload a channel carries, checked on every pack: an importer
/// refuses packs of another layout instead of misreading them. For typed channels it is
/// the channel's type [`Fingerprint`] (what typed ends record in shared memory and check
/// there), folded to 32 bits: [`export`](crate::export) takes it from the local channel,
/// [`import_typed`](crate::import_typed) from `T` and its codec. For byte channels the user
/// chooses it.
///
/// ```
/// use shm_bridge::Layout;
/// assert_eq!(Layout::named("telemetry/v2"), Layout::named("telemetry/v2"));
/// assert_ne!(Layout::named("telemetry/v2"), Layout::named("telemetry/v3"));
/// assert_eq!(Layout::BYTES.tag(), 0);
/// use shm_ipc::channel::codec::Bincode;
/// assert_eq!(Layout::of::<String, Bincode>(), Layout::of::<String, Bincode>());
/// assert_ne!(Layout::of::<String, Bincode>(), Layout::of::<u64, Bincode>());
/// ```
///
/// [`Fingerprint`]: shm_channel::typed::Fingerprint
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

    /// The layout of typed channels of `T` through codec `C`: their
    /// [`Fingerprint`], folded.
    pub fn of<T, C: CodecId>() -> Layout {
        Layout::from_fingerprint(&Fingerprint::of::<T, C>())
    }

    /// The layout of typed channels of this fingerprint: its 64-bit id folded to the
    /// header's 32 bits (never 0, which is [`Layout::BYTES`]).
    pub fn from_fingerprint(fingerprint: &Fingerprint) -> Layout {
        let id = fingerprint.id();
        Layout(((id >> 32) as u32 ^ id as u32).max(1))
    }

    /// The tag carried in each pack's header.
    pub const fn tag(self) -> u32 {
        self.0
    }
}

/// What a pack is.
///
/// ```
/// use shm_bridge::header::{Pack, PackKind};
/// // An end pack: no frame, the stream's length (3 frames were sent), nothing abandoned.
/// let mut bytes = b"SHMB\x02\x01\x00\x00".to_vec();
/// bytes.extend(0u32.to_le_bytes()); // layout
/// bytes.extend(0u32.to_le_bytes()); // count
/// bytes.extend(9u64.to_le_bytes()); // publisher
/// bytes.extend(3u64.to_le_bytes()); // the sequence number after the last frame
/// bytes.extend(0u64.to_le_bytes()); // abandoned
/// let pack = Pack::parse(&bytes, shm_bridge::Layout::BYTES)?;
/// assert_eq!((pack.header().kind, pack.header().seq), (PackKind::End, 3));
/// # Ok::<(), shm_bridge::HeaderError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackKind {
    /// Frames read from the exporter's local channel.
    Data,
    /// The exporter's local channel ended cleanly (its senders were dropped): no more
    /// frames from this publisher.
    End,
    /// The exporter stopped forwarding before its local channel ended
    /// ([`Exporter::stop`](crate::Exporter::stop), drop, process exit): no more frames
    /// from this publisher; the ones left in its local channel were abandoned.
    Stopped,
}

impl PackKind {
    fn byte(self) -> u8 {
        match self {
            PackKind::Data => 0,
            PackKind::End => 1,
            PackKind::Stopped => 2,
        }
    }
}

/// Why a pack from the network was refused (whole: none of its frames is delivered).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Shorter than the header.
    #[error("pack of {len} bytes is shorter than the {HEADER_LEN}-byte bridge header")]
    Truncated {
        /// Length received.
        len: usize,
    },
    /// Not a bridge pack.
    #[error("not a shm-bridge pack (magic {found:02x?})")]
    BadMagic {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// Another version of the wire format.
    #[error(
        "bridge format version {found}, this build speaks {FORMAT_VERSION}: upgrade the older peer"
    )]
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
    #[error("layout mismatch: pack carries tag {found:#010x}, importer expects {expected:#010x}")]
    Layout {
        /// The importer's layout tag.
        expected: u32,
        /// The pack's layout tag.
        found: u32,
    },
    /// A frame's length (or, in a final pack, the body) runs past the bytes received.
    #[error("a frame announces {announced} bytes, {received} remain in the pack")]
    Length {
        /// Length announced.
        announced: u32,
        /// Bytes left in the pack where it starts.
        received: usize,
    },
    /// Bytes after the last frame the header announces.
    #[error("{bytes} bytes after the last frame of the pack")]
    Trailing {
        /// How many.
        bytes: usize,
    },
    /// A data pack of no frame, or whose sequence numbers would pass `u64::MAX`.
    #[error("a data pack of {announced} frames from sequence number {first_seq}")]
    Count {
        /// Frames announced.
        announced: u32,
        /// The first frame's sequence number.
        first_seq: u64,
    },
}

/// A validated pack header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackHeader {
    /// Data, end or stopped.
    pub kind: PackKind,
    /// The payloads' layout.
    pub layout: Layout,
    /// The exporter that sent it.
    pub publisher: u64,
    /// A data pack's first sequence number; in a final pack, the one after the last frame.
    pub seq: u64,
    /// Frames in a data pack; 0 in a final pack.
    pub count: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: PackHeader = PackHeader {
        kind: PackKind::Data,
        layout: Layout::new(7),
        publisher: 0xdead_beef,
        seq: 42,
        count: 0,
    };

    fn pack(frames: &[&[u8]]) -> Vec<u8> {
        let mut writer = PackWriter::new(64);
        for frame in frames {
            writer.push_with(frame.len() as u32, |out| out.copy_from_slice(frame));
        }
        writer.finish(&HEADER)
    }

    #[test]
    fn a_written_pack_parses_back_frame_by_frame() {
        let bytes = pack(&[b"payload", b"", b"x"]);
        let parsed = Pack::parse(&bytes, Layout::new(7)).unwrap();
        assert_eq!(parsed.header(), PackHeader { count: 3, ..HEADER });
        let frames: Vec<_> = parsed.frames().collect();
        assert_eq!(frames, [(42, &b"payload"[..]), (43, b""), (44, b"x")]);
        assert_eq!(parsed.abandoned(), 0);
    }

    #[test]
    fn a_final_pack_carries_the_stream_length_and_what_was_abandoned() {
        let header = PackHeader {
            kind: PackKind::Stopped,
            seq: 1000,
            ..HEADER
        };
        let bytes = PackWriter::final_pack(&header, 17);
        let parsed = Pack::parse(&bytes, Layout::new(7)).unwrap();
        assert_eq!(
            (parsed.header().kind, parsed.header().seq),
            (PackKind::Stopped, 1000)
        );
        assert_eq!(parsed.abandoned(), 17);
        assert_eq!(parsed.frames().count(), 0);
    }

    #[test]
    fn a_lone_frame_is_recognised_from_its_head_and_length_only() {
        let lone = |bytes: &[u8], total: usize| {
            let first: &[u8; LONE_HEAD_LEN] = bytes[..LONE_HEAD_LEN].try_into().unwrap();
            PackHeader::of_lone_frame(first, total, Layout::new(7))
        };
        let bytes = pack(&[&[7u8; 100]]);
        let header = PackHeader { count: 1, ..HEADER };
        assert_eq!(lone(&bytes, bytes.len()), Some(header));
        // A length other than the frame announces, another layout, two frames, a final
        // pack, sequence numbers past the end: not a lone frame (parsed whole instead).
        assert_eq!(lone(&bytes, bytes.len() + 1), None);
        assert_eq!(lone(&bytes, bytes.len() - 1), None);
        let first: &[u8; LONE_HEAD_LEN] = bytes[..LONE_HEAD_LEN].try_into().unwrap();
        assert_eq!(
            PackHeader::of_lone_frame(first, bytes.len(), Layout::new(8)),
            None
        );
        let two = pack(&[b"ab", b"c"]);
        assert_eq!(lone(&two, two.len()), None);
        let end = PackWriter::final_pack(
            &PackHeader {
                kind: PackKind::End,
                ..HEADER
            },
            0,
        );
        assert_eq!(lone(&end, end.len()), None);
        let mut last = bytes.clone();
        last[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(lone(&last, last.len()), None);
    }

    #[test]
    fn every_bad_field_is_refused_with_its_reason() {
        let good = pack(&[b"abc"]);
        let parse = |bytes: &[u8]| Pack::parse(bytes, Layout::new(7)).map(|p| p.header());
        assert_eq!(parse(&good[..10]), Err(HeaderError::Truncated { len: 10 }));
        assert_eq!(
            Pack::parse(&good, Layout::new(8)).map(|p| p.header()),
            Err(HeaderError::Layout {
                expected: 8,
                found: 7
            })
        );
        let with = |at: usize, byte: u8| {
            let mut bad = good.clone();
            bad[at] = byte;
            parse(&bad)
        };
        assert!(matches!(with(0, b'X'), Err(HeaderError::BadMagic { .. })));
        assert_eq!(with(4, 1), Err(HeaderError::Version { found: 1 }));
        assert!(matches!(
            with(5, 3),
            Err(HeaderError::Malformed { kind: 3, .. })
        ));
        assert!(matches!(
            with(12, 0),
            Err(HeaderError::Count { announced: 0, .. })
        ));
        assert!(matches!(with(12, 2), Err(HeaderError::Length { .. })));
        assert!(matches!(
            with(32, 9),
            Err(HeaderError::Length { announced: 9, .. })
        ));
        assert_eq!(with(32, 2), Err(HeaderError::Trailing { bytes: 1 }));
        let mut bad = good.clone();
        bad[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(parse(&bad), Err(HeaderError::Count { .. })));
        let mut bad = good.clone();
        bad.push(0);
        assert_eq!(parse(&bad), Err(HeaderError::Trailing { bytes: 1 }));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic sweep: every length up to three headers, bytes of an LCG,
        // behind a valid magic and version, and with the header of a valid pack.
        let mut state = 1u64;
        let valid = pack(&[b"0123456789"]);
        for len in 0..(3 * HEADER_LEN) {
            let mut bytes = vec![0u8; len];
            for byte in &mut bytes {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                *byte = (state >> 56) as u8;
            }
            if len >= 5 {
                bytes[..4].copy_from_slice(&MAGIC);
                bytes[4] = FORMAT_VERSION;
            }
            // Random fields past magic and version: the kind, reserved, layout or count
            // check refuses every one of these (the sweep is deterministic).
            let parsed = Pack::parse(&bytes, Layout::BYTES).map(|p| p.header());
            assert!(parsed.is_err(), "{len} bytes accepted: {parsed:?}");
            if len < HEADER_LEN {
                assert_eq!(parsed, Err(HeaderError::Truncated { len }));
            }
            // A valid header over a random body: refused or walked without a panic.
            let mut body = valid[..HEADER_LEN].to_vec();
            body.extend_from_slice(&bytes);
            if let Ok(pack) = Pack::parse(&body, Layout::new(7)) {
                assert_eq!(pack.frames().count(), 1);
            }
        }
    }
}
