//! Bulk channels: slices of `T` over a byte ring, many items to a frame.
//!
//! A [`Sender`] sends a whole slice at once, as few frames as the ring allows (each at most
//! an eighth of the ring, so that the reader works on one frame while the next is
//! written); a [`Receiver`] appends what a frame holds to a `Vec<T>`, and
//! [`drain_into`](Receiver::drain_into) takes every frame at hand in one call. The frame
//! overhead (header, reserve, commit, release, wake check) is paid per batch, not per item.
//!
//! The codec is a [`BatchCodec`]: [`Plain`](crate::codec::Plain) copies `bytemuck::Pod`
//! items as they are (no encoding at all); [`Bincode`](crate::codec::Bincode) (the default)
//! and [`Postcard`](crate::codec::Postcard) carry any serde type.
//!
//! Bulk ends check their type across processes as typed ends do (see
//! [`typed::Fingerprint`](crate::typed::Fingerprint)); a bulk channel of `T` records `[T]`,
//! so a typed end of `T` is refused by it, and the other way round, and its codec with the
//! batch format (`bincode2+batch2`), so an end that frames batches otherwise is refused
//! too.
//!
//! ```
//! use shm_ipc::channel::bulk;
//! use shm_ipc::channel::codec::Plain;
//!
//! let (tx, rx) = shm_ipc::channel::spsc::channel(1 << 16)?;
//! let mut tx = bulk::Sender::<u64, _, Plain>::try_from(tx)?;
//! let mut rx = bulk::Receiver::<u64, _, Plain>::try_from(rx)?;
//! // 40 KB: five frames (each at most an eighth of the ring), all in the ring at once.
//! let items: Vec<u64> = (0..5_000).collect();
//! tx.send(&items)?;
//! drop(tx);
//! let mut got = Vec::new();
//! while rx.drain_into(&mut got, usize::MAX).is_ok() {}
//! assert_eq!(got, items);
//!
//! // serde items, with the default codec
//! let (tx, rx) = shm_ipc::channel::spsc::channel(1 << 12)?;
//! let mut tx = bulk::Sender::<String>::try_from(tx)?;
//! let mut rx = bulk::Receiver::<String>::try_from(rx)?;
//! tx.send(&["a".to_string(), "b".to_string()])?;
//! let mut got = Vec::new();
//! assert_eq!(rx.drain_into(&mut got, usize::MAX)?, 2);
//! assert_eq!(got, ["a", "b"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::marker::PhantomData;

use crate::codec::batch::COUNT_LEN;
use crate::codec::frame::{encode_growing, Grown};
use crate::codec::{BatchCodec, FrameReader, FrameWriter};
use crate::endpoint::failure::{until_done, FromRecvFatal, SendFatal};
use crate::endpoint::{Deadline, Endpoint, Fault, Flavor, Parts, Publish};
use crate::spsc::Spsc;
use crate::typed::{
    recv_decoded, wrap_checked, DefaultCodec, Fingerprint, FromDecodeError, RecvError, SendError,
    TypeMismatch,
};
use crate::{CodecError, TryRecvError};

/// The share of the ring one frame may take: an eighth, as deferred sends publish (so that
/// the ring holds several frames and both sides keep busy).
const FRAME_SHARE: usize = 8;

/// The sending end of a bulk channel of flavor `F`.
pub struct Sender<T, F: Flavor = Spsc, C = DefaultCodec> {
    inner: crate::Sender<F>,
    /// Bytes an item took in the last frame (rounded up): sizes the next frame's guess.
    item_len: usize,
    /// Where an item too large for a frame of the budget is encoded; reused.
    scratch: Vec<u8>,
    _types: PhantomData<fn(T, C)>,
}

/// Wraps a byte sender: its frames will carry batches of `T`s encoded by `C`. The
/// channel's fingerprint (`[T]` through `C`) is recorded if it has none yet, else checked.
///
/// # Errors
///
/// [`TypeMismatch`] if the channel carries something else; the byte sender is dropped.
impl<T, C: BatchCodec<T>, F: Flavor> TryFrom<crate::Sender<F>> for Sender<T, F, C> {
    type Error = TypeMismatch;

    fn try_from(inner: crate::Sender<F>) -> Result<Self, TypeMismatch> {
        wrap_checked(inner, &Fingerprint::of_batch::<T, C>(), |inner| Sender {
            inner,
            item_len: std::mem::size_of::<T>().max(1),
            scratch: Vec::new(),
            _types: PhantomData,
        })
    }
}

