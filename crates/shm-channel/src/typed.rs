//! Typed channels: `T` values over the byte ring, encoded in place by a [`Codec`].
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

use crate::bytes::{self, Deadline, EndpointStats};
use crate::codec::{Codec, FrameReader, FrameWriter};
use crate::{ChannelError, OwnershipError, RecvError, SendError};

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

/// The sending end of a typed channel.
pub struct Sender<T, C = DefaultCodec> {
    inner: bytes::Sender,
    _types: PhantomData<fn(T, C)>,
}

impl<T, C: Codec<T>> Sender<T, C> {
    /// Wraps a byte sender: its frames will carry `T`s encoded by `C`.
    pub fn from_bytes(inner: bytes::Sender) -> Self {
        Sender {
            inner,
            _types: PhantomData,
        }
    }

    /// Attaches as the sender to a channel created in `memory` by another process.
    pub fn attach(memory: Arc<dyn SharedMemory>) -> Result<Self, ChannelError> {
        bytes::Sender::attach(memory).map(Sender::from_bytes)
    }

    /// The byte sender underneath.
    pub fn into_bytes(self) -> bytes::Sender {
        self.inner
    }

    /// Sends `value`, waiting for room as long as it takes.
    pub fn send(&mut self, value: T) -> Result<(), SendError<T>> {
        self.send_with_deadline(value, Deadline::Never)
    }

    /// Sends `value` if there is room now.
    pub fn try_send(&mut self, value: T) -> Result<(), SendError<T>> {
        self.send_with_deadline(value, Deadline::Now)
    }

    /// Sends `value`, waiting at most `timeout` for room.
    pub fn send_timeout(&mut self, value: T, timeout: Duration) -> Result<(), SendError<T>> {
        self.send_with_deadline(value, Deadline::after(timeout))
    }

    /// Sends `value` but may leave it unpublished, for batched publishing of a stream: see
    /// [`bytes::Sender::send_deferred`]. Waits for room like [`send`](Sender::send).
    pub fn send_deferred(&mut self, value: T) -> Result<(), SendError<T>> {
        self.encode_and_commit(value, Deadline::Never, true)
    }

    /// Publishes every value sent with [`send_deferred`](Sender::send_deferred) so far.
    pub fn flush(&mut self) {
        self.inner.flush();
    }

    fn send_with_deadline(&mut self, value: T, deadline: Deadline) -> Result<(), SendError<T>> {
        self.encode_and_commit(value, deadline, false)
    }

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
        let mut grant = match self.inner.reserve_with_deadline(len, deadline) {
            Ok(grant) => grant,
            Err(e) => return Err(e.map(|()| value)),
        };
        // SAFETY: the grant's pointer is valid for writes of `len` bytes while it lives, and
        // the writer does not outlive this block.
        let mut out = unsafe { FrameWriter::new(grant.as_mut_ptr(), len) };
        let encoded = C::encode(&value, &mut out);
        let written = out.written();
        match encoded {
            Ok(()) if written == len => {
                if deferred {
                    grant.commit_deferred(len);
                } else {
                    grant.commit(len);
                }
                Ok(())
            }
            // Dropping the grant uncommitted publishes nothing.
            Ok(()) => Err(SendError::Encode(
                value,
                crate::CodecError::Encode(format!(
                    "encoder announced {len} bytes, wrote {written}"
                )),
            )),
            Err(e) => Err(SendError::Encode(value, e)),
        }
    }

    /// Changes how this endpoint waits.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.inner.set_wait_strategy(strategy);
    }

    /// Counters of this endpoint.
    pub fn stats(&self) -> EndpointStats {
        self.inner.stats()
    }

    /// See [`bytes::Sender::hand_over`].
    pub fn hand_over(&self, to: ProcessIdentity) -> Result<(), OwnershipError> {
        self.inner.hand_over(to)
    }

    /// See [`bytes::Sender::adopt`].
    pub fn adopt(&self) -> Result<(), OwnershipError> {
        self.inner.adopt()
    }

    /// Whether the calling process owns this endpoint.
    pub fn is_owned_here(&self) -> bool {
        self.inner.is_owned_here()
    }
}

impl<T, C> std::fmt::Debug for Sender<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("typed::Sender").field(&self.inner).finish()
    }
}

/// The receiving end of a typed channel.
pub struct Receiver<T, C = DefaultCodec> {
    inner: bytes::Receiver,
    /// Private copy of a frame, for codecs that decode from a slice; reused.
    scratch: Vec<u8>,
    _types: PhantomData<fn() -> (T, C)>,
}

impl<T, C: Codec<T>> Receiver<T, C> {
    /// Wraps a byte receiver whose frames carry `T`s encoded by `C`.
    pub fn from_bytes(inner: bytes::Receiver) -> Self {
        Receiver {
            inner,
            scratch: Vec::new(),
            _types: PhantomData,
        }
    }

    /// Attaches as the receiver to a channel created in `memory` by another process.
    pub fn attach(memory: Arc<dyn SharedMemory>) -> Result<Self, ChannelError> {
        bytes::Receiver::attach(memory).map(Receiver::from_bytes)
    }

    /// The byte receiver underneath.
    pub fn into_bytes(self) -> bytes::Receiver {
        self.inner
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
        let grant = self.inner.read_with_deadline(deadline)?;
        // SAFETY: the grant's pointer is valid for reads of `grant.len()` bytes while it
        // lives; the reader is dropped before the grant.
        let mut input = unsafe { FrameReader::new(grant.as_ptr(), grant.len(), &mut self.scratch) };
        let value = C::decode(&mut input);
        drop(grant);
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

    /// Counters of this endpoint.
    pub fn stats(&self) -> EndpointStats {
        self.inner.stats()
    }

    /// See [`bytes::Receiver::hand_over`].
    pub fn hand_over(&self, to: ProcessIdentity) -> Result<(), OwnershipError> {
        self.inner.hand_over(to)
    }

    /// See [`bytes::Receiver::adopt`].
    pub fn adopt(&self) -> Result<(), OwnershipError> {
        self.inner.adopt()
    }

    /// Whether the calling process owns this endpoint.
    pub fn is_owned_here(&self) -> bool {
        self.inner.is_owned_here()
    }
}

impl<T, C> std::fmt::Debug for Receiver<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("typed::Receiver").field(&self.inner).finish()
    }
}
