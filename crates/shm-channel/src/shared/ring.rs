//! The contract between the endpoint core (`crate::endpoint`) and each flavor's ring sides
//! ([`SendRing`], [`RecvRing`]), and the helpers every ring shares: publishing a store
//! with the wake handshake, validating a peer's index, comparing wrapping positions.
//!
//! A ring side does no waiting and keeps no deadlines; ownership checks on use are the
//! core's. It reserves, commits and publishes; peeks and releases; says whether the other
//! side closed or died; and closes its own side. The core adds everything else once for
//! every flavor.
//!
//! | flavor | sending side | receiving side |
//! |---|---|---|
//! | SPSC | `spsc::ring::Writer` | `spsc::ring::Reader` |
//! | MPSC | `mpsc::sides::Writer` (one per sender) | `mpsc::sides::Reader` |
//! | broadcast | `broadcast::writer::Writer` | `broadcast::reader::Reader` (one per receiver) |

use std::sync::atomic::{fence, Ordering};

use shm_core::notify::Handshake;

use super::layout::{ControlBlock, Layout};
use super::primitive::AtomicU64;
use super::view::{EventRef, View, Wake};
use crate::{ChannelError, Corruption};

/// Makes one store that a peer may be about to sleep on (a lane's frame header or head),
/// then wakes the sleepers of `wake`'s event if there are any and their mark lets it
/// (`reached` says whether the store reached the mark a sleeper set: see
/// [`Event::set_mark`]), as the channel's `handshake` says; whether a wake syscall was
/// made. `store` makes the store with the ordering it is given.
///
/// The store's Release half is what publishes (each caller names its `SYNC:` pair). What
/// the handshake adds is the StoreLoad order between this store and the load of the waiter
/// count (SYNC: waiter flag):
///
/// - [`Handshake::Membarrier`]: a plain Release store and a Relaxed load
///   ([`Event::notify_relaxed_marked`]); the sleeper's `membarrier` orders them for us.
/// - [`Handshake::SeqCst`]: a SeqCst store (an `xchg` on x86), so the load needs no fence
///   ([`Event::notify_after_seqcst_marked`]).
///
/// [`Event::set_mark`]: shm_core::notify::Event::set_mark
/// [`Event::notify_relaxed_marked`]: shm_core::notify::Event::notify_relaxed_marked
/// [`Event::notify_after_seqcst_marked`]: shm_core::notify::Event::notify_after_seqcst_marked
#[inline]
pub(crate) fn publish(
    handshake: Handshake,
    store: impl FnOnce(Ordering),
    wake: Wake<'_>,
    reached: impl FnOnce(u64) -> bool,
) -> bool {
    let woke = match handshake {
        Handshake::Membarrier => {
            // Release: publishes (the caller's SYNC pair); ordered before the waiter-count
            // load by the sleeper's barrier (SYNC: waiter flag (membarrier)).
            store(Ordering::Release);
            wake.event.notify_relaxed_marked(reached)
        }
        Handshake::SeqCst => {
            store(Ordering::SeqCst);
            wake.event.notify_after_seqcst_marked(reached)
        }
    };
    wake.then_ring(woke)
}

/// Wakes the sleepers of `wake`'s event, if any and if their mark lets it (see [`publish`]),
/// after publishing stores that are only Release whatever the handshake (a broadcast tail or
/// cursor): under [`Handshake::SeqCst`] this costs a full fence; under
/// [`Handshake::Membarrier`] nothing but the load ([`Event::notify_relaxed_marked`]).
///
/// The rare wake-ups of closing endpoints use [`Wake::notify`] under both handshakes: a
/// full fence pairs with either kind of sleeper (both fence after announcing themselves).
///
/// [`Event::notify_relaxed_marked`]: shm_core::notify::Event::notify_relaxed_marked
#[inline]
pub(crate) fn notify_after_release(
    handshake: Handshake,
    wake: Wake<'_>,
    reached: impl FnOnce(u64) -> bool,
) -> bool {
    let woke = match handshake {
        Handshake::Membarrier => wake.event.notify_relaxed_marked(reached),
        Handshake::SeqCst => {
            // SYNC: waiter flag: the fence `Event::notify` would make.
            fence(Ordering::SeqCst);
            wake.event.notify_after_seqcst_marked(reached)
        }
    };
    wake.then_ring(woke)
}

