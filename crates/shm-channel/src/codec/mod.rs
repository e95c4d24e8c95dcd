//! Codecs turn `T` into frame bytes and back, writing straight into a write grant and
//! reading straight out of a read grant.
//!
//! | codec | `T` | encode | decode |
//! |---|---|---|---|
//! | [`Bincode`] (default) | `Serialize + DeserializeOwned` | sized, then in place | in place, copying piecewise |
//! | [`Postcard`] | `Serialize + DeserializeOwned` | sized, then in place | from a private copy of the frame |
//! | [`Plain`] | `bytemuck::Pod` | one copy | one copy, length checked |
//!
//! Decoding never trusts the frame: bytes are copied out of shared memory before the codec
//! looks at them, and a frame that is not a valid `T` is a [`CodecError`], not a panic.
//! The serde codecs also refuse values nested deeper than [`MAX_DECODE_DEPTH`], so a
//! frame of deeply nested variants of a recursive type cannot overflow the receiver's stack.

use crate::CodecError;

/// Encodes `T` into a frame and decodes it back.
///
/// Typed senders encode in one pass where they can: into room reserved by a guess (twice the
/// last message's length), committing the length actually written; only a value that does
/// not fit the guess is sized with [`encoded_len`](Codec::encoded_len) and encoded again.
/// A codec that knows the length without encoding ([`exact_len`](Codec::exact_len), plain
/// data) is always reserved at that length.
pub trait Codec<T> {
    /// Exact number of bytes [`encode`](Codec::encode) will write for `value`.
    fn encoded_len(value: &T) -> Result<usize, CodecError>;

    /// The encoded length, if it is known without encoding (`None`: encode to find out).
    fn exact_len(_value: &T) -> Option<usize> {
        None
    }

    /// Writes `value` into `out`. A value that does not fit fails (and
    /// [`FrameWriter::overflowed`] says so); nothing is delivered then.
    fn encode(value: &T, out: &mut FrameWriter<'_>) -> Result<(), CodecError>;

    /// Reads a `T` from a frame.
    fn decode(input: &mut FrameReader<'_>) -> Result<T, CodecError>;
}

/// Writes up to this long are copied inline by [`FrameWriter::write`].
const SMALL_WRITE: usize = 16;

/// A bounded cursor over a write grant: copies bytes in through a raw pointer, so no
/// `&mut [u8]` is ever formed over shared memory.
pub struct FrameWriter<'a> {
    ptr: *mut u8,
    len: usize,
    pos: usize,
    /// A write did not fit.
    overflowed: bool,
    _grant: std::marker::PhantomData<&'a mut [u8]>,
}

impl FrameWriter<'_> {
    /// # Safety
    ///
    /// `ptr` must be valid for writes of `len` bytes for the writer's lifetime.
    pub(crate) unsafe fn new(ptr: *mut u8, len: usize) -> Self {
        FrameWriter {
            ptr,
            len,
            pos: 0,
            overflowed: false,
            _grant: std::marker::PhantomData,
        }
    }

    /// Appends `bytes`; fails if they do not fit.
    #[inline]
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), CodecError> {
        let Some(end) = self
            .pos
            .checked_add(bytes.len())
            .filter(|end| *end <= self.len)
        else {
            self.overflowed = true;
            return Err(CodecError::Encode(
                "the value does not fit the frame".into(),
            ));
        };
        if bytes.len() <= SMALL_WRITE {
            // A codec writes field by field, most fields a few bytes long: copied inline,
            // byte by byte, instead of a `memcpy` call each.
            for (i, &b) in bytes.iter().enumerate() {
                // SAFETY: `pos + i < end <= len`: inside the bytes the constructor's
                // caller made valid for writes; a raw write, no reference formed.
                unsafe { self.ptr.add(self.pos + i).write(b) };
            }
        } else {
            // SAFETY: `pos .. end` lies inside the `len` bytes the constructor's caller
            // made valid for writes; `bytes` is private memory.
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.add(self.pos), bytes.len())
            };
        }
        self.pos = end;
        Ok(())
    }

    /// Bytes written so far.
    pub fn written(&self) -> usize {
        self.pos
    }

    /// Whether a write did not fit: the value is larger than the frame.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }
}

/// A bounded cursor over a read grant: copies bytes out through a raw pointer.
pub struct FrameReader<'a> {
    ptr: *const u8,
    len: usize,
    pos: usize,
    scratch: &'a mut Vec<u8>,
}

impl<'a> FrameReader<'a> {
    /// # Safety
    ///
    /// `ptr` must be valid for reads of `len` bytes for the reader's lifetime.
    pub(crate) unsafe fn new(ptr: *const u8, len: usize, scratch: &'a mut Vec<u8>) -> Self {
        FrameReader {
            ptr,
            len,
            pos: 0,
            scratch,
        }
    }

