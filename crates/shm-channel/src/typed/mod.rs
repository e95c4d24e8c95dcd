//! Typed channels: `T` values over a byte ring, encoded in place by a [`Codec`].
//!
//! [`Sender`] and [`Receiver`] wrap the byte endpoints of any flavor (the third type
//! parameter: [`Spsc`] by default; [`mpsc::typed`](crate::mpsc::typed) and
//! [`broadcast::typed`](crate::broadcast::typed) name the others): encoding goes straight
//! into the ring's write grant and decoding straight out of the received frame, the same
//! code for every ring. Errors are the byte endpoints' per-call errors, carrying the value
//! back (`Encode`, `Decode` for codec failures).
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use shm_channel::codec::{Plain, Postcard};
//! use shm_channel::typed;
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
//! let (mut tx, mut rx) = typed::channel_with::<Order, Postcard>(1 << 12)?;
//! tx.send(Order { id: 2, item: "milk".into(), qty: vec![] })?;
//! assert_eq!(rx.recv()?.id, 2);
//!
//! // plain data: copied, no codec
//! let (mut tx, mut rx) = typed::channel_with::<[u64; 4], Plain>(1 << 12)?;
//! tx.send([1, 2, 3, 4])?;
//! assert_eq!(rx.recv()?, [1, 2, 3, 4]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(feature = "tokio")]
mod asynchronous;
#[cfg(feature = "tokio")]
pub use asynchronous::{RecvStream, SendSink};

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use shm_core::liveness::ProcessIdentity;
use shm_core::notify::{Handshake, WaitStrategy};
use shm_core::SharedMemory;

use crate::codec::{Codec, FrameReader, FrameWriter};
use crate::endpoint::{Deadline, EndpointStats, Flavor, Publish};
use crate::error::SendFailure;
use crate::spsc::Spsc;
use crate::{ChannelError, CodecError, OwnershipError, SendError, SendTimeoutError, TrySendError};

#[cfg(feature = "bincode")]
/// The default codec: serde + bincode 2.
pub type DefaultCodec = crate::codec::Bincode;
#[cfg(all(not(feature = "bincode"), feature = "postcard"))]
/// The default codec: serde + postcard (bincode is disabled).
pub type DefaultCodec = crate::codec::Postcard;
#[cfg(all(not(feature = "bincode"), not(feature = "postcard")))]
/// The default codec: plain data (no serde codec is enabled).
pub type DefaultCodec = crate::codec::Plain;

/// `Pair`, `channel` and `channel_with` of a module of endpoints over byte endpoints
/// (`typed`, `bulk`), whose codecs implement `$codec`.
macro_rules! spsc_constructors {
    ($codec:ident, $what:literal) => {
        #[doc = concat!("Both ends of a ", $what, " channel.")]
        pub type Pair<T, C = DefaultCodec, F = crate::spsc::Spsc> =
            (Sender<T, C, F>, Receiver<T, C, F>);

        #[doc = concat!("Creates a ", $what, " SPSC channel over a byte ring of `capacity` bytes, with the default codec.")]
        pub fn channel<T>(capacity: usize) -> Result<Pair<T>, ChannelError>
        where
            DefaultCodec: $codec<T>,
        {
            channel_with::<T, DefaultCodec>(capacity)
        }

        #[doc = concat!("Creates a ", $what, " SPSC channel with codec `C`.")]
        pub fn channel_with<T, C: $codec<T>>(capacity: usize) -> Result<Pair<T, C>, ChannelError> {
            let (tx, rx) = crate::spsc::channel(capacity)?;
            Ok((Sender::from_bytes(tx), Receiver::from_bytes(rx)))
        }
    };
}
pub(crate) use spsc_constructors;

spsc_constructors!(Codec, "typed");

/// The sending end of a typed channel of flavor `F`.
pub struct Sender<T, C = DefaultCodec, F: Flavor = Spsc> {
    inner: crate::Sender<F>,
    /// Length of the last value encoded: the next guess reserves twice as much.
    last_len: usize,
    /// Whether the last encoding failed for want of room in its frame.
    overflowed: bool,
    _types: PhantomData<fn(T, C)>,
}

/// The smallest one-pass guess: room for most small structs, and one cache line.
const MIN_GUESS: usize = 64;

/// Why a typed send failed, before the value is put back.
enum TypedFailure {
    Channel(SendFailure),
    Encode(CodecError),
}

impl<T, C: Codec<T>, F: Flavor> Sender<T, C, F> {
    /// Wraps a byte sender: its frames will carry `T`s encoded by `C`.
    pub fn from_bytes(inner: crate::Sender<F>) -> Self {
        Sender {
            inner,
            last_len: 0,
            overflowed: false,
            _types: PhantomData,
        }
    }

