//! Byte channels: variable-length frames through an SPSC ring in shared memory.
//!
//! # Examples
//!
//! ```
//! let (mut tx, mut rx) = shm_channel::bytes::channel(4096)?;
//! tx.send(b"hello")?;
//! assert_eq!(rx.recv()?, b"hello");
//!
//! // Zero-copy: write in place, then commit the length actually written.
//! let mut grant = tx.reserve(64)?;
//! grant.write_at(0, b"in place")?;
//! grant.commit(8);
//! let frame = rx.read()?;
//! let mut buf = [0u8; 8];
//! frame.copy_to(&mut buf);
//! assert_eq!(&buf, b"in place");
//! drop(frame); // releases the space
//!
//! drop(tx);
//! assert_eq!(rx.recv(), Err(shm_channel::RecvError::Disconnected));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use shm_core::liveness::{PeerWatch, ProcessIdentity};
use shm_core::notify::{Check, WaitStrategy};
use shm_core::{Region, SharedMemory};

use crate::layout::{check_capacity, region_len_for, Shared};
use crate::ownership;
use crate::ring::{max_payload, Frame, Reader, Slot, Writer};
use crate::{ChannelError, Corruption, OwnershipError, RecvError, SendError};

/// Creates a byte channel of `capacity` bytes (a power of two, at least 16) in a fresh
/// anonymous shared region. Both endpoints are owned by the calling process; after `fork`,
/// hand one to the child (see `shm-fork`).
pub fn channel(capacity: usize) -> Result<(Sender, Receiver), ChannelError> {
    Builder::new(capacity).create()
}

/// Options for creating or attaching to a byte channel.
///
/// ```
/// use shm_channel::bytes::Builder;
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

    /// How the endpoints wait when the ring is full or empty (default: spin, then park).
    pub fn wait_strategy(mut self, strategy: WaitStrategy) -> Builder {
        self.strategy = strategy;
        self
    }

    /// Bytes of shared memory a channel of this capacity needs.
    pub fn region_len(&self) -> Option<usize> {
        region_len_for(self.capacity)
    }

    /// Creates the channel in a fresh anonymous shared region (inherited across `fork`).
    pub fn create(&self) -> Result<(Sender, Receiver), ChannelError> {
        // Refuse a bad capacity before mapping anything.
        check_capacity(self.capacity as u64)?;
        let len = self.region_len().ok_or(ChannelError::InvalidCapacity {
            capacity: self.capacity as u64,
            reason: "too large for this address space",
        })?;
        self.create_in(Arc::new(Region::anonymous(len)?))
    }

    /// Creates the channel in a caller's region (overwriting it): both endpoints, owned by
    /// the calling process.
    pub fn create_in(
        &self,
        memory: Arc<dyn SharedMemory>,
    ) -> Result<(Sender, Receiver), ChannelError> {
        let shared = Shared::create(memory, self.capacity)?;
        let me = ownership::me()?.to_raw();
        // Relaxed: published to other processes by the fork or attach that follows, which
        // synchronises (fork copies memory; attach Acquire-loads the header's magic).
        shared.status().sender_owner.store(me, Ordering::Relaxed);
        shared.status().receiver_owner.store(me, Ordering::Relaxed);
        let sender = Sender::from_shared(shared.clone(), self.strategy)?;
        let receiver = Receiver::from_shared(shared, self.strategy)?;
        Ok((sender, receiver))
    }

    /// Creates the channel in a caller's region and returns only the sender; a receiver
    /// attaches later with [`Receiver::attach`] (from another process, over a memfd, say).
    pub fn create_sender_in(&self, memory: Arc<dyn SharedMemory>) -> Result<Sender, ChannelError> {
        let shared = Shared::create(memory, self.capacity)?;
        let me = ownership::me()?.to_raw();
        // Relaxed: as in `create_in`.
        shared.status().sender_owner.store(me, Ordering::Relaxed);
        Sender::from_shared(shared, self.strategy)
    }

    /// Creates the channel in a caller's region and returns only the receiver; a sender
    /// attaches later with [`Sender::attach`].
    pub fn create_receiver_in(
        &self,
        memory: Arc<dyn SharedMemory>,
    ) -> Result<Receiver, ChannelError> {
        let shared = Shared::create(memory, self.capacity)?;
        let me = ownership::me()?.to_raw();
        // Relaxed: as in `create_in`.
        shared.status().receiver_owner.store(me, Ordering::Relaxed);
        Receiver::from_shared(shared, self.strategy)
    }
}

