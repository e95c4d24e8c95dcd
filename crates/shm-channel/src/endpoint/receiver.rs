//! The receiving endpoint of every flavor: peek with a deadline, copy out, release; the
//! empty-ring wait with its disconnect and liveness checks.

use std::time::Duration;

use shm_core::notify::{Check, Handshake, WaitStrategy};

use super::common::{slow_check_due, Common, Endpoint, Parts};
use super::failure::{FromRecvFatal, RecvFatal};
use super::{Deadline, Fault, Flavor, Frame};
use crate::shared::doorbells::Doorbells;
use crate::shared::ring::{Gone, RecvRing, RingSide};
use crate::shared::view::EventRef;
use crate::{RecvIntoError, RecvTimeoutError, TryRecvError};

/// The receiving end of a channel of flavor `F` (see [`spsc`](crate::spsc),
/// [`mpsc`](crate::mpsc), [`broadcast`](crate::broadcast) for how to make one).
///
/// | to receive | blocking | now or never | with a timeout |
/// |---|---|---|---|
/// | into a new `Vec` | [`recv`](Receiver::recv) | [`try_recv`](Receiver::try_recv) | [`recv_timeout`](Receiver::recv_timeout) |
/// | into your buffer | [`recv_into`](Receiver::recv_into) | | |
/// | in place, zero-copy | [`read`](Receiver::read) | [`try_read`](Receiver::try_read) | [`read_timeout`](Receiver::read_timeout) |
/// | many | [`iter`](Receiver::iter) | [`try_iter`](Receiver::try_iter) | |
///
/// ```
/// use shm_ipc::channel::{RecvIntoError, TryRecvError};
/// let (mut tx, mut rx) = shm_ipc::channel::spsc::channel(4096)?;
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
/// tx.send(b"twelve bytes")?;
/// let mut small = [0u8; 4];
/// assert_eq!(rx.recv_into(&mut small), Err(RecvIntoError::BufferTooSmall { needed: 12 }));
/// let mut buf = [0u8; 64];
/// assert_eq!(rx.recv_into(&mut buf)?, 12); // the message stayed in the channel
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Receiver<F: Flavor> {
    pub(crate) common: Common<F::Reader>,
    /// Closed by [`close`](Receiver::close): once the ring is drained, receives say
    /// `Disconnected`.
    closed: bool,
    /// What a select found ending this receiver's stream ([`Ready::poll_ready`]): the next
    /// receive returns it, as it would have returned it then.
    found: Option<RecvFatal<Fault<F>>>,
}

