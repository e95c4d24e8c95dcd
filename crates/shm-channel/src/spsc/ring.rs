//! The SPSC byte ring: the algorithm, without blocking, deadlines or ownership checks
//! (the endpoint core adds those).
//!
//! Indices are byte positions that only grow (`u64`: they never wrap in practice, but a
//! position taken over from shared memory may be anything, so all index arithmetic wraps and
//! all comparisons are on wrapping differences); `position & mask` is the offset in the data
//! area (a power-of-two capacity divides 2^64, so wrapping keeps offsets consistent). The writer owns `tail`, the reader owns
//! `head`; each keeps its own copy privately and caches the other's, re-loading the shared
//! one only when the cache says full (writer) or empty (reader).
//!
//! Every value loaded from shared memory is loaded once and validated before use: a shared
//! index must be 8-aligned, move forward, and stay within `capacity` of ours; a frame header
//! must decode and its frame must lie inside the published bytes and the data area. A
//! violation is a [`Corruption`], never an out-of-bounds access.

use std::sync::atomic::Ordering;

use super::layout::Layout;
use super::Spsc;
use crate::error::Corruption;
use crate::shared::frame::{frame_len, max_payload, Word, FRAME_HEADER_LEN};
use crate::shared::ownership::PeerMonitor;
use crate::shared::primitive::AtomicU64;
use crate::shared::ring::{
    aligned_index, check_tail, publish_index, queued_between, Gone, Peek, RecvRing, RingSide,
    SendRing,
};

/// Frames at least this long (header included) go to the start of the data area when
/// they find the ring empty ([`Writer::try_reserve`]).
const REWIND_MIN: u64 = 64 << 10;

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

/// Loads the frame word at `offset` of the data area.
#[inline]
fn load_header(layout: &Layout, offset: u64) -> u64 {
    // Relaxed: the frame's bytes were published by the Release store of `tail` that our
    // Acquire load in `Reader::refresh_tail` saw (SYNC: frame published).
    layout.data().load_word(offset, Ordering::Relaxed)
}

/// Stores the frame word at `offset` of the data area.
#[inline]
fn store_header(layout: &Layout, offset: u64, word: u64) {
    // Relaxed: published by the Release store of `tail` in `Writer::publish`.
    layout.data().store_word(offset, word, Ordering::Relaxed);
}

/// The sending side's private state.
pub(crate) struct Writer {
    layout: Layout,
    /// Watches the receiver's owner.
    peer: PeerMonitor,
    /// Next byte position to write: frames below it are written (maybe not yet published).
    tail: u64,
    /// The tail last stored in shared memory.
    published: u64,
    /// The reader's head as last loaded: a lower bound of the real one.
    cached_head: u64,
    mask: u64,
    /// Wake syscalls made by `publish` (for benchmarks).
    wakes: u64,
}

impl Writer {
    /// Takes over the writing side, starting from the indices in shared memory.
    pub(crate) fn new(layout: Layout) -> Result<Writer, Corruption> {
        // Acquire: pairs with our own earlier Release stores if this process wrote before.
        let tail_untrusted = layout.producer().tail.load(Ordering::Acquire);
        let tail = aligned_index(tail_untrusted, "tail not 8-byte aligned")?;
        let mask = layout.capacity() - 1;
        let mut writer = Writer {
            peer: PeerMonitor::new(&layout.status().receiver_owner),
            layout,
            tail,
            published: tail,
            cached_head: tail.wrapping_sub(mask + 1),
            mask,
            wakes: 0,
        };
        writer.refresh_head()?;
        Ok(writer)
    }