pub(crate) use crate::endpoint::Deadline;

/// How much an empty/full check asks about the peer's liveness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Liveness {
    /// Not at all (a hot poll).
    Skip,
    /// At most once per slow-check interval (non-blocking calls, which may be polled).
    Throttled,
    /// Now (a blocked call's slow check).
    Now,
}

/// Counters an endpoint keeps about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// `FUTEX_WAKE` syscalls this endpoint made to wake its peer.
    pub wake_syscalls: u64,
}

/// The sending end of a byte channel.
pub struct Sender {
    writer: Writer,
    strategy: WaitStrategy,
    peer: ownership::PeerMonitor,
}

/// Why `reserve` failed: the reason, without a value to hand back.
pub type ReserveError = SendError<()>;

impl Sender {
    fn from_shared(shared: Shared, strategy: WaitStrategy) -> Result<Sender, ChannelError> {
        let writer = Writer::new(shared).map_err(corrupt_attach)?;
        Ok(Sender {
            writer,
            strategy,
            peer: ownership::PeerMonitor::default(),
        })
    }

    /// Attaches as the sender to a channel created in `memory` by another process,
    /// validating its header. Refused while another live process owns the sender.
    pub fn attach(memory: Arc<dyn SharedMemory>) -> Result<Sender, ChannelError> {
        let shared = Shared::attach(memory)?;
        let mut watch = PeerWatch::new();
        ownership::claim(&shared.status().sender_owner, &mut watch)?;
        // Relaxed: a re-attached sender reopens the channel; readers see it with the frames.
        shared.status().sender_closed.store(0, Ordering::Relaxed);
        Sender::from_shared(shared, WaitStrategy::default())
    }

