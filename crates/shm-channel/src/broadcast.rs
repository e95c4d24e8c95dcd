//! Fan-out: one sender, up to [`MAX_READERS`] (16) receivers that each see every message.
//!
//! Each receiver has its own cursor in a reader slot of the control block. The policy is
//! chosen at creation:
//!
//! - [`Policy::BackPressure`]: the sender waits for the slowest live receiver. A receiver
//!   whose process died (seen through a pidfd at the sender's slow checks, every 10 ms of
//!   waiting) is dropped from the back-pressure.
//! - [`Policy::Overwrite`]: the sender never waits; it overwrites the oldest messages. A
//!   receiver that fell behind gets [`RecvError::Lagged(n)`](RecvError::Lagged) — `n`
//!   messages it missed — and continues from the oldest message still in the ring.
//!
//! Receivers join late with [`Sender::subscribe`] (or [`Receiver::try_clone`]), starting at
//! the current tail, and leave by being dropped. With no receiver, messages are dropped.
//!
//! # Torn reads
//!
//! A receiver copies a frame out, then re-checks (seqlock-style, after an Acquire fence)
//! the sender's `oldest` word, which the sender raises *before* overwriting anything. If
//! the frame's bytes may have been overwritten during the copy, the copy is discarded and
//! the receiver reports `Lagged`: torn data is never returned.
//!
//! # Frame header (16 bytes, frames 16-aligned)
//!
//! ```text
//! word 0  stamp: sequence number of the message + 1 (a pad carries the next message's)
//! word 1  bits 0..32 length (payload, or bytes to the ring end for a pad); 32..40 tag
//! ```
//!
//! # Examples
//!
//! ```
//! use shm_channel::broadcast::{self, Policy};
//! use shm_channel::RecvError;
//!
//! let (mut tx, mut rx1) = broadcast::channel(256, Policy::Overwrite)?;
//! let mut rx2 = tx.subscribe()?;
//! tx.send(b"to everyone")?;
//! assert_eq!(rx1.recv()?, b"to everyone");
//! assert_eq!(rx2.recv()?, b"to everyone");
//!
//! // rx1 falls behind: 20 messages of 24 bytes do not fit in 256 bytes.
//! for i in 0..20u8 {
//!     tx.send(&[i; 8])?;
//! }
//! let Err(RecvError::Lagged(missed)) = rx1.try_recv() else { panic!() };
//! assert_eq!(rx1.try_recv()?, [missed as u8; 8]); // the oldest still there
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(loom)]
use ::loom::sync::atomic::fence;
use std::mem::{align_of, size_of};
#[cfg(not(loom))]
use std::sync::atomic::fence;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use shm_core::header::{self, LayoutHeader, LayoutSpec};
use shm_core::liveness::{Liveness, PeerWatch, ProcessIdentity};
use shm_core::notify::{Check, WaitStrategy};
use shm_core::{Region, SharedMemory};

use crate::bytes::Deadline;
use crate::layout::{check_capacity, split_region, EventLine};
use crate::ownership;
use crate::primitive::{AtomicU32, AtomicU64};
use crate::{ChannelError, Corruption, OwnershipError, RecvError, SendError};

#[cfg(all(test, loom))]
mod loom;
pub mod typed;

/// Most receivers a broadcast channel can have at once.
pub const MAX_READERS: usize = 16;

const HEADER: u64 = 16;
const TAG_DATA: u64 = 0xD1;
const TAG_PAD: u64 = 0xAD;

/// What the sender does when the slowest receiver has not read the oldest message yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Wait for the slowest live receiver.
    BackPressure,
    /// Overwrite the oldest messages; late receivers get `Lagged`.
    Overwrite,
}

/// Written by the sender.
#[repr(C, align(128))]
struct WriterLine {
    /// Bytes ever published. Monotonic, 16-aligned.
    tail: AtomicU64,
    /// Bytes below this position may be overwritten (raised before overwriting).
    oldest: AtomicU64,
}

/// Ownership and close state.
#[repr(C, align(128))]
struct StatusLine {
    sender_owner: AtomicU64,
    sender_closed: AtomicU32,
    /// 0 back-pressure, 1 overwrite.
    policy: AtomicU32,
}

