//! Reading packs (the importer's side of the wire format in the module docs of `header`):
//! every header field and frame length checked before any frame is handed out.

use super::{
    HeaderError, Layout, PackHeader, PackKind, FINAL_BODY_LEN, FORMAT_VERSION, FRAME_PREFIX_LEN,
    HEADER_LEN, MAGIC,
};

/// Bytes of a pack that [`PackHeader::of_lone_frame`] reads: the header and the first
/// frame's length.
pub(crate) const LONE_HEAD_LEN: usize = HEADER_LEN + FRAME_PREFIX_LEN;

impl PackHeader {
    /// Parses and checks the header in front of a pack (not the body behind it).
    fn parse(head: &[u8; HEADER_LEN], expected: Layout) -> Result<PackHeader, HeaderError> {
        let magic = word::<4>(head, 0);
        if magic != MAGIC {
            return Err(HeaderError::BadMagic { found: magic });
        }
        if head[4] != FORMAT_VERSION {
            return Err(HeaderError::Version { found: head[4] });
        }
        let reserved = u16::from_le_bytes(word(head, 6));
        let kind = match (head[5], reserved) {
            (0, 0) => PackKind::Data,
            (1, 0) => PackKind::End,
            (2, 0) => PackKind::Stopped,
            (kind, reserved) => return Err(HeaderError::Malformed { kind, reserved }),
        };
        let found = u32::from_le_bytes(word(head, 8));
        if found != expected.tag() {
            return Err(HeaderError::Layout {
                expected: expected.tag(),
                found,
            });
        }
        Ok(PackHeader {
            kind,
            layout: expected,
            count: u32::from_le_bytes(word(head, 12)),
            publisher: u64::from_le_bytes(word(head, 16)),
            seq: u64::from_le_bytes(word(head, 24)),
        })
    }

    /// The header of a pack of `total` bytes that is a valid data pack of exactly one
    /// frame, checked from its first [`LONE_HEAD_LEN`] bytes: the frame is bytes
    /// `LONE_HEAD_LEN..total` of the pack. The importer uses it for a frame that arrived in
    /// pieces (longer than a zenoh batch), to copy it into the local channel without first
    /// joining the pieces. `None` for any other pack, valid or not: [`Pack::parse`] on the
    /// whole pack then handles it (and gives the reason of a bad one).
    pub(crate) fn of_lone_frame(
        first: &[u8; LONE_HEAD_LEN],
        total: usize,
        expected: Layout,
    ) -> Option<PackHeader> {
        let (head, prefix) = first.split_first_chunk::<HEADER_LEN>()?;
        let header = PackHeader::parse(head, expected).ok()?;
        let len = usize::try_from(u32::from_le_bytes(prefix.try_into().ok()?)).ok()?;
        let lone = header.kind == PackKind::Data
            && header.count == 1
            && check_count(&header).is_ok()
            && total.checked_sub(LONE_HEAD_LEN) == Some(len);
        lone.then_some(header)
    }
}

/// A received pack whose header and frame lengths were all checked.
///
/// ```
/// use shm_bridge::header::{Pack, PackKind};
/// use shm_bridge::Layout;
/// // A hand-made pack of two frames, "ab" (sequence number 5) and "c" (6).
/// let mut bytes = b"SHMB\x02\x00\x00\x00".to_vec();
/// bytes.extend(0u32.to_le_bytes()); // layout tag
/// bytes.extend(2u32.to_le_bytes()); // count
/// bytes.extend(9u64.to_le_bytes()); // publisher
/// bytes.extend(5u64.to_le_bytes()); // first sequence number
/// bytes.extend(2u32.to_le_bytes());
/// bytes.extend(b"ab");
/// bytes.extend(1u32.to_le_bytes());
/// bytes.extend(b"c");
/// let pack = Pack::parse(&bytes, Layout::BYTES)?;
/// assert_eq!(pack.header().kind, PackKind::Data);
/// let frames: Vec<(u64, &[u8])> = pack.frames().collect();
/// assert_eq!(frames, [(5, &b"ab"[..]), (6, &b"c"[..])]);
/// // One byte short: the whole pack is refused.
/// assert!(Pack::parse(&bytes[..bytes.len() - 1], Layout::BYTES).is_err());
/// # Ok::<(), shm_bridge::HeaderError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Pack<'a> {
    header: PackHeader,
    body: &'a [u8],
}

