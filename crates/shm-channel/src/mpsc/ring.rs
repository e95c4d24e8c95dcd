//! The MPSC ring algorithm: claim, commit, consume, and recovery from dead producers.
//!
//! Written against [`RingMem`] so that the same code runs over a shared mapping (see
//! `layout.rs`) and over loom atomics (see `loom.rs`).
//!
//! # Frame header word (8 bytes, in front of every frame)
//!
//! ```text
//! bits  0..32  length: payload bytes (claimed/data/skip) or bytes to the ring end (pad)
//! bits 32..40  tag: 0xC1 claimed, 0xD1 data (committed), 0x5C skip, 0xAD pad
//! bits 40..48  producer slot that claimed the frame (< MAX_SENDERS)
//! bits 48..64  zero
//! 0            nothing written yet (the consumer zeroes every byte it releases)
//! ```
//!
//! # Protocol
//!
//! 1. *Intent*: the producer records `[t, t + span)` in its own slot (`intent_start`,
//!    `intent_end`), where `t` is the tail it read.
//! 2. *Claim*: CAS of the shared `tail` from `t` to `t + span` (room checked against the
//!    consumer's `head`). A frame that would cross the ring end is preceded by its own pad
//!    claim, committed at once.
//! 3. The producer writes the header `CLAIMED(len, slot)`, then the payload.
//! 4. *Commit*: the header becomes `DATA(len, slot)` with a Release store. A commit of
//!    fewer bytes than claimed first writes a `SKIP` frame over the rest; a dropped grant
//!    commits the whole claim as `SKIP`.
//!
//! The consumer reads frames in claim order at `head`, copies out `DATA` frames, zeroes the
//! bytes it releases (so that "header 0" always means "claimed, header not written yet"),
//! then publishes `head` with Release. It never returns a frame that is not `DATA`.
//!
//! # Dead producers
//!
//! When the frame at `head` stays `CLAIMED` (or 0) and the consumer makes a *slow* check
//! (every 10 ms of waiting), it asks the kernel whether the claimer is alive: for a
//! `CLAIMED` header the slot is in the header; for a 0 header the claimer is the slot whose
//! recorded intent contains `head` (it wrote the intent before its claim). If that process
//! is dead, the consumer skips the claimed bytes (length from the header, or the intent's
//! end), zeroes them and counts an abandoned frame. Slots are recycled only once `head` has
//! passed their last intent, so the record cannot be overwritten while it is needed.

use std::sync::atomic::{fence, Ordering};

use crate::error::Corruption;
use crate::frame::{frame_len, FRAME_HEADER_LEN};
use crate::primitive::AtomicU64;

/// Most senders a channel can have at once (clones included): one producer slot each.
pub const MAX_SENDERS: usize = 64;

const TAG_SHIFT: u32 = 32;
const SLOT_SHIFT: u32 = 40;
const LEN_MASK: u64 = u32::MAX as u64;
const TAG_CLAIMED: u64 = 0xC1;
const TAG_DATA: u64 = 0xD1;
const TAG_SKIP: u64 = 0x5C;
const TAG_PAD: u64 = 0xAD;

/// A decoded MPSC frame header word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Word {
    /// Claimed, not written yet (the consumer zeroed it).
    Empty,
    /// Claimed by `slot` for `len` payload bytes, not committed.
    Claimed { len: u64, slot: usize },
    /// Committed message of `len` bytes.
    Data { len: u64, slot: usize },
    /// Committed filler of `len` payload bytes (span `frame_len(len)`): skip it.
    Skip { len: u64 },
    /// Filler of `len` bytes (header included) up to the end of the ring.
    Pad { len: u64 },
}

impl Word {
    pub(crate) fn encode(self) -> u64 {
        let (tag, len, slot) = match self {
            Word::Empty => return 0,
            Word::Claimed { len, slot } => (TAG_CLAIMED, len, slot),
            Word::Data { len, slot } => (TAG_DATA, len, slot),
            Word::Skip { len } => (TAG_SKIP, len, 0),
            Word::Pad { len } => (TAG_PAD, len, 0),
        };
        (len & LEN_MASK) | (tag << TAG_SHIFT) | ((slot as u64 & 0xff) << SLOT_SHIFT)
    }

