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

/// A settling reader (see "Settling" in the module docs) stops once this many bytes are
/// queued (or a quarter of a smaller lane)...
const SETTLE_BYTES: u64 = 4096;
/// ...or after this many looks at the writer's recorded tail...
const SETTLE_LOOKS: u32 = 3;
/// ...the first after this many `pause`s, each later one after twice as many as the one
/// before (448 in all: 5–7 µs on the reference machine).
const SETTLE_FIRST_PAUSES: u32 = 64;
/// A reader settles only if its last look found fewer frames than this in a row.
const SETTLE_AFTER_FEWER: u32 = 16;
/// Found empty this many times more, a reader whose last settle saw at most one frame come
/// waits at once.
pub(crate) const SETTLE_BACKOFF: u32 = 1024;

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
    /// Empty looks left before the next settle (see [`settle`](LaneReader::settle)).
    settle_skip: u32,
    /// Frames found since the ring was last found empty by a settling receive.
    drained: u32,
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
            settle_skip: 0,
            drained: 0,
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
                    self.drained = self.drained.saturating_add(1);
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

    /// The ring was found empty by a receive that may wait: let the writer get a batch
    /// ahead before looking at the data again (see "Settling" in the module docs). Looks
    /// at the writer's recorded tail a few times, a few hundred nanoseconds apart, and
    /// stops once [`SETTLE_BYTES`] are queued, or once frames came and then stopped coming;
    /// a settle during which nothing came (the writer waits for this reader, as in a round
    /// trip, or is idle) leaves the next [`SETTLE_BACKOFF`] empty looks alone, so such a
    /// reader pays it once per thousand messages.
    #[cold]
    #[inline(never)]
    pub(crate) fn settle(&mut self) {
        if cfg!(loom) {
            // A bounded wait that orders nothing: no part of a model.
            return;
        }
        if self.settle_skip > 0 {
            self.settle_skip -= 1;
            return;
        }
        if std::mem::take(&mut self.drained) >= SETTLE_AFTER_FEWER {
            // The last look found a run of frames: this reader is behind its writer, or the
            // writer publishes in batches. Either way it does not read on its heels.
            return;
        }
        let enough = SETTLE_BYTES.min(self.lane.data().capacity() / 4);
        let mut queued = 0;
        for look in 0..SETTLE_LOOKS {
            for _ in 0..(SETTLE_FIRST_PAUSES << look) {
                std::hint::spin_loop();
            }
            let now = self.queued();
            if now >= enough {
                return;
            }
            if now > 0 && now == queued {
                // Frames came, then stopped coming.
                break;
            }
            queued = now;
        }
        if queued <= self.next_span() {
            // One frame came at most: this writer sends one at a time (a round trip, a
            // sparse stream), and nothing is gained by waiting for it.
            self.settle_skip = SETTLE_BACKOFF;
        }
    }

    /// Whether the next empty look settles (unless the look before found a run).
    #[cfg(test)]
    pub(crate) fn settles_next(&self) -> bool {
        self.settle_skip == 0
    }

    /// Ring bytes of the frame at the head, if one is published there (0 if not, or if
    /// its word is not a frame's: the next look reports that).
    fn next_span(&self) -> u64 {
        let offset = self.geometry.offset(self.head);
        // SYNC: frame committed (see `LaneWriter::publish`).
        let header_untrusted = self.lane.data().load_word(offset, Ordering::Acquire);
        match self
            .geometry
            .frame(header_untrusted, self.head)
            .and_then(Word::decode)
        {
            Some(word @ (Word::Data { .. } | Word::Lined { .. })) => span(word, offset),
            _ => 0,
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