/// One receiver's record.
#[repr(C, align(128))]
struct ReaderSlot {
    /// `ProcessIdentity` of the owning process; 0 = free.
    owner: AtomicU64,
    /// Next byte position this receiver reads.
    cursor: AtomicU64,
}

#[repr(C, align(128))]
struct HeaderSlot([u64; 16]);

#[repr(C)]
struct Control {
    header: HeaderSlot,
    writer: WriterLine,
    status: StatusLine,
    events: EventLine,
    readers: [ReaderSlot; MAX_READERS],
}

const DATA_OFFSET: usize = size_of::<Control>();

#[cfg(not(loom))]
const _: () = {
    use std::mem::offset_of;
    assert!(offset_of!(Control, writer) == 128);
    assert!(offset_of!(Control, status) == 256);
    assert!(offset_of!(Control, events) == 384);
    assert!(offset_of!(Control, readers) == 512);
    assert!(size_of::<ReaderSlot>() == 128);
    assert!(DATA_OFFSET == 512 + 16 * 128);
};

const BROADCAST_SPEC: LayoutSpec = LayoutSpec {
    magic: u64::from_le_bytes(*b"SHMBCST1"),
    version: 1,
    layout_hash: header::layout_hash(&[
        (size_of::<LayoutHeader>(), align_of::<LayoutHeader>()),
        (size_of::<Control>(), align_of::<Control>()),
        (size_of::<ReaderSlot>(), align_of::<ReaderSlot>()),
        (MAX_READERS, 1),
        (HEADER as usize, 8),
    ]),
};

/// Region bytes a broadcast channel of `capacity` needs.
pub fn region_len_for(capacity: usize) -> Option<usize> {
    DATA_OFFSET.checked_add(capacity)
}

const fn span_of(len: u64) -> u64 {
    HEADER + len.next_multiple_of(16)
}

/// A validated view of the channel's memory; the capacity is cached privately.
#[derive(Clone)]
struct Shared {
    memory: Arc<dyn SharedMemory>,
    control: *mut Control,
    data: *mut u8,
    capacity: u64,
    policy: Policy,
}

// SAFETY: pointers into memory kept alive by `memory`; reached only through atomics and
// raw-pointer copies.
unsafe impl Send for Shared {}
// SAFETY: see `Send`.
unsafe impl Sync for Shared {}

impl Shared {
    fn create(
        memory: Arc<dyn SharedMemory>,
        capacity: usize,
        policy: Policy,
    ) -> Result<Shared, ChannelError> {
        check_capacity(capacity as u64)?;
        if capacity < 32 {
            return Err(ChannelError::InvalidCapacity {
                capacity: capacity as u64,
                reason: "a broadcast ring needs at least 32 bytes",
            });
        }
        let shared = Shared::view(memory, capacity as u64, policy)?;
        let control = shared.control;
        // SAFETY: `view` checked the control block lies in the page-aligned region; nobody
        // uses it yet; `addr_of_mut!` + `write` form no reference to uninitialised lines.
        unsafe {
            std::ptr::addr_of_mut!((*control).writer).write(WriterLine {
                tail: AtomicU64::new(0),
                oldest: AtomicU64::new(0),
            });
            std::ptr::addr_of_mut!((*control).status).write(StatusLine {
                sender_owner: AtomicU64::new(0),
                sender_closed: AtomicU32::new(0),
                policy: AtomicU32::new(u32::from(policy == Policy::Overwrite)),
            });
            std::ptr::addr_of_mut!((*control).events).write(EventLine::new());
            let readers = std::ptr::addr_of_mut!((*control).readers).cast::<ReaderSlot>();
            for i in 0..MAX_READERS {
                readers.add(i).write(ReaderSlot {
                    owner: AtomicU64::new(0),
                    cursor: AtomicU64::new(0),
                });
            }
        }
        header::write(&*shared.memory, &BROADCAST_SPEC, capacity as u64)?;
        Ok(shared)
    }

