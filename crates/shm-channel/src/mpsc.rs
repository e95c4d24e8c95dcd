//! Fan-in: many sender processes, one receiver, variable-size frames in one shared ring.
//!
//! Senders claim room with a compare-and-swap on a shared tail, write their frame in place
//! and commit it by storing its header word last (Release); the receiver reads frames in
//! claim order and never sees an uncommitted one. Each sender's own messages arrive in the
//! order it sent them; messages of different senders interleave in claim order.
//!
//! Each sender owns one of [`MAX_SENDERS`] (64) producer slots in the control block, which
//! records the owning process (for hand-over across `fork` and liveness) and the claim it
//! is working on. [`Sender::try_clone`] takes a new slot, or fails with an error when all 64
//! are taken. `Sender` is deliberately not `Clone`: other processes can hold the slots, so
//! a clone can fail, and an infallible `clone` would have to panic.
//!
//! # A sender that dies
//!
//! A sender killed between claim and commit leaves a claimed frame at some point of the
//! ring. When the receiver is blocked behind it, it asks the kernel (pidfd) whether the
//! claimer is alive at each slow check — every
//! [`SLOW_CHECK_INTERVAL`] (10 ms) of a blocking
//! call, or on a `try_*` call once the frame has blocked the ring that long. If it is dead,
//! the frame is skipped (never returned, not even in part), counted in
//! [`Receiver::abandoned_frames`], and the other senders carry on. Its slot is recycled
//! once the receiver has passed (read or skipped) everything it claimed: by the receiver at
//! its slow checks ([`Receiver::dead_senders`] counts them), or, while the ring is too busy
//! for the receiver ever to wait, by a new sender ([`Sender::attach`],
//! [`Sender::try_clone`]) that finds no free slot and takes a dead sender's over (its
//! place in the sender count passes to the newcomer; it is not counted in
//! `dead_senders`). When no sender is left, `recv` returns [`RecvError::Disconnected`]
//! after the last message, or [`RecvError::PeerDied`] if at least one sender was found dead
//! by the receiver.
//!
//! # Examples
//!
//! ```
//! let (tx, mut rx) = shm_channel::mpsc::channel(4096)?;
//! let mut tx2 = tx.try_clone()?;
//! let mut tx = tx;
//! tx.send(b"from one")?;
//! tx2.send(b"from two")?;
//! assert_eq!(rx.recv()?, b"from one");
//! assert_eq!(rx.recv()?, b"from two");
//!
//! // Zero-copy: claim, write in place, commit.
//! let mut grant = tx.reserve(16)?;
//! grant.write_at(0, b"in place")?;
//! grant.commit(8);
//! assert_eq!(rx.recv()?, b"in place");
//!
//! drop((tx, tx2));
//! assert_eq!(rx.recv(), Err(shm_channel::RecvError::Disconnected));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shm_core::liveness::{Liveness, PeerWatch, ProcessIdentity};
use shm_core::notify::{Check, WaitStrategy, SLOW_CHECK_INTERVAL};
use shm_core::{Region, SharedMemory};

use crate::bytes::Deadline;
use crate::ownership;
use crate::{ChannelError, Corruption, OwnershipError, RecvError, SendError};

mod layout;
#[cfg(all(test, loom))]
mod loom;
mod ring;
pub mod typed;

pub use layout::region_len_for;
pub use ring::MAX_SENDERS;

use layout::{claim_free_slot, Shared};
use ring::{max_payload, Claim, Consumer, Frame, Peek, Producer, RingMem};

/// Creates an MPSC byte channel of `capacity` bytes (a power of two, at least 16) in a
/// fresh anonymous shared region; both endpoints are owned by the calling process.
pub fn channel(capacity: usize) -> Result<(Sender, Receiver), ChannelError> {
    Builder::new(capacity).create()
}

/// Options for creating an MPSC channel.
///
/// ```
/// use shm_channel::mpsc::Builder;
/// use shm_core::notify::WaitStrategy;
/// let (tx, rx) = Builder::new(1 << 16).wait_strategy(WaitStrategy::Park).create()?;
/// assert_eq!(tx.capacity(), 1 << 16);
/// # Ok::<(), shm_channel::ChannelError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until a channel is created from it"]
pub struct Builder {
    capacity: usize,
    strategy: WaitStrategy,
}

impl Builder {
    /// A channel of `capacity` bytes of frames (a power of two, 16 B to 4 GiB).
    pub fn new(capacity: usize) -> Builder {
        Builder {
            capacity,
            strategy: WaitStrategy::default(),
        }
    }

