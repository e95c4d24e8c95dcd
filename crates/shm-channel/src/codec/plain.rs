//! Plain data: a `bytemuck::Pod` value's bytes, copied as they are.

use super::frame::{Codec, CodecId, FrameReader, FrameWriter};
use crate::CodecError;

/// Plain data (`bytemuck::Pod`): the value's bytes, copied as they are. No codec, no
/// allocation; the frame must be exactly `size_of::<T>()` bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

impl CodecId for Plain {
    const NAME: &'static str = "plain";
    const LAYOUT: bool = true;
}

impl<T: bytemuck::Pod> Codec<T> for Plain {
    fn encoded_len(_: &T) -> Result<usize, CodecError> {
        Ok(std::mem::size_of::<T>())
    }

    fn exact_len(_: &T) -> Option<usize> {
        Some(std::mem::size_of::<T>())
    }

    fn encode(value: &T, out: &mut FrameWriter<'_>) -> Result<(), CodecError> {
        out.write(bytemuck::bytes_of(value))
    }

    fn decode(input: &mut FrameReader<'_>) -> Result<T, CodecError> {
        let mut value = T::zeroed();
        Self::decode_into(input, &mut value)?;
        Ok(value)
    }

    fn decode_into(input: &mut FrameReader<'_>, place: &mut T) -> Result<(), CodecError> {
        if input.remaining() != std::mem::size_of::<T>() {
            return Err(CodecError::Length {
                expected: std::mem::size_of::<T>(),
                found: input.remaining(),
            });
        }
        input.read(bytemuck::bytes_of_mut(place))
    }
}