impl<F: Flavor> Receiver<F> {
    /// Releases frames in batches: up to `bytes` (at most half the ring; in an MPSC
    /// channel, half a lane, lane by lane) of consumed frames may wait before the receiver's
    /// position (the ring's head, a broadcast receiver's cursor) is stored. The receiver
    /// then pays that store, and the check for a sender to wake that comes with it, once per
    /// batch rather than once per message, and a sender kept waiting by a full ring reloads
    /// the position once per batch. The position is stored anyway every 32 messages,
    /// whenever the ring is found empty, and when the receiver is dropped, closed or handed
    /// over. `0` (the default) stores it on every release.
    ///
    /// Use it only for a receiver that keeps receiving: room released in a batch stays
    /// hidden from a sender waiting for it until the receiver next finds the ring empty,
    /// fills the batch or closes. A receiver that stops receiving while messages are queued
    /// (to wait for something its sender does after that send) would wait forever.
    ///
    /// The cost is also in crash recovery: if this process dies, a receiver that attaches in
    /// its place starts again from the last stored position, so up to `bytes` of messages
    /// already received are delivered again.
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ipc::channel::spsc::channel(4096)?;
    /// rx.set_release_batch(1024);
    /// for i in 0..100u8 {
    ///     tx.send(&[i; 8])?;
    ///     assert_eq!(rx.recv()?, [i; 8]);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_release_batch(&mut self, bytes: usize) {
        self.ring().set_release_batch(bytes as u64);
    }

    /// Wraps a ring reader whose owner slot already names the calling process. It sleeps
    /// on the data event and its async waits listen on the receiver end of the doorbells.
    pub(crate) fn from_ring(ring: F::Reader, strategy: WaitStrategy) -> Receiver<F> {
        let data = ring.layout().data_event();
        Receiver {
            common: Common::new(
                ring,
                (data, Doorbells::receiver_end),
                RecvRing::close,
                strategy,
            ),
            closed: false,
            found: None,
        }
    }

    /// The ring reader.
    #[inline]
    pub(crate) fn ring(&mut self) -> &mut F::Reader {
        &mut self.common.ring
    }

    /// Waits for the next message and copies it into a new `Vec`.
    #[inline]
    pub fn recv(&mut self) -> Result<Vec<u8>, F::RecvError> {
        self.recv_with(Deadline::Never, copy_out)
    }

    /// The next message, copied into a new `Vec`, if one is there now.
    #[inline]
    pub fn try_recv(&mut self) -> Result<Vec<u8>, TryRecvError<F::RecvError>> {
        self.recv_with(Deadline::Now, copy_out)
    }

    /// Waits at most `timeout` for the next message, copied into a new `Vec`.
    #[inline]
    pub fn recv_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Vec<u8>, RecvTimeoutError<F::RecvError>> {
        self.recv_with(Deadline::after(timeout), copy_out)
    }

    /// Waits for the next message and copies it into `buf`, returning its length. A message
    /// longer than `buf` stays in the channel: [`RecvIntoError::BufferTooSmall`] says how
    /// long it is. (For a non-blocking or timed copy into your buffer, use
    /// [`try_read`](Receiver::try_read) or [`read_timeout`](Receiver::read_timeout) and
    /// [`ReadGrant::copy_to`](crate::ReadGrant::copy_to).)
    #[inline(always)]
    pub fn recv_into(&mut self, buf: &mut [u8]) -> Result<usize, RecvIntoError<F::RecvError>> {
        let grant = self.read()?;
        grant.copy_whole_into(buf)
    }

    /// A blocking iterator over messages; it ends when no message can come any more
    /// (disconnected, the sender died, the ring is corrupt, or this process does not own
    /// the endpoint — [`recv`](Receiver::recv) says which).
    pub fn iter(&mut self) -> impl Iterator<Item = Vec<u8>> + '_ {
        std::iter::from_fn(|| self.recv().ok())
    }

    /// An iterator over the messages there now: it ends at the first receive that would
    /// have to wait (or that fails: [`try_recv`](Receiver::try_recv) says why).
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ipc::channel::spsc::channel(4096)?;
    /// tx.send(b"a")?;
    /// tx.send(b"b")?;
    /// assert_eq!(rx.try_iter().collect::<Vec<_>>(), [b"a".to_vec(), b"b".to_vec()]);
    /// assert_eq!(rx.try_iter().count(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_iter(&mut self) -> impl Iterator<Item = Vec<u8>> + '_ {
        std::iter::from_fn(|| self.try_recv().ok())
    }

    /// Closes the channel for sending while this receiver lives on: senders fail with
    /// `Disconnected` from now on, and receives go on returning what the ring holds, then
    /// `Disconnected` (as tokio's `Receiver::close`). A broadcast receiver leaves the
    /// sender's back-pressure at once: what is still in the ring is read, or reported
    /// `Lagged` if the sender overwrote it meanwhile.
    ///
    /// ```
    /// use shm_ipc::channel::{RecvError, SendError};
    /// let (mut tx, mut rx) = shm_ipc::channel::spsc::channel(4096)?;
    /// tx.send(b"sent before")?;
    /// rx.close();
    /// assert!(matches!(tx.send(b"after"), Err(SendError::Disconnected(()))));
    /// assert_eq!(rx.recv()?, b"sent before");
    /// assert_eq!(rx.recv(), Err(RecvError::Disconnected));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(&mut self) {
        if !self.closed && self.common.verify_owner().is_ok() {
            self.closed = true;
            self.ring().close_receiving();
        }
    }

    /// Whether no message can come any more once the ring is drained: this receiver was
    /// [closed](Receiver::close), or every sender was dropped (a cheap shared load; a sender
    /// whose process died is seen by the next receive that finds the ring empty).
    ///
    /// ```
    /// let (tx, rx) = shm_ipc::channel::spsc::channel(4096)?;
    /// assert!(!rx.is_closed());
    /// drop(tx);
    /// assert!(rx.is_closed());
    /// # Ok::<(), shm_ipc::channel::ChannelError>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        self.closed || self.common.ring.senders_closed()
    }

    /// Waits (until `deadline`) for the next message, hands `read` a pointer valid for its
    /// length, then releases it.
    #[inline(always)]
    pub(crate) fn recv_with<E: FromRecvFatal<Fault<F>>, R>(
        &mut self,
        deadline: Deadline,
        read: impl FnOnce(*const u8, usize) -> R,
    ) -> Result<R, E> {
        let frame = self.frame::<E>(deadline)?;
        let out = read(
            self.common.ring.payload_ptr(&frame),
            <F::Reader as RecvRing>::frame_len(&frame),
        );
        self.ring().release(frame);
        Ok(out)
    }

    /// The next frame as the error type `E` of the calling receive wants it.
    #[inline(always)]
    pub(crate) fn frame<E: FromRecvFatal<Fault<F>>>(
        &mut self,
        deadline: Deadline,
    ) -> Result<Frame<F>, E> {
        loop {
            match self.next_frame(deadline) {
                Ok(Some(frame)) => return Ok(frame),
                Err(fatal) => return Err(E::from_fatal(fatal)),
                Ok(None) => {
                    // Nothing in time: `Empty` or `Timeout`. A call without a deadline is
                    // never told this (its wait cannot time out); were it, it would simply
                    // wait again.
                    if let Some(not_ready) = E::not_ready() {
                        return Err(not_ready);
                    }
                }
            }
        }
    }

    /// The next frame, `None` if none came before `deadline`.
    ///
    /// The frame reaches the caller only from the `try_peek` here, never from the wait:
    /// a frame that also came back from the out-of-line wait would share a stack slot with
    /// it, stored as words and loaded back as wider moves, which the store buffer cannot
    /// forward. With the path inlined but the wait still handing frames back, that stall
    /// made an SPSC `recv_into` 13.7 ns a message in one thread (5.8 ns without it); out of
    /// line, it made the MPSC consumer of examples/fan_in 2.3 times slower. So the whole
    /// receive path, from the ring's `try_peek` up to the public copying calls, is inlined
    /// always, and the wait only says whether a frame is there.
    #[inline(always)]
    pub(crate) fn next_frame(
        &mut self,
        deadline: Deadline,
    ) -> Result<Option<Frame<F>>, RecvFatal<Fault<F>>> {
        if self.common.verify_owner().is_err() {
            return Err(RecvFatal::NotOwner);
        }
        if let Some(fatal) = self.found.take() {
            return Err(fatal);
        }
        let (mut waited, mut settled) = (false, false);
        loop {
            match self.ring().try_peek(false) {
                Ok(Some(frame)) => return Ok(Some(frame)),
                Err(fault) => return Err(RecvFatal::Ring(fault)),
                // The wait saw a frame that is not there now: only a peer rewriting the
                // ring can do that. As an empty ring (a blocking call waits again).
                Ok(None) if waited => return Ok(None),
                // Settled once: look again (and wait if it is still empty).
                Ok(None) if !settled && self.settles(deadline) => {
                    self.ring().settle();
                    settled = true;
                    continue;
                }
                Ok(None) => {}
            }
            if !self.wait_when_empty(deadline)? {
                return Ok(None);
            }
            waited = true;
        }
    }

    /// Whether a receive that found the ring empty settles before it waits: only one that
    /// may wait, and whose wait starts by spinning (a sleeping strategy gives the writer
    /// its core, and its batch, anyway).
    #[inline]
    fn settles(&self, deadline: Deadline) -> bool {
        deadline != Deadline::Now
            && matches!(
                self.common.strategy,
                WaitStrategy::Adaptive { .. }
                    | WaitStrategy::Spin
                    | WaitStrategy::SpinThenPark { .. }
            )
    }

    /// Nothing to read: say why (disconnected, dead peer), or wait. `Ok(true)` when a frame
    /// is there (the caller peeks it again), `Ok(false)` when none came before `deadline`.
    #[cold]
    #[inline(never)]
    fn wait_when_empty(&mut self, deadline: Deadline) -> Result<bool, RecvFatal<Fault<F>>> {
        let closed = self.closed;
        // The sleeper's half of the wake handshake (SYNC: waiter flag), on the data event:
        // the sender publishes with the matching notification.
        let woken = self.common.wait(
            deadline,
            |ring| ring.data_mark(),
            |ring, check| attempt(ring, check, closed),
        );
        let outcome = match woken {
            Some(outcome) => Some(outcome),
            // No wait, or one that ended by its deadline (which may have made no slow
            // check: short timed waits in a loop): one more look, with a slow check paced
            // as non-blocking calls' are.
            None => {
                let Common { ring, throttle, .. } = &mut self.common;
                let check = if slow_check_due(throttle) {
                    Check::Slow
                } else {
                    Check::Fast
                };
                attempt(ring, check, closed)
            }
        };
        match outcome {
            Some(Ok(_frame)) => Ok(true),
            Some(Err(fatal)) => Err(fatal),
            None => Ok(false),
        }
    }
}

