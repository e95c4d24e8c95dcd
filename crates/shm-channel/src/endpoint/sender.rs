//! The sending endpoint of every flavor: reserve with a deadline, write, commit, publish;
//! the full-ring wait and its liveness checks; ownership; `Drop`.

use std::sync::Arc;
use std::time::Duration;

use shm_core::liveness::ProcessIdentity;
use shm_core::notify::{Check, Handshake, WaitStrategy};
use shm_core::SharedMemory;

use super::grant::{Batch, Publish, WriteGrant};
use super::ownership::{self, OwnerCheck};
use super::{endpoint_common, Deadline, Flavor};
use crate::error::{SendFailure, SendFatal};
use crate::layout::ChannelLayout;
use crate::layout::EventRef;
use crate::ring::{HasLayout, SendRing};
use crate::{Corruption, OwnershipError, SendError, SendTimeoutError, TrySendError};
use shm_core::notify::Throttle;

/// Counters an endpoint keeps about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// `FUTEX_WAKE` syscalls this endpoint made to wake its peer.
    pub wake_syscalls: u64,
}

/// The sending end of a channel of flavor `F` (see [`spsc`](crate::spsc),
/// [`mpsc`](crate::mpsc), [`broadcast`](crate::broadcast) for how to make one).
///
/// ```
/// let (mut tx, mut rx) = shm_channel::spsc::channel(4096)?;
/// tx.send(b"hello")?;
/// assert!(matches!(tx.try_send(&[0; 5000]), Err(shm_channel::TrySendError::TooLarge((), _))));
/// assert_eq!(rx.recv()?, b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Sender<F: Flavor> {
    pub(crate) ring: F::Writer,
    space: EventRef,
    /// The channel's wake handshake, cached at creation or attach: never re-read from
    /// shared memory.
    handshake: Handshake,
    strategy: WaitStrategy,
    throttle: Throttle,
    owner: OwnerCheck,
    /// The slots of the run [`send_all`](Sender::send_all) is writing; reused.
    run: Vec<<F::Writer as SendRing>::Slot>,
    /// How this endpoint waits in async calls, once it has.
    #[cfg(feature = "tokio")]
    pub(crate) async_wait: Option<Box<super::asynchronous::AsyncWait>>,
}

impl<F: Flavor> Sender<F> {
    /// Wraps a ring writer whose owner slot already names the calling process (or a
    /// process it will be handed to).
    pub(crate) fn from_ring(ring: F::Writer, strategy: WaitStrategy) -> Sender<F> {
        Sender {
            space: ring.space_event(),
            handshake: ring.layout().handshake(),
            ring,
            strategy,
            throttle: Throttle::default(),
            owner: OwnerCheck::new(),
            run: Vec::new(),
            #[cfg(feature = "tokio")]
            async_wait: None,
        }
    }

    /// The largest message this channel can carry: the capacity less one frame header.
    pub fn max_message_len(&self) -> usize {
        self.ring.max_payload()
    }

    /// Sends `msg`, waiting for room as long as it takes.
    #[inline]
    pub fn send(&mut self, msg: &[u8]) -> Result<(), SendError<()>> {
        until_done(|| self.send_bytes(msg, Deadline::Never, Publish::Now))
            .map_err(|fatal| SendError::fatal(fatal, ()))
    }

    /// Sends `msg` if there is room now.
    #[inline]
    pub fn try_send(&mut self, msg: &[u8]) -> Result<(), TrySendError<()>> {
        self.send_bytes(msg, Deadline::Now, Publish::Now)
            .map_err(|failure| try_send_error(failure, ()))
    }

