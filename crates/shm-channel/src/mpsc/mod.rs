//! Fan-in: many sender processes, one receiver, variable-size frames.
//!
//! Each sender owns one of the channel's sender slots, and each slot has a lane of its own:
//! a single-writer ring (the one an SPSC channel is, `crate::shared::lane`) that only that
//! sender writes and only the receiver reads. So senders share no cache line with each
//! other, claim nothing in common, and the receiver writes no data line: it stores each
//! lane's head in the lane's own line. The receiver reads the lanes in turn, a burst of up
//! to 32 frames from one while others have frames too. Each sender's messages arrive in the
//! order it sent them; messages of different senders interleave by those turns, not by the
//! moment they were sent.
//!
//! A channel has as many slots as [`Builder::max_senders`](crate::Builder::max_senders)
//! gave it at creation ([`DEFAULT_MAX_SENDERS`], at most [`MAX_SENDERS`]), and a lane of
//! `capacity` bytes for each: the region holds `slots × capacity` bytes of lanes (memory a
//! lane never touches costs nothing in an anonymous or memfd region). A slot records the
//! owning process (for hand-over across `fork` and liveness). [`Sender::try_clone`] takes a
//! free slot, or fails with [`ChannelError::NoFreeSlot`] when all are taken. `Sender` is
//! deliberately not `Clone`: other processes can hold the slots, so a clone can fail, and an
//! infallible `clone` would have to panic.
//!
//! # A sender that dies
//!
//! A sender killed in the middle of a message leaves nothing visible: a frame is published
//! by its header word, stored last. Its lane holds only what it published, which the
//! receiver still delivers; the other lanes flow on, whatever the dead sender was doing. At
//! its slow checks — every [`SLOW_CHECK_INTERVAL`] (10 ms) of a blocking call, or at most
//! once per interval on a `try_*` call — the receiver asks the kernel (pidfd) whether each
//! slot's owner is alive, and frees the slots of dead ones ([`Receiver::dead_senders`]
//! counts them); a new sender that finds no free slot takes a dead sender's over, and
//! continues after what its lane holds. When no sender is left — by the shared count, or,
//! at a slow check, because no slot has a live owner whatever the count says — `recv`
//! returns [`RecvError::Disconnected`] after the last message, or [`RecvError::PeerDied`]
//! if at least one sender was found dead.
//!
//! [`SLOW_CHECK_INTERVAL`]: shm_core::notify::SLOW_CHECK_INTERVAL
//!
//! # Examples
//!
//! ```
//! let (tx, mut rx) = shm_ipc::channel::mpsc::channel(4096)?;
//! let mut tx2 = tx.try_clone()?;
//! let mut tx = tx;
//! tx.send(b"from one")?;
//! tx2.send(b"from two")?;
//! let mut got = vec![rx.recv()?, rx.recv()?];
//! got.sort();
//! assert_eq!(got, [b"from one".to_vec(), b"from two".to_vec()]);
//!
//! // Zero-copy: reserve, write in place, commit.
//! let mut grant = tx.reserve(16)?;
//! grant.write_at(0, b"in place")?;
//! grant.commit(8)?;
//! assert_eq!(rx.recv()?, b"in place");
//!
//! drop((tx, tx2));
//! assert_eq!(rx.recv(), Err(shm_ipc::channel::RecvError::Disconnected));
//!
//! // Typed values: the byte ends of any channel made typed ends.
//! use shm_ipc::channel::{mpsc::Mpsc, typed};
//! let (tx, mut rx): typed::Pair<(u32, String), Mpsc> =
//!     typed::pair(shm_ipc::channel::mpsc::channel(4096)?)?;
//! let mut tx2 = tx.try_clone()?;
//! tx2.send((2, "two".into()))?;
//! assert_eq!(rx.recv()?, (2, "two".to_string()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::codec::Codec;
use crate::endpoint::{Flavor, Rings};
use crate::shared::status::Claim;
use crate::{typed, ChannelError, RecvError};
use crate::{Builder, Receiver, Sender};

