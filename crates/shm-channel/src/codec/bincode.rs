//! serde + bincode 2: the default codec.

use super::depth::{DepthBudget, DepthLimited, MAX_DECODE_DEPTH};
use super::frame::{Codec, CodecId, FrameReader, FrameWriter};
use crate::CodecError;
use bincode::config::{Configuration, Limit};
use bincode::de::read::Reader;
use bincode::enc::write::Writer;
use bincode::error::{DecodeError, EncodeError};

/// Most bytes bincode may claim while decoding one message (containers it allocates
/// included): 256 MiB. bincode allocates a `Vec` of the length a frame announces before
/// reading it, so without a limit a hostile length could exhaust memory.
pub const BINCODE_DECODE_LIMIT: usize = 256 << 20;

type Config = Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    Limit<BINCODE_DECODE_LIMIT>,
>;

fn config() -> Config {
    bincode::config::standard().with_limit::<BINCODE_DECODE_LIMIT>()
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

/// The private copy of a frame, read from the front.
struct Private<'a>(&'a [u8]);

impl Reader for Private<'_> {
    #[inline]
    fn read(&mut self, bytes: &mut [u8]) -> Result<(), DecodeError> {
        let Some((head, rest)) = self.0.split_at_checked(bytes.len()) else {
            return Err(DecodeError::UnexpectedEnd {
                additional: bytes.len() - self.0.len(),
            });
        };
        bytes.copy_from_slice(head);
        self.0 = rest;
        Ok(())
    }

    // bincode reads varints and strings through these when the reader has them: no
    // copy of a few bytes through `read` each.
    #[inline]
    fn peek_read(&mut self, n: usize) -> Option<&[u8]> {
        self.0.get(..n)
    }

    #[inline]
    fn consume(&mut self, n: usize) {
        self.0 = self.0.get(n..).unwrap_or_default();
    }
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
        let mut reader = Private(input.rest_copied());
        let budget = DepthBudget::new(MAX_DECODE_DEPTH);
        let mut decoder = bincode::serde::OwnedSerdeDecoder::from_reader(&mut reader, config());
        let value = T::deserialize(DepthLimited::new(decoder.as_deserializer(), &budget))
            .map_err(|e| budget.decode_error(e))?;
        let left = reader.0.len();
        if left != 0 {
            return Err(CodecError::Decode(format!(
                "{left} bytes left after the value"
            )));
        }
        Ok(value)
    }
}