    /// Sends `value`, waiting for room as long as it takes.
    pub fn send(&mut self, value: T) -> Result<(), SendError<T>> {
        self.send_waiting(value, Publish::Now)
    }

    /// Sends `value` if there is room now.
    pub fn try_send(&mut self, value: T) -> Result<(), TrySendError<T>> {
        match self.encode_and_commit(&value, Deadline::Now, Publish::Now) {
            Ok(()) => Ok(()),
            Err(TypedFailure::Channel(failure)) => {
                Err(crate::endpoint::try_send_error(failure, value))
            }
            Err(TypedFailure::Encode(e)) => Err(TrySendError::Encode(value, e)),
        }
    }

    /// Sends `value`, waiting at most `timeout` for room.
    pub fn send_timeout(&mut self, value: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        match self.encode_and_commit(&value, Deadline::after(timeout), Publish::Now) {
            Ok(()) => Ok(()),
            Err(TypedFailure::Channel(failure)) => {
                Err(crate::endpoint::send_timeout_error(failure, value))
            }
            Err(TypedFailure::Encode(e)) => Err(SendTimeoutError::Encode(value, e)),
        }
    }

    /// Sends `value` but may leave it unpublished, for batched publishing of a stream: see
    /// [`Sender::send_deferred`](crate::Sender::send_deferred).
    pub fn send_deferred(&mut self, value: T) -> Result<(), SendError<T>> {
        self.send_waiting(value, Publish::WhenPending)
    }

    /// A send without a deadline (it never reports `NotNow`; were it to, it would simply
    /// wait again).
    fn send_waiting(&mut self, value: T, publish: Publish) -> Result<(), SendError<T>> {
        loop {
            match self.encode_and_commit(&value, Deadline::Never, publish) {
                Ok(()) => return Ok(()),
                Err(TypedFailure::Channel(SendFailure::NotNow)) => continue,
                Err(TypedFailure::Channel(SendFailure::Fatal(f))) => {
                    return Err(SendError::fatal(f, value))
                }
                Err(TypedFailure::Encode(e)) => return Err(SendError::Encode(value, e)),
            }
        }
    }

    /// Publishes every value sent with [`send_deferred`](Sender::send_deferred) so far.
    pub fn flush(&mut self) {
        self.inner.flush();
    }

    /// Encodes `value` straight into the ring and commits it; nothing is delivered if
    /// encoding fails.
    ///
    /// One pass where it can: unless the codec knows the exact length, the value is encoded
    /// into a frame reserved by a guess — twice the last value's length, at least
    /// [`MIN_GUESS`], at most a quarter of the ring — taken only if the ring has that room
    /// now, and the length written is committed. A value that does not fit the guess, or a
    /// ring without that room, takes the sized path: `encoded_len`, then an exact frame,
    /// waiting until `deadline` as any send does.
    fn encode_and_commit(
        &mut self,
        value: &T,
        deadline: Deadline,
        publish: Publish,
    ) -> Result<(), TypedFailure> {
        let exact = C::exact_len(value);
        if exact.is_none() {
            let room = self.inner.max_message_len().min(self.inner.capacity() / 4);
            let guess = self.last_len.saturating_mul(2).max(MIN_GUESS).min(room);
            if self.last_len <= room {
                match self.encode_into_frame(value, guess, Deadline::Now, publish) {
                    Ok(written) => {
                        self.last_len = written;
                        return Ok(());
                    }
                    Err(TypedFailure::Channel(SendFailure::NotNow)) => {}
                    Err(TypedFailure::Encode(_)) if self.overflowed => {}
                    Err(other) => return Err(other),
                }
            }
        }
        let len = match exact {
            Some(len) => len,
            None => C::encoded_len(value).map_err(TypedFailure::Encode)?,
        };
        self.last_len = len;
        // A codec that writes fewer bytes than it announced wrote a whole value all the
        // same: what it wrote is committed.
        self.encode_into_frame(value, len, deadline, publish)
            .map(drop)
    }

    /// Encodes `value` into a frame of `len` bytes (committing what was written); records
    /// in `self.overflowed` whether it failed for want of room.
    fn encode_into_frame(
        &mut self,
        value: &T,
        len: usize,
        deadline: Deadline,
        publish: Publish,
    ) -> Result<usize, TypedFailure> {
        let mut overflowed = false;
        let sent = self.inner.send_with(len, deadline, publish, |ptr| {
            // SAFETY: `send_with` hands a pointer valid for writes of `len` bytes until it
            // commits, which is after this closure returns.
            let mut out = unsafe { FrameWriter::new(ptr, len) };
            let encoded = C::encode(value, &mut out);
            overflowed = out.overflowed();
            encoded.map(|()| out.written())
        });
        self.overflowed = overflowed;
        match sent {
            Ok(Ok(written)) => Ok(written),
            Ok(Err(e)) => Err(TypedFailure::Encode(e)),
            Err(failure) => Err(TypedFailure::Channel(failure)),
        }
    }
}

