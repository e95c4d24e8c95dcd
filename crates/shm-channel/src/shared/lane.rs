//! A lane: the single-writer, single-reader byte ring that an SPSC channel is and that
//! each sender of an MPSC channel writes into. The algorithm, without blocking, deadlines,
//! liveness or ownership checks (the endpoint core and the flavors add those); where its
//! shared words are is the flavor's ([`Lane`]).
//!
//! # Positions
//!
//! Positions are byte counts that only grow (`u64`: they never wrap in practice, but a
//! position taken over from shared memory may be anything, so all position arithmetic wraps
//! and all comparisons are on wrapping differences); `position & mask` is the offset in the
//! data area, and `position >> log2(capacity)` its *lap*. The writer owns the tail, the
//! reader the head; each keeps its own privately.
//!
//! # One cache line per small message
//!
//! A frame is published by its own header word, written last: the frame word of
//! `crate::shared::frame` with the frame's lap in its top 16 bits ([`LAP_SHIFT`]). The reader
//! finds the next message by loading the word at its head, nothing else: a word of the
//! right lap is a frame, any other word means "not yet". It never writes the data area. So
//! a small message costs the writer one line (header and payload together) and the reader
//! the same line; the index lines stay where they are:
//!
//! - the reader stores its head (the consumer line) at each release: a store to a line in
//!   its own cache, which moves to the writer's core only when the writer reloads it;
//! - the writer reloads the head only when its cached copy says the ring is full;
//! - the writer stores its tail (the producer line) when it publishes, for `len` and for a
//!   writer taking over; nobody reads it on the data path.
//!
//! A writer that finds the ring full does not resume at the first frame released: it
//! would then write each frame into the line the reader has just left, one frame behind
//! it, and every message would move the head's line and the frame's line between the two
//! cores (a reader slower than its writer, a decoding one say, keeps the ring full, so
//! this is its steady state). While the reader keeps releasing, the writer waits for a
//! quarter of the lane ([`LaneWriter::room_settled`]); it takes less only once the head
//! has stood still for a few hundred nanoseconds ([`RoomGate`]), so a reader that stops receiving (to wait
//! for this writer's next message, say) never holds it up.
//!
//! The head is stored at each release, not per batch, because a receiver may stop
//! receiving at any moment (to wait for something else) while its sender waits for room:
//! room released but not stored would stay hidden from that sender. A receiver that
//! knows better opts in to batches ([`LaneReader::set_release_batch`]).
//!
//! A header of the wrong lap can never be taken for a new frame: before a frame's header
//! is published, the word right after the frame (where the reader looks next) is cleared —
//! unless the ring is exactly full, in which case that word is the header of the oldest
//! frame, which the reader has not released, and whose lap is one behind. So the word at
//! the reader's head is always zero, a header of an earlier lap, or a header the writer
//! wrote for this lap; never a stale payload word that happens to look like a header.
//!
//! Deferred publishing holds back one header: the first frame committed since the last
//! publication keeps its header in private memory, the frames after it are written in
//! full, and publishing is the one Release store of the held header — the reader cannot
//! pass a frame it has not seen, so the whole batch appears at once.
//!
//! # What a peer may write
//!
//! Every word loaded from shared memory is loaded once and validated before use: a frame
//! of this lap must decode, and lie inside the data area (a padding frame must reach exactly
//! the end); the reader's head, when the writer reloads it, must be 8-aligned, move forward
//! and stay within a capacity behind the tail. A violation is a [`Corruption`], never an
//! out-of-bounds access. A word of another lap is "nothing yet": a peer that writes
//! garbage of the wrong lap only makes the reader wait, as a peer that sends nothing does.

use std::sync::atomic::Ordering;

use shm_core::notify::Handshake;

use super::frame::{frame_len, max_payload, Word, FRAME_HEADER_LEN};
use super::primitive::{AtomicU64, DataArea};
use super::ring::{aligned_index, before, notify_after_release, publish, queued_between, RoomGate};
use super::view::Wake;
use crate::error::Corruption;

