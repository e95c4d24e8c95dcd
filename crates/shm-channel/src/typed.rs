//! Typed channels: `T` values over a byte ring, encoded in place by a [`Codec`].
//!
//! [`Sender`] and [`Receiver`] wrap any byte endpoint of this crate (the third type
//! parameter: the SPSC [`bytes`] endpoints by default, the [`mpsc`](crate::mpsc) ones for
//! [`mpsc::typed`](crate::mpsc::typed)): encoding goes straight into the ring's write grant
//! and decoding straight out of its read grant, the same code for every ring.
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

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use shm_core::liveness::ProcessIdentity;
use shm_core::notify::WaitStrategy;
use shm_core::SharedMemory;

use crate::bytes::{self, EndpointStats};
use crate::codec::{Codec, FrameReader, FrameWriter};
use crate::endpoint::{ByteReceiver, ByteSender, Deadline};
use crate::{ChannelError, CodecError, OwnershipError, RecvError, SendError};

#[cfg(feature = "bincode")]
/// The default codec: serde + bincode 2.
pub type DefaultCodec = crate::codec::Bincode;
#[cfg(all(not(feature = "bincode"), feature = "postcard"))]
/// The default codec: serde + postcard (bincode is disabled).
pub type DefaultCodec = crate::codec::Postcard;
#[cfg(all(not(feature = "bincode"), not(feature = "postcard")))]
/// The default codec: plain data (no serde codec is enabled).
pub type DefaultCodec = crate::codec::Plain;

/// Both ends of a typed channel.
pub type Pair<T, C = DefaultCodec> = (Sender<T, C>, Receiver<T, C>);

/// Creates a typed channel over a byte ring of `capacity` bytes, with the default codec.
pub fn channel<T>(capacity: usize) -> Result<Pair<T>, ChannelError>
where
    DefaultCodec: Codec<T>,
{
    channel_with::<T, DefaultCodec>(capacity)
}

/// Creates a typed channel with codec `C`.
pub fn channel_with<T, C: Codec<T>>(capacity: usize) -> Result<Pair<T, C>, ChannelError> {
    let (tx, rx) = bytes::channel(capacity)?;
    Ok((Sender::from_bytes(tx), Receiver::from_bytes(rx)))
}

/// The sending end of a typed channel over the byte sender `S`.
pub struct Sender<T, C = DefaultCodec, S = bytes::Sender> {
    inner: S,
    _types: PhantomData<fn(T, C)>,
}

impl<T, C: Codec<T>, S: ByteSender> Sender<T, C, S> {
    /// Wraps a byte sender: its frames will carry `T`s encoded by `C`.
    pub fn from_bytes(inner: S) -> Self {
        Sender {
            inner,
            _types: PhantomData,
        }
    }

    /// The byte sender underneath.
    pub fn into_bytes(self) -> S {
        self.inner
    }

    /// The byte sender underneath, borrowed.
    pub fn as_bytes(&self) -> &S {
        &self.inner
    }

    /// Sends `value`, waiting for room as long as it takes.
    pub fn send(&mut self, value: T) -> Result<(), SendError<T>> {
        self.encode_and_commit(value, Deadline::Never, false)
    }

    /// Sends `value` if there is room now.
    pub fn try_send(&mut self, value: T) -> Result<(), SendError<T>> {
        self.encode_and_commit(value, Deadline::Now, false)
    }

    /// Sends `value`, waiting at most `timeout` for room.
    pub fn send_timeout(&mut self, value: T, timeout: Duration) -> Result<(), SendError<T>> {
        self.encode_and_commit(value, Deadline::after(timeout), false)
    }

    /// Sends `value` but may leave it unpublished, for batched publishing of a stream: see
    /// [`bytes::Sender::send_deferred`] (an MPSC commit is always visible at once).
    pub fn send_deferred(&mut self, value: T) -> Result<(), SendError<T>> {
        self.encode_and_commit(value, Deadline::Never, true)
    }

    /// Publishes every value sent with [`send_deferred`](Sender::send_deferred) so far.
    pub fn flush(&mut self) {
        self.inner.flush_frames();
    }

