//! The sending endpoint of every flavor: reserve with a deadline, write, commit, publish;
//! the full-ring wait and its liveness checks.

use std::time::Duration;

use shm_core::notify::{Check, Lookout, WaitStrategy};

use super::common::{slow_check_due, Common, Endpoint, Parts};
use super::failure::{until_done, SendFailure, SendFatal};
use super::{Deadline, Flavor, Slot};
use crate::shared::doorbells::Doorbells;
use crate::shared::queue::Ticket;
use crate::shared::ring::{RingSide, SendRing};
use crate::{Corruption, SendError, SendTimeoutError, TrySendError};

/// When a committed frame is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Publish {
    /// At once.
    Now,
    /// Once an eighth of the ring is pending (deferred sends).
    WhenPending,
}

/// The sending end of a channel of flavor `F` (see [`spsc`](crate::spsc),
/// [`mpsc`](crate::mpsc), [`broadcast`](crate::broadcast) for how to make one).
///
/// ```
/// let (mut tx, mut rx) = shm_ipc::channel::spsc::channel(4096)?;
/// tx.send(b"hello")?;
/// use shm_ipc::channel::{SendError, TrySendError};
/// assert!(matches!(tx.try_send(&[0; 5000]), Err(TrySendError::Send(SendError::TooLarge((), _)))));
/// assert_eq!(rx.recv()?, b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Sender<F: Flavor> {
    pub(crate) common: Common<F::Writer>,
    /// Paces the liveness look of sends that find room (see [`RECEIVER_LOOK`]).
    lookout: Lookout,
    /// The slots of the run [`send_all`](Sender::send_all) is writing; reused.
    run: Vec<Slot<F>>,
}

/// How often a sender that keeps finding room asks the kernel whether its receivers are
/// alive: with the lookout's clock read about every millisecond
/// ([`LOOK_EVERY`](shm_core::notify::LOOK_EVERY)), a receiver killed while the sender
/// streams is noticed within 10 ms of sends (the liveness bound) — not only once the ring
/// is full — at the cost of one pidfd `poll` per 8 ms, and of a private decrement per send.
pub(crate) const RECEIVER_LOOK: Duration = Duration::from_millis(8);

impl<F: Flavor> Sender<F> {
    /// Wraps a ring writer whose owner slot already names the calling process (or a
    /// process it will be handed to). It sleeps on the space event and its async waits
    /// listen on the sender end of the doorbells.
    pub(crate) fn from_ring(ring: F::Writer, strategy: WaitStrategy) -> Sender<F> {
        let space = ring.layout().space_event();
        Sender {
            common: Common::new(
                ring,
                (space, Doorbells::sender_end),
                SendRing::close,
                strategy,
            ),
            lookout: Lookout::new(RECEIVER_LOOK),
            run: Vec::new(),
        }
    }

    /// The ring writer.
    #[inline]
    pub(crate) fn ring(&mut self) -> &mut F::Writer {
        &mut self.common.ring
    }

    /// The largest message this channel can carry: the capacity less one frame header.
    pub fn max_message_len(&self) -> usize {
        self.common.ring.max_payload()
    }