/// Where one lane's shared words are, and what its stores wake: an SPSC channel is one
/// lane; an MPSC channel has one per sender slot.
pub(crate) trait Lane: Send + 'static {
    /// The writer's recorded tail: read only by `len` and a writer taking over.
    fn tail(&self) -> &AtomicU64;
    /// The reader's released head.
    fn head(&self) -> &AtomicU64;
    /// The lane's frames.
    fn data(&self) -> &DataArea;
    /// The channel's wake handshake.
    fn handshake(&self) -> Handshake;
    /// What publishing a frame wakes: the receiver.
    fn data_wake(&self) -> Wake<'_>;
    /// What releasing frames wakes: this lane's writer.
    fn space_wake(&self) -> Wake<'_>;
}

/// Frames at least this long (header included) go to the start of the data area when
/// they find the ring empty ([`LaneWriter::try_reserve`]).
const REWIND_MIN: u64 = 64 << 10;

/// With batched releases ([`LaneReader::set_release_batch`]): frames the reader releases before
/// it stores its head, at most (fewer when the batch's bytes are reached first).
const RELEASE_FRAMES: u32 = 32;

/// Where a frame header keeps the lap of the position it was written at.
const LAP_SHIFT: u32 = 48;
/// The lap bits of a frame header.
const LAP_MASK: u64 = 0xffff;

/// Room reserved in the ring for one frame, not yet committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    /// Offset of the frame header in the data area.
    offset: u64,
    /// Payload bytes reserved.
    pub(crate) max_len: usize,
}

/// A complete frame the reader may copy out, then release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame {
    /// Offset of the frame header in the data area.
    offset: u64,
    /// Payload bytes.
    pub(crate) len: usize,
    /// Ring bytes the frame occupies (header, payload, alignment).
    span: u64,
}

/// The lap numbers of a ring: `position >> shift`, kept to the bits a header holds.
#[derive(Debug, Clone, Copy)]
struct Laps {
    shift: u32,
}

impl Laps {
    fn of(capacity: u64) -> Laps {
        Laps {
            shift: capacity.trailing_zeros(),
        }
    }

    /// The header that publishes `word` at `position`.
    #[inline]
    fn header(self, word: Word, position: u64) -> u64 {
        word.encode() | (((position >> self.shift) & LAP_MASK) << LAP_SHIFT)
    }

    /// The frame word in `header_untrusted`, if it was written at `position`'s lap (and is
    /// not an empty word); `None` for a word of another lap: nothing published there yet.
    #[inline]
    fn frame(self, header_untrusted: u64, position: u64) -> Option<u64> {
        let lap_untrusted = header_untrusted >> LAP_SHIFT;
        let word = header_untrusted & !(LAP_MASK << LAP_SHIFT);
        (lap_untrusted == (position >> self.shift) & LAP_MASK && word != 0).then_some(word)
    }
}

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
    mask: u64,
    laps: Laps,
    /// Wake syscalls made by `publish` (for benchmarks).
    wakes: u64,
}