    /// `None` for anything we never write (including a slot out of range).
    pub(crate) fn decode(word: u64) -> Option<Word> {
        if word == 0 {
            return Some(Word::Empty);
        }
        let len = word & LEN_MASK;
        let tag = (word >> TAG_SHIFT) & 0xff;
        let slot = ((word >> SLOT_SHIFT) & 0xff) as usize;
        if word >> 48 != 0 || slot >= MAX_SENDERS {
            return None;
        }
        match tag {
            TAG_CLAIMED => Some(Word::Claimed { len, slot }),
            TAG_DATA => Some(Word::Data { len, slot }),
            TAG_SKIP if slot == 0 => Some(Word::Skip { len }),
            TAG_PAD if slot == 0 => Some(Word::Pad { len }),
            _ => None,
        }
    }
}

/// One producer's record in the control block: owner and last claim intent.
#[repr(C, align(128))]
pub(crate) struct SenderSlot {
    /// `ProcessIdentity` of the owning process; 0 = free.
    pub(crate) owner: AtomicU64,
    /// Start of the last claim this producer attempted (byte position).
    pub(crate) intent_start: AtomicU64,
    /// End of that claim.
    pub(crate) intent_end: AtomicU64,
}

impl SenderSlot {
    pub(crate) fn new() -> SenderSlot {
        SenderSlot {
            owner: AtomicU64::new(0),
            intent_start: AtomicU64::new(0),
            intent_end: AtomicU64::new(0),
        }
    }
}

/// What the ring needs of its memory. Offsets are into the data area; callers keep them
/// 8-aligned and in bounds (implementations check and ignore out-of-bounds accesses).
pub(crate) trait RingMem: Send + Sync {
    /// Data area size: a power of two.
    fn capacity(&self) -> u64;
    /// Bytes ever claimed by producers.
    fn tail(&self) -> &AtomicU64;
    /// Bytes ever released by the consumer.
    fn head(&self) -> &AtomicU64;
    /// Producer slot `index < MAX_SENDERS`.
    fn slot(&self, index: usize) -> &SenderSlot;
    /// Loads the header word at `offset`.
    fn load_word(&self, offset: u64, order: Ordering) -> u64;
    /// Stores the header word at `offset`.
    fn store_word(&self, offset: u64, word: u64, order: Ordering);
    /// Copies `src` into the data area at `offset`.
    fn write_bytes(&self, offset: u64, src: &[u8]);
    /// Copies data-area bytes at `offset` into `dst`.
    fn read_bytes(&self, offset: u64, dst: &mut [u8]);
    /// Zeroes `len` bytes at `offset` (both multiples of 8).
    fn zero(&self, offset: u64, len: u64);
}

/// Largest payload: the whole ring less one header.
pub(crate) fn max_payload(capacity: u64) -> usize {
    let max = capacity - FRAME_HEADER_LEN as u64;
    usize::try_from(max.min(u32::MAX as u64)).unwrap_or(usize::MAX)
}

/// A claimed frame, owned by one producer until commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Claim {
    /// Offset of the frame header in the data area.
    pub(crate) offset: u64,
    /// Payload bytes claimed.
    pub(crate) len: usize,
}