    /// Changes how this endpoint waits.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.strategy = strategy;
    }

    /// Capacity of the ring in bytes.
    pub fn capacity(&self) -> usize {
        self.writer.capacity() as usize
    }

    /// The largest message this channel can carry: the capacity less one frame header.
    pub fn max_message_len(&self) -> usize {
        max_payload(self.writer.capacity())
    }

    /// Counters of this endpoint.
    pub fn stats(&self) -> EndpointStats {
        EndpointStats {
            wake_syscalls: self.writer.wakes(),
        }
    }

    /// The shared memory the channel lives in.
    pub fn memory(&self) -> &Arc<dyn SharedMemory> {
        self.writer.shared().memory()
    }

    /// Sends `msg`, waiting for room as long as it takes.
    #[inline]
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

    /// Sends `msg` but may leave it unpublished, so that a stream of messages is published
    /// in batches (one index store and wake check per batch): the message becomes visible
    /// to the receiver at the latest at the next [`flush`](Sender::flush), the next
    /// ordinary send or commit, when the ring fills, when an eighth of the ring is pending,
    /// or when the sender is dropped. Waits for room like [`send`](Sender::send).
    ///
    /// For pipelines: send deferred while input is at hand, flush before waiting for more.
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_channel::bytes::channel(4096)?;
    /// tx.send_deferred(b"a")?;
    /// tx.send_deferred(b"b")?;
    /// assert!(rx.try_recv().is_err());
    /// tx.flush();
    /// assert_eq!(rx.try_recv()?, b"a");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_deferred(&mut self, msg: &[u8]) -> Result<(), SendError<()>> {
        let slot = self.reserve_slot(msg.len(), Deadline::Never)?;
        self.write_and_commit(slot, msg);
        self.publish_if_pending();
        Ok(())
    }

    /// Publishes every message sent with [`send_deferred`](Sender::send_deferred) so far.
    pub fn flush(&mut self) {
        self.writer.publish();
    }

    #[inline]
    fn send_with_deadline(&mut self, msg: &[u8], deadline: Deadline) -> Result<(), SendError<()>> {
        let slot = self.reserve_slot(msg.len(), deadline)?;
        self.write_and_commit(slot, msg);
        self.writer.publish();
        Ok(())
    }

    #[inline]
    fn write_and_commit(&mut self, slot: Slot, msg: &[u8]) {
        let dst = self.writer.payload_ptr(&slot);
        // SAFETY: `dst` is valid for `slot.max_len == msg.len()` bytes of the data area
        // reserved for us (the reader will not read them before we publish); `msg` is
        // private memory, so the ranges do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), dst, msg.len()) };
        self.writer.commit(slot, msg.len());
    }

    /// Publishes deferred messages once an eighth of the ring is pending, so a long
    /// deferred stream reaches the receiver in steady slices.
    #[inline]
    fn publish_if_pending(&mut self) {
        if self.writer.unpublished() >= self.writer.capacity() / 8 {
            self.writer.publish();
        }
    }

    /// Reserves room for a message of up to `max_len` bytes, to be written in place and
    /// committed with [`WriteGrant::commit`]. Waits for room as long as it takes.
    pub fn reserve(&mut self, max_len: usize) -> Result<WriteGrant<'_>, ReserveError> {
        let slot = self.reserve_slot(max_len, Deadline::Never)?;
        Ok(WriteGrant { sender: self, slot })
    }

    /// [`reserve`](Sender::reserve), without waiting.
    pub fn try_reserve(&mut self, max_len: usize) -> Result<WriteGrant<'_>, ReserveError> {
        let slot = self.reserve_slot(max_len, Deadline::Now)?;
        Ok(WriteGrant { sender: self, slot })
    }

    /// [`reserve`](Sender::reserve), waiting at most `timeout`.
    pub fn reserve_timeout(
        &mut self,
        max_len: usize,
        timeout: Duration,
    ) -> Result<WriteGrant<'_>, ReserveError> {
        let slot = self.reserve_slot(max_len, Deadline::after(timeout))?;
        Ok(WriteGrant { sender: self, slot })
    }

    pub(crate) fn reserve_with_deadline(
        &mut self,
        max_len: usize,
        deadline: Deadline,
    ) -> Result<WriteGrant<'_>, ReserveError> {
        let slot = self.reserve_slot(max_len, deadline)?;
        Ok(WriteGrant { sender: self, slot })
    }

    /// Starts a batch: messages sent through it are published together when it is dropped
    /// (or when the ring fills), saving one index store and wake check per message.
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_channel::bytes::channel(4096)?;
    /// {
    ///     let mut batch = tx.batch();
    ///     for i in 0..10u8 {
    ///         batch.send(&[i])?;
    ///     }
    ///     assert!(rx.try_recv().is_err()); // not published yet
    /// }
    /// assert_eq!(rx.try_recv()?, [0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn batch(&mut self) -> Batch<'_> {
        Batch { sender: self }
    }

    #[inline]
    pub(crate) fn reserve_slot(
        &mut self,
        len: usize,
        deadline: Deadline,
    ) -> Result<Slot, SendError<()>> {
        let max = self.max_message_len();
        if len > max {
            return Err(SendError::TooLarge((), max));
        }
        if self.receiver_closed() {
            return Err(SendError::Disconnected(()));
        }
        match self.writer.try_reserve(len) {
            Ok(Some(slot)) => Ok(slot),
            Ok(None) => self.reserve_slot_when_full(len, deadline),
            Err(corruption) => Err(SendError::Corrupted((), corruption)),
        }
    }

    /// The ring was full: publish, then wait (or not) for room.
    #[cold]
    #[inline(never)]
    fn reserve_slot_when_full(
        &mut self,
        len: usize,
        deadline: Deadline,
    ) -> Result<Slot, SendError<()>> {
        // Publish what a batch holds back, so the reader can make room.
        self.writer.publish();
        if let Deadline::Now = deadline {
            let dead = self
                .peer
                .dead_throttled(&self.writer.shared().status().receiver_owner);
            return Err(if dead {
                SendError::PeerDied(())
            } else {
                SendError::Full(())
            });
        }
        // Not a clone of `Shared`: bumping its Arc would bounce the count's cache line
        // between the two sides on every wait. `self` keeps the mapping alive meanwhile.
        let events = self.writer.shared().events_detached();
        let strategy = self.strategy;
        let waited = events
            .space
            .wait_until(&strategy, deadline.instant(), |check| {
                if self.receiver_closed() {
                    return Some(Err(SendError::Disconnected(())));
                }
                match self.writer.try_reserve(len) {
                    Ok(Some(slot)) => Some(Ok(slot)),
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
        // Acquire: SYNC: closed. Pairs with the Release store in `Receiver::drop`.
        self.writer
            .shared()
            .status()
            .receiver_closed
            .load(Ordering::Acquire)
            != 0
    }

    fn receiver_dead(&mut self) -> bool {
        self.peer
            .dead_now(&self.writer.shared().status().receiver_owner)
    }

    /// In the process that owns this endpoint: makes process `to` its owner (called by
    /// `shm-fork` in the parent right after forking the child that takes the endpoint).
    /// From then on, dropping this copy does not disconnect the channel.
    pub fn hand_over(&self, to: ProcessIdentity) -> Result<(), OwnershipError> {
        ownership::hand_over(&self.writer.shared().status().sender_owner, to)
    }

    /// In a child created by `fork`: takes ownership of this endpoint from the parent.
    pub fn adopt(&self) -> Result<(), OwnershipError> {
        ownership::adopt(&self.writer.shared().status().sender_owner)
    }

    /// Whether the calling process owns this endpoint.
    pub fn is_owned_here(&self) -> bool {
        ownership::owned_here(&self.writer.shared().status().sender_owner)
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let shared = self.writer.shared().clone();
        let status = shared.status();
        if !ownership::owned_here(&status.sender_owner) {
            return; // a copy in a process that does not own the endpoint: not ours to close
        }
        self.writer.publish();
        // SYNC: closed. Release: a receiver that sees the flag sees every frame published
        // before it (it re-checks the ring after seeing the flag).
        status.sender_closed.store(1, Ordering::Release);
        ownership::release(&status.sender_owner);
        shared.events().data.notify();
    }
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("capacity", &self.capacity())
            .field("strategy", &self.strategy)
            .finish_non_exhaustive()
    }
}

/// Room reserved in the ring for one message, written in place.
///
/// Dropping it without [`commit`](WriteGrant::commit) publishes nothing.
pub struct WriteGrant<'a> {
    sender: &'a mut Sender,
    slot: Slot,
}

