//! The broadcast sender's side of the ring: reserve room after the slowest live reader (or
//! announce an overwrite), write in place, publish.

use std::sync::atomic::Ordering;

use shm_core::liveness::{PeerWatch, ProcessIdentity};

use super::layout::{span_of, Layout, Policy, HEADER, MAX_READERS};
use super::ring::frame_span;
use super::Broadcast;
use crate::shared::frame::Word;
use crate::shared::ownership;
use crate::shared::primitive::fence;
use crate::shared::ring::{before, notify_after_release, queued_between, RingSide, SendRing};
use crate::Corruption;

/// Room reserved for one broadcast frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    /// Offset of the frame header in the data area.
    offset: u64,
    len: usize,
}

/// The sender's private state.
pub(crate) struct Writer {
    layout: Layout,
    /// Next byte position to write.
    tail: u64,
    /// The tail last stored in shared memory.
    published: u64,
    /// Sequence number of the next message.
    seq: u64,
    /// Start of the oldest frame still intact.
    oldest: u64,
    /// Back-pressure: the slowest reader's cursor as last scanned (a lower bound).
    bound: u64,
    watches: Vec<PeerWatch>,
    wakes: u64,
    /// Bytes published since the readers were last woken: what a reader's mark counts.
    unwoken: u64,
}

impl Writer {
    /// The writer of a channel, continuing after what is in the ring (`seq`: the sequence
    /// number of the next message).
    pub(crate) fn new(layout: Layout, seq: u64) -> Result<Writer, Corruption> {
        // Acquire: our own earlier stores, if this process wrote before; a predecessor's
        // (or a peer's garbage) if we take over.
        let tail_untrusted = layout.writer().tail.load(Ordering::Acquire);
        let oldest_untrusted = layout.writer().oldest.load(Ordering::Acquire);
        let shared_capacity = layout.capacity();
        if tail_untrusted % 16 != 0
            || oldest_untrusted % 16 != 0
            || before(tail_untrusted, oldest_untrusted)
            || tail_untrusted.wrapping_sub(oldest_untrusted) > shared_capacity
        {
            return Err(Corruption {
                what: "broadcast tail or oldest not aligned, or not within a capacity",
                value: tail_untrusted,
            });
        }
        let (tail, oldest) = (tail_untrusted, oldest_untrusted);
        Ok(Writer {
            layout,
            tail,
            published: tail,
            seq,
            oldest,
            // Unknown until the readers are scanned: a capacity behind makes the first
            // room check scan them (a sender taking over must not assume an empty ring).
            bound: tail.wrapping_sub(shared_capacity),
            watches: (0..MAX_READERS).map(|_| PeerWatch::new()).collect(),
            wakes: 0,
            unwoken: 0,
        })
    }

    /// Receivers attached now (reader slots with an owner).
    pub(crate) fn receiver_count(&self) -> usize {
        (0..MAX_READERS)
            // Relaxed: a snapshot for the caller.
            .filter(|&i| self.layout.reader(i).owner.load(Ordering::Relaxed) != 0)
            .count()
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Whether `span` more bytes fit: always under overwrite; under back-pressure after the
    /// slowest live reader, rescanning the readers if the cached bound says no.
    fn fits(&mut self, span: u64) -> bool {
        if self.layout.policy() == Policy::Overwrite {
            return true;
        }
        let capacity = self.layout.capacity();
        if self.tail.wrapping_sub(self.bound) + span <= capacity {
            return true;
        }
        self.bound = self.slowest_cursor();
        self.tail.wrapping_sub(self.bound).saturating_add(span) <= capacity
    }

    /// The cursor of the slowest live reader (our tail if there is none): what the ring
    /// holds for the readers under back-pressure.
    fn slowest_cursor(&self) -> u64 {
        // SYNC: reader join. Pairs with the fence in `Reader::join`: either we see the
        // joining reader's slot, or it sees our tail and starts at or after it.
        fence(Ordering::SeqCst);
        let mut bound = self.tail;
        for index in 0..MAX_READERS {
            let slot = self.layout.reader(index);
            // A slot that names no process (0, or pid bits 0: only a peer writes those)
            // holds nothing back; a live receiver's own slot always names it.
            if ProcessIdentity::from_raw(slot.owner.load(Ordering::SeqCst)).is_none() {
                continue;
            }
            // SYNC: space released. Acquire pairs with the reader's Release store of its
            // cursor: its copies out of the bytes below happen before we overwrite them.
            let cursor_untrusted = slot.cursor.load(Ordering::Acquire);
            // A cursor beyond our tail is garbage: it holds nothing back. A cursor more than
            // a capacity behind cannot be a reader's position under back-pressure (we never
            // pass one); it is the stale cursor of a slot a receiver has just taken in
            // `Reader::join` (it stores its start right after) or garbage: it holds
            // everything back until it moves or its owner is found dead, as a reader that
            // does not read would.
            if before(self.tail, cursor_untrusted) {
                continue;
            }
            if before(cursor_untrusted, bound) {
                bound = cursor_untrusted;
            }
        }
        bound
    }

    /// Under overwrite: raises `oldest` past every frame the next `span` bytes overwrite,
    /// before they are written.
    fn announce_overwrite(&mut self, span: u64) -> Result<(), Corruption> {
        let layout = &self.layout;
        let end = self.tail.wrapping_add(span);
        let free_from = end.wrapping_sub(layout.capacity());
        if !before(self.oldest, free_from) {
            return Ok(());
        }
        // Walk our own frames (a hostile peer may have changed them: validate).
        while before(self.oldest, free_from) {
            // Relaxed: our own earlier store.
            let word = layout
                .data()
                .load_word((self.oldest & layout.mask()) + 8, Ordering::Relaxed);
            let old_span = frame_span(word, layout.capacity() - (self.oldest & layout.mask()));
            match old_span {
                Some(old_span) if old_span <= self.tail.wrapping_sub(self.oldest) => {
                    self.oldest = self.oldest.wrapping_add(old_span);
                }
                _ => {
                    return Err(Corruption {
                        what: "broadcast frame header overwritten by a peer",
                        value: word,
                    })
                }
            }
        }
        // SYNC: overwrite announced. Release fence after the store: a reader whose copy saw
        // any byte we write after this sees this value after its Acquire fence.
        // SYNC: oldest frame. Release store: a reader that loads this value (Acquire, in
        // `lagged` and `seq_at`) sees the frame at `oldest` and the tail that published it.
        layout.writer().oldest.store(self.oldest, Ordering::Release);
        fence(Ordering::Release);
        Ok(())
    }

    /// Writes the frame header at `offset` (published by the next store of `tail`).
    fn write_header(&self, offset: u64, stamp: u64, word: Word) {
        // Relaxed: published by the Release store of `tail` in `publish`.
        self.layout
            .data()
            .store_word(offset, stamp, Ordering::Relaxed);
        self.layout
            .data()
            .store_word(offset + 8, word.encode(), Ordering::Relaxed);
    }

    /// Frees the reader slots of receivers whose process died (they hold nothing back any
    /// more).
    fn reap_dead_readers(&mut self) {
        let layout = &self.layout;
        let slots = (0..MAX_READERS).map(|index| &layout.reader(index).owner);
        ownership::scan_owners(slots, &mut self.watches, |index, owner| {
            ownership::free_dead(&layout.reader(index).owner, owner);
        });
    }
}

impl RingSide for Writer {
    type Control = Broadcast;
    const SENDS: bool = true;

    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn queued(&self) -> u64 {
        // Behind the slowest live reader (back-pressure), or the oldest frame still intact
        // (overwrite).
        let behind = match self.layout.policy() {
            Policy::BackPressure => self.slowest_cursor(),
            Policy::Overwrite => self.oldest,
        };
        queued_between(self.tail, behind, self.layout.capacity())
    }

