//! Typed broadcast: `T` values to every reader, through the generic typed layer
//! ([`crate::typed`]) over the broadcast byte endpoints.
//!
//! A value is encoded straight into the ring's write grant, and decoded from the
//! receiver's private copy of the frame (checked against overwriting).
//!
//! ```
//! use shm_ipc::channel::broadcast::{typed, Policy};
//! let (mut tx, mut rx1) = typed::channel::<(u32, String)>(4096, Policy::BackPressure)?;
//! let mut rx2 = tx.subscribe()?;
//! tx.send((1, "one".into()))?;
//! assert_eq!(rx1.recv()?, (1, "one".to_string()));
//! assert_eq!(rx2.recv()?, (1, "one".to_string()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::broadcast::{self, Broadcast, Policy};
use crate::codec::Codec;
use crate::typed::DefaultCodec;
use crate::ChannelError;

/// The sending end of a typed broadcast channel.
pub type Sender<T, C = DefaultCodec> = crate::typed::Sender<T, C, Broadcast>;

/// A receiving end of a typed broadcast channel.
pub type Receiver<T, C = DefaultCodec> = crate::typed::Receiver<T, C, Broadcast>;

/// Creates a typed broadcast channel of `capacity` bytes with the default codec.
pub fn channel<T>(
    capacity: usize,
    policy: Policy,
) -> Result<crate::typed::Pair<T, DefaultCodec, Broadcast>, ChannelError>
where
    DefaultCodec: Codec<T>,
{
    channel_with::<T, DefaultCodec>(capacity, policy)
}

/// Creates a typed broadcast channel of `capacity` bytes with codec `C`.
pub fn channel_with<T, C: Codec<T>>(
    capacity: usize,
    policy: Policy,
) -> Result<crate::typed::Pair<T, C, Broadcast>, ChannelError> {
    crate::typed::pair(broadcast::channel(capacity, policy)?)
}

impl<T, C: Codec<T>> crate::typed::Sender<T, C, Broadcast> {
    /// A new receiver, starting at the next value sent (see
    /// [`broadcast::Sender::subscribe`]).
    pub fn subscribe(&self) -> Result<Receiver<T, C>, ChannelError> {
        Ok(Receiver::from_bytes(self.inner.subscribe()?)?)
    }
}