/// The receiving end of a typed channel of flavor `F`.
pub struct Receiver<T, C = DefaultCodec, F: Flavor = Spsc> {
    inner: crate::Receiver<F>,
    /// Private copy of a frame, for codecs that decode from a slice; reused.
    scratch: Vec<u8>,
    _types: PhantomData<fn() -> (T, C)>,
}

impl<T, C: Codec<T>, F: Flavor> Receiver<T, C, F> {
    /// Wraps a byte receiver whose frames carry `T`s encoded by `C`.
    pub fn from_bytes(inner: crate::Receiver<F>) -> Self {
        Receiver {
            inner,
            scratch: Vec::new(),
            _types: PhantomData,
        }
    }

    /// Waits for the next value.
    pub fn recv(&mut self) -> Result<T, F::RecvError> {
        self.decode_next(Deadline::Never)
    }

    /// The next value, if one is there now.
    pub fn try_recv(&mut self) -> Result<T, F::TryRecvError> {
        self.decode_next(Deadline::Now)
    }

    /// Waits at most `timeout` for the next value.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T, F::RecvTimeoutError> {
        self.decode_next(Deadline::after(timeout))
    }

    fn decode_next<E: crate::error::FromRecvFatal<crate::endpoint::Fault<F>>>(
        &mut self,
        deadline: Deadline,
    ) -> Result<T, E> {
        let scratch = &mut self.scratch;
        let value = self.inner.recv_with::<E, _>(deadline, |ptr, len| {
            // SAFETY: `recv_with` hands a pointer valid for reads of `len` bytes until the
            // frame is released, which is after this closure returns.
            let mut input = unsafe { FrameReader::new(ptr, len, scratch) };
            C::decode(&mut input)
        })?;
        value.map_err(E::from)
    }

    /// A blocking iterator over values; it ends when no value can come any more.
    pub fn iter(&mut self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.recv().ok())
    }
}

/// What the typed endpoints (and the bulk ones) have alike, forwarded to the byte endpoint
/// underneath: attach, the byte endpoint itself, waiting, counters, ownership, `Debug`.
/// `$codec` is the codec trait of the endpoint's `C`, `$module` its module's name.
macro_rules! typed_common {
    ($typed:ident, $bytes:ident, $codec:ident, $module:literal) => {
        impl<T, C: $codec<T>, F: Flavor> $typed<T, C, F> {
            #[doc = concat!("Attaches to a channel created in `memory` by another process (see [`", stringify!($bytes), "::attach`](crate::", stringify!($bytes), "::attach)).")]
            pub fn attach(memory: Arc<dyn SharedMemory>) -> Result<Self, ChannelError> {
                crate::$bytes::attach(memory).map($typed::from_bytes)
            }

            /// The byte endpoint underneath.
            pub fn into_bytes(self) -> crate::$bytes<F> {
                self.inner
            }

            /// The byte endpoint underneath, borrowed.
            pub fn as_bytes(&self) -> &crate::$bytes<F> {
                &self.inner
            }

            /// Changes how this endpoint waits.
            pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
                self.inner.set_wait_strategy(strategy);
            }

            /// Counters of this endpoint.
            pub fn stats(&self) -> EndpointStats {
                self.inner.stats()
            }

            /// The channel's wake handshake (see
            /// [`Sender::handshake`](crate::Sender::handshake)).
            pub fn handshake(&self) -> Handshake {
                self.inner.handshake()
            }

            /// In the owning process: makes process `to` the owner (see
            /// [`Sender::hand_over`](crate::Sender::hand_over)).
            pub fn hand_over(&self, to: ProcessIdentity) -> Result<(), OwnershipError> {
                self.inner.hand_over(to)
            }

            /// In a forked child: takes ownership from the parent (see
            /// [`Sender::adopt`](crate::Sender::adopt)).
            pub fn adopt(&self) -> Result<(), OwnershipError> {
                self.inner.adopt()
            }

            /// Whether the calling process owns this endpoint.
            pub fn is_owned_here(&self) -> bool {
                self.inner.is_owned_here()
            }
        }

        impl<T, C, F: Flavor> std::fmt::Debug for $typed<T, C, F> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_tuple(concat!($module, "::", stringify!($typed)))
                    .field(&self.inner)
                    .finish()
            }
        }
    };
}

pub(crate) use typed_common;

typed_common!(Sender, Sender, Codec, "typed");
typed_common!(Receiver, Receiver, Codec, "typed");