/// One attempt of a receiver waiting for a frame: `Some` when the call can return. With
/// the ring empty it asks whether the senders are gone (on a slow check, the kernel) or
/// the receiver was `closed`; if so, one last look at the ring, since frames published
/// before a close or a death are still delivered.
fn attempt<R: RecvRing>(
    ring: &mut R,
    check: Check,
    closed: bool,
) -> Option<Result<R::Frame, RecvFatal<R::Fault>>> {
    let slow = check == Check::Slow;
    match ring.try_peek(slow) {
        Ok(Some(frame)) => return Some(Ok(frame)),
        Ok(None) => {}
        Err(fault) => return Some(Err(RecvFatal::Ring(fault))),
    }
    let gone = match closed {
        true => Gone::Disconnected,
        false => ring.senders_gone(slow)?,
    };
    match ring.try_peek(false) {
        Ok(Some(frame)) => Some(Ok(frame)),
        Ok(None) => Some(Err(match gone {
            Gone::Disconnected => RecvFatal::Disconnected,
            Gone::PeerDied => RecvFatal::PeerDied,
        })),
        Err(fault) => Some(Err(RecvFatal::Ring(fault))),
    }
}

/// What a [`Select`](crate::select::Select) asks of a receiver of any flavor and layer:
/// whether a receive would return now, and where to sleep until one might. Crate-private:
/// it seals [`Selectable`](crate::select::Selectable).
pub(crate) trait Ready {
    /// Whether a receive would return now — with a message, or with the error that ends
    /// the stream (disconnected, a dead peer, a ring fault, not owned here) — without
    /// taking anything: a frame stays in the ring, and an error found is kept for the next
    /// receive to return (a broadcast `Lagged` is found by moving past what was lost, so
    /// it must be reported then). How much it asks is `probe`'s.
    fn poll_ready(&mut self, probe: Probe) -> bool;

