//! The claiming side of the MPSC ring algorithm — one sender's private cursor: claim room with a CAS on the shared tail, commit in
//! place.

use std::sync::atomic::Ordering;

use super::layout::Layout;
use crate::error::Corruption;
use crate::shared::frame::{frame_len, Word, FRAME_HEADER_LEN};
use crate::shared::primitive::fence;
use crate::shared::ring::{aligned_index, before};

/// A claimed frame, owned by one producer until commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Claim {
    /// Offset of the frame header in the data area.
    pub(crate) offset: u64,
    /// Payload bytes claimed.
    pub(crate) len: usize,
}

/// Frames claimed together by [`ClaimCursor::try_claim_run`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Run {
    /// Offset of the first frame's header in the data area.
    pub(crate) offset: u64,
    /// How many of the messages got a frame (at least one).
    pub(crate) frames: usize,
}

/// One producer's private state.
pub(crate) struct ClaimCursor {
    slot: usize,
    /// The consumer's head as last loaded: a lower bound of the real one.
    cached_head: u64,
    mask: u64,
}

impl ClaimCursor {
    pub(crate) fn new(layout: &Layout, slot: usize) -> ClaimCursor {
        // Acquire: SYNC: space released (see `ReadCursor::release_to`).
        // Untrusted: only a starting guess, validated by the first `refresh_head` that needs
        // it.
        let head_untrusted = layout.head().load(Ordering::Acquire);
        ClaimCursor {
            slot,
            cached_head: head_untrusted,
            mask: layout.capacity() - 1,
        }
    }

    pub(crate) fn slot(&self) -> usize {
        self.slot
    }

    /// Reloads `head`, checked against the tail `t` this producer is about to claim from.
    /// `Ok(false)` when `t` is stale (the consumer already passed it).
    fn refresh_head(&mut self, layout: &Layout, t: u64) -> Result<bool, Corruption> {
        // SYNC: space released. Acquire pairs with the Release store of `head` in
        // `ReadCursor::release_to`: the consumer's copies out of, and zeroing of, the bytes
        // below `head` happen before we claim and overwrite them.
        let head_untrusted = layout.head().load(Ordering::Acquire);
        if head_untrusted % 8 != 0 || before(head_untrusted, self.cached_head) {
            return Err(Corruption {
                what: "mpsc head not aligned or moved backwards",
                value: head_untrusted,
            });
        }
        self.cached_head = head_untrusted;
        if before(t, head_untrusted) {
            return Ok(false);
        }
        if t.wrapping_sub(head_untrusted) > self.mask + 1 {
            return Err(Corruption {
                what: "mpsc tail more than capacity ahead of head",
                value: t,
            });
        }
        Ok(true)
    }

    /// Claims a frame for `len <= max_payload` bytes, or `None` if the ring is full now.
    pub(crate) fn try_claim(
        &mut self,
        layout: &Layout,
        len: usize,
    ) -> Result<Option<Claim>, Corruption> {
        let run = self.try_claim_run(layout, 1, &|_| len)?;
        Ok(run.map(|run| Claim {
            offset: run.offset,
            len,
        }))
    }