    /// Re-loads the reader's head and validates it against our tail.
    #[inline(never)]
    fn refresh_head(&mut self) -> Result<(), Corruption> {
        // SYNC: space released. Acquire pairs with the Release store of `head` in
        // `Reader::publish_head`: the reader's copies out of the bytes below `head` are
        // finished before we overwrite them.
        let head_untrusted = self.layout.consumer().head.load(Ordering::Acquire);
        let capacity = self.layout.capacity();
        if head_untrusted % 8 != 0 {
            return Err(Corruption {
                what: "head not 8-byte aligned",
                value: head_untrusted,
            });
        }
        // The head must lie in `[cached_head, tail]`: it never moves back nor passes our tail.
        if head_untrusted.wrapping_sub(self.cached_head) > self.tail.wrapping_sub(self.cached_head)
        {
            return Err(Corruption {
                what: "head outside [previous head, tail]",
                value: head_untrusted,
            });
        }
        if self.tail.wrapping_sub(head_untrusted) > capacity {
            return Err(Corruption {
                what: "head more than capacity behind tail",
                value: head_untrusted,
            });
        }
        let head = head_untrusted; // validated
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
        let capacity = self.layout.capacity();
        if self.tail.wrapping_sub(self.cached_head) + bytes <= capacity {
            return Ok(true);
        }
        self.refresh_head()?;
        Ok(self.tail.wrapping_sub(self.cached_head) + bytes <= capacity)
    }

    /// Reserves a contiguous frame for `len` payload bytes, or `None` when the ring has no
    /// room yet. `len` must be at most `max_payload(capacity)`.
    ///
    /// When the frame would cross the end of the ring, a padding frame is written and
    /// published first, so the reader can free the tail end while we wait.
    #[inline]
    pub(crate) fn try_reserve(&mut self, len: usize) -> Result<Option<Slot>, Corruption> {
        debug_assert!(len <= max_payload(self.layout.capacity(), FRAME_HEADER_LEN as u64));
        let span = frame_len(len as u64);
        let offset = self.tail & self.mask;
        let to_end = self.layout.capacity() - offset;
        if span >= REWIND_MIN && span <= offset && self.is_empty()? {
            // A large frame into an empty ring starts over at the beginning of the data
            // area, where the last such frame went: memory still in the caches of both
            // cores, instead of the next stretch of a ring several times its size (a
            // round trip of 1 MiB messages otherwise walks the whole ring). The padding
            // to the end needs no publishing of its own: the reader meets it with the
            // frame, and no one waits for room in an empty ring. `span <= offset` makes
            // padding and frame fit the empty ring.
            store_header(&self.layout, offset, Word::Pad { len: to_end }.encode());
            self.tail = self.tail.wrapping_add(to_end);
        } else if span > to_end {
            if !self.has_room(to_end)? {
                return Ok(None);
            }
            store_header(&self.layout, offset, Word::Pad { len: to_end }.encode());
            self.tail = self.tail.wrapping_add(to_end);
            self.publish();
        }
        if !self.has_room(span)? {
            return Ok(None);
        }
        Ok(Some(Slot {
            offset: self.tail & self.mask,
            max_len: len,
        }))
    }

    /// Where the payload of `slot` goes: valid for `slot.max_len` bytes until commit.
    #[inline]
    pub(crate) fn payload_ptr(&self, slot: &Slot) -> *mut u8 {
        // SAFETY (of the arithmetic, no access): `slot.offset + 8 + max_len` lies within the
        // data area, as `try_reserve` checked the frame is contiguous.
        self.layout
            .data()
            .ptr(slot.offset + FRAME_HEADER_LEN as u64)
    }

    /// Completes the frame in `slot` with `len <= slot.max_len` payload bytes (already
    /// written). The frame is visible to the reader after the next `publish`.
    #[inline]
    pub(crate) fn commit(&mut self, slot: Slot, len: usize) {
        debug_assert!(len <= slot.max_len);
        debug_assert_eq!(slot.offset, self.tail & self.mask);
        let len = len.min(slot.max_len) as u64;
        store_header(
            &self.layout,
            slot.offset,
            Word::Data { len, slot: 0 }.encode(),
        );
        self.tail = self.tail.wrapping_add(frame_len(len));
    }

    /// Committed bytes not yet published.
    #[inline]
    pub(crate) fn unpublished(&self) -> u64 {
        self.tail.wrapping_sub(self.published)
    }

    /// Makes every committed frame visible to the reader and wakes it if it sleeps.
    #[inline]
    pub(crate) fn publish(&mut self) {
        if self.tail == self.published {
            return;
        }
        self.published = self.tail;
        // SYNC: frame published. The store's Release half pairs with the Acquire load of
        // `tail` in `Reader::refresh_tail`: the frame headers and payloads written before are
        // visible to a reader that sees this tail. Release under the membarrier handshake,
        // SeqCst under the other, so that the waiter-flag check needs no fence either way
        // (SYNC: waiter flag; see `ring::publish_index`).
        let layout = &self.layout;
        let (tail, data) = (&layout.producer().tail, layout.data_wake());
        if publish_index(layout.handshake(), tail, self.tail, data) {
            self.wakes += 1;
        }
    }
}

