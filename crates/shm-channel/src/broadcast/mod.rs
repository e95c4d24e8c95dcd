//! Fan-out: one sender, up to [`MAX_READERS`] (16) receivers that each see every message.
//!
//! Each receiver has its own cursor in a reader slot of the control block. The policy is
//! chosen at creation ([`Builder::policy`]):
//!
//! - [`Policy::BackPressure`] (the default): the sender waits for the slowest live
//!   receiver. A receiver whose process died is dropped from the back-pressure at the
//!   sender's next slow check (every 10 ms of a blocked send, or at most once per 10 ms of
//!   a `try_send` that finds the ring full).
//! - [`Policy::Overwrite`]: the sender never waits; it overwrites the oldest messages. A
//!   receiver that fell behind gets [`RecvError::Lagged(n)`](RecvError::Lagged) — `n`
//!   messages it missed — and continues from the oldest message still in the ring.
//!
//! Receivers join late with [`Sender::subscribe`](crate::Sender::subscribe),
//! [`Receiver::try_clone`](crate::Receiver::try_clone) or
//! [`Receiver::attach`](crate::Receiver::attach) (from another process), starting at the
//! current tail, and leave by being dropped. With no receiver, messages are dropped.
//!
//! A receiver copies each frame into a private buffer and checks it was not overwritten
//! during the copy before handing it out (through [`ReadGrant`](crate::ReadGrant), `recv`,
//! `recv_into`):
//! torn data is never returned.
//!
//! Typed values: `typed::pair(broadcast::channel(capacity, policy)?)` makes the byte ends
//! typed ends ([`typed::Pair<T, Broadcast>`](crate::typed::Pair)); the typed sender
//! subscribes typed receivers.
//!
//! # Examples
//!
//! ```
//! use shm_ipc::channel::broadcast::{self, Broadcast, Policy, RecvError};
//! use shm_ipc::channel::{Builder, TryRecvError};
//!
//! let (mut tx, mut rx1) = Builder::<Broadcast>::new(256).policy(Policy::Overwrite).create()?;
//! let mut rx2 = tx.subscribe()?;
//! assert_eq!(tx.receiver_count(), 2);
//! tx.send(b"to everyone")?;
//! assert_eq!(rx1.recv()?, b"to everyone");
//! assert_eq!(rx2.recv()?, b"to everyone");
//!
//! // rx1 falls behind: 20 messages of 24 bytes do not fit in 256 bytes.
//! for i in 0..20u8 {
//!     tx.send(&[i; 8])?;
//! }
//! let Err(TryRecvError::Recv(RecvError::Lagged(missed))) = rx1.try_recv() else { panic!() };
//! assert_eq!(rx1.try_recv()?, [missed as u8; 8]); // the oldest still there
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::atomic::Ordering;

use crate::codec::Codec;
use crate::endpoint::{Flavor, Rings};
use crate::shared::status::Claim;
use crate::{typed, ChannelError};
use crate::{Builder, Receiver, Sender};
use shm_core::notify::WaitStrategy;

use layout::Layout;
use reader::Reader;
use ring::seq_at;
use writer::Writer;

mod error;
mod layout;
#[cfg(all(test, loom))]
mod loom;
mod reader;
mod ring;
mod writer;

pub use error::RecvError;
pub use layout::{Policy, MAX_READERS};

/// The broadcast flavor: the marker type that makes [`Sender<Broadcast>`], [`Receiver<Broadcast>`] and
/// [`Builder<Broadcast>`] the ends and the options of a broadcast channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Broadcast;

impl Flavor for Broadcast {
    type RecvError = RecvError;
    const NAME: &'static str = "broadcast";
}

/// Creates a broadcast channel of `capacity` bytes (a power of two, at least 32) in a fresh
/// anonymous shared region, with its sender and one receiver.
pub fn channel(
    capacity: usize,
    policy: Policy,
) -> Result<(Sender<Broadcast>, Receiver<Broadcast>), ChannelError> {
    Builder::<Broadcast>::new(capacity).policy(policy).create()
}

impl Builder<Broadcast> {
    /// What the sender does when the slowest receiver has not read the oldest message yet
    /// (default: [`Policy::BackPressure`]).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.options = policy;
        self
    }
}

impl Sender<Broadcast> {
    /// A new receiver, starting at the current tail (it sees messages sent from now on).
    pub fn subscribe(&self) -> Result<Receiver<Broadcast>, ChannelError> {
        join(self.common.ring.layout(), self.common.strategy)
    }

    /// Receivers attached now (in any process).
    pub fn receiver_count(&self) -> usize {
        self.common.ring.receiver_count()
    }
}

impl<T, C: Codec<T>> typed::Sender<T, Broadcast, C> {
    /// A new typed receiver, starting at the next value sent (see
    /// [`Sender::subscribe`](crate::Sender::subscribe)).
    ///
    /// ```
    /// use shm_ipc::channel::broadcast::{self, Broadcast, Policy};
    /// use shm_ipc::channel::typed;
    /// let (mut tx, mut rx1): typed::Pair<(u32, String), Broadcast> =
    ///     typed::pair(broadcast::channel(4096, Policy::BackPressure)?)?;
    /// let mut rx2 = tx.subscribe()?;
    /// tx.send((1, "one".into()))?;
    /// assert_eq!(rx1.recv()?, (1, "one".to_string()));
    /// assert_eq!(rx2.recv()?, (1, "one".to_string()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn subscribe(&self) -> Result<typed::Receiver<T, Broadcast, C>, ChannelError> {
        Ok(typed::Receiver::try_from(self.inner.subscribe()?)?)
    }
}

impl Receiver<Broadcast> {
    /// Another receiver of the same channel, starting at the current tail.
    pub fn try_clone(&self) -> Result<Receiver<Broadcast>, ChannelError> {
        join(self.common.ring.layout(), self.common.strategy)
    }
}

/// A new receiver of the channel laid out in `layout`, starting at its current tail and
/// waiting as `strategy` says: what `subscribe` and `try_clone` make.
fn join(layout: &Layout, strategy: WaitStrategy) -> Result<Receiver<Broadcast>, ChannelError> {
    let reader = Reader::join(layout.clone())?;
    Ok(Receiver::from_ring(reader, strategy))
}

impl Rings for Broadcast {
    type Writer = Writer;
    type Reader = Reader;

    fn writer(layout: Layout, claim: Claim) -> Result<Writer, ChannelError> {
        layout.status().claim_sender(claim)?;
        if claim == Claim::Create {
            return Ok(Writer::new(layout, 0)?);
        }
        // A sender taking over continues the sequence numbers readers expect: from the
        // frames still in the ring, else from the word its predecessor stored.
        // Acquire: SYNC: frame published (our predecessor's stores).
        // Untrusted: `seq_at` walks at most a capacity of validated frames up to it.
        let tail_untrusted = layout.writer().tail.load(Ordering::Acquire);
        // Relaxed: published by the tail just loaded. Untrusted: a wrong value makes
        // readers report a stamp out of sequence, nothing worse.
        let recorded_untrusted = layout.writer().next_seq.load(Ordering::Relaxed);
        let seq = seq_at(&layout, tail_untrusted).unwrap_or(recorded_untrusted);
        Ok(Writer::new(layout, seq)?)
    }

    fn reader(layout: Layout, claim: Claim) -> Result<Reader, ChannelError> {
        claim.open_slotted(layout, Reader::adopted, Reader::join)
    }

    fn receiver_slot(reader: &Reader) -> usize {
        reader.slot()
    }
}