    /// Sizes `value`, encodes it straight into a frame of exactly that size, and commits
    /// the frame; nothing is published if encoding fails or writes another length.
    fn encode_and_commit(
        &mut self,
        value: T,
        deadline: Deadline,
        deferred: bool,
    ) -> Result<(), SendError<T>> {
        let len = match C::encoded_len(&value) {
            Ok(len) => len,
            Err(e) => return Err(SendError::Encode(value, e)),
        };
        let sent = self.inner.send_frame(len, deadline, deferred, |ptr| {
            // SAFETY: `send_frame` hands a pointer valid for writes of `len` bytes until
            // it commits, which is after this closure returns.
            let mut out = unsafe { FrameWriter::new(ptr, len) };
            C::encode(&value, &mut out)?;
            match out.written() {
                written if written == len => Ok(()),
                written => Err(CodecError::Encode(format!(
                    "encoder announced {len} bytes, wrote {written}"
                ))),
            }
        });
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(SendError::Encode(value, e)),
            Err(e) => Err(e.map(|()| value)),
        }
    }

    /// Changes how this endpoint waits.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.inner.set_wait_strategy(strategy);
    }

    /// In the owning process: makes process `to` the owner (see [`Endpoint::hand_over`](crate::endpoint::Endpoint::hand_over)).
    pub fn hand_over(&self, to: ProcessIdentity) -> Result<(), OwnershipError> {
        self.inner.hand_over(to)
    }

    /// In a forked child: takes ownership from the parent (see [`Endpoint::adopt`](crate::endpoint::Endpoint::adopt)).
    pub fn adopt(&self) -> Result<(), OwnershipError> {
        self.inner.adopt()
    }

    /// Whether the calling process owns this endpoint.
    pub fn is_owned_here(&self) -> bool {
        self.inner.is_owned_here()
    }
}

impl<T, C: Codec<T>> Sender<T, C, bytes::Sender> {
    /// Attaches as the sender to a channel created in `memory` by another process.
    pub fn attach(memory: Arc<dyn SharedMemory>) -> Result<Self, ChannelError> {
        bytes::Sender::attach(memory).map(Sender::from_bytes)
    }

    /// Counters of this endpoint.
    pub fn stats(&self) -> EndpointStats {
        self.inner.stats()
    }
}

impl<T, C, S: std::fmt::Debug> std::fmt::Debug for Sender<T, C, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("typed::Sender").field(&self.inner).finish()
    }
}

/// The receiving end of a typed channel over the byte receiver `R`.
pub struct Receiver<T, C = DefaultCodec, R = bytes::Receiver> {
    inner: R,
    /// Private copy of a frame, for codecs that decode from a slice; reused.
    scratch: Vec<u8>,
    _types: PhantomData<fn() -> (T, C)>,
}

impl<T, C: Codec<T>, R: ByteReceiver> Receiver<T, C, R> {
    /// Wraps a byte receiver whose frames carry `T`s encoded by `C`.
    pub fn from_bytes(inner: R) -> Self {
        Receiver {
            inner,
            scratch: Vec::new(),
            _types: PhantomData,
        }
    }

    /// The byte receiver underneath.
    pub fn into_bytes(self) -> R {
        self.inner
    }

    /// The byte receiver underneath, borrowed (for its counters).
    pub fn as_bytes(&self) -> &R {
        &self.inner
    }

    /// Waits for the next value.
    pub fn recv(&mut self) -> Result<T, RecvError> {
        self.recv_with_deadline(Deadline::Never)
    }

    /// The next value, if one is there now.
    pub fn try_recv(&mut self) -> Result<T, RecvError> {
        self.recv_with_deadline(Deadline::Now)
    }

    /// Waits at most `timeout` for the next value.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T, RecvError> {
        self.recv_with_deadline(Deadline::after(timeout))
    }

    fn recv_with_deadline(&mut self, deadline: Deadline) -> Result<T, RecvError> {
        let scratch = &mut self.scratch;
        let value = self.inner.recv_frame(deadline, |ptr, len| {
            // SAFETY: `recv_frame` hands a pointer valid for reads of `len` bytes until
            // the frame is released, which is after this closure returns.
            let mut input = unsafe { FrameReader::new(ptr, len, scratch) };
            C::decode(&mut input)
        })?;
        Ok(value?)
    }

    /// A blocking iterator over values; it ends when no value can come any more.
    pub fn iter(&mut self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.recv().ok())
    }

    /// Changes how this endpoint waits.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.inner.set_wait_strategy(strategy);
    }

    /// In the owning process: makes process `to` the owner (see [`Endpoint::hand_over`](crate::endpoint::Endpoint::hand_over)).
    pub fn hand_over(&self, to: ProcessIdentity) -> Result<(), OwnershipError> {
        self.inner.hand_over(to)
    }

    /// In a forked child: takes ownership from the parent (see [`Endpoint::adopt`](crate::endpoint::Endpoint::adopt)).
    pub fn adopt(&self) -> Result<(), OwnershipError> {
        self.inner.adopt()
    }

    /// Whether the calling process owns this endpoint.
    pub fn is_owned_here(&self) -> bool {
        self.inner.is_owned_here()
    }
}

impl<T, C: Codec<T>> Receiver<T, C, bytes::Receiver> {
    /// Attaches as the receiver to a channel created in `memory` by another process.
    pub fn attach(memory: Arc<dyn SharedMemory>) -> Result<Self, ChannelError> {
        bytes::Receiver::attach(memory).map(Receiver::from_bytes)
    }

    /// Counters of this endpoint.
    pub fn stats(&self) -> EndpointStats {
        self.inner.stats()
    }
}

impl<T, C, R: std::fmt::Debug> std::fmt::Debug for Receiver<T, C, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("typed::Receiver").field(&self.inner).finish()
    }
}
