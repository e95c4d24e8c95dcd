//! The writing side of a lane: reserving, committing and publishing frames (see the
//! module docs of `lane` for the protocol).

use std::sync::atomic::Ordering;

use super::{resumed_index, span, Geometry, Lane, Slot};
use crate::error::Corruption;
use crate::shared::frame::{frame_len, lined_len, max_payload, Word, FRAME_HEADER_LEN};
use crate::shared::ring::{aligned_index, notify_after_release, publish, queued_between, RoomGate};

/// Frames at least this long (header included) go to the start of the data area when
/// they find the ring empty ([`LaneWriter::try_reserve`]).
const REWIND_MIN: u64 = 64 << 10;

/// Lanes smaller than this never line their frames: the padding would take too large a
/// share of them. (Under loom, whose models run tiny rings, lanes of a line and more.)
const LINED_MIN_CAPACITY: u64 = if cfg!(loom) { 64 } else { 4 << 10 };

/// Reservations between two reads of the reader's line hint.
const HINT_READ_EVERY: u32 = 64;

/// The writing side's private state.
pub(crate) struct LaneWriter<L: Lane> {
    lane: L,
    /// Next byte position to write: frames below it are written in full.
    tail: u64,
    /// Frames below this position are published; the frame at it, if `visible != tail`, is
    /// committed but its header is held back in `held`.
    visible: u64,
    /// The header of the frame at `visible`, once committed (see the module docs).
    held: u64,
    /// The reader's head as last loaded: a lower bound of the real one.
    cached_head: u64,
    geometry: Geometry,
    /// Wake syscalls made by `publish` (for benchmarks).
    wakes: u64,
    /// Something was published since the last urgent wake check, by a publication whose
    /// wake check let a reader asleep below its mark sleep on (see
    /// [`publish_urgently`](Self::publish_urgently)).
    unchecked: bool,
    /// Frames are lined (the reader's hint as last read, in a lane large enough).
    lined: bool,
    /// The frame reserved last is lined.
    slot_lined: bool,
    /// Reservations until the hint is read again.
    hint_countdown: u32,
}

impl<L: Lane> LaneWriter<L> {
    /// Takes over the writing side: continues after the last frame the ring holds (see
    /// [`LaneWriter::recover_tail`]).
    pub(crate) fn new(lane: L) -> Result<LaneWriter<L>, Corruption> {
        // SYNC: tail recorded (see `publish`): our own, or a predecessor's.
        let recorded = resumed_index(lane.tail(), "tail not 8-byte aligned")?;
        let capacity = lane.data().capacity();
        let mut writer = LaneWriter {
            geometry: Geometry::of(capacity),
            lane,
            tail: recorded,
            visible: recorded,
            held: 0,
            cached_head: 0,
            wakes: 0,
            // What a predecessor published may have left a reader asleep.
            unchecked: true,
            lined: false,
            slot_lined: false,
            hint_countdown: 0,
        };
        writer.recover_tail();
        // The head lies within a capacity behind the tail: start from the lowest it may be.
        writer.cached_head = writer.tail.wrapping_sub(capacity);
        writer.refresh_head()?;
        Ok(writer)
    }

    /// Moves the tail past the frames published after the recorded tail: a predecessor
    /// that died between publishing a frame and recording the tail left them, and the
    /// reader may already have passed them. Walks at most a capacity of frames of the
    /// right lap; stops at the first word that is not one.
    fn recover_tail(&mut self) {
        let capacity = self.lane.data().capacity();
        let start = self.tail;
        while self.tail.wrapping_sub(start) < capacity {
            let offset = self.geometry.offset(self.tail);
            // Acquire: SYNC: frame committed (a predecessor's headers).
            let header_untrusted = self.lane.data().load_word(offset, Ordering::Acquire);
            let Some(word) = self.geometry.frame(header_untrusted, self.tail) else {
                break;
            };
            let to_end = capacity - offset;
            let Some(frame) = Word::decode(word) else {
                break;
            };
            let span = span(frame, offset);
            if span > to_end
                || span == 0
                || self.tail.wrapping_add(span).wrapping_sub(start) > capacity
            {
                break;
            }
            self.tail = self.tail.wrapping_add(span);
        }
        self.visible = self.tail;
    }

