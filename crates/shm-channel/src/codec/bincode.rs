//! serde + bincode 2: the default codec.

use std::cell::Cell;

use super::depth::{DepthBudget, DepthLimited, LengthCheck, MAX_DECODE_DEPTH};
use super::frame::{Codec, CodecId, FrameReader, FrameWriter};
use crate::CodecError;
use bincode::config::Configuration;
use bincode::de::read::Reader;
use bincode::enc::write::Writer;
use bincode::error::{DecodeError, EncodeError};

/// bincode's standard configuration (little-endian, varint), without a decode limit:
/// bincode allocates a string or byte buffer of the length a frame announces before
/// reading its bytes, and instead of a limit (which bincode counts on every field read,
/// about a quarter of bincode's own decode of a small struct) the decoder refuses any such length
/// longer than the rest of the frame before bincode sees it (the [`LengthCheck`] of
/// [`Rest`]). Sequences and maps allocate by serde's cautious size hint (at most 1 MiB
/// up front), then grow only as elements are actually decoded.
fn config() -> Configuration {
    bincode::config::standard()
}

/// serde + bincode 2 (standard configuration: little-endian, varint). Decoding refuses
/// values nested deeper than [`MAX_DECODE_DEPTH`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Bincode;

struct Counter(usize);

impl Writer for Counter {
    fn write(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.0 += bytes.len();
        Ok(())
    }
}

impl Writer for FrameWriter<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        FrameWriter::write(self, bytes).map_err(|_| EncodeError::UnexpectedEnd)
    }
}

/// The rest of the private copy of a frame, read from the front: bincode's reader, and
/// the decoder's [`LengthCheck`] (both look at the same rest, hence the cell).
struct Rest<'a>(Cell<&'a [u8]>);

impl Reader for &Rest<'_> {
    #[inline]
    fn read(&mut self, bytes: &mut [u8]) -> Result<(), DecodeError> {
        let rest = self.0.get();
        let Some((head, rest)) = rest.split_at_checked(bytes.len()) else {
            return Err(DecodeError::UnexpectedEnd {
                additional: bytes.len() - rest.len(),
            });
        };
        bytes.copy_from_slice(head);
        self.0.set(rest);
        Ok(())
    }

    // bincode reads varints and strings through these when the reader has them: no
    // copy of a few bytes through `read` each.
    #[inline]
    fn peek_read(&mut self, n: usize) -> Option<&[u8]> {
        self.0.get().get(..n)
    }

    #[inline]
    fn consume(&mut self, n: usize) {
        self.0.set(self.0.get().get(n..).unwrap_or_default());
    }
}

impl LengthCheck for Rest<'_> {
    /// Reads the length prefix (a bincode varint: one byte below 251, else a marker and
    /// 2, 4 or 8 little-endian bytes) without consuming it. A prefix that is cut short or
    /// malformed passes: bincode fails on it before allocating anything.
    fn next_length_fits(&self) -> Result<(), String> {
        let rest = self.0.get();
        let (len, prefix) = match rest.first() {
            Some(&byte) if byte < 251 => (u64::from(byte), 1),
            Some(251) => (le_bytes::<2>(rest), 3),
            Some(252) => (le_bytes::<4>(rest), 5),
            Some(253) => (le_bytes::<8>(rest), 9),
            _ => return Ok(()),
        };
        let left = rest.len().saturating_sub(prefix);
        if len > left as u64 {
            return Err(format!(
                "a string or byte buffer of {len} bytes, with {left} bytes left in the frame"
            ));
        }
        Ok(())
    }
}

/// The `N`-byte little-endian number after a varint marker (0 if the rest is too short:
/// bincode then fails on it).
fn le_bytes<const N: usize>(rest: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    match rest.get(1..=N) {
        Some(bytes) => word[..N].copy_from_slice(bytes),
        None => return 0,
    }
    u64::from_le_bytes(word)
}

/// Bytes `value` takes, bincode-encoded.
fn counted<V: serde::Serialize + ?Sized>(value: &V) -> Result<usize, EncodeError> {
    let mut counter = Counter(0);
    bincode::serde::encode_into_writer(value, &mut counter, config())?;
    Ok(counter.0)
}

impl super::batch::SerdeSequence for Bincode {
    fn sequence_len<T: serde::Serialize>(items: &[T]) -> Result<usize, CodecError> {
        counted(items).map_err(|e| CodecError::Encode(e.to_string()))
    }

    fn encode_sequence<T: serde::Serialize>(
        items: &[T],
        out: &mut FrameWriter<'_>,
    ) -> Result<(), CodecError> {
        bincode::serde::encode_into_writer(items, out, config())
            .map_err(|e| CodecError::Encode(e.to_string()))
    }
}

impl CodecId for Bincode {
    const NAME: &'static str = "bincode2";
}

impl<T: serde::Serialize + serde::de::DeserializeOwned> Codec<T> for Bincode {
    fn encoded_len(value: &T) -> Result<usize, CodecError> {
        counted(value).map_err(|e| CodecError::Encode(e.to_string()))
    }

    fn encode(value: &T, out: &mut FrameWriter<'_>) -> Result<(), CodecError> {
        bincode::serde::encode_into_writer(value, out, config())
            .map_err(|e| CodecError::Encode(e.to_string()))
    }

    /// Decodes from one private copy of the frame (a single bounds-checked copy out of
    /// shared memory, then bincode's slice reader), never from shared memory directly.
    fn decode(input: &mut FrameReader<'_>) -> Result<T, CodecError> {
        let rest = Rest(Cell::new(input.rest_copied()));
        let budget = DepthBudget::with_length_check(MAX_DECODE_DEPTH, &rest);
        let mut decoder = bincode::serde::OwnedSerdeDecoder::from_reader(&rest, config());
        let value = T::deserialize(DepthLimited::new(decoder.as_deserializer(), &budget))
            .map_err(|e| budget.decode_error(e))?;
        let left = rest.0.get().len();
        if left != 0 {
            return Err(CodecError::Decode(format!(
                "{left} bytes left after the value"
            )));
        }
        Ok(value)
    }
}