    fn view(
        memory: Arc<dyn SharedMemory>,
        capacity: u64,
        policy: Policy,
    ) -> Result<Shared, ChannelError> {
        let (control, data) = split_region(&*memory, DATA_OFFSET, capacity)?;
        let control = control.cast::<Control>();
        Ok(Shared {
            memory,
            control,
            data,
            capacity,
            policy,
        })
    }

    fn writer(&self) -> &WriterLine {
        // SAFETY: inside the live region (checked in `view`), initialised by `create`,
        // atomics only.
        unsafe { &*std::ptr::addr_of!((*self.control).writer) }
    }

    fn status(&self) -> &StatusLine {
        // SAFETY: as in `writer`.
        unsafe { &*std::ptr::addr_of!((*self.control).status) }
    }

    fn events(&self) -> &EventLine {
        // SAFETY: as in `writer`.
        unsafe { &*std::ptr::addr_of!((*self.control).events) }
    }

    fn reader(&self, index: usize) -> &ReaderSlot {
        let index = index.min(MAX_READERS - 1);
        // SAFETY: as in `writer`; `index < MAX_READERS`.
        unsafe {
            &*std::ptr::addr_of!((*self.control).readers)
                .cast::<ReaderSlot>()
                .add(index)
        }
    }

    /// The data-area word at `offset` (8-aligned, in bounds: callers mask positions).
    fn word(&self, offset: u64) -> &std::sync::atomic::AtomicU64 {
        let offset = (offset % self.capacity) & !7;
        // SAFETY: `offset + 8 <= capacity` (masked, 8-aligned, capacity a multiple of 16);
        // the data area is 128-aligned in a page-aligned region and lives as long as
        // `self`; atomics tolerate concurrent writers.
        unsafe { std::sync::atomic::AtomicU64::from_ptr(self.data.add(offset as usize).cast()) }
    }

    fn mask(&self) -> u64 {
        self.capacity - 1
    }
}

/// Creates a broadcast channel of `capacity` bytes (a power of two, at least 32) in a fresh
/// anonymous shared region, with its sender and one receiver.
pub fn channel(capacity: usize, policy: Policy) -> Result<(Sender, Receiver), ChannelError> {
    let len = region_len_for(capacity).ok_or(ChannelError::InvalidCapacity {
        capacity: capacity as u64,
        reason: "too large for this address space",
    })?;
    channel_in(Arc::new(Region::anonymous(len)?), capacity, policy)
}

/// Creates a broadcast channel in a caller's region (overwriting it).
pub fn channel_in(
    memory: Arc<dyn SharedMemory>,
    capacity: usize,
    policy: Policy,
) -> Result<(Sender, Receiver), ChannelError> {
    let shared = Shared::create(memory, capacity, policy)?;
    let me = ownership::me()?.to_raw();
    // Relaxed: published to other processes by the fork that follows.
    shared.status().sender_owner.store(me, Ordering::Relaxed);
    let receiver = Receiver::join(shared.clone(), WaitStrategy::default())?;
    let sender = Sender {
        shared,
        tail: 0,
        seq: 0,
        oldest: 0,
        bound: 0,
        strategy: WaitStrategy::default(),
        watches: (0..MAX_READERS).map(|_| PeerWatch::new()).collect(),
        scratch: Vec::new(),
    };
    Ok((sender, receiver))
}

/// The sending end of a broadcast channel.
pub struct Sender {
    shared: Shared,
    /// Next byte position to write.
    tail: u64,
    /// Sequence number of the next message.
    seq: u64,
    /// Start of the oldest frame still intact.
    oldest: u64,
    /// Back-pressure: the slowest reader's cursor as last scanned (a lower bound).
    bound: u64,
    strategy: WaitStrategy,
    watches: Vec<PeerWatch>,
    /// Private buffer a typed sender encodes into before the copy into the ring (broadcast
    /// frames have no write grants); reused.
    scratch: Vec<u8>,
}

impl Sender {
    /// A new receiver, starting at the current tail (it sees messages sent from now on).
    pub fn subscribe(&self) -> Result<Receiver, ChannelError> {
        Receiver::join(self.shared.clone(), self.strategy)
    }

