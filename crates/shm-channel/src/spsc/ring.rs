//! The SPSC channel's two ring sides: its one lane (`crate::shared::lane`, the algorithm)
//! written by the [`Writer`] (the lane sender every lane-based flavor shares,
//! `crate::shared::lane_sender`) and read by the [`Reader`], each watching the other
//! side's owner for the endpoint core.

use shm_core::notify::Handshake;

use super::layout::Layout;
use super::Spsc;
use crate::error::Corruption;
use crate::shared::lane::{Frame, Lane, LaneReader};
use crate::shared::lane_sender::{LaneHome, LaneSender};
use crate::shared::ownership::PeerMonitor;
use crate::shared::primitive::{AtomicU32, AtomicU64, DataArea};
use crate::shared::ring::{Gone, RecvRing, RingSide};
use crate::shared::view::{EventRef, Wake};

impl Lane for Layout {
    #[inline]
    fn tail(&self) -> &AtomicU64 {
        &self.producer().tail
    }

    #[inline]
    fn head(&self) -> &AtomicU64 {
        &self.consumer().head
    }

    #[inline]
    fn data(&self) -> &DataArea {
        crate::shared::layout::Layout::data(self)
    }

    #[inline]
    fn handshake(&self) -> Handshake {
        crate::shared::layout::Layout::handshake(self)
    }

    #[inline]
    fn data_wake(&self) -> Wake<'_> {
        crate::shared::layout::Layout::data_wake(self)
    }

    #[inline]
    fn space_wake(&self) -> Wake<'_> {
        crate::shared::layout::Layout::space_wake(self)
    }

    #[inline]
    fn line_hint(&self) -> &AtomicU32 {
        &self.status().line_hint
    }
}

impl LaneHome for Layout {
    type Control = Spsc;

    fn layout(&self) -> &Layout {
        self
    }

    fn space_event(&self) -> EventRef {
        crate::shared::layout::Layout::space_event(self)
    }

    fn close_writer(&self) {
        self.status().close_sender(Lane::data_wake(self));
    }
}

/// The sending side: the channel's lane, written by its one sender.
pub(crate) type Writer = LaneSender<Layout>;

/// The receiving side: the lane's reader, and a watch on the sender's owner.
pub(crate) struct Reader {
    lane: LaneReader<Layout>,
    peer: PeerMonitor,
}

impl Reader {
    /// Takes over the reading side (see [`LaneReader::new`]).
    pub(crate) fn new(layout: Layout) -> Result<Reader, Corruption> {
        Ok(Reader {
            peer: PeerMonitor::new(&layout.status().sender_owner),
            lane: LaneReader::new(layout)?,
        })
    }
}

impl RingSide for Reader {
    type Control = Spsc;
    const SENDS: bool = false;

    fn layout(&self) -> &Layout {
        self.lane.lane()
    }

    fn queued(&self) -> u64 {
        self.lane.queued()
    }

    fn wakes(&self) -> u64 {
        self.lane.wakes()
    }
}

impl RecvRing for Reader {
    type Frame = Frame;
    type Fault = Corruption;

    #[inline(always)]
    fn try_peek(&mut self, _slow: bool) -> Result<Option<Frame>, Corruption> {
        self.lane.try_peek()
    }

    fn settle(&mut self) {
        self.lane.settle();
    }

    #[inline]
    fn frame_len(frame: &Frame) -> usize {
        frame.len
    }

    #[inline]
    fn payload_ptr(&self, frame: &Frame) -> *const u8 {
        self.lane.payload_ptr(frame)
    }

    #[inline]
    fn release(&mut self, frame: Frame) {
        self.lane.release(frame);
    }

    fn flush_releases(&mut self) {
        self.lane.flush_releases();
    }

    fn set_release_batch(&mut self, bytes: u64) {
        self.lane.set_release_batch(bytes);
    }

