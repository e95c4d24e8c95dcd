//! Typed channels: `T` values over a byte ring, encoded in place by a [`Codec`].
//!
//! [`Sender`] and [`Receiver`] wrap the byte endpoints of any flavor (the second type
//! parameter: [`Spsc`] by default, `Sender<T, Mpsc>` for a typed MPSC sender; the third
//! is the codec): [`channel`] makes a typed SPSC channel, [`pair`] turns the byte ends of
//! any channel into typed ends, and so does one `TryFrom` per end. What a flavor adds
//! (the MPSC sender's `try_clone`, the broadcast sender's `subscribe`) is in the flavor's
//! module. Encoding goes straight
//! into the ring's write grant and decoding straight out of the received frame, the same
//! code for every ring. Each call returns the byte call's error type around the typed
//! layer's blocking error ([`SendError`], [`RecvError`]), which adds the codec's `Encode`
//! or `Decode` to the byte endpoint's; send errors hand the value back.
//!
//! Typed ends check their type across processes: the first typed end made of a channel
//! records a [`Fingerprint`] of what it carries (the type's name, the codec, the size and
//! alignment where the codec copies memory, a schema id — see
//! [`Schema`](crate::codec::Schema)) in the channel's memory, and every later one — made
//! from bytes, attached, inherited across `exec`, taken from a rendezvous or received
//! through [`transfer`](crate::transfer) — is refused with a [`TypeMismatch`] naming both
//! types when it carries something else. Raw byte ends stay untyped and never look.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use shm_ipc::channel::codec::{Plain, Postcard};
//! use shm_ipc::channel::{spsc, typed};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Order { id: u64, item: String, qty: Vec<u16> }
//!
//! // serde + bincode (the default codec)
//! let (mut tx, mut rx) = typed::channel::<Order>(1 << 12)?;
//! tx.send(Order { id: 1, item: "tea".into(), qty: vec![2, 3] })?;
//! assert_eq!(rx.recv()?.item, "tea");
//!
//! // serde + postcard
//! let (mut tx, mut rx) = typed::pair::<Order, _, Postcard>(spsc::channel(1 << 12)?)?;
//! tx.send(Order { id: 2, item: "milk".into(), qty: vec![] })?;
//! assert_eq!(rx.recv()?.id, 2);
//!
//! // plain data: copied, no codec
//! let (mut tx, mut rx) = typed::pair::<[u64; 4], _, Plain>(spsc::channel(1 << 12)?)?;
//! tx.send([1, 2, 3, 4])?;
//! assert_eq!(rx.recv()?, [1, 2, 3, 4]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(feature = "tokio")]
mod async_calls;
mod error;

pub use crate::shared::fingerprint::{Fingerprint, TypeMismatch};
pub(crate) use error::FromDecodeError;
pub use error::{RecvError, SendError};

use std::marker::PhantomData;
use std::time::Duration;

use crate::codec::frame::{encode_growing, Grown};
use crate::codec::{Codec, FrameReader, FrameWriter};
use crate::endpoint::failure::{FromRecvFatal, SendFailure, SendFatal};
use crate::endpoint::{Deadline, Endpoint, Fault, Flavor, Parts, Publish};

use crate::spsc::Spsc;
use crate::{
    ChannelError, CodecError, RecvTimeoutError, SendTimeoutError, TryRecvError, TrySendError,
};

/// The default codec: serde + bincode 2 (with the `bincode` feature, the default), else
/// serde + postcard (`postcard` feature), else plain data.
pub type DefaultCodec = default_codec::Codec;

mod default_codec {
    #[cfg(feature = "bincode")]
    pub(crate) use crate::codec::Bincode as Codec;
    #[cfg(all(not(feature = "bincode"), not(feature = "postcard")))]
    pub(crate) use crate::codec::Plain as Codec;
    #[cfg(all(not(feature = "bincode"), feature = "postcard"))]
    pub(crate) use crate::codec::Postcard as Codec;
}

