//! The sending side of a lane, as the endpoint core drives it: the lane's writer
//! (`super::lane`) and a watch on the receiver's owner, written once for every flavor whose
//! senders write lanes (an SPSC channel's one lane, each MPSC sender slot's). What differs
//! between them — where the writing endpoint's owner is recorded, which event it sleeps
//! on, what its owner's drop does — is the flavor's [`LaneHome`].

use super::lane::{Lane, LaneWriter, Slot};
use super::layout::{ControlBlock, Layout};
use super::ownership::PeerMonitor;
use super::primitive::AtomicU64;
use super::ring::{RingSide, RoomGate, SendRing};
use super::view::EventRef;
use crate::error::Corruption;

/// Where a lane lives in a flavor's region, for the endpoint that writes it.
pub(crate) trait LaneHome: Lane + Sized {
    /// The flavor's control block.
    type Control: ControlBlock;

    /// The channel's region.
    fn layout(&self) -> &Layout<Self::Control>;

    /// The owner slot of the writing endpoint: the status line's sender owner, unless the
    /// lane's sender has a slot of its own (MPSC).
    fn owner_slot(&self) -> &AtomicU64 {
        &self.layout().status().sender_owner
    }

    /// The event the writing endpoint sleeps on while the lane is full.
    fn space_event(&self) -> EventRef;

    /// The writing endpoint's owner's drop, after everything was published: close the
    /// sending side (or leave the set of senders), free the owner slot, wake the receiver.
    fn close_writer(&self);
}

/// The sending side of a lane: its writer, and a watch on the receiver's owner.
pub(crate) struct LaneSender<H: LaneHome> {
    lane: LaneWriter<H>,
    peer: PeerMonitor,
}

impl<H: LaneHome> LaneSender<H> {
    /// Takes over the writing side of the lane at `home` (see [`LaneWriter::new`]).
    pub(crate) fn new(home: H) -> Result<LaneSender<H>, Corruption> {
        Ok(LaneSender {
            peer: PeerMonitor::new(&home.layout().status().receiver_owner),
            lane: LaneWriter::new(home)?,
        })
    }

    /// Where the lane lives.
    pub(crate) fn home(&self) -> &H {
        self.lane.lane()
    }
}

impl<H: LaneHome> RingSide for LaneSender<H> {
    type Control = H::Control;
    const SENDS: bool = true;

    fn layout(&self) -> &Layout<H::Control> {
        self.home().layout()
    }

    fn owner_slot(&self) -> &AtomicU64 {
        self.home().owner_slot()
    }

    #[inline]
    fn capacity(&self) -> u64 {
        self.home().data().capacity()
    }

    fn queued(&self) -> u64 {
        self.lane.queued()
    }

    fn wakes(&self) -> u64 {
        self.lane.wakes()
    }
}

impl<H: LaneHome> SendRing for LaneSender<H> {
    type Slot = Slot;

    fn space_event(&self) -> EventRef {
        self.home().space_event()
    }

    #[inline]
    fn try_reserve(&mut self, len: usize) -> Result<Option<Slot>, Corruption> {
        self.lane.try_reserve(len)
    }

    #[inline]
    fn try_reserve_in_place(&mut self, len: usize) -> Result<Option<Slot>, Corruption> {
        self.lane.try_reserve_in_place(len)
    }

    #[inline]
    fn slot_len(slot: &Slot) -> usize {
        slot.max_len
    }

    #[inline]
    fn payload_ptr(&self, slot: &Slot) -> *mut u8 {
        self.lane.payload_ptr(slot)
    }

    #[inline]
    fn commit(&mut self, slot: Slot, len: usize) {
        self.lane.commit(slot, len);
    }

    fn abandon(&mut self, _slot: Slot) {
        // Nothing was written at the lane's tail: the room is simply reused.
    }

    #[inline]
    fn publish(&mut self) {
        self.lane.publish();
    }

    fn publish_urgently(&mut self) {
        self.lane.publish_urgently();
    }

    fn space_mark(&self, len: usize) -> u64 {
        self.lane.space_mark(len)
    }

    fn room_settled(&mut self, len: usize, gate: &mut RoomGate) -> Result<bool, Corruption> {
        self.lane.room_settled(len, gate)
    }

    #[inline]
    fn unpublished(&self) -> u64 {
        self.lane.unpublished()
    }

    fn receivers_dead(&mut self) -> bool {
        let LaneSender { lane, peer } = self;
        lane.lane().layout().status().receiver_is_dead(peer)
    }

    fn close(&mut self) {
        self.lane.publish();
        self.home().close_writer();
    }
}
