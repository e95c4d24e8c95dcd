//! Writing packs (the exporter's side of the wire format in the module docs of `header`).

use super::{PackHeader, PackKind, FORMAT_VERSION, FRAME_PREFIX_LEN, HEADER_LEN, MAGIC};

/// A pack being filled by an exporter.
#[derive(Debug)]
pub(crate) struct PackWriter {
    bytes: Vec<u8>,
    count: u32,
}

impl PackWriter {
    /// An empty pack with room for `capacity` bytes of frames.
    pub fn new(capacity: usize) -> PackWriter {
        let mut bytes = Vec::with_capacity(HEADER_LEN + capacity);
        bytes.resize(HEADER_LEN, 0);
        PackWriter { bytes, count: 0 }
    }

    /// Frames in the pack.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Bytes of frames (prefixes included) in the pack.
    pub fn len(&self) -> usize {
        self.bytes.len() - HEADER_LEN
    }

    /// Appends a frame of `len` bytes (at most `u32::MAX`: the caller checked), written
    /// by `fill` into the slice it is given.
    pub fn push_with(&mut self, len: u32, fill: impl FnOnce(&mut [u8])) {
        let at = self.bytes.len() + FRAME_PREFIX_LEN;
        self.bytes.extend_from_slice(&len.to_le_bytes());
        self.bytes.resize(at + len as usize, 0);
        fill(&mut self.bytes[at..]);
        self.count += 1;
    }

    /// The finished data pack, its header written: `seq` is its first frame's number.
    pub fn finish(mut self, header: &PackHeader) -> Vec<u8> {
        let header = PackHeader {
            kind: PackKind::Data,
            count: self.count,
            ..*header
        };
        write_header(&header, &mut self.bytes);
        self.bytes
    }

    /// A final pack (end or stopped) after the frame before `header.seq`.
    pub fn final_pack(header: &PackHeader, abandoned: u64) -> Vec<u8> {
        let mut bytes = vec![0u8; HEADER_LEN];
        bytes.extend_from_slice(&abandoned.to_le_bytes());
        write_header(
            &PackHeader {
                count: 0,
                ..*header
            },
            &mut bytes,
        );
        bytes
    }
}

/// Writes `header` into `out[..HEADER_LEN]` (the callers made `out` at least that long).
fn write_header(header: &PackHeader, out: &mut [u8]) {
    let Some(out) = out.first_chunk_mut::<HEADER_LEN>() else {
        return;
    };
    out[0..4].copy_from_slice(&MAGIC);
    out[4] = FORMAT_VERSION;
    out[5] = header.kind.byte();
    out[6..8].copy_from_slice(&0u16.to_le_bytes());
    out[8..12].copy_from_slice(&header.layout.tag().to_le_bytes());
    out[12..16].copy_from_slice(&header.count.to_le_bytes());
    out[16..24].copy_from_slice(&header.publisher.to_le_bytes());
    out[24..32].copy_from_slice(&header.seq.to_le_bytes());
}