/// Both ends of a typed channel of flavor `F`.
pub type Pair<T, F = Spsc, C = DefaultCodec> = (Sender<T, F, C>, Receiver<T, F, C>);

/// Creates a typed SPSC channel over a byte ring of `capacity` bytes, with the default
/// codec. Any other typed channel is made with [`pair`].
pub fn channel<T>(capacity: usize) -> Result<Pair<T>, ChannelError>
where
    DefaultCodec: Codec<T>,
{
    pair(crate::spsc::channel(capacity)?)
}

/// Both ends of a byte channel of any flavor, made from any [`Builder`](crate::Builder),
/// as typed ends of `T` through codec `C`: the first records the type in the channel, the
/// second checks it. The flavor comes from the byte ends; `T` and `C` from the type asked
/// for (one [`TryFrom`] per end does the same).
///
/// ```
/// use shm_ipc::channel::codec::Postcard;
/// use shm_ipc::channel::mpsc::{self, Mpsc};
/// use shm_ipc::channel::transfer::Portable;
/// use shm_ipc::channel::{spsc, typed, Builder};
///
/// // Many senders, the default codec.
/// let (tx, mut rx): typed::Pair<u64, Mpsc> = typed::pair(mpsc::channel(4096)?)?;
/// let mut tx2 = tx.try_clone()?;
/// tx2.send(7)?;
/// assert_eq!(rx.recv()?, 7);
///
/// // In a sealed memfd, so that its ends can travel to a program started with `exec` or
/// // met through a rendezvous, where they are taken as typed ends of the same type.
/// let (tx, rx) = typed::pair::<String, _, Postcard>(Builder::<spsc::Spsc>::new(4096).create_memfd()?)?;
/// assert_eq!(rx.into_transfer()?.ticket().to_string(), "spsc.receiver.0");
/// # drop(tx);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// [`ChannelError::Type`] if typed ends of the channel already carry another type,
/// codec, layout or schema.
pub fn pair<T, F: Flavor, C: Codec<T>>(
    (tx, rx): (crate::Sender<F>, crate::Receiver<F>),
) -> Result<Pair<T, F, C>, ChannelError> {
    Ok((Sender::try_from(tx)?, Receiver::try_from(rx)?))
}

/// The sending end of a typed channel of flavor `F`.
pub struct Sender<T, F: Flavor = Spsc, C = DefaultCodec> {
    pub(crate) inner: crate::Sender<F>,
    /// Length of the last value encoded: the next guess reserves twice as much.
    last_len: usize,
    /// Where a value that the guess does not fit is encoded; reused.
    scratch: Vec<u8>,
    _types: PhantomData<fn(T, C)>,
}

/// The smallest one-pass guess: room for most small structs, and one cache line.
const MIN_GUESS: usize = 64;

/// Why a typed send failed, before the value is put back.
enum TypedFailure {
    Channel(SendFailure),
    Encode(CodecError),
}

/// Wraps a byte sender: its frames will carry `T`s encoded by `C`. The channel's
/// [`Fingerprint`] is recorded if it has none yet, else checked.
///
/// # Errors
///
/// [`TypeMismatch`] if the channel's typed ends carry another type (or codec, layout,
/// schema); the byte sender is dropped then, which closes it as any drop does.
impl<T, C: Codec<T>, F: Flavor> TryFrom<crate::Sender<F>> for Sender<T, F, C> {
    type Error = TypeMismatch;

    fn try_from(inner: crate::Sender<F>) -> Result<Self, TypeMismatch> {
        wrap_checked(inner, &Fingerprint::of::<T, C>(), |inner| Sender {
            inner,
            last_len: 0,
            scratch: Vec::new(),
            _types: PhantomData,
        })
    }
}

impl<T, C: Codec<T>, F: Flavor> Sender<T, F, C> {
    /// Sends `value`, waiting for room as long as it takes.
    pub fn send(&mut self, value: T) -> Result<(), SendError<T>> {
        self.send_waiting(value)
    }