impl<'a> Pack<'a> {
    /// Parses and checks `bytes`: the header, then the length of every frame (they must
    /// fill the body exactly). Nothing is delivered from a pack that fails.
    pub fn parse(bytes: &'a [u8], expected: Layout) -> Result<Pack<'a>, HeaderError> {
        let Some((head, body)) = bytes.split_first_chunk::<HEADER_LEN>() else {
            return Err(HeaderError::Truncated { len: bytes.len() });
        };
        let header = PackHeader::parse(head, expected)?;
        match header.kind {
            PackKind::Data => check_frames(&header, body)?,
            PackKind::End | PackKind::Stopped => {
                if header.count != 0 {
                    return Err(HeaderError::Count {
                        announced: header.count,
                        first_seq: header.seq,
                    });
                }
                if body.len() != FINAL_BODY_LEN {
                    return Err(HeaderError::Length {
                        announced: FINAL_BODY_LEN as u32,
                        received: body.len(),
                    });
                }
            }
        }
        Ok(Pack { header, body })
    }

    /// The publisher id of a pack that was refused after its header got that far (a
    /// layout, version or frame-length error), for reporting; `None` for garbage.
    pub(crate) fn publisher_of(bytes: &[u8], reason: &HeaderError) -> Option<u64> {
        match reason {
            HeaderError::Truncated { .. }
            | HeaderError::BadMagic { .. }
            | HeaderError::Malformed { .. } => None,
            _ => bytes.get(16..24)?.try_into().ok().map(u64::from_le_bytes),
        }
    }

    /// The header.
    pub fn header(&self) -> PackHeader {
        self.header
    }

    /// The frames of a data pack with their sequence numbers, in order (none for a final
    /// pack).
    pub fn frames(&self) -> Frames<'a> {
        let body = match self.header.kind {
            PackKind::Data => self.body,
            PackKind::End | PackKind::Stopped => &[],
        };
        Frames {
            rest: body,
            seq: self.header.seq,
        }
    }

    /// In a final pack, how many frames the exporter left unsent in its local channel (0
    /// for data and end packs).
    pub fn abandoned(&self) -> u64 {
        match self.header.kind {
            PackKind::Stopped => u64::from_le_bytes(word(self.body, 0)),
            PackKind::Data | PackKind::End => 0,
        }
    }
}

/// Checks that a data pack announces at least one frame, and sequence numbers that do not
/// pass `u64::MAX`.
fn check_count(header: &PackHeader) -> Result<(), HeaderError> {
    if header.count == 0 || header.seq.checked_add(u64::from(header.count)).is_none() {
        return Err(HeaderError::Count {
            announced: header.count,
            first_seq: header.seq,
        });
    }
    Ok(())
}

/// Checks that `count` frames fill a data pack's body exactly.
fn check_frames(header: &PackHeader, body: &[u8]) -> Result<(), HeaderError> {
    check_count(header)?;
    let mut rest = body;
    for _ in 0..header.count {
        let Some((prefix, after)) = rest.split_first_chunk::<FRAME_PREFIX_LEN>() else {
            return Err(HeaderError::Length {
                announced: FRAME_PREFIX_LEN as u32,
                received: rest.len(),
            });
        };
        let announced = u32::from_le_bytes(*prefix);
        let len = usize::try_from(announced).unwrap_or(usize::MAX);
        if len > after.len() {
            return Err(HeaderError::Length {
                announced,
                received: after.len(),
            });
        }
        rest = &after[len..];
    }
    if !rest.is_empty() {
        return Err(HeaderError::Trailing { bytes: rest.len() });
    }
    Ok(())
}

/// `N` bytes of `bytes` from `at` (the caller checked the length).
fn word<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = bytes.get(at..at + N) {
        out.copy_from_slice(src);
    }
    out
}

/// The frames of a checked pack, with their sequence numbers.
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    rest: &'a [u8],
    seq: u64,
}

impl<'a> Iterator for Frames<'a> {
    type Item = (u64, &'a [u8]);

    fn next(&mut self) -> Option<(u64, &'a [u8])> {
        // The lengths were checked by `Pack::parse`; the `?`s only end the walk.
        let (prefix, after) = self.rest.split_first_chunk::<FRAME_PREFIX_LEN>()?;
        let len = usize::try_from(u32::from_le_bytes(*prefix)).ok()?;
        let payload = after.get(..len)?;
        self.rest = &after[len..];
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        Some((seq, payload))
    }
}