/// Polls (one `pause` apart, a few hundred ns in all) of a head that stands still, after
/// which a sender waiting for room takes what there is ([`RoomGate::head_stopped`]).
const STILL_POLLS: u32 = 16;

/// What a sender spinning for room remembers between its polls of the readers' head:
/// whether they keep releasing, or have stopped (`SendRing::room_settled`).
#[derive(Debug, Default)]
pub(crate) struct RoomGate {
    /// The head at the last poll.
    last_head: u64,
    /// Polls since the head last moved.
    still: u32,
}

impl RoomGate {
    /// Records the head one poll found; whether it has now stood still for
    /// [`STILL_POLLS`] polls in a row.
    pub(crate) fn head_stopped(&mut self, head: u64) -> bool {
        if head != self.last_head {
            self.last_head = head;
            self.still = 0;
            return false;
        }
        self.still = self.still.saturating_add(1);
        self.still >= STILL_POLLS
    }
}

/// Why no further message can come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gone {
    /// Every sender was dropped by its owner.
    Disconnected,
    /// A sender's process died without dropping it (and no live sender is left).
    PeerDied,
}

/// Validates an index loaded from shared memory that must be 8-aligned (frames start at
/// multiples of 8); `what` names the failed check.
pub(crate) fn aligned_index(index_untrusted: u64, what: &'static str) -> Result<u64, Corruption> {
    match index_untrusted % 8 {
        0 => Ok(index_untrusted),
        _ => Err(Corruption {
            what,
            value: index_untrusted,
        }),
    }
}

/// What both sides of every ring have: the flavor's view of the region, and a count of
/// the wake syscalls the side made.
pub(crate) trait RingSide: Send + Sized {
    /// The flavor's control block.
    type Control: ControlBlock;

    /// The channel's region, as the flavor lays it out.
    fn layout(&self) -> &Layout<Self::Control>;

    /// The channel's region.
    fn view(&self) -> &View {
        self.layout().view()
    }

    /// Whether this is the ring's sending side (else its receiving side).
    const SENDS: bool;

    /// The owner slot of this side's endpoint: the status line's word for its side, unless
    /// the side has slots of its own (MPSC senders and broadcast receivers have one each).
    fn owner_slot(&self) -> &AtomicU64 {
        let status = self.layout().status();
        if Self::SENDS {
            &status.sender_owner
        } else {
            &status.receiver_owner
        }
    }

    /// Bytes of the ring this side writes or reads: the data area (MPSC: one sender's
    /// lane).
    #[inline]
    fn capacity(&self) -> u64 {
        self.view().capacity()
    }

    /// Bytes of frames in the ring as this side sees them now: published and not yet
    /// released (for a receiver, not yet read by it). Peer-written indices are only
    /// clamped to the capacity: a snapshot for information, never used to index.
    fn queued(&self) -> u64;

    /// Ring bytes the smallest frame (an empty message) takes.
    const MIN_FRAME: u64 = super::frame::FRAME_HEADER_LEN as u64;

    /// Wake syscalls made so far (for benchmarks).
    fn wakes(&self) -> u64;
}

/// The sending side of a ring, as the endpoint core drives it.
pub(crate) trait SendRing: RingSide {
    /// Room reserved for one frame, not yet committed.
    type Slot: Copy + Send;

    /// Bytes of a frame header in this ring.
    const FRAME_HEADER: u64 = super::frame::FRAME_HEADER_LEN as u64;

    /// The largest payload one frame can carry: the ring less one header.
    #[inline]
    fn max_payload(&self) -> usize {
        super::frame::max_payload(self.capacity(), Self::FRAME_HEADER)
    }

    /// The event this side's sender sleeps on while the ring is full (MPSC: its slot's).
    fn space_event(&self) -> EventRef {
        self.layout().space_event()
    }