/// The receiving side's private state.
pub(crate) struct Reader {
    layout: Layout,
    /// Watches the sender's owner.
    peer: PeerMonitor,
    /// Next byte position to read.
    head: u64,
    /// The writer's tail as last loaded: an upper bound of what may be read.
    cached_tail: u64,
    /// The head last stored in shared memory.
    published_head: u64,
    /// Released bytes that may wait before the head is stored (0: store on every release).
    release_batch: u64,
    mask: u64,
    /// Wake syscalls made by `release` (for benchmarks).
    wakes: u64,
}

impl Reader {
    /// Takes over the reading side, starting from the indices in shared memory.
    pub(crate) fn new(layout: Layout) -> Result<Reader, Corruption> {
        // Acquire: pairs with our own earlier Release stores if this process read before.
        let head_untrusted = layout.consumer().head.load(Ordering::Acquire);
        let head = aligned_index(head_untrusted, "head not 8-byte aligned")?;
        let mask = layout.capacity() - 1;
        let mut reader = Reader {
            peer: PeerMonitor::new(&layout.status().sender_owner),
            layout,
            head,
            cached_tail: head,
            published_head: head,
            release_batch: 0,
            mask,
            wakes: 0,
        };
        reader.refresh_tail()?;
        Ok(reader)
    }

    /// Re-loads the writer's tail and validates it against our head.
    #[inline(never)]
    fn refresh_tail(&mut self) -> Result<(), Corruption> {
        // SYNC: frame published (see `Writer::publish`).
        let tail_untrusted = self.layout.producer().tail.load(Ordering::Acquire);
        let tail = check_tail(
            tail_untrusted,
            self.head,
            self.cached_tail,
            self.layout.capacity(),
        )?;
        self.cached_tail = tail;
        Ok(())
    }

    /// The next complete frame, or `None` when nothing is published. Padding frames are
    /// skipped (and released at once).
    #[inline]
    pub(crate) fn try_peek(&mut self) -> Result<Option<Frame>, Corruption> {
        loop {
            if self.head == self.cached_tail {
                self.refresh_tail()?;
                if self.head == self.cached_tail {
                    // Empty: whatever was released in a batch is handed back now, before
                    // the caller returns or waits (a writer may be waiting for it).
                    self.flush_releases();
                    return Ok(None);
                }
            }
            let offset = self.head & self.mask;
            let available = self.cached_tail.wrapping_sub(self.head);
            let to_end = self.layout.capacity() - offset;
            let word = load_header(&self.layout, offset);
            match Word::decode(word, 1) {
                Some(Word::Pad { len }) => {
                    if len != to_end || len > available {
                        return Err(Corruption {
                            what: "padding frame of wrong length",
                            value: word,
                        });
                    }
                    self.head = self.head.wrapping_add(len);
                    self.publish_head();
                }
                Some(Word::Data { len, .. }) => {
                    let span = frame_len(len);
                    if span > available || span > to_end {
                        return Err(Corruption {
                            what: "frame length beyond published bytes",
                            value: word,
                        });
                    }
                    return Ok(Some(Frame {
                        offset,
                        len: len as usize,
                        span,
                    }));
                }
                _ => {
                    return Err(Corruption {
                        what: "frame header",
                        value: word,
                    })
                }
            }
        }
    }

    /// Where the payload of `frame` is: valid for `frame.len` bytes until release.
    #[inline]
    pub(crate) fn payload_ptr(&self, frame: &Frame) -> *const u8 {
        // Arithmetic only: `try_peek` checked the frame lies inside the data area.
        self.layout
            .data()
            .ptr(frame.offset + FRAME_HEADER_LEN as u64)
    }

    /// Frees the frame returned by the last `try_peek` for the writer to reuse.
    #[inline]
    pub(crate) fn release(&mut self, frame: Frame) {
        debug_assert_eq!(frame.offset, self.head & self.mask);
        self.head = self.head.wrapping_add(frame.span);
        if self.head.wrapping_sub(self.published_head) > self.release_batch {
            self.publish_head();
        }
    }

