//! Typed MPSC channels: `T` values encoded in place by a [`Codec`], many senders.
//!
//! ```
//! use shm_channel::mpsc::typed;
//! let (tx, mut rx) = typed::channel::<(u32, String)>(4096)?;
//! let mut tx2 = tx.try_clone()?;
//! let mut tx = tx;
//! tx.send((1, "one".into()))?;
//! tx2.send((2, "two".into()))?;
//! assert_eq!(rx.recv()?.0, 1);
//! assert_eq!(rx.recv()?.1, "two");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::marker::PhantomData;
use std::time::Duration;

use shm_core::liveness::ProcessIdentity;
use shm_core::notify::WaitStrategy;

use crate::bytes::Deadline;
use crate::codec::{Codec, FrameReader, FrameWriter};
use crate::mpsc;
use crate::typed::DefaultCodec;
use crate::{ChannelError, OwnershipError, RecvError, SendError};

/// Both ends of a typed MPSC channel.
pub type Pair<T, C = DefaultCodec> = (Sender<T, C>, Receiver<T, C>);

/// Creates a typed MPSC channel of `capacity` bytes with the default codec.
pub fn channel<T>(capacity: usize) -> Result<Pair<T>, ChannelError>
where
    DefaultCodec: Codec<T>,
{
    channel_with::<T, DefaultCodec>(capacity)
}

/// Creates a typed MPSC channel with codec `C`.
pub fn channel_with<T, C: Codec<T>>(capacity: usize) -> Result<Pair<T, C>, ChannelError> {
    let (tx, rx) = mpsc::channel(capacity)?;
    Ok((Sender::from_bytes(tx), Receiver::from_bytes(rx)))
}

/// One sending end of a typed MPSC channel.
pub struct Sender<T, C = DefaultCodec> {
    inner: mpsc::Sender,
    _types: PhantomData<fn(T, C)>,
}

impl<T, C: Codec<T>> Sender<T, C> {
    /// Wraps a byte sender whose frames will carry `T`s encoded by `C`.
    pub fn from_bytes(inner: mpsc::Sender) -> Self {
        Sender {
            inner,
            _types: PhantomData,
        }
    }

    /// The byte sender underneath.
    pub fn into_bytes(self) -> mpsc::Sender {
        self.inner
    }

    /// Another sender in a new producer slot (see [`mpsc::Sender::try_clone`]).
    pub fn try_clone(&self) -> Result<Self, ChannelError> {
        self.inner.try_clone().map(Sender::from_bytes)
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

    fn send_with_deadline(&mut self, value: T, deadline: Deadline) -> Result<(), SendError<T>> {
        let len = match C::encoded_len(&value) {
            Ok(len) => len,
            Err(e) => return Err(SendError::Encode(value, e)),
        };
        let mut grant = match self.inner.reserve_with_deadline(len, deadline) {
            Ok(grant) => grant,
            Err(e) => return Err(e.map(|()| value)),
        };
        // SAFETY: the grant's pointer is valid for writes of `len` bytes while it lives,
        // and the writer does not outlive this block.
        let mut out = unsafe { FrameWriter::new(grant.as_mut_ptr(), len) };
        let encoded = C::encode(&value, &mut out);
        let written = out.written();
        match encoded {
            Ok(()) if written == len => {
                grant.commit(len);
                Ok(())
            }
            // Dropping the grant commits a filler the receiver skips.
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

    /// See [`mpsc::Sender::hand_over`].
    pub fn hand_over(&self, to: ProcessIdentity) -> Result<(), OwnershipError> {
        self.inner.hand_over(to)
    }

    /// See [`mpsc::Sender::adopt`].
    pub fn adopt(&self) -> Result<(), OwnershipError> {
        self.inner.adopt()
    }

    /// Whether the calling process owns this sender.
    pub fn is_owned_here(&self) -> bool {
        self.inner.is_owned_here()
    }
}

impl<T, C: Codec<T>> Clone for Sender<T, C> {
    /// # Panics
    ///
    /// When all [`mpsc::MAX_SENDERS`] producer slots are taken.
    fn clone(&self) -> Self {
        Sender::from_bytes(self.inner.clone())
    }
}

impl<T, C> std::fmt::Debug for Sender<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("mpsc::typed::Sender")
            .field(&self.inner)
            .finish()
    }
}

/// The receiving end of a typed MPSC channel.
pub struct Receiver<T, C = DefaultCodec> {
    inner: mpsc::Receiver,
    scratch: Vec<u8>,
    _types: PhantomData<fn() -> (T, C)>,
}

impl<T, C: Codec<T>> Receiver<T, C> {
    /// Wraps a byte receiver whose frames carry `T`s encoded by `C`.
    pub fn from_bytes(inner: mpsc::Receiver) -> Self {
        Receiver {
            inner,
            scratch: Vec::new(),
            _types: PhantomData,
        }
    }

    /// The byte receiver underneath.
    pub fn into_bytes(self) -> mpsc::Receiver {
        self.inner
    }

    /// The byte receiver underneath, borrowed (for its counters).
    pub fn as_bytes(&self) -> &mpsc::Receiver {
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

    /// See [`mpsc::Receiver::hand_over`].
    pub fn hand_over(&self, to: ProcessIdentity) -> Result<(), OwnershipError> {
        self.inner.hand_over(to)
    }

    /// See [`mpsc::Receiver::adopt`].
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
        f.debug_tuple("mpsc::typed::Receiver")
            .field(&self.inner)
            .finish()
    }
}