    /// The event a receive sleeps on (the channel's data event), and the channel's wake
    /// handshake.
    fn data_event(&self) -> (EventRef, Handshake);
}

/// How much [`Ready::poll_ready`] asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    /// The cheap shared state only (a wait's hot polls).
    Fast,
    /// Also the kernel, about the senders' processes (a wait's slow checks, every
    /// `SLOW_CHECK_INTERVAL` and before each sleep).
    Slow,
    /// As a non-blocking receive does: the kernel too when this receiver's pacing says a
    /// slow check is due (about once per `SLOW_CHECK_INTERVAL`).
    Paced,
}

impl<F: Flavor> Ready for Receiver<F> {
    fn poll_ready(&mut self, probe: Probe) -> bool {
        if self.found.is_some() {
            return true;
        }
        if self.common.verify_owner().is_err() {
            self.found = Some(RecvFatal::NotOwner);
            return true;
        }
        let check = match probe {
            Probe::Fast => Check::Fast,
            // Never under loom: a model has no kernel to ask.
            Probe::Slow if cfg!(loom) => Check::Fast,
            Probe::Slow => Check::Slow,
            Probe::Paced if slow_check_due(&mut self.common.throttle) => Check::Slow,
            Probe::Paced => Check::Fast,
        };
        match attempt(&mut self.common.ring, check, self.closed) {
            None => false,
            // Left in the ring: the receive that follows peeks it again.
            Some(Ok(_frame)) => true,
            Some(Err(fatal)) => {
                self.found = Some(fatal);
                true
            }
        }
    }

    fn data_event(&self) -> (EventRef, Handshake) {
        (self.common.event.clone(), self.common.handshake)
    }
}

impl<F: Flavor> Endpoint for Receiver<F> {
    fn parts(&self) -> &dyn Parts {
        &self.common
    }

    fn parts_mut(&mut self) -> &mut dyn Parts {
        &mut self.common
    }
}

impl<F: Flavor> std::fmt::Debug for Receiver<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.common.debug("Receiver", F::NAME, f)
    }
}

/// The bytes at `ptr`, copied out of the ring into a new `Vec`.
#[inline]
pub(crate) fn copy_out(ptr: *const u8, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    // SAFETY: the caller passes a frame's payload, valid for reads of `len` bytes until the
    // frame is released (after this returns); `out` has room for `len` bytes and is
    // private memory, so the ranges do not overlap; `set_len` follows the copy that
    // initialised them.
    unsafe {
        crate::shared::frame::copy_payload_out(ptr, out.as_mut_ptr(), len);
        out.set_len(len);
    }
    out
}