impl WriteGrant<'_> {
    /// Bytes reserved.
    pub fn len(&self) -> usize {
        self.slot.max_len
    }

    /// Whether zero bytes were reserved.
    pub fn is_empty(&self) -> bool {
        self.slot.max_len == 0
    }

    /// Copies `bytes` into the grant at `offset`.
    pub fn write_at(&mut self, offset: usize, bytes: &[u8]) -> Result<(), crate::GrantBounds> {
        let end = offset.checked_add(bytes.len());
        if end.is_none_or(|end| end > self.slot.max_len) {
            return Err(crate::GrantBounds {
                offset,
                len: bytes.len(),
                grant_len: self.slot.max_len,
            });
        }
        // SAFETY: `offset + bytes.len() <= max_len` (checked), so the destination lies inside
        // the reserved frame; `bytes` is private memory.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.as_mut_ptr().add(offset),
                bytes.len(),
            )
        };
        Ok(())
    }

    /// The reserved bytes, for writing in place (by an encoder, a `read(2)`, …): valid for
    /// [`len`](WriteGrant::len) bytes until the grant is committed or dropped.
    ///
    /// This is shared memory: write through the pointer, never form a `&mut [u8]` over it
    /// that a peer could see changing.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.sender.writer.payload_ptr(&self.slot)
    }

    /// Publishes the first `len` bytes (at most [`len`](WriteGrant::len)) as one message.
    pub fn commit(self, len: usize) {
        let len = len.min(self.slot.max_len);
        self.sender.writer.commit(self.slot, len);
        self.sender.writer.publish();
    }

    /// Commits, publishing only once enough is pending (see [`Sender::send_deferred`]).
    pub(crate) fn commit_deferred(self, len: usize) {
        let len = len.min(self.slot.max_len);
        self.sender.writer.commit(self.slot, len);
        self.sender.publish_if_pending();
    }

    /// Commits without publishing: for batches (see [`Batch::reserve`]).
    fn commit_unpublished(self, len: usize) {
        let len = len.min(self.slot.max_len);
        self.sender.writer.commit(self.slot, len);
    }
}