    /// Sends `value` if there is room now.
    pub fn try_send(&mut self, value: T) -> Result<(), TrySendError<T, SendError<T>>> {
        self.send_until(value, Deadline::Now, TrySendError::Full, TrySendError::Send)
    }

    /// Sends `value`, waiting at most `timeout` for room.
    pub fn send_timeout(
        &mut self,
        value: T,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<T, SendError<T>>> {
        let deadline = Deadline::after(timeout);
        self.send_until(
            value,
            deadline,
            SendTimeoutError::Timeout,
            SendTimeoutError::Send,
        )
    }

    /// A send that gives up at `deadline`: `not_now(value)` then, `failed` of the typed
    /// error if the channel or the codec refused the value.
    fn send_until<W>(
        &mut self,
        value: T,
        deadline: Deadline,
        not_now: fn(T) -> W,
        failed: fn(SendError<T>) -> W,
    ) -> Result<(), W> {
        match self.encode_and_commit(&value, deadline) {
            Ok(()) => Ok(()),
            Err(TypedFailure::Channel(failure)) => {
                Err(failure.call_error(value, not_now, failed, channel_error))
            }
            Err(TypedFailure::Encode(e)) => Err(failed(SendError::Encode(value, e))),
        }
    }

    /// A send without a deadline (it never reports `NotNow`; were it to, it would simply
    /// wait again).
    fn send_waiting(&mut self, value: T) -> Result<(), SendError<T>> {
        loop {
            match self.encode_and_commit(&value, Deadline::Never) {
                Ok(()) => return Ok(()),
                Err(TypedFailure::Channel(SendFailure::NotNow)) => continue,
                Err(TypedFailure::Channel(SendFailure::Fatal(f))) => {
                    return Err(channel_error(f, value))
                }
                Err(TypedFailure::Encode(e)) => return Err(SendError::Encode(value, e)),
            }
        }
    }

    /// Encodes `value` and commits it; nothing is delivered if encoding fails.
    ///
    /// In one pass: a codec that knows the exact length ([`Codec::exact_len`]) encodes
    /// straight into a frame of that length. Otherwise the value is encoded straight into
    /// a frame reserved by a guess — twice the last value's length, at least
    /// [`MIN_GUESS`] — if the ring has room for it where the frame would go, with nothing
    /// else written (no padding to the ring's end), and the length written is committed. A
    /// value larger than the guess, or a guess the ring has no such room for, is encoded
    /// into a private buffer instead and copied into an exact frame, waiting until
    /// `deadline` as any send does. A guess given up costs the ring nothing: the exact
    /// frame has all the room it would have had.
    fn encode_and_commit(&mut self, value: &T, deadline: Deadline) -> Result<(), TypedFailure> {
        if let Some(len) = C::exact_len(value) {
            let slot = self
                .inner
                .reserve_slot(len, deadline)
                .map_err(TypedFailure::Channel)?;
            return match self.encode_into(slot, value) {
                Ok(_) => Ok(()),
                Err(Overflow::No(e)) => Err(TypedFailure::Encode(e)),
                Err(Overflow::Yes) => Err(TypedFailure::Encode(CodecError::Encode(
                    "the codec wrote more than its exact length".into(),
                ))),
            };
        }
        let guess = self
            .last_len
            .saturating_mul(2)
            .max(MIN_GUESS)
            .min(self.inner.max_payload());
        match self.inner.reserve_in_place(guess) {
            Ok(slot) => match self.encode_into(slot, value) {
                Ok(written) => {
                    self.last_len = written;
                    return Ok(());
                }
                Err(Overflow::Yes) => {}
                Err(Overflow::No(e)) => return Err(TypedFailure::Encode(e)),
            },
            Err(SendFailure::NotNow) => {}
            Err(fatal) => return Err(TypedFailure::Channel(fatal)),
        }
        self.encode_privately(value)?;
        self.last_len = self.scratch.len();
        let slot = self
            .inner
            .reserve_slot(self.scratch.len(), deadline)
            .map_err(TypedFailure::Channel)?;
        self.inner
            .write_and_commit(slot, &self.scratch, Publish::Now);
        Ok(())
    }

    /// Encodes `value` into the frame of `slot` and commits what was written.
    fn encode_into(
        &mut self,
        slot: crate::endpoint::Slot<F>,
        value: &T,
    ) -> Result<usize, Overflow> {
        self.inner.fill_and_commit(slot, Publish::Now, |ptr, len| {
            // SAFETY: `fill_and_commit` hands a pointer valid for writes of `len` bytes
            // until it commits, which is after this closure returns.
            let mut out = unsafe { FrameWriter::new(ptr, len) };
            match C::encode(value, &mut out) {
                Ok(()) => Ok(out.written()),
                Err(_) if out.overflowed() => Err(Overflow::Yes),
                Err(e) => Err(Overflow::No(e)),
            }
        })
    }

    /// Encodes `value` into `self.scratch`, growing it (to at most the largest message) until
    /// the value fits.
    fn encode_privately(&mut self, value: &T) -> Result<(), TypedFailure> {
        let max = self.inner.max_payload();
        encode_growing(&mut self.scratch, MIN_GUESS, max, |out| {
            C::encode(value, out)
        })
        .map_err(|grown| match grown {
            Grown::TooLarge => TypedFailure::Channel(SendFatal::TooLarge(max).into()),
            Grown::Refused(e) => TypedFailure::Encode(e),
        })
    }
}

/// Why encoding into a frame failed.
enum Overflow {
    /// The value is larger than the frame.
    Yes,
    /// The codec refused the value.
    No(CodecError),
}

/// The receiving end of a typed channel of flavor `F`.
pub struct Receiver<T, F: Flavor = Spsc, C = DefaultCodec> {
    pub(crate) inner: crate::Receiver<F>,
    /// Private copy of a frame, for codecs that decode from a slice; reused.
    scratch: Vec<u8>,
    _types: PhantomData<fn() -> (T, C)>,
}

/// Wraps a byte receiver whose frames carry `T`s encoded by `C`. The channel's
/// [`Fingerprint`] is recorded if it has none yet, else checked.
///
/// # Errors
///
/// [`TypeMismatch`] if the channel's typed ends carry another type (or codec, layout,
/// schema); the byte receiver is dropped then, which closes it as any drop does.
impl<T, C: Codec<T>, F: Flavor> TryFrom<crate::Receiver<F>> for Receiver<T, F, C> {
    type Error = TypeMismatch;