    /// How the endpoints wait when the ring is full or empty.
    pub fn wait_strategy(mut self, strategy: WaitStrategy) -> Builder {
        self.strategy = strategy;
        self
    }

    /// Creates the channel in a fresh anonymous shared region (inherited across `fork`).
    pub fn create(&self) -> Result<(Sender, Receiver), ChannelError> {
        let len = region_len_for(self.capacity).ok_or(ChannelError::InvalidCapacity {
            capacity: self.capacity as u64,
            reason: "too large for this address space",
        })?;
        self.create_in(Arc::new(Region::anonymous(len)?))
    }

    /// Creates the channel in a caller's region (overwriting it).
    pub fn create_in(
        &self,
        memory: Arc<dyn SharedMemory>,
    ) -> Result<(Sender, Receiver), ChannelError> {
        let shared = Shared::create(memory, self.capacity)?;
        let me = ownership::me()?.to_raw();
        // Relaxed: published to other processes by the fork or attach that follows.
        shared.status().receiver_owner.store(me, Ordering::Relaxed);
        let sender = Sender::new_in_slot(shared.clone(), self.strategy)?;
        let receiver = Receiver::from_shared(shared, self.strategy)?;
        Ok((sender, receiver))
    }
}

/// Checks that the tail and head of a region just attached to are sane.
fn corrupt_attach(corruption: Corruption) -> ChannelError {
    ChannelError::Corrupted(corruption)
}

/// One sending end of an MPSC byte channel. [`try_clone`](Sender::try_clone) it for more
/// senders, and hand them to forked children (`shm-fork`'s `Inherit`).
pub struct Sender {
    shared: Shared,
    producer: Producer,
    strategy: WaitStrategy,
    watch: PeerWatch,
}

/// Why `reserve` failed.
pub type ReserveError = SendError<()>;

impl Sender {
    /// Takes a free producer slot for the calling process.
    fn new_in_slot(shared: Shared, strategy: WaitStrategy) -> Result<Sender, ChannelError> {
        let me = ownership::me()?.to_raw();
        let slot = claim_free_slot(&shared, me).ok_or(ChannelError::InvalidCapacity {
            capacity: MAX_SENDERS as u64,
            reason: "every sender slot of the channel is taken",
        })?;
        let producer = Producer::new(&shared, slot);
        Ok(Sender {
            shared,
            producer,
            strategy,
            watch: PeerWatch::new(),
        })
    }

    /// Attaches as a new sender to a channel created in `memory` by another process.
    pub fn attach(memory: Arc<dyn SharedMemory>) -> Result<Sender, ChannelError> {
        let shared = Shared::attach(memory)?;
        // Validate the indices once before use.
        Consumer::new(&shared).map_err(corrupt_attach)?;
        Sender::new_in_slot(shared, WaitStrategy::default())
    }

    /// Another sender of the same channel, in a new producer slot owned by the calling
    /// process. Fails when all [`MAX_SENDERS`] slots are taken.
    pub fn try_clone(&self) -> Result<Sender, ChannelError> {
        Sender::new_in_slot(self.shared.clone(), self.strategy)
    }

    /// The producer slot this sender owns (`0 .. MAX_SENDERS`).
    pub fn slot(&self) -> usize {
        self.producer.slot()
    }