impl<T, C: BatchCodec<T>, F: Flavor> Sender<T, F, C> {
    /// Sends every item of `items`, in order, waiting for room as long as it takes, and
    /// publishes them. Items are encoded straight into the frames (an item that does not
    /// fit what is left of a frame is encoded again into the next; one larger than a
    /// frame of an eighth of the ring goes alone, through a private buffer).
    ///
    /// # Errors
    ///
    /// The byte sender's errors ([`SendError::Send`]), `TooLarge` among them for an item
    /// that does not fit a frame by itself; [`SendError::Encode`] if the codec fails. Each
    /// carries how many items were sent before it.
    pub fn send(&mut self, items: &[T]) -> Result<(), SendError<usize>> {
        let sent = self.send_frames(items);
        self.inner.flush();
        sent
    }

    /// Sends `items` as frames of at most the budget (an item larger than that alone in a
    /// frame of its size), published when an eighth of the ring is pending (the caller
    /// flushes the rest).
    fn send_frames(&mut self, items: &[T]) -> Result<(), SendError<usize>> {
        let max = self.inner.max_payload();
        let budget = max.min(self.inner.capacity() / FRAME_SHARE);
        let mut sent = 0;
        while sent < items.len() {
            let rest = &items[sent..];
            // What the rest takes at the last frame's bytes per item, and an eighth more.
            let guess = rest.len().saturating_mul(self.item_len);
            let guess = guess.saturating_add(guess / 8 + COUNT_LEN).min(budget);
            let mut frame = self.send_frame(rest, guess);
            if matches!(frame, Err(Failure::Overflow)) && guess < budget {
                frame = self.send_frame(rest, budget);
            }
            if matches!(frame, Err(Failure::Overflow)) {
                frame = self.send_alone(&rest[..1], max);
            }
            sent += frame.map_err(|failure| match failure {
                Failure::Channel(fatal) => SendError::Send(fatal.with(sent)),
                Failure::Encode(e) => SendError::Encode(sent, e),
                // The largest item a frame carries: the frame less the batch's count.
                Failure::Overflow => {
                    SendError::Send(SendFatal::TooLarge(max.saturating_sub(COUNT_LEN)).with(sent))
                }
            })?;
        }
        Ok(())
    }

    /// Encodes the longest head of `items` that fits a frame of `len` bytes into one,
    /// waiting for room; returns how many items it holds.
    fn send_frame(&mut self, items: &[T], len: usize) -> Result<usize, Failure> {
        let slot = until_done(|| self.inner.reserve_slot(len, Deadline::Never))
            .map_err(Failure::Channel)?;
        let mut count = 0;
        let written = self
            .inner
            .fill_and_commit(slot, Publish::WhenPending, |ptr, len| {
                // SAFETY: `fill_and_commit` hands a pointer valid for writes of `len` bytes
                // until it commits, which is after this closure returns.
                let mut out = unsafe { FrameWriter::new(ptr, len) };
                match C::encode_batch(items, &mut out) {
                    // A codec that takes no item would loop for ever: refused (an outside
                    // codec's mistake; the crate's never do it).
                    Ok(0) => Err(Failure::Encode(CodecError::Encode(
                        "the codec put no item in the frame".into(),
                    ))),
                    Ok(n) => {
                        count = n.min(items.len());
                        Ok(out.written())
                    }
                    Err(_) if out.overflowed() => Err(Failure::Overflow),
                    Err(e) => Err(Failure::Encode(e)),
                }
            })?;
        self.item_len = written
            .saturating_sub(COUNT_LEN)
            .div_ceil(count.max(1))
            .max(1);
        Ok(count)
    }

    /// Sends `item` (one) in a frame of its own size, up to `max` bytes, encoded privately
    /// first: the way of an item larger than a frame of the budget.
    fn send_alone(&mut self, item: &[T], max: usize) -> Result<usize, Failure> {
        encode_growing(&mut self.scratch, 2 * COUNT_LEN, max, |out| {
            C::encode_batch(item, out).map(drop)
        })
        .map_err(|grown| match grown {
            Grown::TooLarge => Failure::Overflow,
            Grown::Refused(e) => Failure::Encode(e),
        })?;
        let slot = until_done(|| self.inner.reserve_slot(self.scratch.len(), Deadline::Never))
            .map_err(Failure::Channel)?;
        self.inner
            .write_and_commit(slot, &self.scratch, Publish::WhenPending);
        Ok(1)
    }
}

/// Why one frame could not be sent.
enum Failure {
    Channel(SendFatal),
    Encode(CodecError),
    /// Not even the first item fits the frame.
    Overflow,
}

/// The receiving end of a bulk channel of flavor `F`.
pub struct Receiver<T, F: Flavor = Spsc, C = DefaultCodec> {
    inner: crate::Receiver<F>,
    /// Private copy of a frame, for codecs that decode from a slice; reused.
    scratch: Vec<u8>,
    /// A frame that [`drain_into`](Receiver::drain_into) consumed but could not decode,
    /// after it had already taken items: reported by the next call.
    pending: Option<CodecError>,
    _types: PhantomData<fn() -> (T, C)>,
}