    fn try_from(inner: crate::Receiver<F>) -> Result<Self, TypeMismatch> {
        wrap_checked(inner, &Fingerprint::of::<T, C>(), |inner| Receiver {
            inner,
            scratch: Vec::new(),
            _types: PhantomData,
        })
    }
}

impl<T, C: Codec<T>, F: Flavor> Receiver<T, F, C> {
    /// Waits for the next value.
    pub fn recv(&mut self) -> Result<T, RecvError<F::RecvError>> {
        self.decode_next(Deadline::Never, C::decode)
    }

    /// The next value, if one is there now.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError<RecvError<F::RecvError>>> {
        self.decode_next(Deadline::Now, C::decode)
    }

    /// Waits at most `timeout` for the next value.
    pub fn recv_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<T, RecvTimeoutError<RecvError<F::RecvError>>> {
        self.decode_next(Deadline::after(timeout), C::decode)
    }

    /// Waits for the next value and decodes it into `value`, reusing what `value` holds: a
    /// loop that receives into one value allocates nothing per message where the codec
    /// can decode in place ([`Codec::decode_into`]: for serde codecs, a `String` or `Vec`
    /// field keeps its allocation when the type's derive generates
    /// `Deserialize::deserialize_in_place`, serde_derive's `deserialize_in_place` feature).
    /// On a decode error `value` holds a valid value, not necessarily the one before; on
    /// any other error it is untouched.
    ///
    /// ```
    /// use shm_ipc::channel::typed;
    /// let (mut tx, mut rx) = typed::channel::<Vec<String>>(4096)?;
    /// let mut got = Vec::new();
    /// for n in 0..3 {
    ///     tx.send(vec![n.to_string(); n])?;
    ///     rx.recv_into(&mut got)?;
    ///     assert_eq!(got, vec![n.to_string(); n]);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_into(&mut self, value: &mut T) -> Result<(), RecvError<F::RecvError>> {
        self.decode_next(Deadline::Never, |input| C::decode_into(input, value))
    }

    /// Waits (until `deadline`) for the next frame and decodes it with `decode`, from a
    /// reader over the frame.
    fn decode_next<E: FromRecvFatal<Fault<F>> + FromDecodeError, R>(
        &mut self,
        deadline: Deadline,
        decode: impl FnOnce(&mut FrameReader<'_>) -> Result<R, CodecError>,
    ) -> Result<R, E> {
        recv_decoded(&mut self.inner, deadline, &mut self.scratch, decode)?.map_err(E::from_decode)
    }

    /// A blocking iterator over values; it ends when no value can come any more.
    pub fn iter(&mut self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.recv().ok())
    }
}

