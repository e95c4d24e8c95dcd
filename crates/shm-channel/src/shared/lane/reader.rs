//! The reading side of a lane: peeking, releasing frames and storing the head (see the
//! module docs of `lane` for the protocol).

use std::sync::atomic::Ordering;

use super::{resumed_index, span, Frame, Geometry, Lane};
use crate::error::Corruption;
use crate::shared::frame::{Word, FRAME_HEADER_LEN};
use crate::shared::release::ReleaseBatch;
use crate::shared::ring::{before, publish, queued_between};

/// Frames between two reviews of whether to ask for lined frames.
const HINT_WINDOW: u32 = 256;

/// A reader this close behind the writer's recorded tail (in bytes) reads lines the writer
/// is still filling.
const NEAR: u64 = 1024;

/// The reading side's private state.
pub(crate) struct LaneReader<L: Lane> {
    lane: L,
    /// Next byte position to read.
    head: u64,
    /// What was released and not stored yet.
    batch: ReleaseBatch,
    geometry: Geometry,
    /// Wake syscalls made by `release` (for benchmarks).
    wakes: u64,
    /// What this reader last asked for in the line hint.
    lined: bool,
    /// Frames found since the last review of the line hint.
    window_frames: u32,
    /// Looks that found nothing since the last review.
    window_empty: u32,
}

impl<L: Lane> LaneReader<L> {
    /// Takes over the reading side, starting from the head in shared memory.
    pub(crate) fn new(lane: L) -> Result<LaneReader<L>, Corruption> {
        // SYNC: space released (see `publish_head`): our own, or a predecessor's.
        let head = resumed_index(lane.head(), "head not 8-byte aligned")?;
        // Relaxed: a hint (see "Lined frames"); what a predecessor asked for, until the
        // first review.
        let hint_untrusted = lane.line_hint().load(Ordering::Relaxed);
        let lined = hint_untrusted != 0;
        Ok(LaneReader {
            geometry: Geometry::of(lane.data().capacity()),
            lane,
            head,
            batch: ReleaseBatch::new(head),
            wakes: 0,
            lined,
            window_frames: 0,
            window_empty: 0,
        })
    }

    /// The next complete frame, or `None` when nothing is published. Padding frames are
    /// skipped (and released at once).
    #[inline(always)]
    pub(crate) fn try_peek(&mut self) -> Result<Option<Frame>, Corruption> {
        loop {
            let offset = self.geometry.offset(self.head);
            let to_end = self.lane.data().capacity() - offset;
            // SYNC: frame committed (see `LaneWriter::publish`).
            let header_untrusted = self.lane.data().load_word(offset, Ordering::Acquire);
            let Some(word) = self.geometry.frame(header_untrusted, self.head) else {
                // Nothing published: whatever was released in a batch is handed back now,
                // before the caller returns or waits (a writer may be waiting for it).
                self.flush_releases();
                self.window_empty = self.window_empty.saturating_add(1);
                return Ok(None);
            };
            match Word::decode(word) {
                Some(Word::Pad { len }) if len == to_end => {
                    self.head = self.head.wrapping_add(len);
                    self.batch.skipped();
                }
                Some(frame @ (Word::Data { len } | Word::Lined { len }))
                    if span(frame, offset) <= to_end =>
                {
                    self.window_frames += 1;
                    if self.window_frames == HINT_WINDOW {
                        self.review_line_hint();
                    }
                    return Ok(Some(Frame {
                        offset,
                        len: len as usize,
                        span: span(frame, offset),
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

    /// Asks the writer for lined frames, or stops asking, by what the last
    /// [`HINT_WINDOW`] frames showed (see "Lined frames" in the module docs): it starts
    /// asking when this reader found a frame at more than half of its looks (it streams)
    /// and is within [`NEAR`] bytes of the writer's recorded tail, and stops once it found
    /// nothing at half of its looks or more (it waits for each frame, as a round trip's
    /// reader does). Stores the hint only when the answer changes.
    #[cold]
    #[inline(never)]
    fn review_line_hint(&mut self) {
        let streaming = self.window_empty < self.window_frames;
        self.window_frames = 0;
        self.window_empty = 0;
        // On once this reader streams close behind the writer; off once it stops streaming.
        let want = streaming && (self.lined || self.queued() < NEAR);
        if want != self.lined {
            self.lined = want;
            // Relaxed: a hint, read alone by the writer; it orders nothing.
            self.lane
                .line_hint()
                .store(u32::from(want), Ordering::Relaxed);
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
        debug_assert_eq!(frame.offset, self.geometry.offset(self.head));
        self.head = self.head.wrapping_add(frame.span);
        if self.batch.released(self.head) {
            self.publish_head();
        }
    }

    /// Lets up to `bytes` of released frames wait before the head is stored (`0`, the
    /// default: store it on every release; at most half the ring). With a batch, the head
    /// is also stored every [`RELEASE_FRAMES`](crate::shared::release::RELEASE_FRAMES)
    /// frames, whenever the ring is found empty, and by
    /// [`flush_releases`](LaneReader::flush_releases).
    pub(crate) fn set_release_batch(&mut self, bytes: u64) {
        self.batch.set_bytes(bytes, self.lane.data().capacity() / 2);
        self.flush_releases();
    }

    /// Stores the head if released frames wait in a batch.
    pub(crate) fn flush_releases(&mut self) {
        if self.batch.pending(self.head) {
            self.publish_head();
        }
    }

    /// Stores the head and wakes a writer sleeping for room — one that asked to be woken
    /// only once the head reaches its mark, once it does. (A writer never waits for more
    /// room than the lane has: the release that empties the lane reaches every mark.)
    #[inline]
    fn publish_head(&mut self) {
        self.batch.stored(self.head);
        let lane = &self.lane;
        let (head, value) = (&lane.head(), self.head);
        // SYNC: space released. The Release half pairs with the Acquire load of `head` in
        // `LaneWriter::refresh_head`: our copies out of the released bytes happen before the
        // writer overwrites them (and with the Acquire load of a reader taking over, in
        // `resumed_index`). Release or SeqCst by the handshake, for the fence-free
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