    /// Lets up to `bytes` of released frames wait before the head is stored (0: store it
    /// on every release). The head is always stored when the ring is found empty and by
    /// [`flush_releases`](Reader::flush_releases).
    pub(crate) fn set_release_batch(&mut self, bytes: u64) {
        self.release_batch = bytes.min(self.layout.capacity() / 2);
        self.flush_releases();
    }

    /// Stores the head if released frames wait in a batch.
    pub(crate) fn flush_releases(&mut self) {
        if self.head != self.published_head {
            self.publish_head();
        }
    }

    #[inline]
    fn publish_head(&mut self) {
        self.published_head = self.head;
        // SYNC: space released. The Release half pairs with the Acquire load of `head` in
        // `Writer::refresh_head`: our copies out of the released bytes happen before the
        // writer overwrites them. Release or SeqCst by the handshake, for the fence-free
        // waiter-flag check (SYNC: waiter flag; see `ring::publish_index`).
        let layout = &self.layout;
        let (head, space) = (&layout.consumer().head, layout.space_wake());
        if publish_index(layout.handshake(), head, self.head, space) {
            self.wakes += 1;
        }
    }
}

impl RingSide for Writer {
    type Control = Spsc;

    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn owner_slot(&self) -> &AtomicU64 {
        &self.layout.status().sender_owner
    }

    fn queued(&self) -> u64 {
        // Acquire: SYNC: space released (see `Reader::publish_head`).
        let head_untrusted = self.layout.consumer().head.load(Ordering::Acquire);
        queued_between(self.tail, head_untrusted, self.layout.capacity())
    }

    fn wakes(&self) -> u64 {
        self.wakes
    }
}

impl RingSide for Reader {
    type Control = Spsc;

    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn owner_slot(&self) -> &AtomicU64 {
        &self.layout.status().receiver_owner
    }

    fn queued(&self) -> u64 {
        // Acquire: SYNC: frame published (see `Writer::publish`).
        let tail_untrusted = self.layout.producer().tail.load(Ordering::Acquire);
        queued_between(tail_untrusted, self.head, self.layout.capacity())
    }

    fn wakes(&self) -> u64 {
        self.wakes
    }
}

impl SendRing for Writer {
    type Slot = Slot;

    #[inline]
    fn try_reserve(&mut self, len: usize) -> Result<Option<Slot>, Corruption> {
        Writer::try_reserve(self, len)
    }

    #[inline]
    fn slot_len(slot: &Slot) -> usize {
        slot.max_len
    }

    #[inline]
    fn payload_ptr(&self, slot: &Slot) -> *mut u8 {
        Writer::payload_ptr(self, slot)
    }

    #[inline]
    fn commit(&mut self, slot: Slot, len: usize) {
        Writer::commit(self, slot, len);
    }

    fn abandon(&mut self, _slot: Slot) {
        // Nothing was written into the ring's indices: the space is simply reused.
    }

    #[inline]
    fn publish(&mut self) {
        Writer::publish(self);
    }

    #[inline]
    fn unpublished(&self) -> u64 {
        Writer::unpublished(self)
    }

    fn receivers_dead(&mut self) -> bool {
        self.layout.status().receiver_is_dead(&mut self.peer)
    }
}

impl RecvRing for Reader {
    type Frame = Frame;
    type Fault = Corruption;

    #[inline]
    fn try_peek(&mut self, _slow: bool) -> Result<Peek<Frame>, Corruption> {
        Ok(match Reader::try_peek(self)? {
            Some(frame) => Peek::Frame(frame),
            None => Peek::Empty,
        })
    }

    #[inline]
    fn frame_len(frame: &Frame) -> usize {
        frame.len
    }

    #[inline]
    fn payload_ptr(&self, frame: &Frame) -> *const u8 {
        Reader::payload_ptr(self, frame)
    }

    #[inline]
    fn release(&mut self, frame: Frame) {
        Reader::release(self, frame);
    }

    fn flush_releases(&mut self) {
        Reader::flush_releases(self);
    }

    fn senders_gone(&mut self, slow: bool) -> Option<Gone> {
        self.layout.status().sender_gone(slow, &mut self.peer)
    }
}