    /// Sends `msg`, waiting at most `timeout` for room.
    pub fn send_timeout(
        &mut self,
        msg: &[u8],
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<()>> {
        self.send_bytes(msg, Deadline::after(timeout), Publish::Now)
            .map_err(|failure| send_timeout_error(failure, ()))
    }

    /// Sends `msg` but may leave it unpublished, so that a stream of messages is published
    /// in batches (one index store and wake check per batch): the message becomes visible
    /// to the receiver at the latest at the next [`flush`](Sender::flush), the next
    /// ordinary send or commit, when the ring fills, when an eighth of the ring is pending,
    /// or when the sender is dropped. Waits for room like [`send`](Sender::send). (MPSC and
    /// broadcast commits are visible at once: there it is a plain `send`.)
    ///
    /// For pipelines: send deferred while input is at hand, flush before waiting for more.
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_channel::spsc::channel(4096)?;
    /// tx.send_deferred(b"a")?;
    /// tx.send_deferred(b"b")?;
    /// assert!(rx.try_recv().is_err());
    /// tx.flush();
    /// assert_eq!(rx.try_recv()?, b"a");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_deferred(&mut self, msg: &[u8]) -> Result<(), SendError<()>> {
        until_done(|| self.send_bytes(msg, Deadline::Never, Publish::WhenPending))
            .map_err(|fatal| SendError::fatal(fatal, ()))
    }

