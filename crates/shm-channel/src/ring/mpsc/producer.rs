//! One MPSC producer's private state: claim room with a CAS on the shared tail, commit in
//! place.

use std::sync::atomic::{fence, Ordering};

use super::{before, RingMem};
use crate::error::Corruption;
use crate::frame::{frame_len, Word, FRAME_HEADER_LEN};

/// A claimed frame, owned by one producer until commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// Offset of the frame header in the data area.
    pub(crate) offset: u64,
    /// Payload bytes claimed.
    pub(crate) len: usize,
}

/// One producer's private state.
pub(crate) struct Producer {
    slot: usize,
    /// The consumer's head as last loaded: a lower bound of the real one.
    cached_head: u64,
    mask: u64,
}

impl Producer {
    pub(crate) fn new<M: RingMem + ?Sized>(mem: &M, slot: usize) -> Producer {
        // Acquire: SYNC: space released (see `Consumer::release_to`).
        let head = mem.head().load(Ordering::Acquire);
        Producer {
            slot,
            cached_head: head,
            mask: mem.capacity() - 1,
        }
    }

    pub(crate) fn slot(&self) -> usize {
        self.slot
    }

    /// Reloads `head`, checked against the tail `t` this producer is about to claim from.
    /// `Ok(false)` when `t` is stale (the consumer already passed it).
    fn refresh_head<M: RingMem + ?Sized>(&mut self, mem: &M, t: u64) -> Result<bool, Corruption> {
        // SYNC: space released. Acquire pairs with the Release store of `head` in
        // `Consumer::release_to`: the consumer's copies out of, and zeroing of, the bytes
        // below `head` happen before we claim and overwrite them.
        let head_untrusted = mem.head().load(Ordering::Acquire);
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
    pub(crate) fn try_claim<M: RingMem + ?Sized>(
        &mut self,
        mem: &M,
        len: usize,
    ) -> Result<Option<Claim>, Corruption> {
        let capacity = self.mask + 1;
        let span = frame_len(len as u64);
        let slot = mem.slot(self.slot);
        loop {
            // Relaxed: the value is only a guess for the CAS below, which validates it.
            let t = mem.tail().load(Ordering::Relaxed);
            if t % 8 != 0 {
                return Err(Corruption {
                    what: "mpsc tail not 8-byte aligned",
                    value: t,
                });
            }
            let offset = t & self.mask;
            let to_end = capacity - offset;
            // A frame never crosses the ring end: pad to the end first, as its own claim.
            let need = if span > to_end { to_end } else { span };
            // Wrapping: a stale `t` behind the head gives a huge difference, "no room".
            let fits = |head: u64| t.wrapping_sub(head) <= capacity - need;
            if !fits(self.cached_head) {
                if !self.refresh_head(mem, t)? {
                    // `t` was stale (the consumer passed it), or the tail is behind the
                    // head, which no honest producer leaves.
                    // Relaxed: as above.
                    if mem.tail().load(Ordering::Relaxed) == t {
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
            let end = t.wrapping_add(need);
            // SYNC: claim intent. Release, so that a consumer that loads this intent with
            // Acquire (`Consumer::intent_covering`) also sees everything this producer
            // committed before (its earlier frame headers): a newer intent never hides an
            // older commit. The intent is also published by the CAS below (a Release RMW on
            // `tail` the consumer Acquire-loads).
            slot.intent_start.store(t, Ordering::Release);
            slot.intent_end.store(end, Ordering::Release);
            // SYNC: claim intent / claimed. AcqRel: Release publishes the intent; Acquire
            // orders our header store after every earlier claim in the chain.
            if mem
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
            if need != span {
                // SYNC: frame committed (a pad is committed at once). Pairs with the
                // consumer's Acquire load of the header word.
                mem.store_word(
                    offset,
                    Word::Pad { len: to_end }.encode(),
                    Ordering::Release,
                );
                continue;
            }
            let word = Word::Claimed {
                len: len as u64,
                slot: self.slot,
            };
            // Relaxed: a claimed header is only a hint for recovery; the fence below keeps
            // the payload stores after it, so a header still 0 means no payload was written.
            mem.store_word(offset, word.encode(), Ordering::Relaxed);
            fence(Ordering::Release);
            return Ok(Some(Claim { offset, len }));
        }
    }

    /// Commits `claim` with `len <= claim.len` payload bytes written (`keep = false`: the
    /// whole claim is discarded as a skip frame).
    pub(crate) fn commit<M: RingMem + ?Sized>(
        &mut self,
        mem: &M,
        claim: Claim,
        len: usize,
        keep: bool,
    ) {
        let len = len.min(claim.len) as u64;
        let word = if keep {
            let used = frame_len(len);
            let rest = frame_len(claim.len as u64) - used;
            if rest > 0 {
                // Relaxed: published by the Release store of the data header below.
                let skip = Word::Skip {
                    len: rest - FRAME_HEADER_LEN as u64,
                };
                mem.store_word(claim.offset + used, skip.encode(), Ordering::Relaxed);
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
        // word in `Consumer::try_peek`: the payload written before is visible to it.
        mem.store_word(claim.offset, word.encode(), Ordering::Release);
    }
}