    const MIN_FRAME: u64 = HEADER;

    fn wakes(&self) -> u64 {
        self.wakes
    }
}

impl Writer {
    /// Stores what is committed (if anything) and wakes sleeping readers: those that asked
    /// to be woken only once a given number of bytes is published, once it is, or
    /// `urgent`ly (a flush, or the writer is about to wait for room).
    fn publish_as(&mut self, urgent: bool) {
        if self.tail != self.published {
            self.unwoken += self.tail.wrapping_sub(self.published);
            self.published = self.tail;
            // Relaxed: published by the Release store of `tail` just below; read only by a
            // sender taking over (after an Acquire load of `tail`) and by a lagging reader.
            self.layout
                .writer()
                .next_seq
                .store(self.seq, Ordering::Relaxed);
            // SYNC: frame published. Release pairs with the Acquire load of `tail` in
            // `Reader::read_frame`.
            self.layout
                .writer()
                .tail
                .store(self.tail, Ordering::Release);
        }
        let unwoken = self.unwoken;
        // SYNC: waiter flag: a fence under the SeqCst handshake, nothing under membarrier.
        if notify_after_release(self.layout.handshake(), self.layout.data_wake(), |mark| {
            urgent || unwoken >= mark
        }) {
            self.wakes += 1;
            self.unwoken = 0;
        }
    }
}

impl SendRing for Writer {
    type Slot = Slot;
    const FRAME_HEADER: u64 = HEADER;

    fn try_reserve(&mut self, len: usize) -> Result<Option<Slot>, Corruption> {
        let span = span_of(len as u64);
        let offset = self.tail & self.layout.mask();
        let to_end = self.layout.capacity() - offset;
        if span > to_end {
            if !self.fits(to_end) {
                return Ok(None);
            }
            self.announce_overwrite(to_end)?;
            self.write_header(offset, self.seq + 1, Word::Pad { len: to_end });
            self.tail = self.tail.wrapping_add(to_end);
            self.publish();
        }
        if !self.fits(span) {
            return Ok(None);
        }
        self.announce_overwrite(span)?;
        Ok(Some(Slot {
            offset: self.tail & self.layout.mask(),
            len,
        }))
    }

    fn slot_len(slot: &Slot) -> usize {
        slot.len
    }

    fn payload_ptr(&self, slot: &Slot) -> *mut u8 {
        self.layout.payload_ptr(slot.offset)
    }

    fn commit(&mut self, slot: Slot, len: usize) {
        let len = len.min(slot.len) as u64;
        self.write_header(slot.offset, self.seq + 1, Word::Data { len });
        self.seq += 1;
        self.tail = self.tail.wrapping_add(span_of(len));
    }

    fn abandon(&mut self, _slot: Slot) {
        // Nothing published: the space is simply reused.
    }

    fn publish(&mut self) {
        if self.tail != self.published {
            self.publish_as(false);
        }
    }

    fn publish_urgently(&mut self) {
        self.publish_as(true);
    }

    fn space_mark(&self, len: usize) -> u64 {
        let capacity = self.layout.capacity();
        let room = span_of(len as u64).max(capacity / 4).min(capacity);
        self.tail.wrapping_add(room).wrapping_sub(capacity).max(1)
    }

    fn unpublished(&self) -> u64 {
        self.tail.wrapping_sub(self.published)
    }

    fn receivers_closed(&self) -> bool {
        false // receivers come and go; with none, messages are dropped
    }

    fn receivers_dead(&mut self) -> bool {
        // Dead readers stop holding the ring back; the retry that follows finds room.
        self.reap_dead_readers();
        false
    }
}
