//! The MPSC ring's two sides as the endpoint core drives them: a [`Writer`] per sender (a
//! producer slot), and the one [`Reader`].

use std::sync::atomic::Ordering;

use shm_core::liveness::{Liveness, PeerWatch, ProcessIdentity};

use super::claim::{Claim, ClaimCursor};
use super::consume::{Frame, ReadCursor};
use super::layout::{claim_free_slot, Layout};
use super::ring::MAX_SENDERS;
use super::Mpsc;
use crate::shared::frame::frame_len;
use crate::shared::ownership::{self, PeerMonitor};
use crate::shared::primitive::AtomicU64;
use crate::shared::ring::{
    check_slot, notify_after_release, queued_between, Gone, Peek, RecvRing, RingSide, SendRing,
};
use crate::{ChannelError, Corruption};

/// One sender's side of the ring: its producer slot and claims.
pub(crate) struct Writer {
    layout: Layout,
    producer: ClaimCursor,
    /// Watches the receiver's owner.
    peer: PeerMonitor,
    /// Bytes committed since the reader was last notified (commits are visible at once;
    /// the wake check is what `publish` batches).
    unnotified: u64,
    wakes: u64,
}

impl Writer {
    /// Takes a free producer slot (or a dead sender's) for the calling process.
    pub(crate) fn new(layout: Layout) -> Result<Writer, ChannelError> {
        // Validate the indices once before use.
        ReadCursor::new(&layout)?;
        let me = ownership::me()?.to_raw();
        let slot = claim_free_slot(&layout, me).ok_or(ChannelError::NoFreeSlot {
            what: "sender",
            max: MAX_SENDERS,
        })?;
        Ok(Writer::in_slot(layout, slot))
    }

    /// The writer of producer slot `slot`, which the calling process owns.
    fn in_slot(layout: Layout, slot: usize) -> Writer {
        Writer {
            producer: ClaimCursor::new(&layout, slot),
            peer: PeerMonitor::new(&layout.status().receiver_owner),
            layout,
            unnotified: 0,
            wakes: 0,
        }
    }

    /// The writer of producer slot `slot`, handed to the calling process by its owner
    /// (see [`Claim::Adopt`](crate::shared::status::Claim::Adopt)).
    pub(crate) fn adopted(layout: Layout, slot: usize) -> Result<Writer, ChannelError> {
        check_slot("sender", slot, MAX_SENDERS)?;
        ReadCursor::new(&layout)?;
        ownership::adopt(&layout.slot(slot).owner)?;
        Ok(Writer::in_slot(layout, slot))
    }

    /// Another writer of the same channel, in a new slot.
    pub(crate) fn try_clone(&self) -> Result<Writer, ChannelError> {
        Writer::new(self.layout.clone())
    }

    /// The producer slot this writer owns.
    pub(crate) fn slot(&self) -> usize {
        self.producer.slot()
    }

    /// Wakes the reader if it sleeps, after commits (Release stores of frame headers, SYNC:
    /// frame committed), by the channel's handshake (SYNC: waiter flag).
    fn notify(&mut self) {
        self.unnotified = 0;
        if notify_after_release(self.layout.handshake(), self.layout.data_wake()) {
            self.wakes += 1;
        }
    }
}

impl RingSide for Writer {
    type Control = Mpsc;

    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn owner_slot(&self) -> &AtomicU64 {
        &self.layout.slot(self.producer.slot()).owner
    }

    fn queued(&self) -> u64 {
        queued_span(&self.layout)
    }

    fn wakes(&self) -> u64 {
        self.wakes
    }
}

impl RingSide for Reader {
    type Control = Mpsc;

    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn owner_slot(&self) -> &AtomicU64 {
        &self.layout.status().receiver_owner
    }

    fn queued(&self) -> u64 {
        queued_span(&self.layout)
    }

    fn wakes(&self) -> u64 {
        self.wakes
    }
}

