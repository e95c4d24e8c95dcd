//! The MPSC channel's ring sides as the endpoint core drives them: a [`Writer`] per sender
//! (its slot's lane), and the one [`Reader`], which reads every lane in turn.

use std::sync::atomic::Ordering;

use shm_core::liveness::{PeerWatch, ProcessIdentity};

use super::layout::{Layout, MpscLane};
use super::Mpsc;
use crate::shared::lane::{self, LaneReader};
use crate::shared::lane_sender::{LaneHome, LaneSender};
use crate::shared::lines::StatusLine;
use crate::shared::ownership;
use crate::shared::primitive::AtomicU64;
use crate::shared::ring::{check_slot, Gone, RecvRing, RingSide};
use crate::shared::view::{EventRef, Wake};
use crate::{ChannelError, Corruption};

/// Frames the reader takes from one lane in a row while others have frames too: lanes
/// take turns in bursts, so a busy sender cannot shut the others out, and the reader stays
/// on one lane's lines long enough to stream.
const BURST: u32 = 32;

/// One sender's side: the lane of the slot it owns (the lane sender every lane-based flavor
/// shares, `crate::shared::lane_sender`).
pub(crate) type Writer = LaneSender<MpscLane>;

impl LaneHome for MpscLane {
    type Control = Mpsc;

    fn layout(&self) -> &Layout {
        MpscLane::layout(self)
    }

    fn owner_slot(&self) -> &AtomicU64 {
        &self.layout().slot(self.index()).owner
    }

    fn space_event(&self) -> EventRef {
        self.layout().slot_event(self.index())
    }

    fn close_writer(&self) {
        let layout = self.layout();
        // SYNC: sender gone. Release (in the RMW below): every frame this sender published
        // happens before a receiver that sees the count drop.
        ownership::release(&layout.slot(self.index()).owner);
        layout.status().senders.fetch_sub(1, Ordering::AcqRel);
        layout.data_wake().notify();
    }
}

impl LaneSender<MpscLane> {
    /// Takes a free sender slot (or a dead sender's) for the calling process.
    pub(crate) fn claim(layout: Layout) -> Result<Writer, ChannelError> {
        let me = ownership::me()?.to_raw();
        let slot = claim_slot(&layout, me).ok_or(ChannelError::NoFreeSlot {
            what: "sender",
            max: layout.lanes(),
        })?;
        Ok(Writer::new(MpscLane::new(layout, slot))?)
    }

    /// The writer of slot `slot`, handed to the calling process by its owner (see
    /// [`Claim::Adopt`](crate::shared::status::Claim::Adopt)): continues after the last
    /// frame its lane holds.
    pub(crate) fn adopted(layout: Layout, slot: usize) -> Result<Writer, ChannelError> {
        check_slot("sender", slot, layout.lanes())?;
        ownership::adopt(&layout.slot(slot).owner)?;
        Ok(Writer::new(MpscLane::new(layout, slot))?)
    }

    /// Another writer of the same channel, in a new slot.
    pub(crate) fn try_clone(&self) -> Result<Writer, ChannelError> {
        Writer::claim(self.home().layout().clone())
    }

    /// The sender slot (and lane) this writer owns.
    pub(crate) fn slot(&self) -> usize {
        self.home().index()
    }
}