    /// Reserves a contiguous frame for `len <= max_payload()` bytes, or `None` when the
    /// ring has no room now.
    fn try_reserve(&mut self, len: usize) -> Result<Option<Self::Slot>, Corruption>;

    /// Reserves a frame for `len <= max_payload()` bytes only where it can go now with
    /// nothing else written (no padding, no claim to give back): a speculative reservation,
    /// such as an encoder's guess, whose abandoning leaves the ring as it was. `None` when
    /// that is not possible now, and always for rings that cannot promise it.
    fn try_reserve_in_place(&mut self, _len: usize) -> Result<Option<Self::Slot>, Corruption> {
        Ok(None)
    }

    /// Payload bytes reserved in `slot`.
    fn slot_len(slot: &Self::Slot) -> usize;

    /// Where the payload of `slot` goes: valid for `slot_len` bytes until it is committed
    /// or abandoned.
    fn payload_ptr(&self, slot: &Self::Slot) -> *mut u8;

    /// Completes `slot` with `len <= slot_len` payload bytes (already written). It becomes
    /// visible at the next `publish` (or at once, where the commit is the publication).
    fn commit(&mut self, slot: Self::Slot, len: usize);

    /// Gives `slot` up uncommitted: nothing is delivered, the ring is not held up.
    fn abandon(&mut self, slot: Self::Slot);

    /// Makes every committed frame visible and wakes a sleeping reader.
    fn publish(&mut self);

    /// Publishes what is committed and wakes a sleeping reader whatever mark it set: the
    /// sender flushes, or is about to wait for room itself.
    fn publish_urgently(&mut self) {
        self.publish();
    }

    /// The mark a sender waiting for room to send `len` bytes sets on its event in batched
    /// waits (see `WaitStrategy::Batched`): what the ring's readers must reach before a
    /// wake-up is worth it; 0 (the default) for rings whose readers wake it on every
    /// release.
    fn space_mark(&self, _len: usize) -> u64 {
        0
    }

    /// Committed bytes not yet published.
    fn unpublished(&self) -> u64;

    /// Whether a sender spinning for room to send `len` bytes tries to reserve now, `gate`
    /// carrying what its wait has seen so far: rings whose writer would otherwise chase its
    /// reader frame by frame wait for more room while the reader keeps releasing (see
    /// `lane::LaneWriter::room_settled`). Always, by default.
    fn room_settled(&mut self, _len: usize, _gate: &mut RoomGate) -> Result<bool, Corruption> {
        Ok(true)
    }

    /// Whether the receiving side was closed by its owner (a cheap shared load).
    fn receivers_closed(&self) -> bool {
        self.layout().status().receiver_is_closed()
    }

    /// The slow check of a sender that found the ring full: asks the kernel about the
    /// receiving side's owners (broadcast: drops dead readers from the back-pressure, so a
    /// retry may find room). `true` when no live receiver can ever make room again.
    fn receivers_dead(&mut self) -> bool;

    /// The owner's drop: publish what is pending, mark this side closed (or leave the set
    /// of senders), release the owner slot and wake the reader.
    fn close(&mut self) {
        self.publish();
        self.layout()
            .status()
            .close_sender(self.layout().data_wake());
    }
}

/// The receiving side of a ring, as the endpoint core drives it.
pub(crate) trait RecvRing: RingSide {
    /// A complete frame the reader may read, then release.
    type Frame: Copy;
    /// What the ring can find wrong: a [`Corruption`], or (broadcast) a lag. Kept by a
    /// receiver that a select found ready with it, so it goes where the receiver goes.
    type Fault: Copy + Send + Sync;

    /// The next frame, if one is published. On a `slow` check the ring may also ask the
    /// kernel about its producers (MPSC: frees the slots of dead ones).
    fn try_peek(&mut self, slow: bool) -> Result<Option<Self::Frame>, Self::Fault>;