    /// Changes how this endpoint waits.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.strategy = strategy;
    }

    /// The largest message: the capacity less one 16-byte header.
    pub fn max_message_len(&self) -> usize {
        usize::try_from((self.shared.capacity - HEADER).min(u32::MAX as u64)).unwrap_or(usize::MAX)
    }

    /// Sends `msg` to every receiver, waiting for room (back-pressure) as long as it takes.
    pub fn send(&mut self, msg: &[u8]) -> Result<(), SendError<()>> {
        self.send_with_deadline(msg, Deadline::Never)
    }

    /// Sends `msg` if there is room now.
    pub fn try_send(&mut self, msg: &[u8]) -> Result<(), SendError<()>> {
        self.send_with_deadline(msg, Deadline::Now)
    }

    /// Sends `msg`, waiting at most `timeout` for room.
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<(), SendError<()>> {
        self.send_with_deadline(msg, Deadline::after(timeout))
    }

    /// Fills a private buffer of `len` bytes with `write`, then sends it (see
    /// [`ByteSender`](crate::endpoint::ByteSender)).
    pub(crate) fn send_encoded<E>(
        &mut self,
        len: usize,
        deadline: Deadline,
        write: impl FnOnce(*mut u8) -> Result<(), E>,
    ) -> Result<Result<(), E>, SendError<()>> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.resize(len, 0);
        let result = match write(scratch.as_mut_ptr()) {
            Ok(()) => self.send_with_deadline(&scratch, deadline).map(Ok),
            Err(e) => Ok(Err(e)),
        };
        self.scratch = scratch;
        result
    }

    fn send_with_deadline(&mut self, msg: &[u8], deadline: Deadline) -> Result<(), SendError<()>> {
        let max = self.max_message_len();
        if msg.len() > max {
            return Err(SendError::TooLarge((), max));
        }
        let span = span_of(msg.len() as u64);
        let to_end = self.shared.capacity - (self.tail & self.shared.mask());
        if span > to_end {
            self.wait_room(to_end, deadline)?;
            self.write_frame(TAG_PAD, to_end, &[])
                .map_err(|c| SendError::Corrupted((), c))?;
        }
        self.wait_room(span, deadline)?;
        self.write_frame(TAG_DATA, msg.len() as u64, msg)
            .map_err(|c| SendError::Corrupted((), c))?;
        self.seq += 1;
        Ok(())
    }

    /// Back-pressure: waits until `span` bytes fit after the slowest live reader.
    fn wait_room(&mut self, span: u64, deadline: Deadline) -> Result<(), SendError<()>> {
        if self.shared.policy == Policy::Overwrite || self.fits(span, false) {
            return Ok(());
        }
        if let Deadline::Now = deadline {
            return Err(SendError::Full(()));
        }
        let shared = self.shared.clone();
        let strategy = self.strategy;
        shared
            .events()
            .space
            .wait_until(&strategy, deadline.instant(), |check| {
                self.fits(span, check == Check::Slow).then_some(())
            })
            .map_err(|_| SendError::Timeout(()))
    }

    /// Whether `span` more bytes fit, rescanning the readers (and, on a slow check,
    /// dropping dead ones) if the cached bound says no.
    fn fits(&mut self, span: u64, slow: bool) -> bool {
        let capacity = self.shared.capacity;
        if self.tail + span - self.bound <= capacity {
            return true;
        }
        // SYNC: reader join. Pairs with the fence in `Receiver::join`: either we see the
        // joining reader's slot, or it sees our tail and starts at or after it.
        fence(Ordering::SeqCst);
        let mut bound = self.tail;
        for index in 0..MAX_READERS {
            let slot = self.shared.reader(index);
            let owner = slot.owner.load(Ordering::SeqCst);
            let Some(identity) = ProcessIdentity::from_raw(owner) else {
                continue;
            };
            // SYNC: space released. Acquire pairs with the reader's Release store of its
            // cursor: its copies out of the bytes below happen before we overwrite them.
            let cursor = slot.cursor.load(Ordering::Acquire);
            // A cursor beyond our tail is garbage: it holds nothing back. A cursor more than
            // a capacity behind cannot be a reader's position under back-pressure (we never
            // pass one); it is the stale cursor of a slot a receiver has just taken in
            // `Receiver::join` (it stores its start right after) or garbage: it holds
            // everything back until it moves or its owner is found dead, as a reader that
            // does not read would.
            if cursor > self.tail {
                continue;
            }
            if self.tail + span - cursor > capacity
                && slow
                && self.watches[index].check(identity) == Liveness::Dead
            {
                // SYNC: owner recorded (see `ownership::swap_owner`).
                let _ = slot
                    .owner
                    .compare_exchange(owner, 0, Ordering::AcqRel, Ordering::Relaxed);
                continue;
            }
            bound = bound.min(cursor);
        }
        self.bound = bound;
        self.tail + span - bound <= capacity
    }

    /// Writes one frame at the tail (overwriting the oldest frames if needed) and
    /// publishes it.
    fn write_frame(&mut self, tag: u64, len: u64, payload: &[u8]) -> Result<(), Corruption> {
        let shared = &self.shared;
        let span = if tag == TAG_PAD { len } else { span_of(len) };
        let end = self.tail + span;
        let free_from = end.saturating_sub(shared.capacity);
        if free_from > self.oldest {
            // Walk our own frames (a hostile peer may have changed them: validate).
            while self.oldest < free_from {
                // Relaxed: our own earlier store.
                let word = shared
                    .word((self.oldest & shared.mask()) + 8)
                    .load(Ordering::Relaxed);
                let (old_tag, old_len) = (word >> 32, word & u32::MAX as u64);
                let old_span = match old_tag {
                    TAG_PAD => old_len,
                    TAG_DATA => span_of(old_len),
                    _ => 0,
                };
                if old_span == 0 || old_span % 16 != 0 || old_span > self.tail - self.oldest {
                    return Err(Corruption {
                        what: "broadcast frame header overwritten by a peer",
                        value: word,
                    });
                }
                self.oldest += old_span;
            }
            // SYNC: overwrite announced. Release fence after the store: a reader whose copy
            // saw any byte we write below sees this value after its Acquire fence.
            // SYNC: oldest frame. Release store: a reader that loads this value (Acquire, in
            // `lagged` and `seq_at`) sees the frame at `oldest` and the tail that published
            // it — without it, that frame may have been written after the last Release
            // fence (when `oldest` was not raised for a while) and the reader could load a
            // stale stamp.
            shared.writer().oldest.store(self.oldest, Ordering::Release);
            fence(Ordering::Release);
        }
        let offset = self.tail & shared.mask();
        // Relaxed: published by the Release store of `tail` below.
        shared.word(offset).store(self.seq + 1, Ordering::Relaxed);
        shared
            .word(offset + 8)
            .store(len | (tag << 32), Ordering::Relaxed);
        if !payload.is_empty() {
            // SAFETY: `offset + 16 + len <= capacity` (frames never cross the ring end);
            // `payload` is private memory. Readers copying these bytes concurrently detect
            // it through `oldest` and discard their copy.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    payload.as_ptr(),
                    shared.data.add((offset + HEADER) as usize),
                    payload.len(),
                )
            };
        }
        self.tail = end;
        // SYNC: frame published. Release pairs with the Acquire load of `tail` in
        // `Receiver::poll`.
        shared.writer().tail.store(end, Ordering::Release);
        shared.events().data.notify();
        Ok(())
    }

    /// In the process that owns this endpoint: makes process `to` its owner.
    pub fn hand_over(&self, to: ProcessIdentity) -> Result<(), OwnershipError> {
        ownership::hand_over(&self.shared.status().sender_owner, to)
    }

    /// In a child created by `fork`: takes ownership of this endpoint from the parent.
    pub fn adopt(&self) -> Result<(), OwnershipError> {
        ownership::adopt(&self.shared.status().sender_owner)
    }

    /// Whether the calling process owns this endpoint.
    pub fn is_owned_here(&self) -> bool {
        ownership::owned_here(&self.shared.status().sender_owner)
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let status = self.shared.status();
        if !ownership::owned_here(&status.sender_owner) {
            return;
        }
        // SYNC: closed. Release: a receiver that sees the flag sees every frame before it.
        status.sender_closed.store(1, Ordering::Release);
        ownership::release(&status.sender_owner);
        self.shared.events().data.notify();
    }
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("broadcast::Sender")
            .field("policy", &self.shared.policy)
            .field("capacity", &self.shared.capacity)
            .finish_non_exhaustive()
    }
}