/// Claims a free slot for `owner` (counting a sender), or with none free, the slot of a
/// sender whose process died (taking its place in the count); marks its lane used.
fn claim_slot(layout: &Layout, owner: u64) -> Option<usize> {
    let lanes = layout.lanes();
    let free = (0..lanes).find(|&i| {
        layout
            .slot(i)
            .owner
            // SYNC: owner recorded (see `ownership::swap_owner`).
            .compare_exchange(0, owner, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
            && {
                // SeqCst: the count is an RMW chain every sender and reaper updates.
                layout.status().senders.fetch_add(1, Ordering::SeqCst);
                true
            }
    });
    let slot = free.or_else(|| (0..lanes).find(|&i| take_over_dead_slot(layout, i, owner)))?;
    // SYNC: lane used. Release: the bit is set before any frame of ours is published, so a
    // reader that finds the bit reads the lane; it reads the frames themselves by their
    // headers (SYNC: frame committed).
    layout
        .lanes_line()
        .used
        .fetch_or(1 << slot, Ordering::Release);
    Some(slot)
}

/// Takes slot `index` over for `owner` if the process owning it is dead (asked of the
/// kernel). What its lane holds stays there, read before our frames; what the dead sender
/// had not published is never seen. The slot goes on counting as one sender: the dead
/// one's place in `senders` becomes ours.
fn take_over_dead_slot(layout: &Layout, index: usize, owner: u64) -> bool {
    let slot = &layout.slot(index).owner;
    // Acquire: SYNC: owner recorded (see `ownership::swap_owner`).
    let dead_untrusted = slot.load(Ordering::Acquire);
    let Some(identity) = ProcessIdentity::from_raw(dead_untrusted) else {
        return false;
    };
    if PeerWatch::new().check(identity) != shm_core::liveness::Liveness::Dead {
        return false;
    }
    slot
        // SYNC: owner recorded (see `ownership::swap_owner`). The receiver reaping the
        // same slot races on this CAS: one of us wins, the sender count stays right.
        .compare_exchange(dead_untrusted, owner, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
}

/// A frame of one lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame {
    lane: usize,
    frame: lane::Frame,
}

/// The receiving side: a reader per lane, taking turns.
pub(crate) struct Reader {
    layout: Layout,
    lanes: Vec<LaneReader<MpscLane>>,
    /// The lanes ever used, as last loaded (bit `i`: lane `i`).
    used: u64,
    /// The lane read last, and how many frames in a row it gave.
    current: usize,
    burst: u32,
    /// One kernel watch per sender slot.
    watches: Vec<PeerWatch>,
    /// Senders found dead and reaped.
    pub(crate) dead_senders: u64,
}

impl Reader {
    pub(crate) fn new(layout: Layout) -> Result<Reader, ChannelError> {
        let count = layout.lanes();
        let lanes = (0..count)
            .map(|i| LaneReader::new(MpscLane::new(layout.clone(), i)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Reader {
            lanes,
            used: 0,
            current: 0,
            burst: 0,
            watches: (0..count).map(|_| PeerWatch::new()).collect(),
            dead_senders: 0,
            layout,
        })
    }

    /// Senders attached according to the shared count (untrusted: for information).
    pub(crate) fn sender_count(&self) -> u32 {
        // Relaxed: a snapshot for the caller; nothing is read through it.
        self.layout.status().senders.load(Ordering::Relaxed)
    }

    /// The next frame of the lanes in `used`, starting at `start`, taking turns.
    fn scan(&mut self, start: usize) -> Result<Option<Frame>, Corruption> {
        // A power of two: the lane count is one.
        let last = self.lanes.len() - 1;
        for step in 0..=last {
            let index = (start + step) & last;
            if self.used & (1 << index) == 0 {
                continue;
            }
            if let Some(frame) = self.lanes[index].try_peek()? {
                self.current = index;
                self.burst = 1;
                return Ok(Some(Frame { lane: index, frame }));
            }
        }
        Ok(None)
    }

    /// The other lanes' turn (the current one's last): the next frame of any lane.
    #[inline(never)]
    fn next_lane(&mut self, slow: bool) -> Result<Option<Frame>, Corruption> {
        let start = self.current + 1;
        if let Some(frame) = self.scan(start)? {
            return Ok(Some(frame));
        }
        // Nothing in the lanes we know: a sender may have taken a new slot since.
        if self.reload_used() {
            if let Some(frame) = self.scan(start)? {
                return Ok(Some(frame));
            }
        }
        if slow {
            self.reap_dead_senders();
        }
        Ok(None)
    }

    /// Loads the lanes ever used; whether a lane was added since the last load.
    fn reload_used(&mut self) -> bool {
        let all = match self.lanes.len() {
            64 => u64::MAX,
            count => (1 << count) - 1,
        };
        // SYNC: lane used (see `claim_slot`). Untrusted: bits beyond the lanes are dropped;
        // a set bit only makes us look at a lane, which validates what it finds.
        let used = self.layout.lanes_line().used.load(Ordering::Acquire) & all;
        let added = used & !self.used != 0;
        self.used |= used;
        added
    }

    /// Frees the slots of senders that died. What their lanes hold is still read (their
    /// lanes stay in `used`). Returns whether any slot still has a live owner.
    fn reap_dead_senders(&mut self) -> bool {
        let Reader {
            layout,
            watches,
            dead_senders,
            ..
        } = self;
        let slots = (0..layout.lanes()).map(|index| &layout.slot(index).owner);
        ownership::scan_owners(slots, watches, |index, owner| {
            if ownership::free_dead(&layout.slot(index).owner, owner) {
                // AcqRel: the count is an RMW chain every sender and reaper updates; the
                // slot freed above (SYNC: owner recorded) comes before it.
                layout.status().senders.fetch_sub(1, Ordering::AcqRel);
                *dead_senders += 1;
            }
        })
    }

    fn gone(&self) -> Gone {
        if self.dead_senders > 0 {
            Gone::PeerDied
        } else {
            Gone::Disconnected
        }
    }

    /// What both of the receiver's closes do: flush releases, `mark` the receiver closed in
    /// the status line (waking what waits on the space event), then wake the senders
    /// sleeping for room in any lane.
    fn close_as(&mut self, mark: fn(&StatusLine, Wake<'_>)) {
        self.flush_releases();
        mark(self.layout.status(), self.layout.space_wake());
        for index in 0..self.layout.lanes() {
            self.layout.slot_wake(index).notify();
        }
    }
}

impl RingSide for Reader {
    type Control = Mpsc;
    const SENDS: bool = false;

    fn layout(&self) -> &Layout {
        &self.layout
    }

    #[inline]
    fn capacity(&self) -> u64 {
        self.layout.lane_capacity()
    }

    fn queued(&self) -> u64 {
        self.lanes.iter().map(LaneReader::queued).sum()
    }

    fn wakes(&self) -> u64 {
        self.lanes.iter().map(LaneReader::wakes).sum()
    }
}

impl RecvRing for Reader {
    type Frame = Frame;
    type Fault = Corruption;

    #[inline(always)]
    fn try_peek(&mut self, slow: bool) -> Result<Option<Frame>, Corruption> {
        // The lane read last, until it has given a burst in a row.
        let current = self.current;
        if self.burst < BURST {
            if let Some(frame) = self.lanes[current].try_peek()? {
                self.burst += 1;
                return Ok(Some(Frame {
                    lane: current,
                    frame,
                }));
            }
        }
        self.next_lane(slow)
    }

    /// Settles on the lane read last: the sender most likely to be streaming.
    fn settle(&mut self) {
        self.lanes[self.current].settle();
    }

    #[inline]
    fn frame_len(frame: &Frame) -> usize {
        frame.frame.len
    }

    #[inline]
    fn payload_ptr(&self, frame: &Frame) -> *const u8 {
        self.lanes[frame.lane].payload_ptr(&frame.frame)
    }

    #[inline]
    fn release(&mut self, frame: Frame) {
        self.lanes[frame.lane].release(frame.frame);
    }

    fn flush_releases(&mut self) {
        for lane in &mut self.lanes {
            lane.flush_releases();
        }
    }

    /// Per lane: up to `bytes` of each lane's released frames wait.
    fn set_release_batch(&mut self, bytes: u64) {
        for lane in &mut self.lanes {
            lane.set_release_batch(bytes);
        }
    }

    fn senders_gone(&mut self, slow: bool) -> Option<Gone> {
        if slow {
            // Ask the kernel: when no slot has a live owner, no sender can ever publish
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

    fn close(&mut self) {
        self.close_as(StatusLine::close_receiver);
    }

    fn close_receiving(&mut self) {
        self.close_as(StatusLine::mark_receiver_closed);
    }
}
