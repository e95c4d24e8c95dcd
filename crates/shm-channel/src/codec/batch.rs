//! Codecs that carry a whole slice of items in one frame ([`BatchCodec`]), for the
//! [`bulk`](crate::bulk) channels and the pipelines built on them.
//!
//! - [`Plain`]: `bytemuck::Pod` items, copied as they are behind an 8-byte item count; no
//!   encoding at all.
//! - [`Bincode`](super::Bincode), [`Postcard`](super::Postcard): the slice serialised as
//!   one serde sequence (the same bytes as a `Vec<T>`), decoded with the codec's limits.

use std::mem::MaybeUninit;

#[cfg(any(feature = "bincode", feature = "postcard"))]
use super::frame::Codec;
use super::frame::{CodecId, FrameReader, FrameWriter};
use super::plain::Plain;
use crate::CodecError;

/// A codec that encodes a slice of `T`s as one frame and decodes such a frame by appending
/// its items to a `Vec<T>`.
///
/// ```
/// use shm_ipc::channel::codec::{BatchCodec, Plain};
/// assert_eq!(<Plain as BatchCodec<u32>>::batch_len(&[1, 2, 3])?, 8 + 12);
/// # Ok::<(), shm_ipc::channel::CodecError>(())
/// ```
pub trait BatchCodec<T>: CodecId + 'static {
    /// Bytes `items` take in a frame.
    fn batch_len(items: &[T]) -> Result<usize, CodecError>;

    /// Writes `items` into `out` (exactly [`batch_len`](BatchCodec::batch_len) bytes).
    fn encode_batch(items: &[T], out: &mut FrameWriter<'_>) -> Result<(), CodecError>;

    /// Decodes a whole frame, appending its items to `out`; on error `out` is unchanged.
    fn decode_batch(input: &mut FrameReader<'_>, out: &mut Vec<T>) -> Result<(), CodecError>;
}

/// Bytes of the item count in front of a [`Plain`] batch.
const COUNT_LEN: usize = 8;

/// Zero-sized items have no bytes to carry a count in: refused on both sides.
fn check_sized<T>() -> Result<usize, CodecError> {
    match std::mem::size_of::<T>() {
        0 => Err(CodecError::Encode(
            "zero-sized items cannot be batched".into(),
        )),
        size => Ok(size),
    }
}

impl<T: bytemuck::Pod> BatchCodec<T> for Plain {
    fn batch_len(items: &[T]) -> Result<usize, CodecError> {
        check_sized::<T>()?;
        // A slice's byte length always fits `usize`.
        Ok(COUNT_LEN + std::mem::size_of_val(items))
    }

    fn encode_batch(items: &[T], out: &mut FrameWriter<'_>) -> Result<(), CodecError> {
        check_sized::<T>()?;
        out.write(&(items.len() as u64).to_le_bytes())?;
        out.write(bytemuck::cast_slice(items))
    }

    fn decode_batch(input: &mut FrameReader<'_>, out: &mut Vec<T>) -> Result<(), CodecError> {
        let size = check_sized::<T>()?;
        let mut count = [0u8; COUNT_LEN];
        input.read(&mut count)?;
        let count_untrusted = u64::from_le_bytes(count);
        // The count must account for exactly the bytes that follow it.
        let bytes = input.remaining();
        let count = usize::try_from(count_untrusted)
            .ok()
            .filter(|count| count.checked_mul(size) == Some(bytes))
            .ok_or_else(|| {
                CodecError::Decode(format!(
                    "a batch of {bytes} bytes cannot hold {count_untrusted} items of {size} bytes"
                ))
            })?;
        out.reserve(count);
        // `reserve` made room for `count` items: `count * size == bytes` bytes.
        let spare = &mut out.spare_capacity_mut()[..count];
        // SAFETY: the same memory as `spare` (`bytes` bytes, exclusively borrowed), viewed
        // as bytes that may be uninitialised: `MaybeUninit<u8>` has no validity invariant
        // and alignment 1.
        let spare_bytes = unsafe {
            std::slice::from_raw_parts_mut(spare.as_mut_ptr().cast::<MaybeUninit<u8>>(), bytes)
        };
        input.read_uninit(spare_bytes)?;
        let len = out.len() + count;
        // SAFETY: the `count` items after the old length were just written in full, and a
        // `Pod` type is valid for any bytes.
        unsafe { out.set_len(len) };
        Ok(())
    }
}

/// A serde codec that writes a slice as one sequence (the same bytes as a `Vec<T>`).
#[cfg(any(feature = "bincode", feature = "postcard"))]
pub(crate) trait SerdeSequence {
    /// Bytes `items` take as one sequence.
    fn sequence_len<T: serde::Serialize>(items: &[T]) -> Result<usize, CodecError>;

    /// Writes `items` into `out` as one sequence.
    fn encode_sequence<T: serde::Serialize>(
        items: &[T],
        out: &mut FrameWriter<'_>,
    ) -> Result<(), CodecError>;
}

/// The serde codecs' batches: the slice is one sequence, decoded as the codec decodes a
/// `Vec<T>` (with its limits).
// `SerdeSequence` is the crate's own: only its serde codecs get this impl.
#[cfg(any(feature = "bincode", feature = "postcard"))]
#[allow(private_bounds)]
impl<C, T> BatchCodec<T> for C
where
    C: SerdeSequence + Codec<Vec<T>> + 'static,
    T: serde::Serialize,
{
    fn batch_len(items: &[T]) -> Result<usize, CodecError> {
        C::sequence_len(items)
    }

    fn encode_batch(items: &[T], out: &mut FrameWriter<'_>) -> Result<(), CodecError> {
        C::encode_sequence(items, out)
    }

    fn decode_batch(input: &mut FrameReader<'_>, out: &mut Vec<T>) -> Result<(), CodecError> {
        let mut items = C::decode(input)?;
        out.append(&mut items);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<C: BatchCodec<T>, T: Clone + PartialEq + std::fmt::Debug>(items: &[T]) {
        let len = C::batch_len(items).unwrap();
        let mut buf = vec![0u8; len];
        // SAFETY: `buf` is private memory valid for `len` bytes.
        let mut out = unsafe { FrameWriter::new(buf.as_mut_ptr(), len) };
        C::encode_batch(items, &mut out).unwrap();
        assert_eq!(out.written(), len);
        let mut scratch = Vec::new();
        // SAFETY: as above, for reads.
        let mut input = unsafe { FrameReader::new(buf.as_ptr(), len, &mut scratch) };
        let mut got = vec![items[0].clone()];
        C::decode_batch(&mut input, &mut got).unwrap();
        assert_eq!(&got[1..], items);
    }

    #[test]
    fn every_codec_round_trips_a_batch() {
        let items: Vec<u64> = (0..1000).map(|n| n * 7919).collect();
        round_trip::<Plain, u64>(&items);
        #[cfg(feature = "bincode")]
        round_trip::<super::super::Bincode, u64>(&items);
        #[cfg(feature = "postcard")]
        round_trip::<super::super::Postcard, u64>(&items);
    }

    #[test]
    fn plain_batch_with_a_lying_count_is_a_decode_error() {
        let mut buf = [0u8; 8 + 16];
        buf[..8].copy_from_slice(&3u64.to_le_bytes());
        for count in [3u64, u64::MAX, 1 << 61] {
            buf[..8].copy_from_slice(&count.to_le_bytes());
            let mut scratch = Vec::new();
            // SAFETY: `buf` is private memory valid for its length.
            let mut input = unsafe { FrameReader::new(buf.as_ptr(), buf.len(), &mut scratch) };
            let mut out: Vec<u64> = vec![9];
            let err = <Plain as BatchCodec<u64>>::decode_batch(&mut input, &mut out);
            assert!(
                matches!(err, Err(CodecError::Decode(_))),
                "{count}: {err:?}"
            );
            assert_eq!(out, [9]);
        }
    }

    #[test]
    fn zero_sized_items_are_refused() {
        assert!(<Plain as BatchCodec<()>>::batch_len(&[(), ()]).is_err());
    }
}