    /// Changes how this endpoint waits.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.strategy = strategy;
    }

    /// Capacity of the ring in bytes.
    pub fn capacity(&self) -> usize {
        self.shared.capacity() as usize
    }

    /// The largest message: the capacity less one frame header.
    pub fn max_message_len(&self) -> usize {
        max_payload(self.shared.capacity())
    }

    /// The shared memory the channel lives in.
    pub fn memory(&self) -> &Arc<dyn SharedMemory> {
        self.shared.memory()
    }

    /// Sends `msg`, waiting for room as long as it takes.
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

    fn send_with_deadline(&mut self, msg: &[u8], deadline: Deadline) -> Result<(), SendError<()>> {
        let claim = self.claim(msg.len(), deadline)?;
        self.shared
            .write_bytes(claim.offset + crate::frame::FRAME_HEADER_LEN as u64, msg);
        self.producer.commit(&self.shared, claim, msg.len(), true);
        self.shared.events().data.notify();
        Ok(())
    }

    /// Claims room for a message of up to `max_len` bytes, to be written in place and
    /// committed with [`WriteGrant::commit`]; waits as long as it takes.
    pub fn reserve(&mut self, max_len: usize) -> Result<WriteGrant<'_>, ReserveError> {
        self.reserve_with_deadline(max_len, Deadline::Never)
    }

    /// [`reserve`](Sender::reserve), without waiting.
    pub fn try_reserve(&mut self, max_len: usize) -> Result<WriteGrant<'_>, ReserveError> {
        self.reserve_with_deadline(max_len, Deadline::Now)
    }

    /// [`reserve`](Sender::reserve), waiting at most `timeout`.
    pub fn reserve_timeout(
        &mut self,
        max_len: usize,
        timeout: Duration,
    ) -> Result<WriteGrant<'_>, ReserveError> {
        self.reserve_with_deadline(max_len, Deadline::after(timeout))
    }

    pub(crate) fn reserve_with_deadline(
        &mut self,
        max_len: usize,
        deadline: Deadline,
    ) -> Result<WriteGrant<'_>, ReserveError> {
        let claim = self.claim(max_len, deadline)?;
        Ok(WriteGrant {
            sender: self,
            claim,
            done: false,
        })
    }

    fn claim(&mut self, len: usize, deadline: Deadline) -> Result<Claim, SendError<()>> {
        let max = self.max_message_len();
        if len > max {
            return Err(SendError::TooLarge((), max));
        }
        if self.receiver_closed() {
            return Err(SendError::Disconnected(()));
        }
        match self.producer.try_claim(&self.shared, len) {
            Ok(Some(claim)) => return Ok(claim),
            Ok(None) => {}
            Err(corruption) => return Err(SendError::Corrupted((), corruption)),
        }
        if let Deadline::Now = deadline {
            return Err(if self.receiver_dead() {
                SendError::PeerDied(())
            } else {
                SendError::Full(())
            });
        }
        let events = self.shared.events_detached();
        let strategy = self.strategy;
        let waited = events
            .space
            .wait_until(&strategy, deadline.instant(), |check| {
                if self.receiver_closed() {
                    return Some(Err(SendError::Disconnected(())));
                }
                match self.producer.try_claim(&self.shared, len) {
                    Ok(Some(claim)) => Some(Ok(claim)),
                    Err(corruption) => Some(Err(SendError::Corrupted((), corruption))),
                    Ok(None) if check == Check::Slow && self.receiver_dead() => {
                        Some(Err(SendError::PeerDied(())))
                    }
                    Ok(None) => None,
                }
            });
        waited.unwrap_or(Err(SendError::Timeout(())))
    }

    fn receiver_closed(&self) -> bool {
        // SYNC: closed. Acquire pairs with the Release store in `Receiver::drop`.
        self.shared.status().receiver_closed.load(Ordering::Acquire) != 0
    }

    fn receiver_dead(&mut self) -> bool {
        ownership::peer_dead(&self.shared.status().receiver_owner, &mut self.watch)
    }

    fn owner_slot(&self) -> &crate::primitive::AtomicU64 {
        &self.shared.slot(self.producer.slot()).owner
    }

    /// In the process that owns this sender: makes process `to` its owner (see
    /// [`bytes::Sender::hand_over`](crate::bytes::Sender::hand_over)).
    pub fn hand_over(&self, to: ProcessIdentity) -> Result<(), OwnershipError> {
        ownership::hand_over(self.owner_slot(), to)
    }

    /// In a child created by `fork`: takes ownership of this sender from the parent.
    pub fn adopt(&self) -> Result<(), OwnershipError> {
        ownership::adopt(self.owner_slot())
    }

    /// Whether the calling process owns this sender.
    pub fn is_owned_here(&self) -> bool {
        ownership::owned_here(self.owner_slot())
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        if !self.is_owned_here() {
            return; // a copy in a process that does not own this sender
        }
        // SYNC: sender gone. Release (in the RMW below): every frame this sender committed
        // happens before a receiver that sees the count drop.
        ownership::release(self.owner_slot());
        self.shared.status().senders.fetch_sub(1, Ordering::AcqRel);
        self.shared.events().data.notify();
    }
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("mpsc::Sender")
            .field("slot", &self.producer.slot())
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

/// Room claimed in the ring for one message, written in place. Dropping it without
/// [`commit`](WriteGrant::commit) commits a filler the receiver skips: nothing is
/// delivered, and the ring is not held up.
pub struct WriteGrant<'a> {
    sender: &'a mut Sender,
    claim: Claim,
    done: bool,
}