/// Messages sent through a batch are published together when it is dropped.
pub struct Batch<'a> {
    sender: &'a mut Sender,
}

impl Batch<'_> {
    /// Adds `msg` to the batch, waiting for room (which publishes the batch so far).
    pub fn send(&mut self, msg: &[u8]) -> Result<(), SendError<()>> {
        let grant = self.reserve(msg.len())?;
        // The grant is exactly `msg.len()` long.
        let BatchGrant(mut grant) = grant;
        grant
            .write_at(0, msg)
            .map_err(|_| SendError::TooLarge((), msg.len()))?;
        grant.commit_unpublished(msg.len());
        Ok(())
    }

    /// Reserves room for a message in the batch; commit it with [`BatchGrant::commit`].
    pub fn reserve(&mut self, max_len: usize) -> Result<BatchGrant<'_>, SendError<()>> {
        let slot = self.sender.reserve_slot(max_len, Deadline::Never)?;
        Ok(BatchGrant(WriteGrant {
            sender: self.sender,
            slot,
        }))
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        self.sender.writer.publish();
    }
}

/// A write grant inside a [`Batch`]: committed messages are published with the batch.
pub struct BatchGrant<'a>(WriteGrant<'a>);

impl BatchGrant<'_> {
    /// The grant's bytes, as in [`WriteGrant::as_mut_ptr`].
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.0.as_mut_ptr()
    }

    /// Copies `bytes` in at `offset`, as in [`WriteGrant::write_at`].
    pub fn write_at(&mut self, offset: usize, bytes: &[u8]) -> Result<(), crate::GrantBounds> {
        self.0.write_at(offset, bytes)
    }

    /// Adds the first `len` bytes to the batch as one message.
    pub fn commit(self, len: usize) {
        self.0.commit_unpublished(len);
    }
}

/// The receiving end of a byte channel.
pub struct Receiver {
    reader: Reader,
    strategy: WaitStrategy,
    peer: ownership::PeerMonitor,
}

impl Receiver {
    fn from_shared(shared: Shared, strategy: WaitStrategy) -> Result<Receiver, ChannelError> {
        let reader = Reader::new(shared).map_err(corrupt_attach)?;
        Ok(Receiver {
            reader,
            strategy,
            peer: ownership::PeerMonitor::default(),
        })
    }

    /// Attaches as the receiver to a channel created in `memory` by another process,
    /// validating its header. Refused while another live process owns the receiver; a dead
    /// one's place is taken over, continuing after the last message it released.
    pub fn attach(memory: Arc<dyn SharedMemory>) -> Result<Receiver, ChannelError> {
        let shared = Shared::attach(memory)?;
        let mut watch = PeerWatch::new();
        ownership::claim(&shared.status().receiver_owner, &mut watch)?;
        // Relaxed: reopening; the sender re-reads the flag on every send.
        shared.status().receiver_closed.store(0, Ordering::Relaxed);
        Receiver::from_shared(shared, WaitStrategy::default())
    }

