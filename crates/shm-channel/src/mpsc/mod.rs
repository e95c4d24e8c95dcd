//! Fan-in: many sender processes, one receiver, variable-size frames in one shared ring.
//!
//! Senders claim room with a compare-and-swap on a shared tail, write their frame in place
//! and commit it by storing its header word last (Release); the receiver reads frames in
//! claim order and never sees an uncommitted one. Each sender's own messages arrive in the
//! order it sent them; messages of different senders interleave in claim order.
//!
//! Each sender owns one of [`MAX_SENDERS`] (64) producer slots in the control block, which
//! records the owning process (for hand-over across `fork` and liveness) and the claim it
//! is working on. [`Sender::try_clone`] takes a new slot, or fails with
//! [`ChannelError::NoFreeSlot`] when all 64 are taken. `Sender` is deliberately not
//! `Clone`: other processes can hold the slots, so a clone can fail, and an infallible
//! `clone` would have to panic.
//!
//! # A sender that dies
//!
//! A sender killed between claim and commit leaves a claimed frame at some point of the
//! ring. When the receiver is blocked behind it, it asks the kernel (pidfd) whether the
//! claimer is alive at each slow check — every [`SLOW_CHECK_INTERVAL`] (10 ms) of a
//! blocking call, or at most once per interval on a `try_*` call. If it is dead, the frame
//! is skipped (never returned, not even in part), counted in
//! [`Receiver::abandoned_frames`], and the other senders carry on. Its slot is recycled
//! once the receiver has passed (read or skipped) everything it claimed: by the receiver at
//! its slow checks ([`Receiver::dead_senders`] counts them), or, while the ring is too busy
//! for the receiver ever to wait, by a new sender ([`Sender::attach`],
//! [`Sender::try_clone`]) that finds no free slot and takes a dead sender's over. When no
//! sender is left — by the shared count, or, at a slow check, because no slot has a live
//! owner whatever the count says — `recv` returns [`RecvError::Disconnected`] after the
//! last message, or [`RecvError::PeerDied`] if at least one sender was found dead.
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
//! assert_eq!(rx.recv()?, b"from one");
//! assert_eq!(rx.recv()?, b"from two");
//!
//! // Zero-copy: claim, write in place, commit.
//! let mut grant = tx.reserve(16)?;
//! grant.write_at(0, b"in place")?;
//! grant.commit(8);
//! assert_eq!(rx.recv()?, b"in place");
//!
//! drop((tx, tx2));
//! assert_eq!(rx.recv(), Err(shm_ipc::channel::RecvError::Disconnected));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::endpoint::sealed::Sealed;
use crate::endpoint::{Flavor, Rings};
use crate::shared::status::Claim;
use crate::{ChannelError, RecvError};

use layout::Layout;
use sides::{Reader, Writer};

mod claim;
mod consume;
#[cfg(all(test, not(loom)))]
mod fork_tests;
mod layout;
#[cfg(all(test, loom))]
mod loom;
mod ring;
mod sides;
pub mod typed;

pub use ring::MAX_SENDERS;

/// The MPSC flavor: a marker type (see [`Sender`], [`Receiver`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mpsc;

/// A sending end of an MPSC channel.
pub type Sender = crate::Sender<Mpsc>;
/// The receiving end of an MPSC channel.
pub type Receiver = crate::Receiver<Mpsc>;
/// Options for creating an MPSC channel.
pub type Builder = crate::Builder<Mpsc>;

/// Creates an MPSC byte channel of `capacity` bytes (a power of two, at least 16) in a
/// fresh anonymous shared region; both endpoints are owned by the calling process.
pub fn channel(capacity: usize) -> Result<(Sender, Receiver), ChannelError> {
    Builder::new(capacity).create()
}

impl crate::Sender<Mpsc> {
    /// Another sender of the same channel, in a new producer slot owned by the calling
    /// process. Fails with [`ChannelError::NoFreeSlot`] when all [`MAX_SENDERS`] slots are
    /// taken by live senders.
    pub fn try_clone(&self) -> Result<Sender, ChannelError> {
        Ok(Sender::from_ring(
            self.common.ring.try_clone()?,
            self.common.strategy,
        ))
    }

    /// The producer slot this sender owns (`0 .. MAX_SENDERS`).
    pub fn slot(&self) -> usize {
        self.common.ring.slot()
    }
}

impl crate::Receiver<Mpsc> {
    /// Releases frames in batches: up to `bytes` (at most half the ring) of consumed frames may wait before the head is
    /// stored; it is stored anyway whenever the ring is found empty or blocked, when a batch
    /// fills, and when the receiver is dropped. `0` (the default) stores it on every
    /// release.
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ipc::channel::mpsc::channel(4096)?;
    /// rx.set_release_batch(1024);
    /// for i in 0..100u8 {
    ///     tx.send(&[i; 8])?;
    ///     assert_eq!(rx.recv()?, [i; 8]);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_release_batch(&mut self, bytes: usize) {
        self.ring().set_release_batch(bytes as u64);
    }

    /// Frames skipped because their sender died between claim and commit.
    pub fn abandoned_frames(&self) -> u64 {
        self.common.ring.abandoned_frames()
    }

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

impl Sealed for Mpsc {}

impl Flavor for Mpsc {
    type RecvError = RecvError;
    const NAME: &'static str = "mpsc";
}

impl Rings for Mpsc {
    const SHARED_SENDERS: bool = true;
    type Writer = Writer;
    type Reader = Reader;

    fn writer(layout: Layout, claim: Claim) -> Result<Writer, ChannelError> {
        claim.open_slotted(layout, Writer::adopted, Writer::new)
    }

    fn sender_slot(writer: &Writer) -> usize {
        writer.slot()
    }

    fn reader(layout: Layout, claim: Claim) -> Result<Reader, ChannelError> {
        layout.status().claim_receiver(claim)?;
        Reader::new(layout)
    }
}
