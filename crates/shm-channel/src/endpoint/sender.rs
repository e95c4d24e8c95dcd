//! The sending endpoint of every flavor: reserve with a deadline, write, commit, publish;
//! the full-ring wait and its liveness checks.

use std::time::Duration;

use shm_core::notify::{Check, Lookout, WaitStrategy};

use super::common::{slow_check_due, Common, Endpoint, Parts};
use super::failure::{until_done, SendFailure, SendFatal};
use super::{Deadline, Flavor, Slot};
use crate::shared::doorbells::Doorbells;
use crate::shared::ring::{RingSide, RoomGate, SendRing};
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
/// let (mut tx, mut rx) = shm_channel::spsc::channel(4096)?;
/// tx.send(b"hello")?;
/// use shm_channel::{SendError, TrySendError};
/// assert!(matches!(tx.try_send(&[0; 5000]), Err(TrySendError::Send(SendError::TooLarge((), _)))));
/// assert_eq!(rx.recv()?, b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Sender<F: Flavor> {
    pub(crate) common: Common<F::Writer>,
    /// Paces the liveness look of sends that find room (see [`RECEIVER_LOOK`]).
    lookout: Lookout,
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
        let space = ring.space_event();
        Sender {
            common: Common::new(
                ring,
                (space, Doorbells::sender_end),
                SendRing::close,
                strategy,
            ),
            lookout: Lookout::new(RECEIVER_LOOK),
        }
    }

    /// The ring writer.
    #[inline]
    pub(crate) fn ring(&mut self) -> &mut F::Writer {
        &mut self.common.ring
    }

    /// The largest payload a frame can carry (what
    /// [`Endpoint::max_message_len`] says, without its dynamic calls: for the hot paths).
    #[inline]
    pub(crate) fn max_payload(&self) -> usize {
        self.common.ring.max_payload()
    }

    /// Whether the receiving side is closed: dropped by the process that owns it, or closed
    /// with [`Receiver::close`](crate::Receiver::close) (a cheap shared load; a receiver
    /// whose process died is seen by the next send that finds the ring full). Always
    /// `false` for broadcast, whose receivers come and go (with none, messages are
    /// dropped).
    ///
    /// ```
    /// let (tx, rx) = shm_channel::spsc::channel(4096)?;
    /// assert!(!tx.is_closed());
    /// drop(rx);
    /// assert!(tx.is_closed());
    /// # Ok::<(), shm_channel::ChannelError>(())
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
            .map_err(|fatal| fatal.with(()))
    }

    /// Sends every message of `msgs`, in order, waiting for room as long as it takes, and
    /// publishes them: a run of messages for the price of one publication (and one wake-up
    /// of the receiver), as [`send_deferred`](Sender::send_deferred) then
    /// [`flush`](Sender::flush) would.
    ///
    /// # Errors
    ///
    /// As [`send`](Sender::send), carrying how many messages were sent before the failure;
    /// `TooLarge` (with 0: nothing is sent) if any message is longer than
    /// [`max_message_len`](Endpoint::max_message_len).
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
        let max = self.common.ring.max_payload();
        if msgs.iter().any(|msg| msg.len() > max) {
            return Err(SendFatal::TooLarge(max).with(0));
        }
        let mut sent = 0;
        let outcome = msgs.iter().try_for_each(|msg| {
            until_done(|| self.send_bytes(msg, Deadline::Never, Publish::WhenPending))?;
            sent += 1;
            Ok(())
        });
        self.ring().publish();
        outcome.map_err(|fatal: SendFatal| fatal.with(sent))
    }

    /// Publishes every message sent with [`send_deferred`](Sender::send_deferred) so far.
    pub fn flush(&mut self) {
        self.ring().publish_urgently();
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
        unsafe { crate::shared::frame::copy_payload(msg.as_ptr(), dst, msg.len()) };
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
                if ring.unpublished() >= ring.capacity() / 8 {
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
        self.check_send(len)?;
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
    /// receiver's ring takes no more than the liveness bound's worth of sends).
    #[inline]
    fn check_send(&mut self, len: usize) -> Result<(), SendFatal> {
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
        // Publish what deferred sends hold back, so the reader can make room (and wake it
        // whatever it waits for: we are about to wait for it).
        self.ring().publish_urgently();
        let mut gate = RoomGate::default();
        // The sleeper's half of the wake handshake (SYNC: waiter flag), on the space event:
        // the receiver publishes its head with the matching notification.
        let waited = self.common.wait(
            deadline,
            |ring| ring.space_mark(len),
            |ring, check| {
                // While spinning, wait for room worth resuming for (not the first frame the
                // reader frees); after a park or on a slow check, take whatever fits.
                if check == Check::Fast {
                    match ring.room_settled(len, &mut gate) {
                        Ok(true) => {}
                        Ok(false) => return None,
                        Err(corruption) => return Some(Err(corrupted(corruption))),
                    }
                }
                attempt(ring, len, check)
            },
        );
        let Common { ring, throttle, .. } = &mut self.common;
        // No wait, or one that ended by its deadline (which may have made no slow check:
        // short timed waits in a loop): a slow check, paced as non-blocking calls' are.
        waited
            .or_else(|| {
                slow_check_due(throttle)
                    .then(|| attempt(ring, len, Check::Slow))
                    .flatten()
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

impl<F: Flavor> Endpoint for Sender<F> {
    fn parts(&self) -> &dyn Parts {
        &self.common
    }

    fn parts_mut(&mut self) -> &mut dyn Parts {
        &mut self.common
    }
}

impl<F: Flavor> std::fmt::Debug for Sender<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.common.debug("Sender", F::NAME, f)
    }
}
