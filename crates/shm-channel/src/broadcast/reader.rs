//! One broadcast receiver's side of the ring: join at the tail, copy each frame out into a
//! private buffer and check it was not overwritten meanwhile, release by moving the
//! cursor.

use std::sync::atomic::Ordering;

use super::layout::{Layout, Policy, HEADER, MAX_READERS};
use super::ring::{frame_span, seq_at, Fault};
use super::Broadcast;
use crate::shared::frame::Word;
use crate::shared::ownership::{self, PeerMonitor};
use crate::shared::primitive::{fence, AtomicU64};
use crate::shared::release::ReleaseBatch;
use crate::shared::ring::{
    before, check_slot, notify_after_release, queued_between, Gone, RecvRing, RingSide,
};
use crate::{ChannelError, Corruption};

/// A frame copied out and checked: its message is in the reader's private buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame {
    len: usize,
    span: u64,
    stamp: u64,
}

/// One receiver's private state.
pub(crate) struct Reader {
    layout: Layout,
    slot: usize,
    cursor: u64,
    /// Sequence number of the message at `cursor`: found at join from the frames still in
    /// the ring (see `seq_at`), else learnt from the first frame read. While it is unknown
    /// a `Lagged` count cannot be computed and is reported as 0 (skipped silently).
    next_seq: Option<u64>,
    peer: PeerMonitor,
    /// The private copy of the frame at the cursor (reused).
    copy: Vec<u8>,
    /// Closed (`Receiver::close`): the slot no longer holds the sender back, and the cursor
    /// moves privately.
    left: bool,
    /// What was released (the cursor moved on) and not stored in the slot yet.
    batch: ReleaseBatch,
    wakes: u64,
}

impl Reader {
    /// Takes a free reader slot, starting at the current tail.
    ///
    /// The slot's cursor is written only once the slot is ours: other slots belong to live
    /// receivers, whose cursors hold the sender back. Until our store below lands, the
    /// sender sees the previous owner's cursor (at or behind our start, or more than a
    /// capacity behind, which holds it back entirely — see `Writer::fits`), so it never
    /// overwrites bytes at or after our start meanwhile.
    pub(crate) fn join(layout: Layout) -> Result<Reader, ChannelError> {
        let me = ownership::me()?.to_raw();
        let slot = (0..MAX_READERS)
            .find(|&i| {
                // Failure Relaxed: a taken slot's owner value is not used, we move on.
                layout
                    .reader(i)
                    .owner
                    .compare_exchange(0, me, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
            })
            .ok_or(ChannelError::NoFreeSlot {
                what: "receiver",
                max: MAX_READERS,
            })?;
        // SYNC: reader join (see `Writer::fits`).
        fence(Ordering::SeqCst);
        // Untrusted: our starting cursor, validated by every `read_frame`.
        let cursor = layout.writer().tail.load(Ordering::SeqCst);
        // Release: SYNC: space released.
        layout.reader(slot).cursor.store(cursor, Ordering::Release);
        let next_seq = seq_at(&layout, cursor);
        Ok(Reader {
            peer: PeerMonitor::new(&layout.status().sender_owner),
            layout,
            slot,
            cursor,
            next_seq,
            copy: Vec::new(),
            left: false,
            batch: ReleaseBatch::new(cursor),
            wakes: 0,
        })
    }

    /// The receiver of reader slot `slot`, handed to the calling process by its owner (see
    /// [`Claim::Adopt`](crate::shared::status::Claim::Adopt)): it goes on from the cursor its previous
    /// owner stored.
    pub(crate) fn adopted(layout: Layout, slot: usize) -> Result<Reader, ChannelError> {
        check_slot("receiver", slot, MAX_READERS)?;
        ownership::adopt(&layout.reader(slot).owner)?;
        // Acquire: SYNC: space released (pairs with the Release store of the previous
        // owner's last `advance`).
        let cursor_untrusted = layout.reader(slot).cursor.load(Ordering::Acquire);
        // Acquire: SYNC: frame published (pairs with the Release store in
        // `Writer::publish`). Untrusted too, but only compared here; `read_frame` validates
        // it on every read.
        let tail_untrusted = layout.writer().tail.load(Ordering::Acquire);
        if cursor_untrusted % 16 != 0 || before(tail_untrusted, cursor_untrusted) {
            return Err(ChannelError::Corrupted(Corruption {
                what: "handed-over broadcast cursor not aligned or ahead of the tail",
                value: cursor_untrusted,
            }));
        }
        let cursor = cursor_untrusted;
        Ok(Reader {
            peer: PeerMonitor::new(&layout.status().sender_owner),
            next_seq: seq_at(&layout, cursor),
            layout,
            slot,
            cursor,
            copy: Vec::new(),
            left: false,
            batch: ReleaseBatch::new(cursor),
            wakes: 0,
        })
    }

    /// The reader slot this receiver owns.
    pub(crate) fn slot(&self) -> usize {
        self.slot
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Reads the frame at the cursor into the private copy: `None` if nothing is
    /// published, `Some(None)` for a pad (skipped), `Some(Some(frame))` for a message.
    #[inline(always)]
    fn read_frame(&mut self) -> Result<Option<Option<Frame>>, Fault> {
        let layout = &self.layout;
        let capacity = layout.capacity();
        // SYNC: frame published. Acquire pairs with the Release store in `Writer::publish`.
        let tail_untrusted = layout.writer().tail.load(Ordering::Acquire);
        if tail_untrusted == self.cursor {
            // Nothing published: whatever was released in a batch is stored now, before
            // the caller returns or waits (the sender may be waiting for it).
            self.flush_releases();
            return Ok(None);
        }
        if tail_untrusted % 16 != 0 || before(tail_untrusted, self.cursor) {
            return Err(Fault::Corrupted(Corruption {
                what: "broadcast tail not aligned or behind our cursor",
                value: tail_untrusted,
            }));
        }
        let offset = self.cursor & layout.mask();
        // Relaxed: after the Acquire load of `tail`; validated by the `oldest` re-check.
        let stamp = layout.data().load_word(offset, Ordering::Relaxed);
        let word = layout.data().load_word(offset + 8, Ordering::Relaxed);
        let span = frame_span(word, capacity - offset);
        let within = tail_untrusted.wrapping_sub(self.cursor) <= capacity;
        let data_len = match Word::decode(word) {
            Some(Word::Data { len }) if span.is_some() && within => Some(len as usize),
            _ => None,
        };
        if let Some(len) = data_len {
            self.copy.clear();
            self.copy.reserve(len);
            // SAFETY: `offset + 16 + len <= capacity` (checked by `frame_span`: the frame
            // does not cross the ring end); `copy` is private and has room for `len` bytes,
            // which the copy initialises before `set_len` counts them (no zero-fill first).
            // A concurrent overwrite is detected below.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    layout.payload_ptr(offset),
                    self.copy.as_mut_ptr(),
                    len,
                );
                self.copy.set_len(len);
            };
        }
        // SYNC: overwrite announced. Pairs with the Release fence in
        // `Writer::announce_overwrite`.
        fence(Ordering::Acquire);
        // Relaxed: ordered by the fence above.
        let oldest = layout.writer().oldest.load(Ordering::Relaxed);
        if before(self.cursor, oldest) || !within {
            self.lagged()?;
            return Ok(Some(None)); // no count known (see `next_seq`): go on
        }
        let Some(span) = span else {
            return Err(Fault::Corrupted(Corruption {
                what: "broadcast frame header",
                value: word,
            }));
        };
        match data_len {
            Some(len) if self.next_seq.is_none_or(|s| stamp == s.wrapping_add(1)) => {
                Ok(Some(Some(Frame { len, span, stamp })))
            }
            Some(_) => Err(Fault::Corrupted(Corruption {
                what: "broadcast frame stamp out of sequence",
                value: stamp,
            })),
            None => {
                // A pad: skip it.
                self.advance(span);
                Ok(Some(None))
            }
        }
    }

