//! The reading side of the MPSC ring algorithm — the receiver's private cursor: read frames in claim order, release and zero them,
//! skip the claims of dead producers, refuse gaps nobody is writing.

use std::sync::atomic::Ordering;

use super::layout::Layout;
use super::ring::MAX_SENDERS;
use crate::error::Corruption;
use crate::shared::frame::{frame_len, Word};
use crate::shared::ring::{aligned_index, before, check_tail, Peek};

/// A committed frame the consumer may copy out, then release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame {
    pub(crate) offset: u64,
    pub(crate) len: usize,
    pub(crate) span: u64,
}

/// Whether `at` lies in the claim intent `[start, end)` (wrapping positions).
fn covers(start: u64, end: u64, at: u64) -> bool {
    at.wrapping_sub(start) < end.wrapping_sub(start)
}

/// The consumer's private state.
pub(crate) struct ReadCursor {
    /// Bytes released so far (private; ahead of the shared head by less than
    /// `release_batch` bytes).
    head: u64,
    /// The head last stored in shared memory.
    published_head: u64,
    /// Released bytes that may wait before the head is stored (0: store on every release).
    release_batch: u64,
    cached_tail: u64,
    mask: u64,
    /// Frames skipped because their producer died before committing.
    pub(crate) abandoned: u64,
}

impl ReadCursor {
    pub(crate) fn new(layout: &Layout) -> Result<ReadCursor, Corruption> {
        // Acquire: our own earlier releases, if this process consumed before.
        let head_untrusted = layout.head().load(Ordering::Acquire);
        let head = aligned_index(head_untrusted, "mpsc head not 8-byte aligned")?;
        let mut consumer = ReadCursor {
            head,
            published_head: head,
            release_batch: 0,
            cached_tail: head,
            mask: layout.capacity() - 1,
            abandoned: 0,
        };
        consumer.refresh_tail(layout)?;
        Ok(consumer)
    }

    fn refresh_tail(&mut self, layout: &Layout) -> Result<(), Corruption> {
        // SYNC: claim intent. Acquire pairs with the producers' AcqRel CAS of `tail`: the
        // intents recorded before the claims we see are visible.
        let tail_untrusted = layout.tail().load(Ordering::Acquire);
        self.cached_tail = check_tail(tail_untrusted, self.head, self.cached_tail, self.mask + 1)?;
        Ok(())
    }

    /// The next committed frame. Skips pads and skips; with `is_dead` (a slow check), also
    /// frames whose producer died before committing (`is_dead(slot)` asks the kernel), and
    /// reports as corruption a claimed gap no producer's intent covers.
    pub(crate) fn try_peek(
        &mut self,
        layout: &Layout,
        mut is_dead: Option<&mut dyn FnMut(usize) -> bool>,
    ) -> Result<Peek<Frame>, Corruption> {
        loop {
            if self.head == self.cached_tail {
                self.refresh_tail(layout)?;
                if self.head == self.cached_tail {
                    // Empty: whatever was released in a batch is handed back now, before
                    // the caller returns or waits (a producer may be waiting for it).
                    self.flush_releases(layout);
                    return Ok(Peek::Empty);
                }
            }
            let offset = self.head & self.mask;
            let to_end = self.mask + 1 - offset;
            let room = self.cached_tail.wrapping_sub(self.head).min(to_end);
            // SYNC: frame committed. Acquire pairs with the Release store in
            // `ClaimCursor::commit` (and of a pad in `try_claim`).
            let raw = layout.data().load_word(offset, Ordering::Acquire);
            let corrupt = |what| Corruption { what, value: raw };
            let frame_span = |len: u64| {
                let span = frame_len(len);
                if span > room {
                    Err(corrupt("mpsc frame beyond claimed bytes or ring end"))
                } else {
                    Ok(span)
                }
            };
            match Word::decode(raw, MAX_SENDERS).ok_or_else(|| corrupt("mpsc frame header"))? {
                Word::Pad { len } => {
                    if len != to_end || len > room {
                        return Err(corrupt("mpsc padding frame of wrong length"));
                    }
                    self.release_to(layout, self.head.wrapping_add(len));
                }
                Word::Skip { len } => {
                    let span = frame_span(len)?;
                    self.release_to(layout, self.head.wrapping_add(span));
                }
                Word::Data { len, .. } => {
                    let span = frame_span(len)?;
                    return Ok(Peek::Frame(Frame {
                        offset,
                        len: len as usize,
                        span,
                    }));
                }
                Word::Claimed { len, slot } => {
                    let span = frame_span(len)?;
                    let dead = match is_dead.as_mut() {
                        Some(is_dead) => is_dead(slot),
                        None => false,
                    };
                    if !dead {
                        self.flush_releases(layout);
                        return Ok(Peek::Blocked);
                    }
                    self.abandoned += 1;
                    self.release_to(layout, self.head.wrapping_add(span));
                }
                Word::Empty => {
                    let Some(is_dead) = is_dead.as_mut() else {
                        self.flush_releases(layout);
                        return Ok(Peek::Blocked);
                    };
                    match self.intent_covering(layout, &mut **is_dead, room)? {
                        Covering::DeadUntil(end) => {
                            self.abandoned += 1;
                            self.release_to(layout, end);
                        }
                        Covering::Live => {
                            self.flush_releases(layout);
                            return Ok(Peek::Blocked);
                        }
                        Covering::Nobody => {
                            // No intent covers the head: no producer claimed this space, or
                            // the claimer committed (its newer intent, stored with Release
                            // after the commit, would then be visible — and so the commit).
                            // SYNC: frame committed (as above).
                            let again = layout.data().load_word(offset, Ordering::Acquire);
                            if again == 0 {
                                return Err(Corruption {
                                    what: "mpsc claimed bytes no producer is writing",
                                    value: self.head,
                                });
                            }
                            // Committed meanwhile: look again.
                        }
                    }
                }
            }
        }
    }