    /// Whether the receiving side is closed: dropped by the process that owns it, or closed
    /// with [`Receiver::close`](crate::Receiver::close) (a cheap shared load; a receiver
    /// whose process died is seen by the next send that finds the ring full). Always
    /// `false` for broadcast, whose receivers come and go (with none, messages are
    /// dropped).
    ///
    /// ```
    /// let (tx, rx) = shm_ipc::channel::spsc::channel(4096)?;
    /// assert!(!tx.is_closed());
    /// drop(rx);
    /// assert!(tx.is_closed());
    /// # Ok::<(), shm_ipc::channel::ChannelError>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        self.common.ring.receivers_closed()
    }

    /// Sends `msg`, waiting for room as long as it takes.
    #[inline]
    pub fn send(&mut self, msg: &[u8]) -> Result<(), SendError<()>> {
        until_done(|| self.send_bytes(msg, Deadline::Never, Publish::Now))
            .map_err(|fatal| fatal.with(()))
    }

    /// Sends `msg` if there is room now.
    #[inline]
    pub fn try_send(&mut self, msg: &[u8]) -> Result<(), TrySendError<()>> {
        self.send_bytes(msg, Deadline::Now, Publish::Now)
            .map_err(|failure| {
                failure.call_error((), TrySendError::Full, TrySendError::Send, SendFatal::with)
            })
    }

    /// Sends `msg`, waiting at most `timeout` for room.
    pub fn send_timeout(
        &mut self,
        msg: &[u8],
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<()>> {
        self.send_bytes(msg, Deadline::after(timeout), Publish::Now)
            .map_err(|failure| {
                failure.call_error(
                    (),
                    SendTimeoutError::Timeout,
                    SendTimeoutError::Send,
                    SendFatal::with,
                )
            })
    }

    /// Sends `msg` but may leave it unpublished, so that a stream of messages is published
    /// in batches (one index store and wake check per batch): the message becomes visible
    /// to the receiver at the latest at the next [`flush`](Sender::flush), the next
    /// ordinary send or commit, when the ring fills, when an eighth of the ring is pending,
    /// or when the sender is dropped. Waits for room like [`send`](Sender::send). (An MPSC
    /// commit is visible at once, to a receiver that polls: there only the wake-up of a
    /// sleeping receiver waits for the batch. SPSC and broadcast store their tail once per
    /// batch.)
    ///
    /// For pipelines: send deferred while input is at hand, flush before waiting for more.
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ipc::channel::spsc::channel(4096)?;
    /// tx.send_deferred(b"a")?;
    /// tx.send_deferred(b"b")?;
    /// assert!(rx.try_recv().is_err());
    /// tx.flush();
    /// assert_eq!(rx.try_recv()?, b"a");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_deferred(&mut self, msg: &[u8]) -> Result<(), SendError<()>> {
        until_done(|| self.send_bytes(msg, Deadline::Never, Publish::WhenPending))
            .map_err(|fatal| fatal.with(()))
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
    /// let (mut tx, mut rx) = shm_ipc::channel::mpsc::channel(4096)?;
    /// tx.send_all(&[b"one".as_slice(), b"two", b"three"])?;
    /// assert_eq!(rx.recv()?, b"one");
    /// assert_eq!(rx.recv()?, b"two");
    /// assert_eq!(rx.recv()?, b"three");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_all(&mut self, msgs: &[&[u8]]) -> Result<(), SendError<usize>> {
        let max = self.common.ring.max_payload();
        if msgs.iter().any(|msg| msg.len() > max) {
            return Err(SendFatal::TooLarge(max).with(0));
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
        self.ring().publish();
        outcome.map_err(|fatal| fatal.with(sent))
    }

    /// Writes and commits the longest run of `msgs` (not empty) the ring takes now, without
    /// waiting; how many (0: no room for the first).
    fn send_run(&mut self, msgs: &[&[u8]]) -> Result<usize, SendFatal> {
        self.common
            .verify_owner()
            .map_err(|_| SendFatal::NotOwner)?;
        if self.common.ring.receivers_closed() {
            return Err(SendFatal::Disconnected);
        }
        if F::SHARED_SENDERS && self.common.behind_waiting_senders() {
            // Async senders of this channel wait first: the ordinary wait, message by
            // message.
            return Ok(0);
        }
        let mut run = std::mem::take(&mut self.run);
        run.clear();
        let reserved = self
            .ring()
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
        self.ring().publish();
    }

    /// Changes how this endpoint waits for room.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.common.strategy = strategy;
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
    pub(crate) fn write_and_commit(&mut self, slot: Slot<F>, msg: &[u8], publish: Publish) {
        debug_assert_eq!(<F::Writer as SendRing>::slot_len(&slot), msg.len());
        let dst = self.ring().payload_ptr(&slot);
        // SAFETY: `dst` is valid for `slot_len(slot) == msg.len()` bytes of the data area
        // reserved for us (the reader does not read them before we commit); `msg` is
        // private memory, so the ranges do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), dst, msg.len()) };
        self.commit_slot(slot, msg.len(), publish);
    }

    /// Lets `write` fill `slot` through a pointer valid for the slot's length, and commits
    /// the bytes `write` says it wrote (published as `publish` says), or abandons the frame
    /// (nothing delivered) if `write` fails.
    pub(crate) fn fill_and_commit<E>(
        &mut self,
        slot: Slot<F>,
        publish: Publish,
        write: impl FnOnce(*mut u8, usize) -> Result<usize, E>,
    ) -> Result<usize, E> {
        let len = <F::Writer as SendRing>::slot_len(&slot);
        match write(self.ring().payload_ptr(&slot), len) {
            Ok(written) => {
                let written = written.min(len);
                self.commit_slot(slot, written, publish);
                Ok(written)
            }
            Err(e) => {
                self.ring().abandon(slot);
                Err(e)
            }
        }
    }

    /// Commits `slot` and publishes as `publish` says.
    #[inline]
    pub(crate) fn commit_slot(&mut self, slot: Slot<F>, len: usize, publish: Publish) {
        let ring = self.ring();
        ring.commit(slot, len);
        match publish {
            Publish::Now => ring.publish(),
            Publish::WhenPending => {
                if ring.unpublished() >= ring.view().capacity() / 8 {
                    ring.publish();
                }
            }
        }
    }

    /// Reserves room for `len` bytes, waiting until `deadline`.
    #[inline]
    pub(crate) fn reserve_slot(
        &mut self,
        len: usize,
        deadline: Deadline,
    ) -> Result<Slot<F>, SendFailure> {
        match self.check_send(len) {
            Ok(()) => {}
            // Async senders of this channel wait first: no room for us now.
            Err(SendFailure::NotNow) => return self.reserve_when_full(len, deadline),
            Err(fatal) => return Err(fatal),
        }
        match self.ring().try_reserve(len) {
            Ok(Some(slot)) => Ok(slot),
            Ok(None) => self.reserve_when_full(len, deadline),
            Err(corruption) => Err(SendFatal::Corrupted(corruption).into()),
        }
    }

    /// Reserves room for `len` bytes only where it fits now with nothing else written
    /// (`SendRing::try_reserve_in_place`: abandoning it leaves the ring as it was);
    /// `NotNow` when it does not.
    pub(crate) fn reserve_in_place(&mut self, len: usize) -> Result<Slot<F>, SendFailure> {
        self.check_send(len)?;
        match self.ring().try_reserve_in_place(len) {
            Ok(Some(slot)) => Ok(slot),
            Ok(None) => Err(SendFailure::NotNow),
            Err(corruption) => Err(SendFatal::Corrupted(corruption).into()),
        }
    }

    /// What every reservation checks first: the owner, the size, the receivers — closed
    /// (a shared flag, every send) or dead (the kernel, when the lookout says so: a dead
    /// receiver's ring takes no more than the liveness bound's worth of sends) — and, for a
    /// flavor of several senders, that no async sender of the channel waits before this
    /// one in this process (`NotNow` then).
    #[inline]
    fn check_send(&mut self, len: usize) -> Result<(), SendFailure> {
        self.check_endpoint(len)?;
        if F::SHARED_SENDERS && self.common.behind_waiting_senders() {
            return Err(SendFailure::NotNow);
        }
        Ok(())
    }

    /// [`check_send`](Sender::check_send) but the queue of waiting async senders.
    #[inline]
    fn check_endpoint(&mut self, len: usize) -> Result<(), SendFatal> {
        self.common
            .verify_owner()
            .map_err(|_| SendFatal::NotOwner)?;
        let ring = &mut self.common.ring;
        let max = ring.max_payload();
        if len > max {
            return Err(SendFatal::TooLarge(max));
        }
        if ring.receivers_closed() {
            return Err(SendFatal::Disconnected);
        }
        // Never under loom: a model has no clock and no kernel.
        if !cfg!(loom) && self.lookout.tick() && ring.receivers_dead() {
            return Err(SendFatal::PeerDied);
        }
        Ok(())
    }

    /// The ring was full: publish, then check (throttled, without waiting) or wait.
    #[cold]
    #[inline(never)]
    fn reserve_when_full(
        &mut self,
        len: usize,
        deadline: Deadline,
    ) -> Result<Slot<F>, SendFailure> {
        // Publish what deferred sends hold back, so the reader can make room.
        self.ring().publish();
        let Common {
            ring,
            event: space,
            handshake,
            strategy,
            throttle,
            queued,
            ..
        } = &mut self.common;
        let queued = *queued;
        if let Deadline::Now = deadline {
            return match slow_check_due(throttle) {
                true => attempt::<F>(ring, len, Check::Slow, queued),
                false => None,
            }
            .unwrap_or(Err(SendFailure::NotNow));
        }
        // The sleeper's half of the wake handshake (SYNC: waiter flag): the receiver
        // publishes its head with the matching notification.
        space
            .get()
            .wait_until_with(*handshake, strategy, deadline.instant(), |check| {
                attempt::<F>(ring, len, check, queued)
            })
            .unwrap_or(Err(SendFailure::NotNow))
    }
}

/// One attempt of a sender waiting for room: `Some` when the call can return. A slow
/// check first asks about the receivers (which may free room: broadcast drops dead readers),
/// then tries again — unless async senders of the channel wait before this one in this
/// process (`queued`: its own place among them, if any).
fn attempt<F: Flavor>(
    ring: &mut F::Writer,
    len: usize,
    check: Check,
    queued: Option<Ticket>,
) -> Option<Result<Slot<F>, SendFailure>> {
    if ring.receivers_closed() {
        return Some(Err(SendFatal::Disconnected.into()));
    }
    let dead = check == Check::Slow && ring.receivers_dead();
    if F::SHARED_SENDERS {
        let queue = ring.view().send_queue();
        if !queue.is_empty() && !queued.is_some_and(|ticket| queue.is_first(ticket)) {
            return dead.then(|| Err(SendFatal::PeerDied.into()));
        }
    }
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

impl<F: Flavor> Endpoint for Sender<F> {
    fn parts(&self) -> &dyn Parts {
        &self.common
    }
}

impl<F: Flavor> std::fmt::Debug for Sender<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.common.debug("Sender", F::NAME, f)
    }
}