use layout::{Lanes, Layout};
use sides::{Reader, Writer};

#[cfg(all(test, not(loom)))]
mod fork_tests;
mod layout;
#[cfg(all(test, loom))]
mod loom;
mod sides;

pub use layout::{DEFAULT_MAX_SENDERS, MAX_SENDERS};

/// The MPSC flavor: the marker type that makes [`Sender<Mpsc>`], [`Receiver<Mpsc>`] and
/// [`Builder<Mpsc>`] the ends and the options of an MPSC channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mpsc;

impl Flavor for Mpsc {
    type RecvError = RecvError;
    const NAME: &'static str = "mpsc";
}

/// Creates an MPSC byte channel with a lane of `capacity` bytes (a power of two, at least
/// 16) for each of [`DEFAULT_MAX_SENDERS`] senders, in a fresh anonymous shared region;
/// both endpoints are owned by the calling process.
pub fn channel(capacity: usize) -> Result<(Sender<Mpsc>, Receiver<Mpsc>), ChannelError> {
    Builder::new(capacity).create()
}

impl Builder<Mpsc> {
    /// How many senders the channel can have at once (clones and attached senders
    /// included): its sender slots, one lane of `capacity` bytes each. Rounded up to a power
    /// of two, at most [`MAX_SENDERS`]; [`DEFAULT_MAX_SENDERS`] unless set.
    ///
    /// ```
    /// use shm_channel::{mpsc, Builder, ChannelError};
    /// let (tx, _rx) = Builder::<mpsc::Mpsc>::new(1024).max_senders(2).create()?;
    /// let _second = tx.try_clone()?;
    /// assert!(matches!(tx.try_clone(), Err(ChannelError::NoFreeSlot { .. })));
    /// # Ok::<(), ChannelError>(())
    /// ```
    pub fn max_senders(mut self, senders: usize) -> Builder<Mpsc> {
        self.options = Lanes {
            count: senders.clamp(1, MAX_SENDERS).next_power_of_two(),
        };
        self
    }
}

impl Sender<Mpsc> {
    /// Another sender of the same channel, in a new sender slot owned by the calling
    /// process. Fails with [`ChannelError::NoFreeSlot`] when all the channel's slots are
    /// taken by live senders.
    pub fn try_clone(&self) -> Result<Sender<Mpsc>, ChannelError> {
        Ok(Sender::<Mpsc>::from_ring(
            self.common.ring.try_clone()?,
            self.common.strategy,
        ))
    }

    /// The sender slot (and lane) this sender owns (`0 .. max_senders`).
    pub fn slot(&self) -> usize {
        self.common.ring.slot()
    }
}

impl<T, C: Codec<T>> typed::Sender<T, Mpsc, C> {
    /// Another typed sender in a new sender slot (see
    /// [`Sender::try_clone`](crate::Sender::try_clone)).
    pub fn try_clone(&self) -> Result<Self, ChannelError> {
        Ok(typed::Sender::try_from(self.inner.try_clone()?)?)
    }
}

impl Receiver<Mpsc> {
    /// Senders found dead (killed without dropping their endpoint) and whose slots were
    /// recycled.
    pub fn dead_senders(&self) -> u64 {
        self.common.ring.dead_senders
    }

    /// Senders currently attached by the shared count (slots in use, live or not yet found
    /// dead). A snapshot, written by the senders: for information.
    pub fn sender_count(&self) -> u32 {
        self.common.ring.sender_count()
    }
}

impl Rings for Mpsc {
    type Writer = Writer;
    type Reader = Reader;

    fn writer(layout: Layout, claim: Claim) -> Result<Writer, ChannelError> {
        claim.open_slotted(layout, Writer::adopted, Writer::claim)
    }

    fn sender_slot(writer: &Writer) -> usize {
        writer.slot()
    }

    fn reader(layout: Layout, claim: Claim) -> Result<Reader, ChannelError> {
        layout.status().claim_receiver(claim)?;
        Reader::new(layout)
    }
}