/// One receiving end of a broadcast channel.
pub struct Receiver {
    shared: Shared,
    slot: usize,
    cursor: u64,
    /// Sequence number of the message at `cursor`: found at join from the frames still in
    /// the ring (see `seq_at`), else learnt from the first frame read. While it is unknown
    /// a `Lagged` count cannot be computed and is reported as 0 (skipped silently).
    next_seq: Option<u64>,
    strategy: WaitStrategy,
    watch: PeerWatch,
}

impl Receiver {
    /// Takes a free reader slot, starting at the current tail.
    ///
    /// The slot's cursor is written only once the slot is ours: other slots belong to live
    /// receivers, whose cursors hold the sender back. Until our store below lands, the
    /// sender sees the previous owner's cursor (at or behind our start, or more than a
    /// capacity behind, which holds it back entirely — see `Sender::fits`), so it never
    /// overwrites bytes at or after our start meanwhile.
    fn join(shared: Shared, strategy: WaitStrategy) -> Result<Receiver, ChannelError> {
        let me = ownership::me()?.to_raw();
        let slot = (0..MAX_READERS)
            .find(|&i| {
                // Failure Relaxed: a taken slot's owner value is not used, we move on.
                shared
                    .reader(i)
                    .owner
                    .compare_exchange(0, me, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
            })
            .ok_or(ChannelError::InvalidCapacity {
                capacity: MAX_READERS as u64,
                reason: "every reader slot of the broadcast channel is taken",
            })?;
        // SYNC: reader join (see `Sender::fits`).
        fence(Ordering::SeqCst);
        let cursor = shared.writer().tail.load(Ordering::SeqCst);
        // Release: SYNC: space released.
        shared.reader(slot).cursor.store(cursor, Ordering::Release);
        let next_seq = seq_at(&shared, cursor);
        Ok(Receiver {
            shared,
            slot,
            cursor,
            next_seq,
            strategy,
            watch: PeerWatch::new(),
        })
    }

    /// Another receiver of the same channel, starting at the current tail.
    pub fn try_clone(&self) -> Result<Receiver, ChannelError> {
        Receiver::join(self.shared.clone(), self.strategy)
    }

    /// Changes how this endpoint waits.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.strategy = strategy;
    }