    /// The ring was just found empty by a receive that spins before it sleeps: lets the
    /// writer get a batch ahead before the next look, for a ring whose reader would
    /// otherwise read each frame the moment it is published (lanes: `LaneReader::settle`).
    /// The default does nothing.
    fn settle(&mut self) {}

    /// Payload bytes of `frame`.
    fn frame_len(frame: &Self::Frame) -> usize;

    /// Where the payload of `frame` is: valid for `frame_len` bytes until released.
    fn payload_ptr(&self, frame: &Self::Frame) -> *const u8;

    /// Frees the frame returned by the last `try_peek`.
    fn release(&mut self, frame: Self::Frame);

    /// Stores a position held back by batched releases (see `shared::release`).
    fn flush_releases(&mut self);

    /// Lets up to `bytes` of released frames wait before the reader's position is stored
    /// (see `shared::release`; at most half the ring, or of a lane).
    fn set_release_batch(&mut self, bytes: u64);

    /// The mark a receiver waiting for frames sets on its event in batched waits (see
    /// `WaitStrategy::Batched`): for the senders' notifications, a quarter of the ring.
    fn data_mark(&self) -> u64 {
        (self.capacity() / 4).max(1)
    }

    /// With the ring found empty: whether no message can come any more. A cheap check
    /// (closed flags, counts) always; on a `slow` check also the kernel's word on whether
    /// any sender's owner is alive, so that no peer-written count or flag keeps a wait
    /// going when no live process could end it.
    fn senders_gone(&mut self, slow: bool) -> Option<Gone>;

    /// Whether every sender was dropped by its owner: the cheap shared check alone (a
    /// closed flag, or the MPSC sender count).
    fn senders_closed(&self) -> bool {
        self.layout().status().sender_is_closed()
    }

    /// The owner's drop: flush releases, mark this side closed (or leave), release the
    /// owner slot and wake the sender.
    fn close(&mut self) {
        self.flush_releases();
        self.layout()
            .status()
            .close_receiver(self.layout().space_wake());
    }

    /// Stops taking messages while the endpoint lives on (`Receiver::close`): senders are
    /// told the receiver is closed; what the ring holds can still be read.
    fn close_receiving(&mut self) {
        self.flush_releases();
        self.layout()
            .status()
            .mark_receiver_closed(self.layout().space_wake());
    }
}

/// Bytes between a position `ahead_untrusted` (loaded from shared memory) and `behind`,
/// clamped to `capacity`: for [`RingSide::queued`].
pub(crate) fn queued_between(ahead_untrusted: u64, behind: u64, capacity: u64) -> u64 {
    ahead_untrusted.wrapping_sub(behind).min(capacity)
}

/// `Ok` if `slot` is one of the `max` owner slots of kind `what`; a handed-over endpoint
/// naming another is [`ChannelError::NoSuchSlot`].
pub(crate) fn check_slot(what: &'static str, slot: usize, max: usize) -> Result<(), ChannelError> {
    if slot < max {
        Ok(())
    } else {
        Err(ChannelError::NoSuchSlot { what, slot, max })
    }
}

/// Whether position `a` comes before position `b` (serial-number comparison of wrapping
/// `u64` positions, meaningful for positions less than 2^63 apart).
pub(crate) fn before(a: u64, b: u64) -> bool {
    (a.wrapping_sub(b) as i64) < 0
}

#[cfg(test)]
mod tests {
    use super::{before, RoomGate, STILL_POLLS};

    #[test]
    fn a_gate_says_stopped_only_after_enough_polls_of_one_head() {
        let mut gate = RoomGate::default();
        assert!(!gate.head_stopped(64), "a head that moved");
        for _ in 1..STILL_POLLS {
            assert!(!gate.head_stopped(64));
        }
        assert!(gate.head_stopped(64));
        assert!(gate.head_stopped(64), "stays stopped");
        assert!(!gate.head_stopped(128), "moving again resets the count");
    }

    #[test]
    fn positions_compare_across_the_wrap() {
        assert!(before(1, 2));
        assert!(!before(2, 2));
        assert!(before(u64::MAX - 7, 8));
        assert!(!before(8, u64::MAX - 7));
    }
}