impl WriteGrant<'_> {
    /// Bytes claimed.
    pub fn len(&self) -> usize {
        self.claim.len
    }

    /// Whether zero bytes were claimed.
    pub fn is_empty(&self) -> bool {
        self.claim.len == 0
    }

    /// Copies `bytes` into the grant at `offset`.
    pub fn write_at(&mut self, offset: usize, bytes: &[u8]) -> Result<(), crate::GrantBounds> {
        let end = offset.checked_add(bytes.len());
        if end.is_none_or(|end| end > self.claim.len) {
            return Err(crate::GrantBounds {
                offset,
                len: bytes.len(),
                grant_len: self.claim.len,
            });
        }
        let at = self.claim.offset + (crate::frame::FRAME_HEADER_LEN + offset) as u64;
        self.sender.shared.write_bytes(at, bytes);
        Ok(())
    }

    /// The claimed bytes, for writing in place: valid for [`len`](WriteGrant::len) bytes
    /// until the grant is committed or dropped. Shared memory: write through the pointer,
    /// never form a `&mut [u8]` over it.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.sender.shared.payload_ptr(self.claim.offset)
    }

    /// Commits the first `len` bytes (at most [`len`](WriteGrant::len)) as one message.
    pub fn commit(mut self, len: usize) {
        self.done = true;
        let sender = &mut *self.sender;
        sender
            .producer
            .commit(&sender.shared, self.claim, len, true);
        sender.shared.events().data.notify();
    }
}

impl Drop for WriteGrant<'_> {
    fn drop(&mut self) {
        if !self.done {
            let sender = &mut *self.sender;
            sender.producer.commit(&sender.shared, self.claim, 0, false);
            sender.shared.events().data.notify();
        }
    }
}

/// The receiving end of an MPSC byte channel.
pub struct Receiver {
    shared: Shared,
    consumer: Consumer,
    strategy: WaitStrategy,
    /// One kernel watch per producer slot.
    watches: Vec<PeerWatch>,
    /// When a `try_*` call may next make slow checks (liveness syscalls).
    next_slow: Option<Instant>,
    /// Senders found dead and reaped.
    dead_senders: u64,
}

impl Receiver {
    fn from_shared(shared: Shared, strategy: WaitStrategy) -> Result<Receiver, ChannelError> {
        let consumer = Consumer::new(&shared).map_err(corrupt_attach)?;
        Ok(Receiver {
            shared,
            consumer,
            strategy,
            watches: (0..MAX_SENDERS).map(|_| PeerWatch::new()).collect(),
            next_slow: None,
            dead_senders: 0,
        })
    }

    /// Attaches as the receiver to a channel created in `memory` by another process.
    /// Refused while another live process owns the receiver.
    pub fn attach(memory: Arc<dyn SharedMemory>) -> Result<Receiver, ChannelError> {
        let shared = Shared::attach(memory)?;
        let mut watch = PeerWatch::new();
        ownership::claim(&shared.status().receiver_owner, &mut watch)?;
        // Relaxed: reopening; senders re-read the flag on every send.
        shared.status().receiver_closed.store(0, Ordering::Relaxed);
        Receiver::from_shared(shared, WaitStrategy::default())
    }