    /// Moves the cursor `span` bytes on and stores it (once per batch with batched
    /// releases).
    #[inline]
    fn advance(&mut self, span: u64) {
        self.cursor = self.cursor.wrapping_add(span);
        if !self.left && self.batch.released(self.cursor) {
            self.store_cursor();
        }
    }

    /// Stores the cursor in the slot and wakes a sender waiting for the room, if it waits
    /// for this much.
    fn store_cursor(&mut self) {
        self.batch.stored(self.cursor);
        // SYNC: space released. Release pairs with the Acquire load in `Writer::fits`.
        self.layout
            .reader(self.slot)
            .cursor
            .store(self.cursor, Ordering::Release);
        // SYNC: waiter flag: a fence under the SeqCst handshake, nothing under membarrier.
        let cursor = self.cursor;
        if self.layout.policy() == Policy::BackPressure
            && notify_after_release(self.layout.handshake(), self.layout.space_wake(), |mark| {
                !before(cursor, mark)
            })
        {
            self.wakes += 1;
        }
    }

    /// Overwritten under us: jump to the oldest frame and say how many messages we missed.
    fn lagged(&mut self) -> Result<(), Fault> {
        let layout = &self.layout;
        loop {
            // SYNC: oldest frame. Acquire pairs with the Release store in
            // `Writer::announce_overwrite`.
            let oldest_untrusted = layout.writer().oldest.load(Ordering::Acquire);
            let tail_untrusted = layout.writer().tail.load(Ordering::Acquire);
            // `tail` was loaded after `oldest`, so it may be more than a capacity ahead;
            // but the sender raises `oldest` only to frames it published before.
            if oldest_untrusted % 16 != 0 || before(tail_untrusted, oldest_untrusted) {
                return Err(Fault::Corrupted(Corruption {
                    what: "broadcast oldest not aligned or beyond the tail",
                    value: oldest_untrusted,
                }));
            }
            let (oldest, tail) = (oldest_untrusted, tail_untrusted);
            // The sequence number of the message at `oldest`: its frame's stamp less one —
            // or, when nothing is published there yet (a write grant announced an
            // overwrite, then was dropped), the writer's next sequence number.
            let first = if oldest == tail {
                // Relaxed: published by the `tail` loaded above; re-checked below.
                let next = layout.writer().next_seq.load(Ordering::Relaxed);
                // Acquire: SYNC: frame published; nothing was published meanwhile.
                if layout.writer().tail.load(Ordering::Acquire) != tail {
                    continue;
                }
                next
            } else {
                // Relaxed: validated by the re-check below.
                layout
                    .data()
                    .load_word(oldest & layout.mask(), Ordering::Relaxed)
                    .wrapping_sub(1)
            };
            fence(Ordering::Acquire);
            // Relaxed: ordered by the fence above (SYNC: overwrite announced).
            if layout.writer().oldest.load(Ordering::Relaxed) != oldest {
                continue; // overwritten again while we looked
            }
            // The message at `oldest` comes after the one at our cursor, which is older.
            let missed = match self.next_seq {
                None => 0,
                Some(next) => first.checked_sub(next).ok_or(Fault::Corrupted(Corruption {
                    what: "broadcast stamp at the oldest frame behind our sequence",
                    value: first,
                }))?,
            };
            self.cursor = oldest;
            self.next_seq = Some(first);
            self.batch.stored(oldest);
            // Release: SYNC: space released.
            layout
                .reader(self.slot)
                .cursor
                .store(oldest, Ordering::Release);
            return if missed == 0 {
                Ok(())
            } else {
                Err(Fault::Lagged(missed))
            };
        }
    }
}