impl SendRing for Writer {
    type Slot = Claim;

    fn try_reserve(&mut self, len: usize) -> Result<Option<Claim>, Corruption> {
        self.producer.try_claim(&self.layout, len)
    }

    fn try_reserve_run(
        &mut self,
        count: usize,
        len_of: &dyn Fn(usize) -> usize,
        slots: &mut Vec<Claim>,
    ) -> Result<(), Corruption> {
        let Some(run) = self.producer.try_claim_run(&self.layout, count, len_of)? else {
            return Ok(());
        };
        let mut offset = run.offset;
        for i in 0..run.frames {
            let len = len_of(i);
            slots.push(Claim { offset, len });
            offset += frame_len(len as u64);
        }
        Ok(())
    }

    fn slot_len(slot: &Claim) -> usize {
        slot.len
    }

    fn payload_ptr(&self, slot: &Claim) -> *mut u8 {
        self.layout.payload_ptr(slot.offset)
    }

    fn commit(&mut self, slot: Claim, len: usize) {
        self.producer.commit(&self.layout, slot, len, true);
        self.unnotified += (len as u64).max(1);
    }

    fn abandon(&mut self, slot: Claim) {
        // A skip frame: the reader passes it, nothing is delivered, the ring goes on.
        self.producer.commit(&self.layout, slot, 0, false);
        self.notify();
    }

    fn publish(&mut self) {
        if self.unnotified != 0 {
            self.notify();
        }
    }

    fn unpublished(&self) -> u64 {
        self.unnotified
    }

    fn receivers_dead(&mut self) -> bool {
        self.layout.status().receiver_is_dead(&mut self.peer)
    }

    fn close(&mut self) {
        self.publish();
        // SYNC: sender gone. Release (in the RMW below): every frame this sender committed
        // happens before a receiver that sees the count drop.
        ownership::release(self.owner_slot());
        self.layout.status().senders.fetch_sub(1, Ordering::AcqRel);
        self.layout.data_wake().notify();
    }
}

/// The receiving side of the ring.
pub(crate) struct Reader {
    layout: Layout,
    consumer: ReadCursor,
    /// One kernel watch per producer slot.
    watches: Vec<PeerWatch>,
    /// Senders found dead and reaped.
    pub(crate) dead_senders: u64,
    wakes: u64,
}

impl Reader {
    pub(crate) fn new(layout: Layout) -> Result<Reader, ChannelError> {
        Ok(Reader {
            consumer: ReadCursor::new(&layout)?,
            layout,
            watches: (0..MAX_SENDERS).map(|_| PeerWatch::new()).collect(),
            dead_senders: 0,
            wakes: 0,
        })
    }

    /// Frames skipped because their sender died between claim and commit.
    pub(crate) fn abandoned_frames(&self) -> u64 {
        self.consumer.abandoned
    }

    /// Senders attached according to the shared count (untrusted: for information).
    pub(crate) fn sender_count(&self) -> u32 {
        // Relaxed: a snapshot for the caller; nothing is read through it.
        self.layout.status().senders.load(Ordering::Relaxed)
    }

    /// Frees the slots of senders that died, once everything they claimed is passed.
    /// Returns whether any slot still has a live owner.
    fn reap_dead_senders(&mut self) -> bool {
        let Reader {
            layout,
            consumer,
            watches,
            dead_senders,
            ..
        } = self;
        let slots = (0..MAX_SENDERS).map(|index| &layout.slot(index).owner);
        ownership::scan_owners(slots, watches, |index, owner| {
            if consumer.passed_intent(&*layout, index)
                && ownership::free_dead(&layout.slot(index).owner, owner)
            {
                // AcqRel: the count is an RMW chain every sender and reaper updates; the
                // slot freed above (SYNC: owner recorded) comes before it.
                layout.status().senders.fetch_sub(1, Ordering::AcqRel);
                *dead_senders += 1;
            }
        })
    }

