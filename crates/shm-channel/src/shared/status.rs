//! The other side of a ring, as the common status line tells it: closed by its owner, or
//! owned by a process the kernel says is dead; and how a side is claimed for the calling
//! process. One implementation for every flavor.

use std::sync::atomic::Ordering;

use shm_core::liveness::PeerWatch;

use super::lines::StatusLine;
use super::ownership::{self, PeerMonitor};
use super::primitive::AtomicU64;
use super::ring::{check_slot, Gone};
use super::view::Wake;
use crate::ChannelError;

/// How a ring side is set up for the calling process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// In a channel this process is creating: the owner slot is simply written.
    Create,
    /// In an existing channel: the slot is claimed, refused while a live process owns it.
    Attach,
    /// In an existing channel, an endpoint handed to this process (its memfd passed across
    /// `exec` or a socket): owner slot `slot` of its side (MPSC senders have several, the
    /// other sides one, `0`) is taken over from the process that handed it — recorded there
    /// already by its `hand_over`, or still naming this process's parent, which hands it
    /// over as soon as it knows this process (see `Sender::adopt`).
    Adopt {
        /// The owner slot (`0` for a side with one).
        slot: usize,
    },
}

impl Claim {
    /// Opens one side of a ring of a flavor whose side has several owner slots:
    /// `adopted(shared, slot)` for an endpoint handed over, `fresh(shared)` (which finds a
    /// free slot) otherwise.
    pub(crate) fn open_slotted<S, E>(
        self,
        shared: S,
        adopted: impl FnOnce(S, usize) -> Result<E, ChannelError>,
        fresh: impl FnOnce(S) -> Result<E, ChannelError>,
    ) -> Result<E, ChannelError> {
        match self {
            Claim::Adopt { slot } => adopted(shared, slot),
            Claim::Create | Claim::Attach => fresh(shared),
        }
    }
}

impl StatusLine {
    /// Whether the receiver was dropped by its owner (SPSC, MPSC).
    #[inline]
    pub(crate) fn receiver_is_closed(&self) -> bool {
        // SYNC: receiver closed. Acquire pairs with the Release store in `close_receiver`:
        // nothing the receiver did is left for us to wait on.
        self.receiver_closed.load(Ordering::Acquire) != 0
    }

    /// Whether the receiver's owner is gone (SPSC, MPSC): dead by the kernel's word, or its
    /// slot emptied without a close (see [`PeerMonitor`]). A slot never claimed is not
    /// gone: a receiver may still attach.
    pub(crate) fn receiver_is_dead(&self, peer: &mut PeerMonitor) -> bool {
        peer.gone(&self.receiver_owner, || self.receiver_is_closed())
    }

    /// Whether the sender is gone (SPSC, broadcast): closed by its owner always; on a
    /// `slow` check also dead by the kernel's word.
    pub(crate) fn sender_gone(&self, slow: bool, peer: &mut PeerMonitor) -> Option<Gone> {
        // SYNC: sender closed. Acquire pairs with the Release store in `close_sender`: the
        // frames published before the close are visible to the last look at the ring.
        if self.sender_closed.load(Ordering::Acquire) != 0 {
            Some(Gone::Disconnected)
        } else if slow && peer.gone(&self.sender_owner, || self.sender_is_closed()) {
            Some(Gone::PeerDied)
        } else {
            None
        }
    }

    /// Records the calling process as the sender's owner (see [`claim_owner`]); attaching
    /// reopens a channel its previous sender closed.
    pub(crate) fn claim_sender(&self, claim: Claim) -> Result<(), ChannelError> {
        claim_owner(&self.sender_owner, claim)?;
        if claim == Claim::Attach {
            // Relaxed: reopening; the receivers re-read the flag whenever they find the
            // ring empty, and the owner just recorded is what they check for liveness.
            self.sender_closed.store(0, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Records the calling process as the receiver's owner; attaching reopens a channel its
    /// previous receiver closed.
    pub(crate) fn claim_receiver(&self, claim: Claim) -> Result<(), ChannelError> {
        claim_owner(&self.receiver_owner, claim)?;
        if claim == Claim::Attach {
            // Relaxed: reopening; senders re-read the flag on every send.
            self.receiver_closed.store(0, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Whether the sender was dropped by its owner (SPSC, broadcast).
    pub(crate) fn sender_is_closed(&self) -> bool {
        // SYNC: sender closed (see `close_sender`).
        self.sender_closed.load(Ordering::Acquire) != 0
    }

    /// The sender owner's drop (SPSC, broadcast), after it published everything: mark the
    /// sender closed, free its owner slot, wake the receivers.
    pub(crate) fn close_sender(&self, data: Wake<'_>) {
        // SYNC: sender closed. Release: a receiver that sees the flag sees every frame
        // published before it (it re-checks the ring after seeing the flag).
        self.sender_closed.store(1, Ordering::Release);
        ownership::release(&self.sender_owner);
        data.notify();
    }

    /// The receiver owner's drop (SPSC, MPSC), after it stored its head: mark the receiver
    /// closed, free its owner slot, wake the senders.
    pub(crate) fn close_receiver(&self, space: Wake<'_>) {
        self.mark_receiver_closed(space);
        ownership::release(&self.receiver_owner);
    }

    /// Marks the receiver closed (SPSC, MPSC) and wakes the senders, which fail from now
    /// on; the receiver keeps its owner slot.
    pub(crate) fn mark_receiver_closed(&self, space: Wake<'_>) {
        // SYNC: receiver closed. Release: see `receiver_is_closed`.
        self.receiver_closed.store(1, Ordering::Release);
        space.notify();
    }
}

/// Records the calling process as the owner in `slot`: written outright in a channel being
/// created, claimed (refused while a live process owns it) in an existing one.
pub(crate) fn claim_owner(slot: &AtomicU64, claim: Claim) -> Result<(), ChannelError> {
    match claim {
        Claim::Create => {
            let me = ownership::me()?.to_raw();
            // Relaxed: published to other processes by the fork or attach that follows,
            // which synchronises (fork copies memory; attach Acquire-loads the header's
            // magic, stored with Release after this).
            slot.store(me, Ordering::Relaxed);
        }
        Claim::Attach => ownership::claim(slot, &mut PeerWatch::new())?,
        Claim::Adopt { slot: index } => {
            check_slot("owner", index, 1)?;
            ownership::adopt(slot)?;
        }
    }
    Ok(())
}