    /// Waits for the next message.
    pub fn recv(&mut self) -> Result<Vec<u8>, RecvError> {
        self.recv_with_deadline(Deadline::Never)
    }

    /// The next message, if one is there now.
    pub fn try_recv(&mut self) -> Result<Vec<u8>, RecvError> {
        self.recv_with_deadline(Deadline::Now)
    }

    /// Waits at most `timeout` for the next message.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>, RecvError> {
        self.recv_with_deadline(Deadline::after(timeout))
    }

    pub(crate) fn recv_with_deadline(&mut self, deadline: Deadline) -> Result<Vec<u8>, RecvError> {
        if let Some(ready) = self.poll(deadline_is_now(deadline)) {
            return ready;
        }
        if let Deadline::Now = deadline {
            return Err(RecvError::Empty);
        }
        let shared = self.shared.clone();
        let strategy = self.strategy;
        shared
            .events()
            .data
            .wait_until(&strategy, deadline.instant(), |check| {
                self.poll(check == Check::Slow)
            })
            .unwrap_or(Err(RecvError::Timeout))
    }

    /// One attempt; `None` when nothing is there (and the sender may still send).
    fn poll(&mut self, slow: bool) -> Option<Result<Vec<u8>, RecvError>> {
        loop {
            match self.read_one() {
                Ok(Some(Some(msg))) => return Some(Ok(msg)),
                Ok(Some(None)) => continue, // a pad
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
            let status = self.shared.status();
            // Acquire: SYNC: closed.
            let reason = if status.sender_closed.load(Ordering::Acquire) != 0 {
                RecvError::Disconnected
            } else if slow && ownership::peer_dead(&status.sender_owner, &mut self.watch) {
                RecvError::PeerDied
            } else {
                return None;
            };
            // One last look: frames published before the close are delivered.
            return match self.read_one() {
                Ok(None) => Some(Err(reason)),
                Ok(Some(Some(msg))) => Some(Ok(msg)),
                Ok(Some(None)) => continue,
                Err(e) => Some(Err(e)),
            };
        }
    }

    /// Reads the frame at the cursor: `None` if nothing is published, `Some(None)` for a
    /// pad (skipped), `Some(Some(msg))` for a message.
    fn read_one(&mut self) -> Result<Option<Option<Vec<u8>>>, RecvError> {
        let shared = &self.shared;
        // SYNC: frame published. Acquire pairs with the Release store in `write_frame`.
        let tail = shared.writer().tail.load(Ordering::Acquire);
        if tail == self.cursor {
            return Ok(None);
        }
        if tail % 16 != 0 || tail < self.cursor {
            return Err(RecvError::Corrupted(Corruption {
                what: "broadcast tail not aligned or behind our cursor",
                value: tail,
            }));
        }
        let offset = self.cursor & shared.mask();
        // Relaxed: after the Acquire load of `tail`; validated by the `oldest` re-check.
        let stamp = shared.word(offset).load(Ordering::Relaxed);
        let word = shared.word(offset + 8).load(Ordering::Relaxed);
        let (tag, len) = (word >> 32, word & u32::MAX as u64);
        let to_end = shared.capacity - offset;
        let span = match tag {
            TAG_PAD if len == to_end => len,
            TAG_DATA if span_of(len) <= to_end => span_of(len),
            _ => 0,
        };
        let mut msg = Vec::new();
        if span != 0 && tag == TAG_DATA && tail - self.cursor <= shared.capacity {
            msg = vec![0u8; len as usize];
            // SAFETY: `offset + 16 + len <= capacity` (checked: the frame does not cross the
            // ring end); `msg` is private. A concurrent overwrite is detected below.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    shared.data.add((offset + HEADER) as usize),
                    msg.as_mut_ptr(),
                    msg.len(),
                )
            };
        }
        // SYNC: overwrite announced. Pairs with the Release fence in `write_frame`.
        fence(Ordering::Acquire);
        let oldest = shared.writer().oldest.load(Ordering::Relaxed);
        if oldest > self.cursor || tail - self.cursor > shared.capacity {
            self.lagged()?;
            return Ok(Some(None)); // no count known (see `next_seq`): go on
        }
        if span == 0 || (tag == TAG_DATA && self.next_seq.is_some_and(|s| stamp != s + 1)) {
            return Err(RecvError::Corrupted(Corruption {
                what: "broadcast frame header",
                value: word,
            }));
        }
        self.cursor += span;
        if tag == TAG_DATA {
            self.next_seq = Some(stamp);
        }
        // SYNC: space released. Release pairs with the Acquire load in `Sender::fits`.
        shared
            .reader(self.slot)
            .cursor
            .store(self.cursor, Ordering::Release);
        if shared.policy == Policy::BackPressure {
            shared.events().space.notify();
        }
        Ok(Some((tag == TAG_DATA).then_some(msg)))
    }

    /// Overwritten under us: jump to the oldest frame and say how many messages we missed.
    fn lagged(&mut self) -> Result<(), RecvError> {
        let shared = &self.shared;
        loop {
            // SYNC: oldest frame. Acquire pairs with the Release store in `write_frame`.
            let oldest = shared.writer().oldest.load(Ordering::Acquire);
            let tail = shared.writer().tail.load(Ordering::Acquire);
            // `tail` was loaded after `oldest`, so it may be more than a capacity ahead;
            // but the sender raises `oldest` only to frames it published before.
            if oldest % 16 != 0 || oldest > tail {
                return Err(RecvError::Corrupted(Corruption {
                    what: "broadcast oldest not aligned or beyond the tail",
                    value: oldest,
                }));
            }
            // Relaxed: validated by the re-check below.
            let stamp = shared.word(oldest & shared.mask()).load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if shared.writer().oldest.load(Ordering::Relaxed) != oldest {
                continue; // overwritten again while we looked
            }
            let first = stamp.wrapping_sub(1);
            // The message at `oldest` comes after the one at our cursor, which is older.
            let missed = match self.next_seq {
                None => 0,
                Some(next) => first.checked_sub(next).ok_or(Corruption {
                    what: "broadcast stamp at the oldest frame behind our sequence",
                    value: stamp,
                })?,
            };
            self.cursor = oldest;
            self.next_seq = Some(first);
            // Release: SYNC: space released.
            shared
                .reader(self.slot)
                .cursor
                .store(oldest, Ordering::Release);
            return if missed == 0 {
                Ok(())
            } else {
                Err(RecvError::Lagged(missed))
            };
        }
    }

    /// In the process that owns this endpoint: makes process `to` its owner.
    pub fn hand_over(&self, to: ProcessIdentity) -> Result<(), OwnershipError> {
        ownership::hand_over(&self.shared.reader(self.slot).owner, to)
    }

    /// In a child created by `fork`: takes ownership of this endpoint from the parent.
    pub fn adopt(&self) -> Result<(), OwnershipError> {
        ownership::adopt(&self.shared.reader(self.slot).owner)
    }

    /// Whether the calling process owns this endpoint.
    pub fn is_owned_here(&self) -> bool {
        ownership::owned_here(&self.shared.reader(self.slot).owner)
    }
}