impl RingSide for Reader {
    type Control = Broadcast;
    const SENDS: bool = false;

    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn owner_slot(&self) -> &AtomicU64 {
        &self.layout.reader(self.slot).owner
    }

    fn queued(&self) -> u64 {
        // Acquire: SYNC: frame published (the writer's tail).
        let tail_untrusted = self.layout.writer().tail.load(Ordering::Acquire);
        queued_between(tail_untrusted, self.cursor, self.layout.capacity())
    }

    const MIN_FRAME: u64 = HEADER;

    fn wakes(&self) -> u64 {
        self.wakes
    }
}

impl RecvRing for Reader {
    type Frame = Frame;
    type Fault = Fault;

    #[inline(always)]
    fn try_peek(&mut self, _slow: bool) -> Result<Option<Frame>, Fault> {
        // Bounded: each pad moves the cursor on by at least 16 bytes, and a ring of
        // `capacity` bytes holds at most `capacity / 16` frames before the tail.
        for _ in 0..=self.layout.capacity() / HEADER + 1 {
            match self.read_frame()? {
                None => return Ok(None),
                Some(Some(frame)) => return Ok(Some(frame)),
                Some(None) => continue,
            }
        }
        Err(Fault::Corrupted(Corruption {
            what: "broadcast ring holds more frames than fit",
            value: self.cursor,
        }))
    }

    fn frame_len(frame: &Frame) -> usize {
        frame.len
    }

    fn payload_ptr(&self, _frame: &Frame) -> *const u8 {
        self.copy.as_ptr()
    }

    fn release(&mut self, frame: Frame) {
        self.next_seq = Some(frame.stamp);
        self.advance(frame.span);
    }

    fn senders_gone(&mut self, slow: bool) -> Option<Gone> {
        self.layout.status().sender_gone(slow, &mut self.peer)
    }

    fn flush_releases(&mut self) {
        if !self.left && self.batch.pending(self.cursor) {
            self.store_cursor();
        }
    }

    fn set_release_batch(&mut self, bytes: u64) {
        self.batch.set_bytes(bytes, self.layout.capacity() / 2);
        self.flush_releases();
    }

    fn close(&mut self) {
        self.flush_releases();
        ownership::release(&self.layout.reader(self.slot).owner);
        self.layout.space_wake().notify();
    }

    /// Leaves the back-pressure while keeping the slot: the slot's cursor is moved far
    /// beyond the writer's tail, which `Writer::fits` skips as holding nothing back, and is
    /// not stored again; frames still in the ring are read (or found overwritten: `Lagged`)
    /// through the private cursor.
    fn close_receiving(&mut self) {
        self.left = true;
        // Relaxed: a snapshot of where the writer is; only its distance to our store
        // matters, not what it published.
        let tail_untrusted = self.layout.writer().tail.load(Ordering::Relaxed);
        let beyond = tail_untrusted.wrapping_add(1 << 62);
        // SYNC: space released. Release, as every store of the cursor (see `advance`).
        self.layout
            .reader(self.slot)
            .cursor
            .store(beyond, Ordering::Release);
        self.layout.space_wake().notify();
    }
}