    /// Length of the whole frame.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the frame is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.len - self.pos
    }

    /// Fills `buf` from the frame; fails if the frame has fewer bytes left.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<(), CodecError> {
        // SAFETY: `buf` is valid for writes of its length (and initialised).
        unsafe { self.copy_out(buf.as_mut_ptr(), buf.len()) }
    }

    /// [`read`](FrameReader::read) into memory that need not be initialised (the spare
    /// capacity of a `Vec`, say); on success every byte of `buf` is written.
    pub fn read_uninit(&mut self, buf: &mut [std::mem::MaybeUninit<u8>]) -> Result<(), CodecError> {
        // SAFETY: `buf` is valid for writes of its length; `MaybeUninit<u8>` has the layout
        // of `u8`.
        unsafe { self.copy_out(buf.as_mut_ptr().cast::<u8>(), buf.len()) }
    }

    /// Copies the next `len` bytes to `dst`.
    ///
    /// # Safety
    ///
    /// `dst` must be valid for writes of `len` bytes of private memory.
    unsafe fn copy_out(&mut self, dst: *mut u8, len: usize) -> Result<(), CodecError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|end| *end <= self.len)
            .ok_or_else(|| CodecError::Decode("frame ends inside the value".into()))?;
        // SAFETY: `pos .. end` lies inside the `len` readable bytes; `dst` is private and
        // valid for `len` bytes (the caller's promise).
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.add(self.pos), dst, len) };
        self.pos = end;
        Ok(())
    }

    /// Copies the rest of the frame into private scratch memory (reused across messages)
    /// and returns it, for codecs that decode from a slice.
    pub fn rest_copied(&mut self) -> &[u8] {
        let remaining = self.remaining();
        self.scratch.clear();
        self.scratch.resize(remaining, 0);
        // SAFETY: `pos .. len` is readable; the scratch vector holds `remaining` bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.ptr.add(self.pos),
                self.scratch.as_mut_ptr(),
                remaining,
            )
        };
        self.pos = self.len;
        self.scratch
    }
}

/// Plain data (`bytemuck::Pod`): the value's bytes, copied as they are. No codec, no
/// allocation; the frame must be exactly `size_of::<T>()` bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

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
        if input.len() != std::mem::size_of::<T>() {
            return Err(CodecError::Length {
                expected: std::mem::size_of::<T>(),
                found: input.len(),
            });
        }
        let mut value = T::zeroed();
        input.read(bytemuck::bytes_of_mut(&mut value))?;
        Ok(value)
    }
}

mod batch;
#[cfg(any(feature = "bincode", feature = "postcard"))]
mod depth;

pub use self::batch::BatchCodec;

#[cfg(any(feature = "bincode", feature = "postcard"))]
pub use self::depth::MAX_DECODE_DEPTH;

#[cfg(feature = "bincode")]
pub use self::bincode_codec::{Bincode, BINCODE_DECODE_LIMIT};

#[cfg(feature = "bincode")]
mod bincode_codec {
    use super::depth::{DepthBudget, DepthLimited, MAX_DECODE_DEPTH};
    use super::{Codec, FrameReader, FrameWriter};
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
}

#[cfg(feature = "postcard")]
pub use self::postcard_codec::Postcard;

#[cfg(feature = "postcard")]
mod postcard_codec {
    use super::depth::{DepthBudget, DepthLimited, MAX_DECODE_DEPTH};
    use super::{Codec, FrameReader, FrameWriter};
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

        fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
            self.0
                .write(&[byte])
                .map_err(|_| postcard::Error::SerializeBufferFull)
        }

        fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
            self.0
                .write(data)
                .map_err(|_| postcard::Error::SerializeBufferFull)
        }

        fn finalize(self) -> postcard::Result<()> {
            Ok(())
        }
    }

    impl super::batch::SerdeSequence for Postcard {
        fn sequence_len<T: serde::Serialize>(items: &[T]) -> Result<usize, CodecError> {
            postcard::serialize_with_flavor(items, Counter(0))
                .map_err(|e| CodecError::Encode(e.to_string()))
        }

        fn encode_sequence<T: serde::Serialize>(
            items: &[T],
            out: &mut FrameWriter<'_>,
        ) -> Result<(), CodecError> {
            postcard::serialize_with_flavor(items, InPlace(out))
                .map_err(|e| CodecError::Encode(e.to_string()))
        }
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

        fn decode(input: &mut FrameReader<'_>) -> Result<T, CodecError> {
            let bytes = input.rest_copied();
            let budget = DepthBudget::new(MAX_DECODE_DEPTH);
            let mut deserializer = postcard::Deserializer::from_bytes(bytes);
            let decoded = T::deserialize(DepthLimited::new(&mut deserializer, &budget));
            // postcard's error drops custom messages: the budget names the depth limit.
            let value = decoded.map_err(|e| budget.decode_error(e))?;
            let rest = deserializer
                .finalize()
                .map_err(|e| CodecError::Decode(e.to_string()))?;
            if !rest.is_empty() {
                return Err(CodecError::Decode(format!(
                    "{} bytes left after the value",
                    rest.len()
                )));
            }
            Ok(value)
        }
    }
}