    /// Re-loads the reader's head and validates it against our tail.
    #[inline(never)]
    fn refresh_head(&mut self) -> Result<(), Corruption> {
        // SYNC: space released. Acquire pairs with the Release store of `head` in
        // `LaneReader::publish_head`: the reader's copies out of the bytes below `head` are
        // finished before we overwrite them.
        let head_untrusted = self.lane.head().load(Ordering::Acquire);
        let capacity = self.lane.data().capacity();
        let head = aligned_index(head_untrusted, "head not 8-byte aligned")?;
        // The head must lie in `[cached_head, tail]`: it never moves back nor passes our tail.
        if head.wrapping_sub(self.cached_head) > self.tail.wrapping_sub(self.cached_head) {
            return Err(Corruption {
                what: "head outside [previous head, tail]",
                value: head,
            });
        }
        if self.tail.wrapping_sub(head) > capacity {
            return Err(Corruption {
                what: "head more than capacity behind tail",
                value: head,
            });
        }
        self.cached_head = head;
        Ok(())
    }

    /// Whether the reader has released everything written, re-loading the head unless
    /// the cache already says so (one load of the reader's line: asked only before a
    /// frame of at least [`REWIND_MIN`] bytes, whose copy dwarfs it).
    fn is_empty(&mut self) -> Result<bool, Corruption> {
        if self.tail != self.cached_head {
            self.refresh_head()?;
        }
        Ok(self.tail == self.cached_head)
    }

    /// Whether `bytes` more fit after our tail, re-loading the head only if the cache says
    /// they do not.
    #[inline]
    fn has_room(&mut self, bytes: u64) -> Result<bool, Corruption> {
        let capacity = self.lane.data().capacity();
        if self.tail.wrapping_sub(self.cached_head) + bytes <= capacity {
            return Ok(true);
        }
        self.refresh_head()?;
        Ok(self.tail.wrapping_sub(self.cached_head) + bytes <= capacity)
    }

    /// Commits a frame whose bytes are written: `word` (data or padding, `span` ring bytes)
    /// becomes the header at the tail once published. The word where the reader looks
    /// next is cleared first (see the module docs).
    #[inline]
    fn commit_frame(&mut self, word: Word, span: u64) {
        let offset = self.geometry.offset(self.tail);
        let header = self.geometry.header(word, self.tail);
        let end = self.tail.wrapping_add(span);
        let data = self.lane.data();
        if end.wrapping_sub(self.cached_head) < self.lane.data().capacity() {
            // The word at `end` lies in space the reader released (the ring is not exactly
            // full): it may hold a stale payload word of an earlier lap. Relaxed: published
            // with this frame's header (or the held one before it), stored with Release.
            data.store_word(self.geometry.offset(end), 0, Ordering::Relaxed);
        }
        if self.visible == self.tail {
            // The first frame since the last publication: its header waits for `publish`.
            self.held = header;
        } else {
            // A frame before this one is held back, and the reader cannot pass it. Relaxed:
            // published by the held header's Release store (SYNC: frame committed).
            data.store_word(offset, header, Ordering::Relaxed);
        }
        self.tail = end;
    }

    /// Reserves a contiguous frame for `len` payload bytes, or `None` when the ring has no
    /// room yet. `len` must be at most `max_payload(capacity)`.
    ///
    /// A frame that would cross the end of the ring goes to its start, behind a padding
    /// frame to the end. The padding is written only together with the frame it makes
    /// room for — so a reservation given up leaves the ring's usable room as it was —
    /// unless the two can never fit together (the frame is longer than the ring before
    /// the padding): then the padding is published alone, for the reader to pass while
    /// we wait.
    #[inline]
    pub(crate) fn try_reserve(&mut self, len: usize) -> Result<Option<Slot>, Corruption> {
        debug_assert!(len <= max_payload(self.lane.data().capacity(), FRAME_HEADER_LEN as u64));
        let span = frame_len(len as u64);
        let offset = self.geometry.offset(self.tail);
        let to_end = self.lane.data().capacity() - offset;
        if span >= REWIND_MIN && span <= offset && self.is_empty()? {
            // A large frame into an empty ring starts over at the beginning of the data
            // area, where the last such frame went: memory still in the caches of both
            // cores, instead of the next stretch of a ring several times its size (a
            // round trip of 1 MiB messages otherwise walks the whole ring). The padding
            // needs no publishing of its own: the reader meets it with the frame, and no one
            // waits for room in an empty ring. `span <= offset` makes padding and frame fit
            // the empty ring.
            self.commit_frame(Word::Pad { len: to_end }, to_end);
        } else if span > to_end {
            if span <= offset {
                if !self.has_room(to_end + span)? {
                    return Ok(None);
                }
                self.commit_frame(Word::Pad { len: to_end }, to_end);
            } else {
                if !self.has_room(to_end)? {
                    return Ok(None);
                }
                self.commit_frame(Word::Pad { len: to_end }, to_end);
                self.publish();
            }
        }
        self.try_reserve_in_place(len)
    }