impl<L: Lane> LaneWriter<L> {
    /// Takes over the writing side: continues after the last frame the ring holds (see
    /// [`LaneWriter::recover_tail`]).
    pub(crate) fn new(lane: L) -> Result<LaneWriter<L>, Corruption> {
        // Acquire: SYNC: tail recorded (see `publish`): our own, or a predecessor's.
        let recorded_untrusted = lane.tail().load(Ordering::Acquire);
        let recorded = aligned_index(recorded_untrusted, "tail not 8-byte aligned")?;
        let capacity = lane.data().capacity();
        let mask = capacity - 1;
        let mut writer = LaneWriter {
            laps: Laps::of(capacity),
            lane,
            tail: recorded,
            visible: recorded,
            held: 0,
            cached_head: 0,
            mask,
            wakes: 0,
        };
        writer.recover_tail();
        // The head lies within a capacity behind the tail: start from the lowest it may be.
        writer.cached_head = writer.tail.wrapping_sub(mask + 1);
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
            let offset = self.tail & self.mask;
            // Acquire: SYNC: frame committed (a predecessor's headers).
            let header_untrusted = self.lane.data().load_word(offset, Ordering::Acquire);
            let Some(word) = self.laps.frame(header_untrusted, self.tail) else {
                break;
            };
            let to_end = capacity - offset;
            let span = match Word::decode(word) {
                Some(Word::Data { len }) => frame_len(len),
                Some(Word::Pad { len }) => len,
                _ => break,
            };
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
        let offset = self.tail & self.mask;
        let header = self.laps.header(word, self.tail);
        let end = self.tail.wrapping_add(span);
        let data = self.lane.data();
        if end.wrapping_sub(self.cached_head) < self.lane.data().capacity() {
            // The word at `end` lies in space the reader released (the ring is not exactly
            // full): it may hold a stale payload word of an earlier lap. Relaxed: published
            // with this frame's header (or the held one before it), stored with Release.
            data.store_word(end & self.mask, 0, Ordering::Relaxed);
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
        let offset = self.tail & self.mask;
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
        let span = frame_len(len as u64);
        let offset = self.tail & self.mask;
        if span > self.lane.data().capacity() - offset || !self.has_room(span)? {
            return Ok(None);
        }
        Ok(Some(Slot {
            offset,
            max_len: len,
        }))
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
        debug_assert_eq!(slot.offset, self.tail & self.mask);
        let len = len.min(slot.max_len) as u64;
        self.commit_frame(Word::Data { len }, frame_len(len));
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
    pub(crate) fn publish_urgently(&mut self) {
        if self.visible != self.tail {
            self.publish_as(true);
        } else {
            let lane = &self.lane;
            let woke = notify_after_release(lane.handshake(), lane.data_wake(), |_| true);
            self.wakes += u64::from(woke);
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
        let (data, offset, header) = (lane.data(), self.visible & self.mask, self.held);
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
        self.visible = self.tail;
        // SYNC: tail recorded. Release: a writer taking over (`LaneWriter::new`) finds the
        // frames below it published. Nobody reads it on the data path.
        lane.tail().store(self.tail, Ordering::Release);
    }
}

/// The reading side's private state.
pub(crate) struct LaneReader<L: Lane> {
    lane: L,
    /// Next byte position to read.
    head: u64,
    /// The head last stored in shared memory.
    published_head: u64,
    /// Frames released since the head was last stored.
    unstored_frames: u32,
    /// Released bytes that may wait before the head is stored.
    release_batch: u64,
    mask: u64,
    laps: Laps,
    /// Wake syscalls made by `release` (for benchmarks).
    wakes: u64,
}

impl<L: Lane> LaneReader<L> {
    /// Takes over the reading side, starting from the head in shared memory.
    pub(crate) fn new(lane: L) -> Result<LaneReader<L>, Corruption> {
        // Acquire: pairs with our own earlier Release stores if this process read before.
        let head_untrusted = lane.head().load(Ordering::Acquire);
        let head = aligned_index(head_untrusted, "head not 8-byte aligned")?;
        let capacity = lane.data().capacity();
        Ok(LaneReader {
            laps: Laps::of(capacity),
            lane,
            head,
            published_head: head,
            unstored_frames: 0,
            release_batch: 0,
            mask: capacity - 1,
            wakes: 0,
        })
    }

    /// The next complete frame, or `None` when nothing is published. Padding frames are
    /// skipped (and released at once).
    #[inline]
    pub(crate) fn try_peek(&mut self) -> Result<Option<Frame>, Corruption> {
        loop {
            let offset = self.head & self.mask;
            let to_end = self.lane.data().capacity() - offset;
            // SYNC: frame committed (see `LaneWriter::publish`).
            let header_untrusted = self.lane.data().load_word(offset, Ordering::Acquire);
            let Some(word) = self.laps.frame(header_untrusted, self.head) else {
                // Nothing published: whatever was released in a batch is handed back now,
                // before the caller returns or waits (a writer may be waiting for it).
                self.flush_releases();
                return Ok(None);
            };
            match Word::decode(word) {
                Some(Word::Pad { len }) if len == to_end => {
                    self.head = self.head.wrapping_add(len);
                    self.unstored_frames += 1;
                }
                Some(Word::Data { len }) if frame_len(len) <= to_end => {
                    return Ok(Some(Frame {
                        offset,
                        len: len as usize,
                        span: frame_len(len),
                    }));
                }
                _ => {
                    return Err(Corruption {
                        what: "frame header",
                        value: header_untrusted,
                    })
                }
            }
        }
    }

    /// Where the payload of `frame` is: valid for `frame.len` bytes until release.
    #[inline]
    pub(crate) fn payload_ptr(&self, frame: &Frame) -> *const u8 {
        // Arithmetic only: `try_peek` checked the frame lies inside the data area.
        self.lane.data().ptr(frame.offset + FRAME_HEADER_LEN as u64)
    }

    /// Bytes published and not yet read, by the writer's recorded tail (an estimate: the
    /// tail is recorded per publication).
    pub(crate) fn queued(&self) -> u64 {
        // Acquire: SYNC: tail recorded (see `LaneWriter::publish`).
        let tail_untrusted = self.lane.tail().load(Ordering::Acquire);
        queued_between(tail_untrusted, self.head, self.lane.data().capacity())
    }

    /// Wake syscalls made by `release`.
    pub(crate) fn wakes(&self) -> u64 {
        self.wakes
    }

    /// The lane's shared words.
    pub(crate) fn lane(&self) -> &L {
        &self.lane
    }

    /// Frees the frame returned by the last `try_peek` for the writer to reuse: stores the
    /// head, or with batched releases, once per batch.
    #[inline]
    pub(crate) fn release(&mut self, frame: Frame) {
        debug_assert_eq!(frame.offset, self.head & self.mask);
        self.head = self.head.wrapping_add(frame.span);
        if self.release_batch == 0 {
            self.publish_head();
            return;
        }
        self.unstored_frames += 1;
        if self.unstored_frames >= RELEASE_FRAMES
            || self.head.wrapping_sub(self.published_head) > self.release_batch
        {
            self.publish_head();
        }
    }

    /// Lets up to `bytes` of released frames wait before the head is stored (`0`, the
    /// default: store it on every release; at most half the ring). With a batch, the head
    /// is also stored every [`RELEASE_FRAMES`] frames, whenever the ring is found empty,
    /// and by [`flush_releases`](LaneReader::flush_releases).
    pub(crate) fn set_release_batch(&mut self, bytes: u64) {
        self.release_batch = bytes.min(self.lane.data().capacity() / 2);
        self.flush_releases();
    }

    /// Stores the head if released frames wait in a batch.
    pub(crate) fn flush_releases(&mut self) {
        if self.head != self.published_head {
            self.publish_head();
        }
    }

    /// Stores the head and wakes a writer sleeping for room — one that asked to be woken
    /// only once the head reaches its mark, once it does. (A writer never waits for more
    /// room than the lane has: the release that empties the lane reaches every mark.)
    #[inline]
    fn publish_head(&mut self) {
        self.published_head = self.head;
        self.unstored_frames = 0;
        let lane = &self.lane;
        let (head, value) = (&lane.head(), self.head);
        // SYNC: space released. The Release half pairs with the Acquire load of `head` in
        // `LaneWriter::refresh_head`: our copies out of the released bytes happen before the
        // writer overwrites them. Release or SeqCst by the handshake, for the fence-free
        // waiter-flag check (SYNC: waiter flag; see `ring::publish`).
        let woke = publish(
            lane.handshake(),
            |order| head.store(value, order),
            lane.space_wake(),
            |mark| !before(value, mark),
        );
        self.wakes += u64::from(woke);
    }
}
