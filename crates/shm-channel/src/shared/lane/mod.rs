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
//! has stood still for a few hundred nanoseconds ([`RoomGate`](crate::shared::ring::RoomGate)), so a reader that stops receiving (to wait
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
//! # Lined frames
//!
//! Frames are contiguous, so a frame's last line usually holds the start of the next one.
//! A reader that keeps up with its writer reads that line as soon as the frame is
//! published, and the writer, writing the next frame into it, must take it back: each
//! line then crosses between the cores about twice per message instead of once, and the
//! writer's stores wait for it (a 64-byte message stream ran at half the rate of the
//! same stream with the reader lagging). So the reader asks for *lined* frames while it
//! keeps up: a lined frame (tag `0xD3`, `crate::shared::frame::lined_len`) is followed by
//! padding to the next 64-byte line, and no later frame shares its lines.
//!
//! Lining costs ring bytes and, while the reader lags, lines that a packed ring would not
//! move, so it is asked for only while it pays: every 256 frames
//! (`LaneReader::review_line_hint`) the reader asks for lines if it found a frame at most
//! of its looks (it is streaming, not waiting for each message as a round trip does) and
//! was then within 1 KiB of the writer's recorded tail, and it stops asking once it finds
//! nothing at as many looks as it finds frames. It stores the lane's line hint
//! ([`Lane::line_hint`]) only when its answer changes. The writer reads the hint every 64
//! reservations and lines a frame only when it publishes it alone — the frames after the
//! first of a deferred batch appear together, once their lines are written — and only in
//! a lane of at least 4 KiB. The hint orders nothing (Relaxed both ways): either kind of
//! frame is read the same way, the span taken from its header.
//!
//! # Settling
//!
//! A receiver faster than its sender catches up with it and then reads each frame the
//! moment it is published, from lines the writer is still filling. That slows the writer
//! far more than it speeds the reader. In `scripts/experiments/keepup.c`, a sender that
//! makes 32 private stores per message ran at 14–19 M messages a second with a receiver
//! that keeps up, and at 53–62 M with one that is a few nanoseconds slower per message.
//! In shm-bench, in-place typed receives made typed streams slower, not faster. It makes
//! no difference whether the reader polls the commit word inside the frame or a separate
//! index.
//!
//! So a receive that finds the ring empty, and may wait by spinning, first *settles*
//! ([`LaneReader::settle`]). It looks only at the writer's recorded tail, three times, 64,
//! 128 and 256 `pause`s apart, and stops once 4 KiB are queued, or once frames came and
//! then stopped coming. Then it reads what is there as a run. Two cases skip the settle:
//! - The last look found a run of 16 frames or more. The reader is behind anyway, or the
//!   writer publishes in batches.
//! - A recent settle saw at most one frame come. The writer waits for this reader, as in a
//!   round trip, or sends rarely. Such a reader waits at once for its next 1,024 empty
//!   looks: it pays one settle (a few µs) per thousand messages.
//!
//! A settle changes nothing about what is read or in which order, and orders no memory.
//! The tail word it polls is the one [`LaneReader::queued`] already reads, so a garbage
//! tail only ends a settle early or late. Under loom it does nothing.
//!
//! # What a peer may write
//!
//! Every word loaded from shared memory is loaded once and validated before use: a frame
//! of this lap must decode, and lie inside the data area with its padding (a padding frame
//! must reach exactly the end); the reader's head, when the writer reloads it, must be 8-aligned, move forward
//! and stay within a capacity behind the tail. A violation is a [`Corruption`](crate::Corruption), never an
//! out-of-bounds access. A word of another lap is "nothing yet": a peer that writes
//! garbage of the wrong lap only makes the reader wait, as a peer that sends nothing does.

use std::sync::atomic::Ordering;

use super::frame::{frame_len, lined_len, Word};
use super::primitive::{AtomicU32, AtomicU64, DataArea};
use super::ring::aligned_index;
use super::view::Wake;
use crate::error::Corruption;
use shm_core::notify::Handshake;

mod reader;
mod writer;

pub(crate) use reader::LaneReader;
#[cfg(test)]
pub(crate) use reader::SETTLE_BACKOFF;
pub(crate) use writer::LaneWriter;

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
    /// Nonzero while the reader asks for lined frames (see "Lined frames" above): written
    /// by the reader, read by the writer. A hint: any value is safe.
    fn line_hint(&self) -> &AtomicU32;
}

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

/// What a side of a lane caches of its data area when it takes the side over (never re-read
/// from shared memory): the offset of a position (`position & mask`) and its lap number
/// (`position >> shift`, kept to the bits a header holds).
#[derive(Debug, Clone, Copy)]
struct Geometry {
    mask: u64,
    shift: u32,
}

impl Geometry {
    fn of(capacity: u64) -> Geometry {
        Geometry {
            mask: capacity - 1,
            shift: capacity.trailing_zeros(),
        }
    }

    /// The offset in the data area of `position`.
    #[inline]
    fn offset(self, position: u64) -> u64 {
        position & self.mask
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

/// Ring bytes the frame of `word` occupies at `offset` in a lane: header, payload and
/// alignment, and a lined frame's padding to the next line; a pad's own length. (What
/// the reader skips, the writer recovering its tail walks, and a commit adds to the tail.)
fn span(word: Word, offset: u64) -> u64 {
    match word {
        Word::Empty => 0,
        Word::Data { len } => frame_len(len),
        Word::Lined { len } => lined_len(offset, len),
        Word::Pad { len } => len,
    }
}

/// The position a side taking over a lane resumes from: its own `index` word (the reader's
/// head, the writer's recorded tail) as that side last stored it, in this process or in a
/// predecessor; `what` names the failed check of an index not 8-aligned.
fn resumed_index(index: &AtomicU64, what: &'static str) -> Result<u64, Corruption> {
    // Acquire: pairs with the side's own Release stores of `index` (SYNC: tail recorded,
    // for the writer; SYNC: space released, for the reader).
    aligned_index(index.load(Ordering::Acquire), what)
}