    /// With header 0 at `head`: whose claim intent covers it.
    fn intent_covering(
        &self,
        layout: &Layout,
        is_dead: &mut dyn FnMut(usize) -> bool,
        room: u64,
    ) -> Result<Covering, Corruption> {
        let mut end: Option<u64> = None;
        for index in 0..MAX_SENDERS {
            let slot = layout.slot(index);
            // SYNC: claim intent. Acquire pairs with the producers' Release stores of their
            // intents: what a producer committed before its newest intent is visible.
            let start_untrusted = slot.intent_start.load(Ordering::Acquire);
            let stop_untrusted = slot.intent_end.load(Ordering::Acquire);
            if !covers(start_untrusted, stop_untrusted, self.head) {
                continue;
            }
            if !is_dead(index) {
                return Ok(Covering::Live);
            }
            // Re-read after the liveness check: the values a dead producer left.
            // Acquire: SYNC: claim intent (as above).
            let start_untrusted = slot.intent_start.load(Ordering::Acquire);
            let stop_untrusted = slot.intent_end.load(Ordering::Acquire);
            if covers(start_untrusted, stop_untrusted, self.head) {
                let nearer = |e: u64| {
                    if before(stop_untrusted, e) {
                        stop_untrusted
                    } else {
                        e
                    }
                };
                end = Some(end.map_or(stop_untrusted, nearer));
            }
        }
        match end {
            Some(stop_untrusted)
                if stop_untrusted % 8 != 0 || stop_untrusted.wrapping_sub(self.head) > room =>
            {
                Err(Corruption {
                    what: "mpsc claim intent beyond claimed bytes or ring end",
                    value: stop_untrusted,
                })
            }
            Some(stop) => Ok(Covering::DeadUntil(stop)),
            None => Ok(Covering::Nobody),
        }
    }

    /// Frees `frame` (returned by the last `try_peek`).
    pub(crate) fn release(&mut self, layout: &Layout, frame: Frame) {
        debug_assert_eq!(frame.offset, self.head & self.mask);
        self.release_to(layout, self.head.wrapping_add(frame.span));
    }

    /// Zeroes `[head, end)` and makes `end` the new head, stored in shared memory unless
    /// it may wait in a batch. `end` lies within the claimed bytes and does not cross the
    /// ring end (checked by the callers).
    fn release_to(&mut self, layout: &Layout, end: u64) {
        layout
            .data()
            .zero(self.head & self.mask, end.wrapping_sub(self.head));
        self.head = end;
        if self.head.wrapping_sub(self.published_head) > self.release_batch {
            self.publish_head(layout);
        }
    }

    /// Lets up to `bytes` (at most half the ring) of released frames wait before the head
    /// is stored; stores what waits now.
    pub(crate) fn set_release_batch(&mut self, layout: &Layout, bytes: u64) {
        let capacity = self.mask + 1;
        self.release_batch = bytes.min(capacity / 2);
        self.flush_releases(layout);
    }

    /// Stores the head if released frames wait in a batch.
    pub(crate) fn flush_releases(&mut self, layout: &Layout) {
        if self.head != self.published_head {
            self.publish_head(layout);
        }
    }

    /// The head last stored in shared memory.
    pub(crate) fn published_head(&self) -> u64 {
        self.published_head
    }

    fn publish_head(&mut self, layout: &Layout) {
        self.published_head = self.head;
        // SYNC: space released. Release pairs with the Acquire load of `head` in
        // `ClaimCursor::refresh_head`: our copies and zeroing happen before producers reuse it.
        layout.head().store(self.head, Ordering::Release);
    }

    /// Whether the consumer has passed everything producer `slot` ever claimed, so the slot
    /// may be recycled.
    pub(crate) fn passed_intent(&self, layout: &Layout, slot: usize) -> bool {
        let slot = layout.slot(slot);
        // Acquire: SYNC: claim intent; a stale value only delays recycling.
        let start_untrusted = slot.intent_start.load(Ordering::Acquire);
        let end_untrusted = slot.intent_end.load(Ordering::Acquire);
        start_untrusted == end_untrusted || !before(self.head, end_untrusted)
    }
}

/// Whose claim intent covers a zero header at `head`.
enum Covering {
    /// A live producer's: it is still writing.
    Live,
    /// Only dead producers': skip to the nearest end of their claims.
    DeadUntil(u64),
    /// Nobody's.
    Nobody,
}
