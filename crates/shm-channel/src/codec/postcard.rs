//! serde + postcard: the maintained serde alternative to bincode.

use super::depth::{decode_message, decode_message_into, SerdeFormat};
use super::frame::{Codec, CodecId, FrameReader, FrameWriter};
use crate::CodecError;
use postcard::ser_flavors::Flavor;

/// serde + postcard. Decoding copies the frame into a reused private buffer first
/// (postcard decodes from a slice); it never allocates more than the frame holds, and
/// refuses values nested deeper than [`MAX_DECODE_DEPTH`](super::MAX_DECODE_DEPTH).
#[derive(Debug, Clone, Copy, Default)]
pub struct Postcard;

struct Counter(usize);

impl Flavor for Counter {
    type Output = usize;

    fn try_push(&mut self, _: u8) -> postcard::Result<()> {
        self.0 += 1;
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0 += data.len();
        Ok(())
    }

    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.0)
    }
}

struct InPlace<'w, 'a>(&'w mut FrameWriter<'a>);

impl Flavor for InPlace<'_, '_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0
            .write(&[byte])
            .map_err(|_| postcard::Error::SerializeBufferFull)
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0
            .write(data)
            .map_err(|_| postcard::Error::SerializeBufferFull)
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

impl SerdeFormat for Postcard {
    type Error = postcard::Error;

    fn decode_seed<'de, S: serde::de::DeserializeSeed<'de>>(
        bytes: &'de [u8],
        seed: S,
    ) -> postcard::Result<(S::Value, usize)> {
        let mut deserializer = postcard::Deserializer::from_bytes(bytes);
        let value = seed.deserialize(&mut deserializer)?;
        let rest = deserializer.finalize()?;
        Ok((value, bytes.len() - rest.len()))
    }
}

impl CodecId for Postcard {
    const NAME: &'static str = "postcard1";
}

impl<T: serde::Serialize + serde::de::DeserializeOwned> Codec<T> for Postcard {
    fn encoded_len(value: &T) -> Result<usize, CodecError> {
        postcard::serialize_with_flavor(value, Counter(0))
            .map_err(|e| CodecError::Encode(e.to_string()))
    }

    fn encode(value: &T, out: &mut FrameWriter<'_>) -> Result<(), CodecError> {
        postcard::serialize_with_flavor(value, InPlace(out))
            .map_err(|e| CodecError::Encode(e.to_string()))
    }

    /// Decodes from one private copy of the frame (postcard decodes from a slice), never
    /// from shared memory directly.
    fn decode(input: &mut FrameReader<'_>) -> Result<T, CodecError> {
        decode_message::<Postcard, T>(input.rest_copied())
    }

    /// Decodes in place (`Deserialize::deserialize_in_place`) from one private copy of the
    /// frame.
    fn decode_into(input: &mut FrameReader<'_>, place: &mut T) -> Result<(), CodecError> {
        decode_message_into::<Postcard, T>(input.rest_copied(), place)
    }
}
