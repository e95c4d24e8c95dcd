//! serde + bincode 2: the default codec.

use super::depth::{decode_message, decode_message_into, SerdeFormat};
use super::frame::{Codec, CodecId, FrameReader, FrameWriter};
use crate::CodecError;
use bincode::config::Configuration;
use bincode::enc::write::Writer;
use bincode::error::{DecodeError, EncodeError};

/// bincode's standard configuration (little-endian, varint), without a decode limit: the
/// decoder reads strings and byte buffers as slices of the frame's private copy, refused
/// when the frame holds fewer bytes than announced before anything is allocated
/// (`depth::DepthLimited` asks for the borrowed forms; bincode's owned forms would
/// allocate the announced length first), and sequences and maps preallocate by serde's
/// cautious size hint (at most 1 MiB), growing only as elements decode. A limit, which
/// bincode counts on every field read, would cost about a quarter of the decode of a
/// small struct for nothing.
fn config() -> Configuration {
    bincode::config::standard()
}

/// serde + bincode 2 (standard configuration: little-endian, varint). Decoding refuses
/// values nested deeper than [`MAX_DECODE_DEPTH`](super::MAX_DECODE_DEPTH).
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

/// Bytes `value` takes, bincode-encoded.
fn counted<V: serde::Serialize + ?Sized>(value: &V) -> Result<usize, EncodeError> {
    let mut counter = Counter(0);
    bincode::serde::encode_into_writer(value, &mut counter, config())?;
    Ok(counter.0)
}

impl SerdeFormat for Bincode {
    type Error = DecodeError;

    fn decode_seed<'de, S: serde::de::DeserializeSeed<'de>>(
        bytes: &'de [u8],
        seed: S,
    ) -> Result<(S::Value, usize), DecodeError> {
        bincode::serde::seed_decode_from_slice(seed, bytes, config())
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
    /// shared memory, then bincode's slice decoder), never from shared memory directly.
    fn decode(input: &mut FrameReader<'_>) -> Result<T, CodecError> {
        decode_message::<Bincode, T>(input.rest_copied())
    }

    /// Decodes in place (`Deserialize::deserialize_in_place`) from one private copy of the
    /// frame.
    fn decode_into(input: &mut FrameReader<'_>, place: &mut T) -> Result<(), CodecError> {
        decode_message_into::<Bincode, T>(input.rest_copied(), place)
    }
}
