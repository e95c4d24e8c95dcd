//! Typed MPSC channels: `T` values encoded in place by a [`Codec`], many senders.
//!
//! ```
//! use shm_ipc::channel::mpsc::typed;
//! let (tx, mut rx) = typed::channel::<(u32, String)>(4096)?;
//! let mut tx2 = tx.try_clone()?;
//! let mut tx = tx;
//! tx.send((1, "one".into()))?;
//! tx2.send((2, "two".into()))?;
//! assert_eq!(rx.recv()?.0, 1);
//! assert_eq!(rx.recv()?.1, "two");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::codec::Codec;
use crate::mpsc::{self, Mpsc};
use crate::typed::DefaultCodec;
use crate::ChannelError;

/// The sending end of a typed MPSC channel: the generic typed sender over an MPSC sender.
pub type Sender<T, C = DefaultCodec> = crate::typed::Sender<T, C, Mpsc>;

/// The receiving end of a typed MPSC channel.
pub type Receiver<T, C = DefaultCodec> = crate::typed::Receiver<T, C, Mpsc>;

/// Creates a typed MPSC channel of `capacity` bytes with the default codec.
pub fn channel<T>(
    capacity: usize,
) -> Result<crate::typed::Pair<T, DefaultCodec, Mpsc>, ChannelError>
where
    DefaultCodec: Codec<T>,
{
    channel_with::<T, DefaultCodec>(capacity)
}

/// Creates a typed MPSC channel of `capacity` bytes with codec `C`.
pub fn channel_with<T, C: Codec<T>>(
    capacity: usize,
) -> Result<crate::typed::Pair<T, C, Mpsc>, ChannelError> {
    crate::typed::pair(mpsc::channel(capacity)?)
}

impl<T, C: Codec<T>> crate::typed::Sender<T, C, Mpsc> {
    /// Another sender in a new producer slot (see [`mpsc::Sender::try_clone`]).
    pub fn try_clone(&self) -> Result<Self, ChannelError> {
        Ok(Sender::from_bytes(self.inner.try_clone()?)?)
    }
}