    /// Changes how this endpoint waits.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.strategy = strategy;
    }

    /// Capacity of the ring in bytes.
    pub fn capacity(&self) -> usize {
        self.reader.capacity() as usize
    }

    /// Releases frames in batches: up to `bytes` (at most half the ring) of consumed frames
    /// may wait before the ring's head index is stored, saving a locked store per message
    /// when streaming. The head is stored anyway whenever the ring is found empty (so a
    /// sender never waits on space the receiver already freed), when a batch fills, and when
    /// the receiver is dropped. `0` (the default) stores it on every release.
    ///
    /// The cost is in crash recovery: if this process dies, a receiver that attaches in its
    /// place starts again from the last stored head, so up to `bytes` of messages already
    /// received are delivered again.
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_channel::bytes::channel(4096)?;
    /// rx.set_release_batch(1024);
    /// for i in 0..100u8 {
    ///     tx.send(&[i; 8])?;
    ///     assert_eq!(rx.recv()?, [i; 8]);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_release_batch(&mut self, bytes: usize) {
        self.reader.set_release_batch(bytes as u64);
    }

    /// Counters of this endpoint.
    pub fn stats(&self) -> EndpointStats {
        EndpointStats {
            wake_syscalls: self.reader.wakes(),
        }
    }

    /// The shared memory the channel lives in.
    pub fn memory(&self) -> &Arc<dyn SharedMemory> {
        self.reader.shared().memory()
    }

    /// Waits for the next message and returns a grant over it.
    #[inline]
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

    /// Waits for the next message and copies it into a new `Vec`.
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

    /// Waits for the next message and copies it into `buf`, returning its length. A message
    /// longer than `buf` stays in the channel: [`RecvError::BufferTooSmall`] says how long.
    #[inline]
    pub fn recv_into(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        let frame = self.read()?;
        if frame.len() > buf.len() {
            let needed = frame.len();
            frame.keep();
            return Err(RecvError::BufferTooSmall { needed });
        }
        Ok(frame.copy_to(buf))
    }

    /// A blocking iterator over messages; it ends when the channel is disconnected, the
    /// sender died, or the ring is corrupt (see [`Receiver::recv`] for the error).
    pub fn iter(&mut self) -> Iter<'_> {
        Iter { receiver: self }
    }

    #[inline]
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

    #[inline]
    fn next_frame(&mut self, deadline: Deadline) -> Result<Frame, RecvError> {
        match self.reader.try_peek()? {
            Some(frame) => Ok(frame),
            None => self.next_frame_when_empty(deadline),
        }
    }

    /// The ring was empty: say why (disconnected, dead peer) or wait.
    #[cold]
    #[inline(never)]
    fn next_frame_when_empty(&mut self, deadline: Deadline) -> Result<Frame, RecvError> {
        if let Deadline::Now = deadline {
            return Err(self
                .empty_reason(Liveness::Throttled)
                .unwrap_or(RecvError::Empty));
        }
        // See `Sender::reserve_slot`: no Arc traffic on the wait path.
        let events = self.reader.shared().events_detached();
        let strategy = self.strategy;
        let waited = events
            .data
            .wait_until(&strategy, deadline.instant(), |check| {
                match self.reader.try_peek() {
                    Ok(Some(frame)) => Some(Ok(frame)),
                    Err(corruption) => Some(Err(RecvError::Corrupted(corruption))),
                    Ok(None) => {
                        let liveness = match check {
                            Check::Slow => Liveness::Now,
                            Check::Fast => Liveness::Skip,
                        };
                        self.empty_reason(liveness).map(Err)
                    }
                }
            });
        waited.unwrap_or(Err(RecvError::Timeout))
    }

    /// With the ring found empty: `Disconnected` or `PeerDied` if no message can come any
    /// more (checking the sender's liveness as `liveness` says), after one last look at the
    /// ring.
    fn empty_reason(&mut self, liveness: Liveness) -> Option<RecvError> {
        let status = self.reader.shared().status();
        // Acquire: SYNC: closed (see `Sender::drop`).
        let reason = if status.sender_closed.load(Ordering::Acquire) != 0 {
            RecvError::Disconnected
        } else if self.sender_dead(liveness) {
            RecvError::PeerDied
        } else {
            return None;
        };
        // Frames published before the close (or the death) are still delivered: if one
        // arrived since the ring looked empty, say nothing now; the next peek returns it.
        match self.reader.try_peek() {
            Ok(None) => Some(reason),
            Ok(Some(_)) => None,
            Err(corruption) => Some(RecvError::Corrupted(corruption)),
        }
    }

    fn sender_dead(&mut self, liveness: Liveness) -> bool {
        let slot = &self.reader.shared().status().sender_owner;
        match liveness {
            Liveness::Skip => false,
            Liveness::Throttled => self.peer.dead_throttled(slot),
            Liveness::Now => self.peer.dead_now(slot),
        }
    }

    /// In the process that owns this endpoint: makes process `to` its owner (see
    /// [`Sender::hand_over`]).
    pub fn hand_over(&self, to: ProcessIdentity) -> Result<(), OwnershipError> {
        ownership::hand_over(&self.reader.shared().status().receiver_owner, to)
    }

    /// In a child created by `fork`: takes ownership of this endpoint from the parent.
    pub fn adopt(&self) -> Result<(), OwnershipError> {
        ownership::adopt(&self.reader.shared().status().receiver_owner)
    }

    /// Whether the calling process owns this endpoint.
    pub fn is_owned_here(&self) -> bool {
        ownership::owned_here(&self.reader.shared().status().receiver_owner)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if !ownership::owned_here(&self.reader.shared().status().receiver_owner) {
            return;
        }
        self.reader.flush_releases();
        let status = self.reader.shared().status();
        // SYNC: closed. Release pairs with the Acquire load in `Sender::receiver_closed`.
        status.receiver_closed.store(1, Ordering::Release);
        ownership::release(&status.receiver_owner);
        self.reader.shared().events().space.notify();
    }
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("capacity", &self.capacity())
            .field("strategy", &self.strategy)
            .finish_non_exhaustive()
    }
}