    /// Reserves a frame for `len` payload bytes at the tail, if it fits there now: no
    /// padding, nothing written.
    #[inline]
    pub(crate) fn try_reserve_in_place(&mut self, len: usize) -> Result<Option<Slot>, Corruption> {
        let offset = self.geometry.offset(self.tail);
        let capacity = self.lane.data().capacity();
        if self.hint_countdown == 0 {
            self.read_line_hint();
        }
        self.hint_countdown -= 1;
        // Only a frame published on its own is lined: the frames of a deferred batch
        // after its first appear together, when their lines are written.
        self.slot_lined = self.lined && self.visible == self.tail;
        let span = if self.slot_lined {
            lined_len(offset, len as u64)
        } else {
            frame_len(len as u64)
        };
        if span > capacity - offset || !self.has_room(span)? {
            return Ok(None);
        }
        Ok(Some(Slot {
            offset,
            max_len: len,
        }))
    }

    /// Reads the reader's line hint: frames are lined from the next reservation while it
    /// asks for them (in a lane of at least [`LINED_MIN_CAPACITY`] bytes).
    #[cold]
    #[inline(never)]
    fn read_line_hint(&mut self) {
        self.hint_countdown = HINT_READ_EVERY;
        // Relaxed: a hint, read alone; it orders nothing (see "Lined frames"). Any value a
        // peer writes only picks one of two valid layouts.
        let hint_untrusted = self.lane.line_hint().load(Ordering::Relaxed);
        self.lined = self.lane.data().capacity() >= LINED_MIN_CAPACITY && hint_untrusted != 0;
    }

    /// Where the payload of `slot` goes: valid for `slot.max_len` bytes until commit.
    #[inline]
    pub(crate) fn payload_ptr(&self, slot: &Slot) -> *mut u8 {
        // Arithmetic only: `try_reserve` checked the frame is contiguous in the data area.
        self.lane.data().ptr(slot.offset + FRAME_HEADER_LEN as u64)
    }

    /// Completes the frame in `slot` with `len <= slot.max_len` payload bytes (already
    /// written); it is visible to the reader after the next `publish`.
    #[inline]
    pub(crate) fn commit(&mut self, slot: Slot, len: usize) {
        debug_assert!(len <= slot.max_len);
        debug_assert_eq!(slot.offset, self.geometry.offset(self.tail));
        let len = len.min(slot.max_len) as u64;
        let word = if self.slot_lined {
            Word::Lined { len }
        } else {
            Word::Data { len }
        };
        self.commit_frame(word, span(word, slot.offset));
    }

    /// The head a writer waiting for room to write `len` payload bytes asks the reader to
    /// reach before it wakes it: room for the frame and for a quarter of the lane (nonzero:
    /// 0 means "any release").
    pub(crate) fn space_mark(&self, len: usize) -> u64 {
        let capacity = self.lane.data().capacity();
        self.tail
            .wrapping_add(self.room_worth_waiting_for(len))
            .wrapping_sub(capacity)
            .max(1)
    }

    /// The room a writer that found the ring full waits for, to write `len` payload bytes:
    /// the frame, and at least a quarter of the lane.
    fn room_worth_waiting_for(&self, len: usize) -> u64 {
        let capacity = self.lane.data().capacity();
        frame_len(len as u64).max(capacity / 4).min(capacity)
    }