    /// Changes how this endpoint waits.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.strategy = strategy;
    }

    /// Capacity of the ring in bytes.
    pub fn capacity(&self) -> usize {
        self.shared.capacity() as usize
    }

    /// The shared memory the channel lives in.
    pub fn memory(&self) -> &Arc<dyn SharedMemory> {
        self.shared.memory()
    }

    /// Frames skipped because their sender died between claim and commit.
    pub fn abandoned_frames(&self) -> u64 {
        self.consumer.abandoned
    }

    /// Senders found dead (killed without dropping their endpoint) and whose slots were
    /// recycled.
    pub fn dead_senders(&self) -> u64 {
        self.dead_senders
    }

    /// Senders currently attached (slots in use, live or not yet found dead).
    pub fn sender_count(&self) -> u32 {
        self.shared.status().senders.load(Ordering::SeqCst)
    }

    /// Waits for the next message and returns a grant over it.
    pub fn read(&mut self) -> Result<ReadGrant<'_>, RecvError> {
        self.read_with_deadline(Deadline::Never)
    }

    /// The next message, if one is there now.
    pub fn try_read(&mut self) -> Result<ReadGrant<'_>, RecvError> {
        self.read_with_deadline(Deadline::Now)
    }

    /// Waits at most `timeout` for the next message.
    pub fn read_timeout(&mut self, timeout: Duration) -> Result<ReadGrant<'_>, RecvError> {
        self.read_with_deadline(Deadline::after(timeout))
    }

    /// Waits for the next message, copied into a new `Vec`.
    pub fn recv(&mut self) -> Result<Vec<u8>, RecvError> {
        self.read().map(|frame| frame.to_vec())
    }

    /// The next message, copied into a new `Vec`, if one is there now.
    pub fn try_recv(&mut self) -> Result<Vec<u8>, RecvError> {
        self.try_read().map(|frame| frame.to_vec())
    }

    /// Waits at most `timeout` for the next message, copied into a new `Vec`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>, RecvError> {
        self.read_timeout(timeout).map(|frame| frame.to_vec())
    }

    /// Waits for the next message and copies it into `buf`, returning its length; a longer
    /// message stays in the channel ([`RecvError::BufferTooSmall`]).
    pub fn recv_into(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        let mut frame = self.read()?;
        if frame.len() > buf.len() {
            frame.keep = true;
            return Err(RecvError::BufferTooSmall {
                needed: frame.len(),
            });
        }
        Ok(frame.copy_to(buf))
    }

    /// A blocking iterator over messages; it ends when no message can come any more.
    pub fn iter(&mut self) -> impl Iterator<Item = Vec<u8>> + '_ {
        std::iter::from_fn(move || self.recv().ok())
    }

    pub(crate) fn read_with_deadline(
        &mut self,
        deadline: Deadline,
    ) -> Result<ReadGrant<'_>, RecvError> {
        let frame = self.next_frame(deadline)?;
        Ok(ReadGrant {
            receiver: self,
            frame,
            keep: false,
        })
    }

    fn next_frame(&mut self, deadline: Deadline) -> Result<Frame, RecvError> {
        if let Some(ready) = self.poll(Check::Fast, false) {
            return ready;
        }
        if let Deadline::Now = deadline {
            // Slow checks (liveness syscalls) at most every SLOW_CHECK_INTERVAL.
            let now = Instant::now();
            let due = *self.next_slow.get_or_insert(now + SLOW_CHECK_INTERVAL);
            if now >= due {
                self.next_slow = Some(now + SLOW_CHECK_INTERVAL);
                if let Some(ready) = self.poll(Check::Slow, true) {
                    return ready;
                }
            }
            return Err(RecvError::Empty);
        }
        let events = self.shared.events_detached();
        let strategy = self.strategy;
        let waited = events
            .data
            .wait_until(&strategy, deadline.instant(), |check| {
                self.poll(check, true)
            });
        waited.unwrap_or(Err(RecvError::Timeout))
    }

    /// One look at the ring; `Some` when the call can return.
    fn poll(&mut self, check: Check, allow_slow: bool) -> Option<Result<Frame, RecvError>> {
        let slow = allow_slow && check == Check::Slow;
        let Receiver {
            shared,
            consumer,
            watches,
            ..
        } = self;
        let mut is_dead = |slot: usize| slot_dead(shared, watches, slot);
        let peeked = consumer.try_peek(
            shared,
            if slow {
                Some(&mut is_dead as &mut dyn FnMut(usize) -> bool)
            } else {
                None
            },
        );
        match peeked {
            Ok(Peek::Frame(frame)) => {
                self.next_slow = None;
                Some(Ok(frame))
            }
            Ok(Peek::Blocked) => {
                if slow {
                    self.reap_dead_senders();
                }
                None
            }
            Ok(Peek::Empty) => self.empty_reason(slow).map(Err),
            Err(corruption) => Some(Err(RecvError::Corrupted(corruption))),
        }
    }

    /// With the ring empty: `Disconnected`/`PeerDied` once no sender is left (reaping dead
    /// ones on a slow check), after one last look at the ring.
    fn empty_reason(&mut self, slow: bool) -> Option<RecvError> {
        if slow {
            self.reap_dead_senders();
        }
        // SYNC: sender gone. Acquire pairs with the release in `Sender::drop`.
        if self.shared.status().senders.load(Ordering::Acquire) != 0 {
            return None;
        }
        let reason = if self.dead_senders > 0 {
            RecvError::PeerDied
        } else {
            RecvError::Disconnected
        };
        match self.consumer.try_peek(&self.shared, None) {
            Ok(Peek::Empty) => Some(reason),
            Ok(_) => None,
            Err(corruption) => Some(RecvError::Corrupted(corruption)),
        }
    }

    /// Frees the slots of senders that died, once everything they claimed is passed. Run on
    /// every slow check of a waiting call (ring empty or blocked); while the ring stays
    /// busy there are none, and a new sender takes a dead one's slot over itself
    /// (`layout::claim_free_slot`).
    fn reap_dead_senders(&mut self) {
        for index in 0..MAX_SENDERS {
            let slot = self.shared.slot(index);
            // Acquire: see `ownership::owned_here`.
            let owner = slot.owner.load(Ordering::Acquire);
            let Some(identity) = ProcessIdentity::from_raw(owner) else {
                continue;
            };
            if self.watches[index].check(identity) == Liveness::Dead
                && self.consumer.passed_intent(&self.shared, index)
                // SYNC: owner recorded (see `ownership::swap_owner`).
                && slot
                    .owner
                    .compare_exchange(owner, 0, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                self.shared.status().senders.fetch_sub(1, Ordering::AcqRel);
                self.dead_senders += 1;
            }
        }
    }

    /// In the process that owns this endpoint: makes process `to` its owner.
    pub fn hand_over(&self, to: ProcessIdentity) -> Result<(), OwnershipError> {
        ownership::hand_over(&self.shared.status().receiver_owner, to)
    }

    /// In a child created by `fork`: takes ownership of this endpoint from the parent.
    pub fn adopt(&self) -> Result<(), OwnershipError> {
        ownership::adopt(&self.shared.status().receiver_owner)
    }

    /// Whether the calling process owns this endpoint.
    pub fn is_owned_here(&self) -> bool {
        ownership::owned_here(&self.shared.status().receiver_owner)
    }
}