    /// Claims, with one CAS on the shared tail, frames for the longest prefix of `count`
    /// messages (message `i` is `len_of(i) <= max_payload` bytes long) that fits now before
    /// the ring end; `None` if not even the first fits now.
    ///
    /// The frames lie back to back from `run.offset` (frame `i + 1` starts `frame_len` of
    /// message `i` after frame `i`); each header is already `CLAIMED`. The caller commits
    /// every one of them, in order, before it claims again: the claim intent covers the
    /// whole run, so a consumer finding a header still 0 inside it knows whose it is, and
    /// skips the rest of the run if this producer dies.
    pub(crate) fn try_claim_run(
        &mut self,
        layout: &Layout,
        count: usize,
        len_of: &dyn Fn(usize) -> usize,
    ) -> Result<Option<Run>, Corruption> {
        debug_assert!(count > 0);
        let capacity = self.mask + 1;
        let first = frame_len(len_of(0) as u64);
        let slot = layout.slot(self.slot);
        loop {
            // Relaxed: the value is only a guess for the CAS below, which validates it.
            let t_untrusted = layout.tail().load(Ordering::Relaxed);
            let t = aligned_index(t_untrusted, "mpsc tail not 8-byte aligned")?;
            let offset = t & self.mask;
            let to_end = capacity - offset;
            // A frame never crosses the ring end: pad to the end first, as its own claim.
            let need = if first > to_end { to_end } else { first };
            // Wrapping: a stale `t` behind the head gives a huge difference, "no room".
            let fits = |head: u64| t.wrapping_sub(head) <= capacity - need;
            if !fits(self.cached_head) {
                if !self.refresh_head(layout, t)? {
                    // `t` was stale (the consumer passed it), or the tail is behind the
                    // head, which no honest producer leaves.
                    // Relaxed: as above.
                    if layout.tail().load(Ordering::Relaxed) == t {
                        return Err(Corruption {
                            what: "mpsc tail behind head",
                            value: t,
                        });
                    }
                    continue;
                }
                if !fits(self.cached_head) {
                    return Ok(None);
                }
            }
            // The run: as many whole frames as the free room (by the cached head, a lower
            // bound) and the ring end allow, at least the first.
            let (mut span, mut frames) = (need, usize::from(need == first));
            if need == first {
                let free = capacity - t.wrapping_sub(self.cached_head);
                let limit = free.min(to_end);
                while frames < count {
                    let next = frame_len(len_of(frames) as u64);
                    if span + next > limit {
                        break;
                    }
                    span += next;
                    frames += 1;
                }
            }
            let end = t.wrapping_add(span);
            // SYNC: claim intent. Release, so that a consumer that loads this intent with
            // Acquire (`ReadCursor::intent_covering`) also sees everything this producer
            // committed before (its earlier frame headers): a newer intent never hides an
            // older commit. The intent is also published by the CAS below (a Release RMW on
            // `tail` the consumer Acquire-loads).
            slot.intent_start.store(t, Ordering::Release);
            slot.intent_end.store(end, Ordering::Release);
            // SYNC: claim intent / claimed. AcqRel: Release publishes the intent; Acquire
            // orders our header store after every earlier claim in the chain.
            if layout
                .tail()
                .compare_exchange(t, end, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                // Lost the race: withdraw the intent, so that a stale one never makes the
                // consumer wait for us on a frame another producer claimed.
                // Release: SYNC: claim intent.
                slot.intent_end.store(t, Ordering::Release);
                std::hint::spin_loop();
                continue;
            }
            if frames == 0 {
                // SYNC: frame committed (a pad is committed at once). Pairs with the
                // consumer's Acquire load of the header word.
                layout.data().store_word(
                    offset,
                    Word::Pad { len: to_end }.encode(),
                    Ordering::Release,
                );
                continue;
            }
            let mut at = offset;
            for i in 0..frames {
                let len = len_of(i) as u64;
                let word = Word::Claimed {
                    len,
                    slot: self.slot,
                };
                // Relaxed: a claimed header is only a hint for recovery; the fence below
                // keeps the payload stores after it, so a header still 0 means no payload
                // was written.
                layout
                    .data()
                    .store_word(at, word.encode(), Ordering::Relaxed);
                at += frame_len(len);
            }
            fence(Ordering::Release);
            return Ok(Some(Run { offset, frames }));
        }
    }

    /// Commits `claim` with `len <= claim.len` payload bytes written (`keep = false`: the
    /// whole claim is discarded as a skip frame).
    pub(crate) fn commit(&mut self, layout: &Layout, claim: Claim, len: usize, keep: bool) {
        let len = len.min(claim.len) as u64;
        let word = if keep {
            let used = frame_len(len);
            let rest = frame_len(claim.len as u64) - used;
            if rest > 0 {
                // Relaxed: published by the Release store of the data header below.
                let skip = Word::Skip {
                    len: rest - FRAME_HEADER_LEN as u64,
                };
                layout
                    .data()
                    .store_word(claim.offset + used, skip.encode(), Ordering::Relaxed);
            }
            Word::Data {
                len,
                slot: self.slot,
            }
        } else {
            Word::Skip {
                len: claim.len as u64,
            }
        };
        // SYNC: frame committed. Release pairs with the consumer's Acquire load of the header
        // word in `ReadCursor::try_peek`: the payload written before is visible to it.
        layout
            .data()
            .store_word(claim.offset, word.encode(), Ordering::Release);
    }
}