    fn senders_gone(&mut self, slow: bool) -> Option<Gone> {
        let Reader { lane, peer } = self;
        lane.lane().status().sender_gone(slow, peer)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::Arc;

    use shm_core::notify::Handshake;
    use shm_core::HeapRegion;

    use super::{Reader, Writer};
    use crate::shared::creation::Creation;
    use crate::shared::ring::{RecvRing, RingSide, RoomGate, SendRing};
    use crate::spsc::layout::{region_len_for, Layout};

    const CAPACITY: usize = 4096;
    /// A payload whose frame (with its 8-byte header) is 64 bytes.
    const PAYLOAD: usize = 56;

    fn ring() -> (Writer, Reader) {
        let heap = Arc::new(HeapRegion::new(region_len_for(CAPACITY).unwrap()).unwrap());
        let creation = Creation {
            doorbells: None,
            capacity: CAPACITY,
            options: (),
            handshake: Handshake::SeqCst,
        };
        let layout = Layout::create(heap, &creation).unwrap();
        (
            Writer::new(layout.clone()).unwrap(),
            Reader::new(layout).unwrap(),
        )
    }

    fn fill(writer: &mut Writer) -> usize {
        let mut sent = 0;
        while let Some(slot) = writer.try_reserve(PAYLOAD).unwrap() {
            writer.commit(slot, PAYLOAD);
            sent += 1;
        }
        writer.publish();
        sent
    }

    fn release(reader: &mut Reader, frames: usize) {
        for _ in 0..frames {
            let frame = reader.try_peek(false).unwrap().expect("a frame");
            reader.release(frame);
        }
    }

    #[test]
    fn a_settle_that_sees_nothing_come_leaves_the_next_empty_looks_alone() {
        let (_writer, mut reader) = ring();
        assert!(reader.lane.settles_next());
        reader.settle();
        assert!(!reader.lane.settles_next(), "nothing came: back off");
        for _ in 0..crate::shared::lane::SETTLE_BACKOFF {
            reader.settle();
        }
        assert!(reader.lane.settles_next(), "the backoff ends");
    }

    #[test]
    fn a_settle_that_sees_one_frame_come_backs_off_as_a_round_trip_reader() {
        let (mut writer, mut reader) = ring();
        let slot = writer.try_reserve(PAYLOAD).unwrap().unwrap();
        writer.commit(slot, PAYLOAD);
        writer.publish();
        reader.settle();
        assert!(!reader.lane.settles_next());
        // The frame is read as ever.
        release(&mut reader, 1);
        assert!(reader.try_peek(false).unwrap().is_none());
    }

    #[test]
    fn a_settle_that_finds_a_batch_queued_keeps_settling() {
        let (mut writer, mut reader) = ring();
        assert_eq!(fill(&mut writer), CAPACITY / 64);
        reader.settle();
        assert!(reader.lane.settles_next());
        release(&mut reader, CAPACITY / 64);
    }

    #[test]
    fn a_reader_whose_last_look_found_a_run_does_not_settle() {
        let (mut writer, mut reader) = ring();
        fill(&mut writer);
        release(&mut reader, CAPACITY / 64);
        // Empty now, after a run of 64 frames: no settle, so no backoff either.
        reader.settle();
        assert!(reader.lane.settles_next());
        // The next empty look, with no run before it, settles and sees nothing come.
        reader.settle();
        assert!(!reader.lane.settles_next());
    }

    #[test]
    fn a_writer_waiting_for_room_waits_for_a_quarter_while_the_reader_releases() {
        let (mut writer, mut reader) = ring();
        assert_eq!(fill(&mut writer), CAPACITY / 64);
        let mut gate = RoomGate::default();
        // One frame freed: the reader is moving, so the writer waits on.
        release(&mut reader, 1);
        assert!(!writer.room_settled(PAYLOAD, &mut gate).unwrap());
        release(&mut reader, 1);
        assert!(!writer.room_settled(PAYLOAD, &mut gate).unwrap());
        // A quarter of the ring freed: it goes at once.
        release(&mut reader, CAPACITY / 4 / 64 - 2);
        assert!(writer.room_settled(PAYLOAD, &mut gate).unwrap());
    }

    #[test]
    fn a_writer_waiting_for_room_takes_one_frame_once_the_reader_stops() {
        let (mut writer, mut reader) = ring();
        fill(&mut writer);
        release(&mut reader, 1);
        let mut gate = RoomGate::default();
        let polls = (1..=1000)
            .find(|_| writer.room_settled(PAYLOAD, &mut gate).unwrap())
            .expect("the writer never went");
        assert!(
            polls > 1,
            "went at the first poll, with a reader still moving"
        );
        assert!(writer.try_reserve(PAYLOAD).unwrap().is_some());
    }

    #[test]
    fn a_flush_wakes_a_reader_asleep_for_a_batch_once_per_publication() {
        let (mut writer, _reader) = ring();
        let layout = writer.layout().clone();
        let event = layout.data_wake().event;
        // A reader asleep until a quarter of the ring is filled (an async waiter stands for
        // it: it counts as a waiter and is woken by the sequence number).
        assert!(event.announce_async(Handshake::SeqCst));
        let mark = CAPACITY as u64 / 4;
        event.set_mark(mark);
        let woken = |before: u32| event.sequence() != before;
        // A publication below the mark leaves it asleep ...
        let seq = event.sequence();
        let slot = writer.try_reserve(PAYLOAD).unwrap().unwrap();
        writer.commit(slot, PAYLOAD);
        writer.publish();
        assert!(!woken(seq), "woken below its mark");
        // ... until the flush, which has nothing left to publish but must still ring.
        writer.publish_urgently();
        assert!(woken(seq), "the flush did not wake the reader");
        // Asleep again, for more: a flush with nothing published since rings no more.
        event.set_mark(mark);
        let seq = event.sequence();
        writer.publish_urgently();
        assert!(!woken(seq), "an idle flush woke the reader for nothing new");
        // A publication again, then a flush: it rings again.
        let slot = writer.try_reserve(PAYLOAD).unwrap().unwrap();
        writer.commit(slot, PAYLOAD);
        writer.publish();
        writer.publish_urgently();
        assert!(woken(seq), "the second flush did not wake the reader");
        event.withdraw_async();
    }
}