    /// Whether a writer spinning for room to write `len` payload bytes should try now
    /// (re-loading the head): when a quarter of the lane is free, or when `len` fits and the
    /// head has stopped moving ([`RoomGate::head_stopped`], see the module docs). `gate` carries
    /// what one wait has seen from poll to poll.
    pub(crate) fn room_settled(
        &mut self,
        len: usize,
        gate: &mut RoomGate,
    ) -> Result<bool, Corruption> {
        self.refresh_head()?;
        let capacity = self.lane.data().capacity();
        let free = capacity - self.tail.wrapping_sub(self.cached_head);
        if free >= self.room_worth_waiting_for(len) {
            return Ok(true);
        }
        Ok(gate.head_stopped(self.cached_head))
    }

    /// Bytes committed and not yet published.
    #[inline]
    pub(crate) fn unpublished(&self) -> u64 {
        self.tail.wrapping_sub(self.visible)
    }

    /// Bytes written and not yet released, by the shared head (stored per release, or per
    /// batch: up to a batch the reader already took may be counted).
    pub(crate) fn queued(&self) -> u64 {
        // Acquire: SYNC: space released (see `LaneReader::publish_head`).
        let head_untrusted = self.lane.head().load(Ordering::Acquire);
        queued_between(self.tail, head_untrusted, self.lane.data().capacity())
    }

    /// Wake syscalls made by `publish`.
    pub(crate) fn wakes(&self) -> u64 {
        self.wakes
    }

    /// The lane's shared words.
    pub(crate) fn lane(&self) -> &L {
        &self.lane
    }

    /// Makes every committed frame visible to the reader and wakes it if it sleeps (and
    /// asked to be woken only once the lane holds as many bytes as its mark, once they
    /// are: see [`Event::set_mark`](shm_core::notify::Event::set_mark)).
    #[inline]
    pub(crate) fn publish(&mut self) {
        if self.visible != self.tail {
            self.publish_as(false);
        }
    }

    /// Publishes whatever is committed and wakes a sleeping reader whatever its mark: the
    /// writer flushes, or is about to wait for room itself.
    ///
    /// With nothing to publish, the wake check is needed only if something was published
    /// without one since the last (`unchecked`): a reader that went to sleep after that
    /// check had seen everything published, and sleeps for more — waking it would find
    /// nothing new. So a flush of an idle sender reads no shared memory.
    pub(crate) fn publish_urgently(&mut self) {
        if self.visible != self.tail {
            self.publish_as(true);
        } else if self.unchecked {
            let lane = &self.lane;
            let woke = notify_after_release(lane.handshake(), lane.data_wake(), |_| true);
            self.wakes += u64::from(woke);
            self.unchecked = false;
        }
    }

    #[inline]
    fn publish_as(&mut self, urgent: bool) {
        let (lane, tail) = (&self.lane, self.tail);
        // What a sleeping reader's mark counts: bytes it has not released yet. Loaded only
        // when a reader sleeps with a mark (the head moves per release; our cached copy is
        // a lower bound that would count everything since we last needed room). Acquire:
        // SYNC: space released; untrusted: garbage only wakes the reader early or late.
        let unread = |mark: u64| tail.wrapping_sub(lane.head().load(Ordering::Acquire)) >= mark;
        let (data, offset, header) = (lane.data(), self.geometry.offset(self.visible), self.held);
        // SYNC: frame committed. The store's Release half pairs with the Acquire load of
        // the header in `LaneReader::try_peek`: the payloads, the later frames' headers and the
        // cleared word after the last frame, written before, are visible to a reader that
        // sees this header. Release under the membarrier handshake, SeqCst under the
        // other, so that the waiter-flag check needs no fence either way (SYNC: waiter
        // flag; see `ring::publish`).
        let woke = publish(
            lane.handshake(),
            |order| data.store_word(offset, header, order),
            lane.data_wake(),
            |mark| urgent || unread(mark),
        );
        self.wakes += u64::from(woke);
        self.unchecked = !urgent;
        self.visible = self.tail;
        // SYNC: tail recorded. Release: a writer taking over (`LaneWriter::new`, through
        // `resumed_index`) finds the frames below it published. Nobody reads it on the data
        // path.
        lane.tail().store(self.tail, Ordering::Release);
    }
}