/// Wraps a byte receiver whose frames carry batches of `T`s encoded by `C`. The channel's
/// fingerprint is recorded if it has none yet, else checked.
///
/// # Errors
///
/// [`TypeMismatch`] if the channel carries something else; the byte receiver is dropped.
impl<T, C: BatchCodec<T>, F: Flavor> TryFrom<crate::Receiver<F>> for Receiver<T, F, C> {
    type Error = TypeMismatch;

    fn try_from(inner: crate::Receiver<F>) -> Result<Self, TypeMismatch> {
        wrap_checked(inner, &Fingerprint::of_batch::<T, C>(), |inner| Receiver {
            inner,
            scratch: Vec::new(),
            pending: None,
            _types: PhantomData,
        })
    }
}

impl<T, C: BatchCodec<T>, F: Flavor> Receiver<T, F, C> {
    /// Waits for the next frame and appends its items to `out`; returns how many.
    fn recv_frame(&mut self, out: &mut Vec<T>) -> Result<usize, RecvError<F::RecvError>> {
        self.decode_next(Deadline::Never, out)
    }

    /// Waits for a frame, then takes every further frame already in the ring, until `out`
    /// grew by at least `max` items, the ring is empty, or a ring's worth of frames was
    /// taken (senders that keep the ring full cannot make one call take more and more):
    /// the batch a pipeline stage works on. Returns how many items were appended (at least
    /// one frame's worth).
    ///
    /// An error found after some frames were taken (a disconnect, a dead sender, a frame
    /// that does not decode) is returned by the next call; the items taken come first.
    pub fn drain_into(
        &mut self,
        out: &mut Vec<T>,
        max: usize,
    ) -> Result<usize, RecvError<F::RecvError>> {
        let mut got = self.recv_frame(out)?;
        let ring = self.inner.capacity();
        let mut taken = 0;
        while got < max && taken < ring {
            match self.take_now(out) {
                Some((items, bytes)) => {
                    got += items;
                    taken += bytes;
                }
                None => break,
            }
        }
        Ok(got)
    }

    /// One more frame if there is one now: the items it appended and its length; `None`
    /// when the ring is empty or failed (the failure is for the next call to find, or kept
    /// in `pending` if the frame was consumed).
    fn take_now(&mut self, out: &mut Vec<T>) -> Option<(usize, usize)> {
        let decoded = recv_decoded::<F, TryRecvError<F::RecvError>, _>(
            &mut self.inner,
            Deadline::Now,
            &mut self.scratch,
            |input| {
                let len = input.remaining();
                append_batch::<T, C>(input, out).map(|items| (items, len))
            },
        );
        match decoded {
            Ok(Ok(taken)) => Some(taken),
            Ok(Err(e)) => {
                self.pending = Some(e);
                None
            }
            Err(_) => None,
        }
    }

    fn decode_next<E: FromRecvFatal<Fault<F>> + FromDecodeError>(
        &mut self,
        deadline: Deadline,
        out: &mut Vec<T>,
    ) -> Result<usize, E> {
        if let Some(e) = self.pending.take() {
            return Err(E::from_decode(e));
        }
        recv_decoded(&mut self.inner, deadline, &mut self.scratch, |input| {
            append_batch::<T, C>(input, out)
        })?
        .map_err(E::from_decode)
    }
}

/// Decodes the frame `input` reads onto the end of `out`; how many items it held.
fn append_batch<T, C: BatchCodec<T>>(
    input: &mut FrameReader<'_>,
    out: &mut Vec<T>,
) -> Result<usize, CodecError> {
    let before = out.len();
    C::decode_batch(input, out)?;
    Ok(out.len() - before)
}

impl<T, C, F: Flavor> Endpoint for Sender<T, F, C> {
    fn parts(&self) -> &dyn Parts {
        self.inner.parts()
    }

    fn parts_mut(&mut self) -> &mut dyn Parts {
        self.inner.parts_mut()
    }
}

impl<T, C, F: Flavor> Endpoint for Receiver<T, F, C> {
    fn parts(&self) -> &dyn Parts {
        self.inner.parts()
    }

    fn parts_mut(&mut self) -> &mut dyn Parts {
        self.inner.parts_mut()
    }
}

impl<T, C, F: Flavor> std::fmt::Debug for Sender<T, F, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("bulk::Sender").field(&self.inner).finish()
    }
}

impl<T, C, F: Flavor> std::fmt::Debug for Receiver<T, F, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("bulk::Receiver").field(&self.inner).finish()
    }
}