    /// After the Release store of `head` (SYNC: space released), if the head moved from
    /// `stored`: the wake check by the channel's handshake (SYNC: waiter flag).
    fn notify_if_stored(&mut self, stored: u64) {
        if self.consumer.published_head() != stored
            && notify_after_release(self.layout.handshake(), self.layout.space_wake())
        {
            self.wakes += 1;
        }
    }

    /// Lets up to `bytes` of released frames wait before the head is stored.
    pub(crate) fn set_release_batch(&mut self, bytes: u64) {
        let stored = self.consumer.published_head();
        self.consumer.set_release_batch(&self.layout, bytes);
        self.notify_if_stored(stored);
    }

    fn gone(&self) -> Gone {
        if self.dead_senders > 0 {
            Gone::PeerDied
        } else {
            Gone::Disconnected
        }
    }
}

impl RecvRing for Reader {
    type Frame = Frame;
    type Fault = Corruption;

    fn try_peek(&mut self, slow: bool) -> Result<Peek<Frame>, Corruption> {
        let Reader {
            layout,
            consumer,
            watches,
            ..
        } = self;
        let mut is_dead = |slot: usize| slot_dead(layout, watches, slot);
        let is_dead = slow.then_some(&mut is_dead as &mut dyn FnMut(usize) -> bool);
        let stored = consumer.published_head();
        let peeked = consumer.try_peek(&*layout, is_dead);
        // A peek that finds the ring empty or blocked stores a batched head: wake the
        // producers waiting for that room.
        self.notify_if_stored(stored);
        let peeked = peeked?;
        if slow && peeked == Peek::Blocked {
            self.reap_dead_senders();
        }
        Ok(peeked)
    }

    fn frame_len(frame: &Frame) -> usize {
        frame.len
    }

    fn payload_ptr(&self, frame: &Frame) -> *const u8 {
        self.layout.payload_ptr(frame.offset)
    }

    fn release(&mut self, frame: Frame) {
        let stored = self.consumer.published_head();
        self.consumer.release(&self.layout, frame);
        self.notify_if_stored(stored);
    }

    fn flush_releases(&mut self) {
        let stored = self.consumer.published_head();
        self.consumer.flush_releases(&self.layout);
        self.notify_if_stored(stored);
    }

    fn senders_gone(&mut self, slow: bool) -> Option<Gone> {
        if slow {
            // Ask the kernel: when no slot has a live owner, no sender can ever commit
            // again, whatever the (peer-written) count says.
            if !self.reap_dead_senders() {
                return Some(self.gone());
            }
        }
        if !self.senders_closed() {
            return None;
        }
        Some(self.gone())
    }

    fn senders_closed(&self) -> bool {
        // SYNC: sender gone. Acquire pairs with the release in `Writer::close`. Untrusted:
        // a count a peer wrote only ends a wait early (0) or lets it go on until a slow
        // check asks the kernel.
        let senders_untrusted = self.layout.status().senders.load(Ordering::Acquire);
        senders_untrusted == 0
    }
}

/// Bytes claimed and not yet released, by the shared indices.
fn queued_span(layout: &Layout) -> u64 {
    // Acquire: SYNC: claim intent / space released (the producers' CAS, the consumer's
    // store); a snapshot, clamped.
    let tail_untrusted = layout.tail().load(Ordering::Acquire);
    let head_untrusted = layout.head().load(Ordering::Acquire);
    queued_between(tail_untrusted, head_untrusted, layout.capacity())
}

/// Whether the process owning producer `slot` is gone (a free slot counts as gone).
fn slot_dead(layout: &Layout, watches: &mut [PeerWatch], slot: usize) -> bool {
    // Acquire: see `ownership::owned_here`.
    let owner_untrusted = layout.slot(slot).owner.load(Ordering::Acquire);
    match ProcessIdentity::from_raw(owner_untrusted) {
        None => true,
        Some(identity) => watches[slot].check(identity) == Liveness::Dead,
    }
}