/// Waits (until `deadline`) for the next frame of `inner` and decodes it with `decode`, from
/// a reader over the frame (which copies it into `scratch` for codecs that decode from a
/// slice): the receive of the typed and bulk receivers. The outer error is the channel's,
/// the inner one the codec's.
#[inline]
pub(crate) fn recv_decoded<F: Flavor, E: FromRecvFatal<Fault<F>>, R>(
    inner: &mut crate::Receiver<F>,
    deadline: Deadline,
    scratch: &mut Vec<u8>,
    decode: impl FnOnce(&mut FrameReader<'_>) -> Result<R, CodecError>,
) -> Result<Result<R, CodecError>, E> {
    inner.recv_with::<E, _>(deadline, |ptr, len| {
        // SAFETY: `recv_with` hands a pointer valid for reads of `len` bytes until the
        // frame is released, which is after this closure returns.
        let mut input = unsafe { FrameReader::new(ptr, len, scratch) };
        decode(&mut input)
    })
}

/// The end `wrap` makes of byte end `inner` (a typed or bulk end), once `fingerprint` is
/// recorded as what `inner`'s channel carries or, if the channel records something
/// already, checked against it; `inner` is dropped on a mismatch.
pub(crate) fn wrap_checked<E: Endpoint, W>(
    inner: E,
    fingerprint: &Fingerprint,
    wrap: impl FnOnce(E) -> W,
) -> Result<W, TypeMismatch> {
    crate::shared::fingerprint::record_or_check(inner.parts().type_line(), fingerprint)?;
    Ok(wrap(inner))
}

/// The typed error for a failure of the channel, handing `value` back.
fn channel_error<T>(fatal: SendFatal, value: T) -> SendError<T> {
    SendError::Send(fatal.with(value))
}

/// The byte sender underneath (to hand to code that moves frames, the bridge say).
impl<T, C, F: Flavor> From<Sender<T, F, C>> for crate::Sender<F> {
    fn from(typed: Sender<T, F, C>) -> crate::Sender<F> {
        typed.inner
    }
}

/// The byte receiver underneath.
impl<T, C, F: Flavor> From<Receiver<T, F, C>> for crate::Receiver<F> {
    fn from(typed: Receiver<T, F, C>) -> crate::Receiver<F> {
        typed.inner
    }
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
        f.debug_tuple("typed::Sender").field(&self.inner).finish()
    }
}

impl<T, C, F: Flavor> std::fmt::Debug for Receiver<T, F, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("typed::Receiver").field(&self.inner).finish()
    }
}