/// A received message, still in the ring. Copy or decode it, then drop the grant to free
/// its space for the sender.
pub struct ReadGrant<'a> {
    receiver: &'a mut Receiver,
    frame: Frame,
    /// Leave the frame in the ring on drop (it was not consumed).
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

    /// Copies the message's first `min(len, buf.len())` bytes into `buf`; returns how many.
    #[inline]
    pub fn copy_to(&self, buf: &mut [u8]) -> usize {
        let n = self.frame.len.min(buf.len());
        // SAFETY: the frame's `len` bytes lie inside the data area (validated by `try_peek`)
        // and are not written by a well-behaved sender until we release them; `buf` is
        // private memory, so no overlap.
        unsafe { std::ptr::copy_nonoverlapping(self.as_ptr(), buf.as_mut_ptr(), n) };
        n
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
        // SAFETY: `offset + buf.len() <= len` (checked): inside the validated frame.
        unsafe {
            std::ptr::copy_nonoverlapping(self.as_ptr().add(offset), buf.as_mut_ptr(), buf.len())
        };
        Ok(())
    }

    /// The message copied into a new `Vec`.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.frame.len];
        self.copy_to(&mut out);
        out
    }

    /// The message's bytes in shared memory, valid for [`len`](ReadGrant::len) bytes while
    /// the grant lives. A hostile peer could change them at any time: copy before you
    /// validate, and never form a `&[u8]` over them.
    #[inline]
    pub fn as_ptr(&self) -> *const u8 {
        self.receiver.reader.payload_ptr(&self.frame)
    }

    /// Drops the grant without consuming the message.
    fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for ReadGrant<'_> {
    fn drop(&mut self) {
        if !self.keep {
            self.receiver.reader.release(self.frame);
        }
    }
}

/// A blocking iterator over received messages (see [`Receiver::iter`]).
pub struct Iter<'a> {
    receiver: &'a mut Receiver,
}

impl Iterator for Iter<'_> {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        self.receiver.recv().ok()
    }
}

/// A corrupt ring found while attaching is a channel error.
fn corrupt_attach(corruption: Corruption) -> ChannelError {
    ChannelError::Corrupted(corruption)
}
