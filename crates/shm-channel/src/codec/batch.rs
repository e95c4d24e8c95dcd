//! Codecs that carry a whole slice of items in one frame ([`BatchCodec`]), for the
//! [`bulk`](crate::bulk) channels and the pipelines built on them.
//!
//! A batch is an 8-byte item count, then the items:
//! - [`Plain`]: `bytemuck::Pod` items, copied as they are; no encoding at all.
//! - [`Bincode`](super::Bincode), [`Postcard`](super::Postcard): each item as the codec
//!   encodes a value, back to back, encoded once, straight into the frame; decoded in one
//!   pass, straight onto the end of the receiver's `Vec`, with the codec's limits.

use std::mem::MaybeUninit;

use super::frame::{CodecId, FrameReader, FrameWriter};
use super::plain::Plain;
use crate::CodecError;

/// A codec that encodes a slice of `T`s as one frame and decodes such a frame by appending
/// its items to a `Vec<T>`.
///
/// The crate's codecs implement it: [`Plain`], and every serde codec through the blanket
/// impl over their value encoding. A codec of your own gets bulk channels only by
/// implementing it with the public [`FrameWriter`], which can write but not take back a
/// partly written item: enough for items of one known size, not for filling a frame with
/// the longest head of values of varying lengths.
///
/// ```
/// use shm_ipc::channel::codec::{BatchCodec, Plain};
/// use shm_ipc::channel::bulk;
/// let (tx, rx) = shm_ipc::channel::spsc::channel(4096)?;
/// let mut tx = bulk::Sender::<u32, _, Plain>::try_from(tx)?;
/// let mut rx = bulk::Receiver::<u32, _, Plain>::try_from(rx)?;
/// tx.send(&[1, 2, 3])?;
/// let mut got = Vec::new();
/// assert_eq!(rx.drain_into(&mut got, usize::MAX)?, 3);
/// assert_eq!(got, [1, 2, 3]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait BatchCodec<T>: CodecId + 'static {
    /// Writes the longest head of `items` that fits `out` as one batch (at least its first
    /// item, if there is one); returns how many items it holds. A frame ends before an item
    /// the codec refuses, so that the next batch, starting with it, reports it.
    ///
    /// # Errors
    ///
    /// The codec's refusal of the first item; or, when not even the first item fits, the
    /// error of the write that did not fit, returned as it is: the writer remembers the
    /// overflow, and the caller then tries a larger frame.
    fn encode_batch(items: &[T], out: &mut FrameWriter<'_>) -> Result<usize, CodecError>;

    /// Decodes a whole frame, appending its items to `out`; on error `out` holds what it
    /// held (its capacity may have grown).
    fn decode_batch(input: &mut FrameReader<'_>, out: &mut Vec<T>) -> Result<(), CodecError>;
}

/// Bytes of the item count in front of every batch.
pub(crate) const COUNT_LEN: usize = 8;

/// The most a serde batch's decode reserves up front, in bytes of items (serde's cautious
/// size hint allows the same): the rest grows as items decode.
#[cfg(any(feature = "bincode", feature = "postcard"))]
const CAUTIOUS_RESERVE: usize = 1 << 20;

/// Reads a batch's item count, refused unless `fits(count)` says the frame's remaining
/// bytes can hold that many items.
fn read_count(
    input: &mut FrameReader<'_>,
    fits: impl FnOnce(usize) -> bool,
) -> Result<usize, CodecError> {
    let mut count = [0u8; COUNT_LEN];
    input.read(&mut count)?;
    let count_untrusted = u64::from_le_bytes(count);
    usize::try_from(count_untrusted)
        .ok()
        .filter(|&count| fits(count))
        .ok_or_else(|| {
            CodecError::Decode(format!(
                "a batch of {} bytes cannot hold {count_untrusted} items",
                input.remaining()
            ))
        })
}

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
    fn encode_batch(items: &[T], out: &mut FrameWriter<'_>) -> Result<usize, CodecError> {
        let size = check_sized::<T>()?;
        let room = out.room().saturating_sub(COUNT_LEN) / size;
        // At least one item: if it does not fit, the write says so (and `overflowed`).
        let count = items.len().min(room.max(1));
        out.write(&(count as u64).to_le_bytes())?;
        out.write(bytemuck::cast_slice(&items[..count]))?;
        Ok(count)
    }

    fn decode_batch(input: &mut FrameReader<'_>, out: &mut Vec<T>) -> Result<(), CodecError> {
        let size = check_sized::<T>()?;
        // The count must account for exactly the bytes that follow it.
        let bytes = input.remaining().saturating_sub(COUNT_LEN);
        let count = read_count(input, |count| count.checked_mul(size) == Some(bytes))?;
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

/// The serde codecs' batches: each item encoded as the codec encodes a value, in one pass
/// straight into the frame, and decoded in one pass onto the end of the receiver's `Vec`
/// (a tuple of `count` values to serde, under the codec's depth limit).
// `SerdeFormat` is the crate's own: only its serde codecs get this impl.
#[cfg(any(feature = "bincode", feature = "postcard"))]
#[allow(private_bounds)]
impl<C, T> BatchCodec<T> for C
where
    C: super::depth::SerdeFormat + super::frame::Codec<T> + 'static,
    T: serde::de::DeserializeOwned,
{
    fn encode_batch(items: &[T], out: &mut FrameWriter<'_>) -> Result<usize, CodecError> {
        out.write(&[0; COUNT_LEN])?;
        let mut count = 0;
        for item in items {
            let mark = out.written();
            let encoded = match C::encode(item, out) {
                // Every item takes a byte at least, so a frame's count is bounded by its
                // length (which `decode_batch` checks).
                Ok(()) if out.written() == mark => Err(CodecError::Encode(
                    "items that encode to no bytes cannot be batched".into(),
                )),
                encoded => encoded,
            };
            match encoded {
                Ok(()) => count += 1,
                // The frame ends before this item: it does not fit, or it fails, which the
                // next frame, starting with it, then reports at its exact place.
                Err(_) if count > 0 => {
                    out.rewind(mark);
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        out.patch(0, &(count as u64).to_le_bytes())?;
        Ok(count)
    }

    fn decode_batch(input: &mut FrameReader<'_>, out: &mut Vec<T>) -> Result<(), CodecError> {
        let bytes = input.remaining().saturating_sub(COUNT_LEN);
        let count = read_count(input, |count| count <= bytes)?;
        let frame = input.rest_copied();
        let before = out.len();
        // Cautiously, as serde's own sequences do: the count is the peer's word, and bounded
        // by the frame's bytes, not by what its items take in memory.
        out.reserve(count.min(CAUTIOUS_RESERVE / std::mem::size_of::<T>().max(1)));
        let budget = super::budget::DepthBudget::new(super::budget::MAX_DECODE_DEPTH, frame.len());
        let seed = Appended::new(out, count, &budget);
        let decoded = C::decode_seed(frame, seed)
            .map_err(|e| budget.decode_error(e))
            .and_then(|((), read)| match frame.len() - read {
                0 => Ok(()),
                left => Err(CodecError::Decode(format!(
                    "{left} bytes left after the batch"
                ))),
            });
        if decoded.is_err() {
            out.truncate(before);
        }
        decoded
    }
}

/// The seed that decodes `count` values onto the end of `out`, as a tuple (the formats
/// read its elements back to back, with no length in front), through the depth limit.
#[cfg(any(feature = "bincode", feature = "postcard"))]
pub(crate) struct Appended<'o, 'b, T> {
    out: &'o mut Vec<T>,
    count: usize,
    budget: &'b super::budget::DepthBudget,
}

#[cfg(any(feature = "bincode", feature = "postcard"))]
impl<'o, 'b, T> Appended<'o, 'b, T> {
    pub(crate) fn new(
        out: &'o mut Vec<T>,
        count: usize,
        budget: &'b super::budget::DepthBudget,
    ) -> Self {
        Appended { out, count, budget }
    }
}

#[cfg(any(feature = "bincode", feature = "postcard"))]
impl<'de, T: serde::Deserialize<'de>> serde::de::DeserializeSeed<'de> for Appended<'_, '_, T> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        use serde::Deserializer as _;
        let count = self.count;
        super::depth::DepthLimited::new(deserializer, self.budget).deserialize_tuple(
            count,
            AppendVisitor {
                out: self.out,
                count,
            },
        )
    }
}

#[cfg(any(feature = "bincode", feature = "postcard"))]
struct AppendVisitor<'o, T> {
    out: &'o mut Vec<T>,
    count: usize,
}

#[cfg(any(feature = "bincode", feature = "postcard"))]
impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for AppendVisitor<'_, T> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a batch of {} items", self.count)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        for got in 0..self.count {
            match seq.next_element::<T>()? {
                Some(value) => self.out.push(value),
                None => return Err(serde::de::Error::invalid_length(got, &self)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes as much of `items` as a frame of `len` bytes takes; the frame's bytes and
    /// how many items it holds.
    fn encoded<C: BatchCodec<T>, T>(
        items: &[T],
        len: usize,
    ) -> Result<(Vec<u8>, usize), CodecError> {
        let mut buf = vec![0u8; len];
        // SAFETY: `buf` is private memory valid for `len` bytes.
        let mut out = unsafe { FrameWriter::new(buf.as_mut_ptr(), len) };
        let count = C::encode_batch(items, &mut out)?;
        let written = out.written();
        buf.truncate(written);
        Ok((buf, count))
    }

    /// Decodes `frame` onto the end of `out`.
    fn decoded<C: BatchCodec<T>, T>(frame: &[u8], out: &mut Vec<T>) -> Result<(), CodecError> {
        let mut scratch = Vec::new();
        // SAFETY: `frame` is private memory valid for its length.
        let mut input = unsafe { FrameReader::new(frame.as_ptr(), frame.len(), &mut scratch) };
        C::decode_batch(&mut input, out)
    }

    fn round_trip<C: BatchCodec<T>, T: Clone + PartialEq + std::fmt::Debug>(items: &[T]) {
        let (frame, count) = encoded::<C, T>(items, 1 << 16).unwrap();
        assert_eq!(count, items.len());
        let mut got = vec![items[0].clone()];
        decoded::<C, T>(&frame, &mut got).unwrap();
        assert_eq!(&got[1..], items);
        // A frame of a tenth of the length holds a head of the items, whole.
        let (frame, count) = encoded::<C, T>(items, frame.len() / 10).unwrap();
        assert!(count > 0 && count < items.len(), "{count}");
        let mut got = Vec::new();
        decoded::<C, T>(&frame, &mut got).unwrap();
        assert_eq!(got, items[..count]);
    }

    #[test]
    fn every_codec_round_trips_a_batch() {
        let items: Vec<u64> = (0..1000).map(|n| n * 7919).collect();
        round_trip::<Plain, u64>(&items);
        #[cfg(feature = "bincode")]
        round_trip::<super::super::Bincode, u64>(&items);
        #[cfg(feature = "postcard")]
        round_trip::<super::super::Postcard, u64>(&items);
        #[cfg(feature = "bincode")]
        round_trip::<super::super::Bincode, String>(
            &(0..150).map(|n| "s".repeat(n % 31)).collect::<Vec<_>>(),
        );
    }

    #[test]
    fn a_frame_too_small_for_the_first_item_overflows() {
        let mut buf = [0u8; 12];
        // SAFETY: `buf` is private memory valid for its length.
        let mut out = unsafe { FrameWriter::new(buf.as_mut_ptr(), buf.len()) };
        assert!(<Plain as BatchCodec<u64>>::encode_batch(&[1, 2], &mut out).is_err());
        assert!(out.overflowed());
        #[cfg(feature = "bincode")]
        {
            // SAFETY: as above.
            let mut out = unsafe { FrameWriter::new(buf.as_mut_ptr(), buf.len()) };
            let long = ["x".repeat(20)];
            assert!(
                <super::super::Bincode as BatchCodec<String>>::encode_batch(&long, &mut out)
                    .is_err()
            );
            assert!(out.overflowed());
        }
    }

    #[test]
    fn a_batch_with_a_lying_count_is_a_decode_error() {
        let mut plain = [0u8; COUNT_LEN + 16];
        for count in [3u64, 1, u64::MAX, 1 << 61] {
            plain[..COUNT_LEN].copy_from_slice(&count.to_le_bytes());
            let mut out: Vec<u64> = vec![9];
            let err = decoded::<Plain, u64>(&plain, &mut out);
            assert!(
                matches!(err, Err(CodecError::Decode(_))),
                "{count}: {err:?}"
            );
            assert_eq!(out, [9]);
        }
        #[cfg(feature = "bincode")]
        {
            let (mut frame, count) = encoded::<super::super::Bincode, u64>(&[1, 2, 3], 64).unwrap();
            assert_eq!(count, 3);
            for count in [2u64, 4, 12, u64::MAX] {
                frame[..COUNT_LEN].copy_from_slice(&count.to_le_bytes());
                let mut out: Vec<u64> = vec![9];
                let err = decoded::<super::super::Bincode, u64>(&frame, &mut out);
                assert!(
                    matches!(err, Err(CodecError::Decode(_))),
                    "{count}: {err:?}"
                );
                assert_eq!(out, [9], "nothing appended for count {count}");
            }
        }
    }

    #[cfg(feature = "bincode")]
    #[test]
    fn a_hostile_count_reserves_only_cautiously() {
        // 256 bytes in memory, 32 encoded (a zero byte per word): a frame of 64 KiB of
        // zeros, claiming as many items as it has bytes, holds 2047 of them.
        type Big = [u64; 32];
        let mut frame = vec![0u8; 1 << 16];
        let claimed = (frame.len() - COUNT_LEN) as u64;
        frame[..COUNT_LEN].copy_from_slice(&claimed.to_le_bytes());
        let mut out: Vec<Big> = Vec::new();
        let err = decoded::<super::super::Bincode, Big>(&frame, &mut out);
        assert!(matches!(err, Err(CodecError::Decode(_))), "{err:?}");
        assert!(out.is_empty());
        // Reserving the claimed count would have taken 16 MiB.
        let cautious = CAUTIOUS_RESERVE / std::mem::size_of::<Big>();
        assert!(
            out.capacity() <= cautious,
            "{} items reserved",
            out.capacity()
        );
    }

    /// A value bincode refuses to encode.
    #[cfg(feature = "bincode")]
    #[derive(Debug, serde::Deserialize)]
    struct Picky(u32);

    #[cfg(feature = "bincode")]
    impl serde::Serialize for Picky {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            match self.0 {
                3 => Err(serde::ser::Error::custom("three is refused")),
                n => s.serialize_u32(n),
            }
        }
    }

    #[cfg(feature = "bincode")]
    #[test]
    fn a_refused_item_ends_the_frame_before_it_and_starts_the_next() {
        let items = [1, 2, 3, 4].map(Picky);
        let (_, count) = encoded::<super::super::Bincode, Picky>(&items, 64).unwrap();
        assert_eq!(count, 2, "the frame ends before the refused item");
        let refused = encoded::<super::super::Bincode, Picky>(&items[2..], 64);
        assert!(matches!(refused, Err(CodecError::Encode(_))), "{refused:?}");
    }

    #[test]
    fn items_with_no_bytes_are_refused() {
        assert!(encoded::<Plain, ()>(&[(), ()], 64).is_err());
        #[cfg(feature = "bincode")]
        assert!(matches!(
            encoded::<super::super::Bincode, ()>(&[(), ()], 64),
            Err(CodecError::Encode(_))
        ));
    }
}