    /// Sends every message of `msgs`, in order, waiting for room as long as it takes, and
    /// publishes them: a run of messages for the price of fewer claims. An MPSC sender
    /// claims room for as many of them as fit with one CAS on the shared tail, then writes
    /// and commits them in order (should it die half-way, the receiver skips what it
    /// claimed and did not commit; the other senders' messages are intact); SPSC and
    /// broadcast senders publish the run once.
    ///
    /// # Errors
    ///
    /// As [`send`](Sender::send), carrying how many messages were sent before the failure;
    /// `TooLarge` (with 0: nothing is sent) if any message is longer than
    /// [`max_message_len`](Sender::max_message_len).
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_channel::mpsc::channel(4096)?;
    /// tx.send_all(&[b"one".as_slice(), b"two", b"three"])?;
    /// assert_eq!(rx.recv()?, b"one");
    /// assert_eq!(rx.recv()?, b"two");
    /// assert_eq!(rx.recv()?, b"three");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_all(&mut self, msgs: &[&[u8]]) -> Result<(), SendError<usize>> {
        let max = self.ring.max_payload();
        if msgs.iter().any(|msg| msg.len() > max) {
            return Err(SendError::fatal(SendFatal::TooLarge(max), 0));
        }
        let mut sent = 0;
        let outcome = loop {
            let rest = &msgs[sent..];
            if rest.is_empty() {
                break Ok(());
            }
            match self.send_run(rest) {
                Ok(0) => {}
                Ok(n) => {
                    sent += n;
                    continue;
                }
                Err(failure) => break Err(failure),
            }
            // No room now for the next message: the ordinary wait, for it alone.
            match until_done(|| self.send_bytes(rest[0], Deadline::Never, Publish::WhenPending)) {
                Ok(()) => sent += 1,
                Err(fatal) => break Err(fatal),
            }
        };
        self.ring.publish();
        outcome.map_err(|fatal| SendError::fatal(fatal, sent))
    }

    /// Writes and commits the longest run of `msgs` (not empty) the ring takes now, without
    /// waiting; how many (0: no room for the first).
    fn send_run(&mut self, msgs: &[&[u8]]) -> Result<usize, SendFatal> {
        self.owner
            .verify(self.ring.owner_slot())
            .map_err(|_| SendFatal::NotOwner)?;
        if self.ring.receivers_closed() {
            return Err(SendFatal::Disconnected);
        }
        let mut run = std::mem::take(&mut self.run);
        run.clear();
        let reserved = self
            .ring
            .try_reserve_run(msgs.len(), &|i| msgs[i].len(), &mut run);
        if let Err(corruption) = reserved {
            self.run = run;
            return Err(SendFatal::Corrupted(corruption));
        }
        let count = run.len();
        for (slot, msg) in run.drain(..).zip(msgs) {
            self.write_and_commit(slot, msg, Publish::WhenPending);
        }
        self.run = run;
        Ok(count)
    }

    /// Publishes every message sent with [`send_deferred`](Sender::send_deferred) so far.
    pub fn flush(&mut self) {
        self.ring.publish();
    }

    /// Reserves room for a message of up to `max_len` bytes, to be written in place and
    /// committed with [`WriteGrant::commit`]. Waits for room as long as it takes.
    pub fn reserve(&mut self, max_len: usize) -> Result<WriteGrant<'_, F>, SendError<()>> {
        let slot = until_done(|| self.reserve_slot(max_len, Deadline::Never))
            .map_err(|fatal| SendError::fatal(fatal, ()))?;
        Ok(WriteGrant::new(self, slot, Publish::Now))
    }

    /// [`reserve`](Sender::reserve), without waiting.
    pub fn try_reserve(&mut self, max_len: usize) -> Result<WriteGrant<'_, F>, TrySendError<()>> {
        let slot = self
            .reserve_slot(max_len, Deadline::Now)
            .map_err(|failure| try_send_error(failure, ()))?;
        Ok(WriteGrant::new(self, slot, Publish::Now))
    }

    /// [`reserve`](Sender::reserve), waiting at most `timeout`.
    pub fn reserve_timeout(
        &mut self,
        max_len: usize,
        timeout: Duration,
    ) -> Result<WriteGrant<'_, F>, SendTimeoutError<()>> {
        let slot = self
            .reserve_slot(max_len, Deadline::after(timeout))
            .map_err(|failure| send_timeout_error(failure, ()))?;
        Ok(WriteGrant::new(self, slot, Publish::Now))
    }

    /// Starts a batch: messages sent through it are published together when it is dropped
    /// (or when the ring fills), saving one index store and wake check per message.
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_channel::spsc::channel(4096)?;
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
    pub fn batch(&mut self) -> Batch<'_, F> {
        Batch::new(self)
    }

    /// Reserves, copies `msg` in, commits and publishes as `publish` says.
    #[inline]
    pub(crate) fn send_bytes(
        &mut self,
        msg: &[u8],
        deadline: Deadline,
        publish: Publish,
    ) -> Result<(), SendFailure> {
        let slot = self.reserve_slot(msg.len(), deadline)?;
        self.write_and_commit(slot, msg, publish);
        Ok(())
    }

    /// Copies `msg` into `slot` (reserved for exactly its length) and commits it.
    #[inline]
    pub(crate) fn write_and_commit(
        &mut self,
        slot: <F::Writer as SendRing>::Slot,
        msg: &[u8],
        publish: Publish,
    ) {
        debug_assert_eq!(<F::Writer as SendRing>::slot_len(&slot), msg.len());
        let dst = self.ring.payload_ptr(&slot);
        // SAFETY: `dst` is valid for `slot_len(slot) == msg.len()` bytes of the data area
        // reserved for us (the reader does not read them before we commit); `msg` is
        // private memory, so the ranges do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), dst, msg.len()) };
        self.commit_slot(slot, msg.len(), publish);
    }

    /// Reserves a frame of `len` bytes (waiting until `deadline`), lets `write` fill it
    /// through a pointer valid for `len` bytes, and commits the bytes `write` says it wrote
    /// (published as `publish` says), or abandons the frame (nothing delivered) if `write`
    /// fails. The outer error is the channel's; the inner one is `write`'s.
    pub(crate) fn send_with<E>(
        &mut self,
        len: usize,
        deadline: Deadline,
        publish: Publish,
        write: impl FnOnce(*mut u8) -> Result<usize, E>,
    ) -> Result<Result<usize, E>, SendFailure> {
        let slot = self.reserve_slot(len, deadline)?;
        match write(self.ring.payload_ptr(&slot)) {
            Ok(written) => {
                let written = written.min(len);
                self.commit_slot(slot, written, publish);
                Ok(Ok(written))
            }
            Err(e) => {
                self.ring.abandon(slot);
                Ok(Err(e))
            }
        }
    }

    /// Commits `slot` and publishes as `publish` says.
    #[inline]
    pub(crate) fn commit_slot(
        &mut self,
        slot: <F::Writer as SendRing>::Slot,
        len: usize,
        publish: Publish,
    ) {
        self.ring.commit(slot, len);
        match publish {
            Publish::Now => self.ring.publish(),
            Publish::WhenPending => {
                if self.ring.unpublished() >= self.ring.view().capacity() / 8 {
                    self.ring.publish();
                }
            }
            Publish::WithBatch => {}
        }
    }

    /// Reserves room for `len` bytes, waiting until `deadline`.
    #[inline]
    pub(crate) fn reserve_slot(
        &mut self,
        len: usize,
        deadline: Deadline,
    ) -> Result<<F::Writer as SendRing>::Slot, SendFailure> {
        self.owner
            .verify(self.ring.owner_slot())
            .map_err(|_| SendFatal::NotOwner)?;
        let max = self.ring.max_payload();
        if len > max {
            return Err(SendFatal::TooLarge(max).into());
        }
        if self.ring.receivers_closed() {
            return Err(SendFatal::Disconnected.into());
        }
        match self.ring.try_reserve(len) {
            Ok(Some(slot)) => Ok(slot),
            Ok(None) => self.reserve_when_full(len, deadline),
            Err(corruption) => Err(SendFatal::Corrupted(corruption).into()),
        }
    }

    /// The ring was full: publish, then check (throttled, without waiting) or wait.
    #[cold]
    #[inline(never)]
    fn reserve_when_full(
        &mut self,
        len: usize,
        deadline: Deadline,
    ) -> Result<<F::Writer as SendRing>::Slot, SendFailure> {
        // Publish what a batch holds back, so the reader can make room.
        self.ring.publish();
        let Sender {
            ring,
            space,
            handshake,
            strategy,
            throttle,
            ..
        } = self;
        if let Deadline::Now = deadline {
            return match throttle.due() {
                true => attempt(ring, len, Check::Slow),
                false => None,
            }
            .unwrap_or(Err(SendFailure::NotNow));
        }
        // The sleeper's half of the wake handshake (SYNC: waiter flag): the receiver
        // publishes its head with the matching notification.
        space
            .get()
            .wait_until_with(*handshake, strategy, deadline.instant(), |check| {
                attempt(ring, len, check)
            })
            .unwrap_or(Err(SendFailure::NotNow))
    }
}

