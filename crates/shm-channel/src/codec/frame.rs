//! What every codec writes into and reads from: the [`Codec`] trait, and the bounded
//! cursors over a write grant ([`FrameWriter`]) and a read grant ([`FrameReader`]), which
//! copy through raw pointers so no reference is ever formed over shared memory.

use crate::CodecError;

/// How a codec names its wire format in a channel's type
/// [`Fingerprint`](crate::typed::Fingerprint): typed ends of a channel refuse each other
/// when their codecs differ, as when their types do.
///
/// ```
/// use shm_ipc::channel::codec::{Bincode, CodecId, Plain};
/// assert_eq!(<Bincode as CodecId>::NAME, "bincode2");
/// assert!(<Plain as CodecId>::LAYOUT);
/// ```
pub trait CodecId {
    /// The codec's name (`"bincode2"`, `"postcard1"`, `"plain"`): name a new wire format
    /// with a new name.
    const NAME: &'static str;
    /// Whether a value's size and alignment are part of the wire format (plain data,
    /// whose bytes are the value's memory): the fingerprint then records them.
    const LAYOUT: bool = false;
    /// A schema id that stands for the type's name in the fingerprint (see
    /// [`Schema`](super::Schema)); `None` by default.
    const SCHEMA: Option<u64> = None;
}

/// Encodes `T` into a frame and decodes it back.
///
/// Typed senders encode each value once: into room reserved by a guess (twice the last
/// message's length) where the ring has it, committing the length actually written; a
/// value that does not fit the guess, or a guess the ring has no room for, is encoded into
/// a private buffer and copied. A codec that knows the length without encoding
/// ([`exact_len`](Codec::exact_len), plain data) is always reserved at that length.
pub trait Codec<T>: CodecId {
    /// Exact number of bytes [`encode`](Codec::encode) will write for `value`.
    fn encoded_len(value: &T) -> Result<usize, CodecError>;

    /// The encoded length, if it is known without encoding (`None`: encode to find out).
    fn exact_len(_value: &T) -> Option<usize> {
        None
    }

    /// Writes `value` into `out`. A value that does not fit fails with the error of the
    /// write that did not fit (the writer remembers the overflow, so the caller tries a
    /// larger frame); nothing is delivered then.
    fn encode(value: &T, out: &mut FrameWriter<'_>) -> Result<(), CodecError>;

    /// Reads a `T` from a frame.
    fn decode(input: &mut FrameReader<'_>) -> Result<T, CodecError>;

    /// Reads a `T` from a frame into `place`, reusing what `place` holds where the codec
    /// can: the serde codecs decode through `Deserialize::deserialize_in_place`, so that a
    /// `String` or `Vec` keeps its allocation (for types whose derive generates it: serde's
    /// `deserialize_in_place` feature; other types are decoded anew and assigned), and
    /// [`Plain`](super::Plain) copies the bytes straight into `place`. On error `place`
    /// holds a valid value, not necessarily the one it held before. The default decodes a
    /// new value and assigns it.
    fn decode_into(input: &mut FrameReader<'_>, place: &mut T) -> Result<(), CodecError> {
        *place = Self::decode(input)?;
        Ok(())
    }
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
        // SAFETY: `pos .. end` lies inside the `len` bytes the constructor's caller made
        // valid for writes; a raw write, no reference formed.
        let dst = unsafe { self.ptr.add(self.pos) };
        // A codec writes field by field, most fields 1, 2, 4 or 8 bytes long: those are one
        // unaligned store each, other short ones a byte loop, instead of a `memcpy` call.
        // SAFETY: `dst` is valid for `bytes.len()` bytes of writes (above); `bytes` is
        // private memory; raw writes, no reference formed.
        unsafe {
            match *bytes {
                [b] => dst.write(b),
                [b0, b1] => dst.cast::<[u8; 2]>().write_unaligned([b0, b1]),
                [b0, b1, b2, b3] => dst.cast::<[u8; 4]>().write_unaligned([b0, b1, b2, b3]),
                [b0, b1, b2, b3, b4, b5, b6, b7] => dst
                    .cast::<[u8; 8]>()
                    .write_unaligned([b0, b1, b2, b3, b4, b5, b6, b7]),
                _ if bytes.len() <= SMALL_WRITE => {
                    for (i, &b) in bytes.iter().enumerate() {
                        dst.add(i).write(b);
                    }
                }
                _ => std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()),
            }
        }
        self.pos = end;
        Ok(())
    }