/// The sequence number of the message that will be published at `at` (a tail value loaded
/// with Acquire), from the stamp of the last frame before it: frames from `oldest` are
/// walked to `at`, then `oldest` is re-checked (seqlock-style) to know that none was
/// overwritten during the walk. `None` when it cannot be known: nothing before `at` is
/// left, the sender overwrote the frames three times in a row while we walked, or they
/// are garbage (the first read then reports it).
fn seq_at(shared: &Shared, at: u64) -> Option<u64> {
    if at == 0 {
        return Some(0);
    }
    for _ in 0..3 {
        // SYNC: oldest frame. Acquire pairs with the Release store in `write_frame`.
        let oldest = shared.writer().oldest.load(Ordering::Acquire);
        // Validated: at most a capacity of frames (at least 16 bytes each) is walked.
        if oldest >= at || oldest % 16 != 0 || at - oldest > shared.capacity {
            return None;
        }
        let (mut pos, mut next) = (oldest, None);
        while pos < at {
            let offset = pos & shared.mask();
            // Relaxed: published by the tail we loaded (`at`); validated by the re-check.
            let stamp = shared.word(offset).load(Ordering::Relaxed);
            let word = shared.word(offset + 8).load(Ordering::Relaxed);
            let (tag, len) = (word >> 32, word & u32::MAX as u64);
            let to_end = shared.capacity - offset;
            let span = match tag {
                TAG_PAD if len == to_end => len,
                TAG_DATA if span_of(len) <= to_end => span_of(len),
                _ => break,
            };
            // A message's stamp is its sequence + 1, the next one's; a pad's is the next
            // message's sequence + 1.
            next = Some(if tag == TAG_DATA {
                stamp
            } else {
                stamp.wrapping_sub(1)
            });
            pos += span;
        }
        // SYNC: overwrite announced (see `read_one`).
        fence(Ordering::Acquire);
        if shared.writer().oldest.load(Ordering::Relaxed) == oldest {
            return if pos == at { next } else { None };
        }
    }
    None
}

fn deadline_is_now(deadline: Deadline) -> bool {
    matches!(deadline, Deadline::Now)
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let slot = self.shared.reader(self.slot);
        if !ownership::owned_here(&slot.owner) {
            return;
        }
        ownership::release(&slot.owner);
        self.shared.events().space.notify();
    }
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("broadcast::Receiver")
            .field("slot", &self.slot)
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}