/// Whether the process owning producer `slot` is gone (a free slot counts as gone).
fn slot_dead(shared: &Shared, watches: &mut [PeerWatch], slot: usize) -> bool {
    // Acquire: see `ownership::owned_here`.
    let owner = shared.slot(slot).owner.load(Ordering::Acquire);
    match ProcessIdentity::from_raw(owner) {
        None => true,
        Some(identity) => watches[slot].check(identity) == Liveness::Dead,
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let status = self.shared.status();
        if !ownership::owned_here(&status.receiver_owner) {
            return;
        }
        // SYNC: closed. Release pairs with the Acquire load in `Sender::receiver_closed`.
        status.receiver_closed.store(1, Ordering::Release);
        ownership::release(&status.receiver_owner);
        self.shared.events().space.notify();
    }
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("mpsc::Receiver")
            .field("capacity", &self.capacity())
            .field("abandoned_frames", &self.consumer.abandoned)
            .finish_non_exhaustive()
    }
}

/// A received message, still in the ring; drop it to free the space.
pub struct ReadGrant<'a> {
    receiver: &'a mut Receiver,
    frame: Frame,
    keep: bool,
}

impl ReadGrant<'_> {
    /// Length of the message in bytes.
    pub fn len(&self) -> usize {
        self.frame.len
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.frame.len == 0
    }

    /// Copies the first `min(len, buf.len())` bytes into `buf`; returns how many.
    pub fn copy_to(&self, buf: &mut [u8]) -> usize {
        self.receiver
            .consumer
            .read(&self.receiver.shared, &self.frame, buf)
    }

    /// Copies `buf.len()` bytes starting at `offset` of the message into `buf`.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<(), crate::GrantBounds> {
        let end = offset.checked_add(buf.len());
        if end.is_none_or(|end| end > self.frame.len) {
            return Err(crate::GrantBounds {
                offset,
                len: buf.len(),
                grant_len: self.frame.len,
            });
        }
        let at = self.frame.offset + (crate::frame::FRAME_HEADER_LEN + offset) as u64;
        self.receiver.shared.read_bytes(at, buf);
        Ok(())
    }

    /// The message copied into a new `Vec`.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.frame.len];
        self.copy_to(&mut out);
        out
    }

    /// The message's bytes in shared memory, valid for [`len`](ReadGrant::len) bytes while
    /// the grant lives. Copy before you validate; never form a `&[u8]` over them.
    pub fn as_ptr(&self) -> *const u8 {
        self.receiver.shared.payload_ptr(self.frame.offset)
    }
}

impl Drop for ReadGrant<'_> {
    fn drop(&mut self) {
        if !self.keep {
            let receiver = &mut *self.receiver;
            receiver.consumer.release(&receiver.shared, self.frame);
            receiver.shared.events().space.notify();
        }
    }
}