    /// Bytes written so far.
    pub(crate) fn written(&self) -> usize {
        self.pos
    }

    /// Whether a write did not fit: the value is larger than the frame.
    pub(crate) fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Bytes that can still be written.
    pub(crate) fn room(&self) -> usize {
        self.len - self.pos
    }

    /// Goes back to `mark` (a [`written`](FrameWriter::written) count): what was written
    /// after it no longer counts, and the writer has not overflowed.
    #[cfg(any(feature = "bincode", feature = "postcard"))]
    pub(crate) fn rewind(&mut self, mark: usize) {
        self.pos = mark.min(self.pos);
        self.overflowed = false;
    }

    /// Overwrites bytes already written, from `at` on; fails if they were not all written.
    #[cfg(any(feature = "bincode", feature = "postcard"))]
    pub(crate) fn patch(&mut self, at: usize, bytes: &[u8]) -> Result<(), CodecError> {
        let end = self.pos;
        self.pos = at.min(end);
        let patched = match at.checked_add(bytes.len()) {
            Some(patch_end) if patch_end <= end => self.write(bytes),
            _ => Err(CodecError::Encode("a patch beyond what was written".into())),
        };
        self.pos = end;
        patched
    }
}

/// Why [`encode_growing`] gave up.
pub(crate) enum Grown {
    /// The encoding does not fit even `max` bytes.
    TooLarge,
    /// The codec refused the value.
    Refused(CodecError),
}

/// Encodes with `encode` into `scratch` (cleared first), growing it — from its capacity or
/// `min`, doubling, to at most `max` bytes — while the encoding overflows: the private
/// buffer a value goes through when it does not fit the frame reserved for it.
pub(crate) fn encode_growing(
    scratch: &mut Vec<u8>,
    min: usize,
    max: usize,
    mut encode: impl FnMut(&mut FrameWriter<'_>) -> Result<(), CodecError>,
) -> Result<(), Grown> {
    let mut room = scratch.capacity().max(min).min(max);
    loop {
        scratch.clear();
        scratch.reserve(room);
        let spare = scratch.spare_capacity_mut();
        // SAFETY: `spare` is valid for writes of `spare.len()` bytes while `scratch` is not
        // touched, which is until `out` is dropped.
        let mut out = unsafe { FrameWriter::new(spare.as_mut_ptr().cast(), spare.len()) };
        match encode(&mut out) {
            Ok(()) => {
                let written = out.written();
                // SAFETY: the writer initialised the first `written` bytes.
                unsafe { scratch.set_len(written) };
                return Ok(());
            }
            Err(_) if out.overflowed() && room < max => room = room.saturating_mul(2).min(max),
            Err(_) if out.overflowed() => return Err(Grown::TooLarge),
            Err(e) => return Err(Grown::Refused(e)),
        }
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

    /// Bytes not read yet (before the first read: the whole frame's length).
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
    pub(crate) fn read_uninit(
        &mut self,
        buf: &mut [std::mem::MaybeUninit<u8>],
    ) -> Result<(), CodecError> {
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

    /// A reader over the bytes not read yet, as a frame of their own (for a codec that
    /// wraps another: the inner one decodes what follows the outer one's header). Reading
    /// it does not move this reader.
    pub(crate) fn rest(&mut self) -> FrameReader<'_> {
        FrameReader {
            // In bounds: `pos <= len`; the new reader reads only `len - pos` bytes from it.
            ptr: self.ptr.wrapping_add(self.pos),
            len: self.len - self.pos,
            pos: 0,
            scratch: self.scratch,
        }
    }

    /// Copies the rest of the frame into private scratch memory (reused across messages)
    /// and returns it, for codecs that decode from a slice.
    pub fn rest_copied(&mut self) -> &[u8] {
        let remaining = self.remaining();
        self.scratch.clear();
        self.scratch.reserve(remaining);
        // SAFETY: `pos .. len` is readable; the scratch vector has room for `remaining`
        // bytes, which the copy initialises before `set_len` counts them. (The ring's own
        // copy out: inline moves for the small frames typed messages mostly are, instead
        // of a `memcpy` call.)
        unsafe {
            crate::shared::frame::copy_payload_out(
                self.ptr.add(self.pos),
                self.scratch.as_mut_ptr(),
                remaining,
            );
            self.scratch.set_len(remaining);
        }
        self.pos = self.len;
        self.scratch
    }
}