/// One attempt of a sender waiting for room: `Some` when the call can return. A slow
/// check first asks about the receivers (which may free room: broadcast drops dead readers),
/// then tries again.
fn attempt<W: SendRing>(
    ring: &mut W,
    len: usize,
    check: Check,
) -> Option<Result<W::Slot, SendFailure>> {
    if ring.receivers_closed() {
        return Some(Err(SendFatal::Disconnected.into()));
    }
    let dead = check == Check::Slow && ring.receivers_dead();
    match ring.try_reserve(len) {
        Ok(Some(slot)) => Some(Ok(slot)),
        Err(corruption) => Some(Err(corrupted(corruption))),
        Ok(None) if dead => Some(Err(SendFatal::PeerDied.into())),
        Ok(None) => None,
    }
}

fn corrupted(corruption: Corruption) -> SendFailure {
    SendFatal::Corrupted(corruption).into()
}

/// Runs a call made with `Deadline::Never` to its end: it never reports `NotNow` (an
/// endless wait cannot time out), but if it did the call would simply go on waiting.
#[inline]
pub(crate) fn until_done<T>(
    mut call: impl FnMut() -> Result<T, SendFailure>,
) -> Result<T, SendFatal> {
    loop {
        match call() {
            Ok(value) => return Ok(value),
            Err(SendFailure::Fatal(fatal)) => return Err(fatal),
            Err(SendFailure::NotNow) => continue,
        }
    }
}

pub(crate) fn try_send_error<T>(failure: SendFailure, value: T) -> TrySendError<T> {
    match failure {
        SendFailure::NotNow => TrySendError::Full(value),
        SendFailure::Fatal(fatal) => TrySendError::fatal(fatal, value),
    }
}

pub(crate) fn send_timeout_error<T>(failure: SendFailure, value: T) -> SendTimeoutError<T> {
    match failure {
        SendFailure::NotNow => SendTimeoutError::Timeout(value),
        SendFailure::Fatal(fatal) => SendTimeoutError::fatal(fatal, value),
    }
}

endpoint_common!(Sender);