/// One producer's private state.
pub(crate) struct Producer {
    slot: usize,
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
        let head = mem.head().load(Ordering::Acquire);
        if head % 8 != 0 || head < self.cached_head {
            return Err(Corruption {
                what: "mpsc head not aligned or moved backwards",
                value: head,
            });
        }
        self.cached_head = head;
        if head > t {
            return Ok(false);
        }
        if t - head > self.mask + 1 {
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
            let fits = |head: u64| {
                t.checked_sub(head)
                    .is_some_and(|used| used <= capacity - need)
            };
            if t < self.cached_head || !fits(self.cached_head) {
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
            // Relaxed: SYNC: claim intent. Published by the AcqRel CAS below, which the
            // consumer's Acquire load of `tail` (a later value of the same RMW chain) sees.
            let Some(end) = t.checked_add(need) else {
                return Err(Corruption {
                    what: "mpsc tail at the end of the index space",
                    value: t,
                });
            };
            slot.intent_start.store(t, Ordering::Relaxed);
            slot.intent_end.store(end, Ordering::Relaxed);
            // SYNC: claim intent / claimed. AcqRel: Release publishes the intent; Acquire
            // orders our header store after every earlier claim in the chain.
            if mem
                .tail()
                .compare_exchange(t, end, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                // Lost the race: withdraw the intent, so that a stale one never makes the
                // consumer wait for us on a frame another producer claimed.
                // Relaxed: SYNC: claim intent.
                slot.intent_end.store(0, Ordering::Relaxed);
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

/// A committed frame the consumer may copy out, then release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame {
    pub(crate) offset: u64,
    pub(crate) len: usize,
    pub(crate) span: u64,
}

/// What the consumer found at `head`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peek {
    /// A committed frame.
    Frame(Frame),
    /// Nothing claimed.
    Empty,
    /// A claimed frame not committed yet (its producer may be slow or dead).
    Blocked,
}

/// The consumer's private state.
pub(crate) struct Consumer {
    head: u64,
    cached_tail: u64,
    mask: u64,
    /// Frames skipped because their producer died before committing.
    pub(crate) abandoned: u64,
}

impl Consumer {
    pub(crate) fn new<M: RingMem + ?Sized>(mem: &M) -> Result<Consumer, Corruption> {
        // Acquire: our own earlier releases, if this process consumed before.
        let head = mem.head().load(Ordering::Acquire);
        if head % 8 != 0 {
            return Err(Corruption {
                what: "mpsc head not 8-byte aligned",
                value: head,
            });
        }
        let mut consumer = Consumer {
            head,
            cached_tail: head,
            mask: mem.capacity() - 1,
            abandoned: 0,
        };
        consumer.refresh_tail(mem)?;
        Ok(consumer)
    }

    fn refresh_tail<M: RingMem + ?Sized>(&mut self, mem: &M) -> Result<(), Corruption> {
        // SYNC: claim intent. Acquire pairs with the producers' AcqRel CAS of `tail`: the
        // intents recorded before the claims we see are visible.
        let tail = mem.tail().load(Ordering::Acquire);
        let available = tail.wrapping_sub(self.head);
        if tail % 8 != 0 || available > self.mask + 1 {
            return Err(Corruption {
                what: "mpsc tail not aligned or outside [head, head + capacity]",
                value: tail,
            });
        }
        if available < self.cached_tail.wrapping_sub(self.head) {
            return Err(Corruption {
                what: "mpsc tail moved backwards",
                value: tail,
            });
        }
        self.cached_tail = tail;
        Ok(())
    }

    /// The next committed frame. Skips pads and skips; with `is_dead` (a slow check), also
    /// frames whose producer died before committing (`is_dead(slot)` asks the kernel).
    pub(crate) fn try_peek<M: RingMem + ?Sized>(
        &mut self,
        mem: &M,
        mut is_dead: Option<&mut dyn FnMut(usize) -> bool>,
    ) -> Result<Peek, Corruption> {
        loop {
            if self.head == self.cached_tail {
                self.refresh_tail(mem)?;
                if self.head == self.cached_tail {
                    return Ok(Peek::Empty);
                }
            }
            let offset = self.head & self.mask;
            let to_end = self.mask + 1 - offset;
            let room = (self.cached_tail - self.head).min(to_end);
            // SYNC: frame committed. Acquire pairs with the Release store in
            // `Producer::commit` (and of a pad in `try_claim`).
            let raw = mem.load_word(offset, Ordering::Acquire);
            let corrupt = |what| Corruption { what, value: raw };
            let frame_span = |len: u64| {
                let span = frame_len(len);
                if span > room {
                    Err(corrupt("mpsc frame beyond claimed bytes or ring end"))
                } else {
                    Ok(span)
                }
            };
            match Word::decode(raw).ok_or_else(|| corrupt("mpsc frame header"))? {
                Word::Pad { len } => {
                    if len != to_end || len > room {
                        return Err(corrupt("mpsc padding frame of wrong length"));
                    }
                    self.release_to(mem, self.head + len);
                }
                Word::Skip { len } => {
                    let span = frame_span(len)?;
                    self.release_to(mem, self.head + span);
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
                        return Ok(Peek::Blocked);
                    }
                    self.abandoned += 1;
                    self.release_to(mem, self.head + span);
                }
                Word::Empty => {
                    let Some(is_dead) = is_dead.as_mut() else {
                        return Ok(Peek::Blocked);
                    };
                    match self.dead_intent_end(mem, &mut **is_dead, room)? {
                        Some(end) => {
                            self.abandoned += 1;
                            self.release_to(mem, end);
                        }
                        None => return Ok(Peek::Blocked),
                    }
                }
            }
        }
    }

    /// With header 0 at `head`: the end of the claim of a dead producer whose intent covers
    /// `head`, or `None` while any live producer's intent covers it (it is still writing)
    /// or none does (not written yet).
    fn dead_intent_end<M: RingMem + ?Sized>(
        &self,
        mem: &M,
        is_dead: &mut dyn FnMut(usize) -> bool,
        room: u64,
    ) -> Result<Option<u64>, Corruption> {
        let mut end = None;
        for index in 0..MAX_SENDERS {
            let slot = mem.slot(index);
            // Relaxed: SYNC: claim intent (ordered by our Acquire load of `tail`). A dead
            // producer no longer writes them, so they are stable once it is found dead.
            let start = slot.intent_start.load(Ordering::Relaxed);
            let stop = slot.intent_end.load(Ordering::Relaxed);
            if !(start <= self.head && self.head < stop) {
                continue;
            }
            if !is_dead(index) {
                return Ok(None);
            }
            // Re-read after the liveness check: the values a dead producer left.
            let start = slot.intent_start.load(Ordering::Relaxed);
            let stop = slot.intent_end.load(Ordering::Relaxed);
            if start <= self.head && self.head < stop {
                end = Some(end.map_or(stop, |e: u64| e.min(stop)));
            }
        }
        match end {
            Some(stop) if stop % 8 != 0 || stop - self.head > room => Err(Corruption {
                what: "mpsc claim intent beyond claimed bytes or ring end",
                value: stop,
            }),
            other => Ok(other),
        }
    }

    /// Copies the payload of `frame` (at most `dst.len()` bytes).
    pub(crate) fn read<M: RingMem + ?Sized>(
        &self,
        mem: &M,
        frame: &Frame,
        dst: &mut [u8],
    ) -> usize {
        let n = frame.len.min(dst.len());
        mem.read_bytes(frame.offset + FRAME_HEADER_LEN as u64, &mut dst[..n]);
        n
    }

    /// Frees `frame` (returned by the last `try_peek`).
    pub(crate) fn release<M: RingMem + ?Sized>(&mut self, mem: &M, frame: Frame) {
        debug_assert_eq!(frame.offset, self.head & self.mask);
        self.release_to(mem, self.head + frame.span);
    }

    /// Zeroes `[head, end)` and publishes `end` as the new head. `end` lies within the
    /// claimed bytes and does not cross the ring end (checked by the callers).
    fn release_to<M: RingMem + ?Sized>(&mut self, mem: &M, end: u64) {
        mem.zero(self.head & self.mask, end - self.head);
        self.head = end;
        // SYNC: space released. Release pairs with the Acquire load of `head` in
        // `Producer::refresh_head`: our copies and zeroing happen before producers reuse it.
        mem.head().store(end, Ordering::Release);
    }

    /// Whether the consumer has passed everything producer `slot` ever claimed, so the slot
    /// may be recycled.
    pub(crate) fn passed_intent<M: RingMem + ?Sized>(&self, mem: &M, slot: usize) -> bool {
        // Relaxed: SYNC: claim intent; a stale (smaller) value only delays recycling.
        mem.slot(slot).intent_end.load(Ordering::Relaxed) <= self.head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_garbage_is_refused() {
        for word in [
            Word::Empty,
            Word::Claimed { len: 5, slot: 63 },
            Word::Data { len: 0, slot: 1 },
            Word::Skip { len: 8 },
            Word::Pad { len: 4096 },
        ] {
            assert_eq!(Word::decode(word.encode()), Some(word));
        }
        for raw in [u64::MAX, 1 << 48, (TAG_DATA << 32) | (64 << 40), 0x7f << 32] {
            assert_eq!(Word::decode(raw), None, "{raw:#x}");
        }
    }
}
