//! The receiving endpoint of every flavor: peek with a deadline, read, release; the
//! empty-ring wait with its disconnect and liveness checks; ownership; `Drop`.

use std::sync::Arc;
use std::time::Duration;

use shm_core::liveness::ProcessIdentity;
use shm_core::notify::{Check, Handshake, WaitStrategy};
use shm_core::SharedMemory;

use super::grant::ReadGrant;
use super::ownership::{self, OwnerCheck};
use super::sender::EndpointStats;
use super::{endpoint_common, Deadline, Fault, Flavor};
use crate::error::{FromRecvFatal, RecvFatal};
use crate::layout::ChannelLayout;
use crate::layout::EventRef;
use crate::ring::{Gone, HasLayout, Peek, RecvRing};
use crate::{OwnershipError, RecvIntoError};
use shm_core::notify::Throttle;

type Frame<F> = <<F as Flavor>::Reader as RecvRing>::Frame;

/// The receiving end of a channel of flavor `F` (see [`spsc`](crate::spsc),
/// [`mpsc`](crate::mpsc), [`broadcast`](crate::broadcast) for how to make one).
///
/// ```
/// use shm_channel::{RecvIntoError, TryRecvError};
/// let (mut tx, mut rx) = shm_channel::spsc::channel(4096)?;
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
/// tx.send(b"twelve bytes")?;
/// let mut small = [0u8; 4];
/// assert_eq!(rx.recv_into(&mut small), Err(RecvIntoError::BufferTooSmall { needed: 12 }));
/// let mut buf = [0u8; 64];
/// assert_eq!(rx.recv_into(&mut buf)?, 12); // the message stayed in the channel
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Receiver<F: Flavor> {
    pub(crate) ring: F::Reader,
    data: EventRef,
    /// The channel's wake handshake, cached at creation or attach: never re-read from
    /// shared memory.
    handshake: Handshake,
    strategy: WaitStrategy,
    throttle: Throttle,
    owner: OwnerCheck,
    /// How this endpoint waits in async calls, once it has.
    #[cfg(feature = "tokio")]
    pub(crate) async_wait: Option<Box<super::asynchronous::AsyncWait>>,
}

impl<F: Flavor> Receiver<F> {
    /// Wraps a ring reader whose owner slot already names the calling process.
    pub(crate) fn from_ring(ring: F::Reader, strategy: WaitStrategy) -> Receiver<F> {
        Receiver {
            data: ring.data_event(),
            handshake: ring.layout().handshake(),
            ring,
            strategy,
            throttle: Throttle::default(),
            owner: OwnerCheck::new(),
            #[cfg(feature = "tokio")]
            async_wait: None,
        }
    }

    /// Waits for the next message and returns a grant over it.
    #[inline]
    pub fn read(&mut self) -> Result<ReadGrant<'_, F>, F::RecvError> {
        let frame = self.frame::<F::RecvError>(Deadline::Never)?;
        Ok(ReadGrant::new(self, frame))
    }

    /// The next message, if one is there now.
    pub fn try_read(&mut self) -> Result<ReadGrant<'_, F>, F::TryRecvError> {
        let frame = self.frame::<F::TryRecvError>(Deadline::Now)?;
        Ok(ReadGrant::new(self, frame))
    }

    /// Waits at most `timeout` for the next message.
    pub fn read_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<ReadGrant<'_, F>, F::RecvTimeoutError> {
        let frame = self.frame::<F::RecvTimeoutError>(Deadline::after(timeout))?;
        Ok(ReadGrant::new(self, frame))
    }

    /// Waits for the next message and copies it into a new `Vec`.
    pub fn recv(&mut self) -> Result<Vec<u8>, F::RecvError> {
        self.read().map(|grant| grant.to_vec())
    }

    /// The next message, copied into a new `Vec`, if one is there now.
    pub fn try_recv(&mut self) -> Result<Vec<u8>, F::TryRecvError> {
        self.try_read().map(|grant| grant.to_vec())
    }

    /// Waits at most `timeout` for the next message, copied into a new `Vec`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>, F::RecvTimeoutError> {
        self.read_timeout(timeout).map(|grant| grant.to_vec())
    }

    /// Waits for the next message and copies it into `buf`, returning its length. A message
    /// longer than `buf` stays in the channel: [`RecvIntoError::BufferTooSmall`] says how
    /// long it is.
    #[inline]
    pub fn recv_into(&mut self, buf: &mut [u8]) -> Result<usize, RecvIntoError<F::RecvError>> {
        let grant = self.read()?;
        grant.copy_whole_into(buf)
    }

    /// [`recv_into`](Receiver::recv_into), if a message is there now.
    pub fn try_recv_into(
        &mut self,
        buf: &mut [u8],
    ) -> Result<usize, RecvIntoError<F::TryRecvError>> {
        let grant = self.try_read()?;
        grant.copy_whole_into(buf)
    }

    /// [`recv_into`](Receiver::recv_into), waiting at most `timeout`.
    pub fn recv_into_timeout(
        &mut self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<usize, RecvIntoError<F::RecvTimeoutError>> {
        let grant = self.read_timeout(timeout)?;
        grant.copy_whole_into(buf)
    }

    /// A blocking iterator over messages; it ends when no message can come any more
    /// (disconnected, the sender died, the ring is corrupt, or this process does not own
    /// the endpoint — [`recv`](Receiver::recv) says which).
    pub fn iter(&mut self) -> Iter<'_, F> {
        Iter { receiver: self }
    }

    /// Waits (until `deadline`) for the next message, hands `read` a pointer valid for its
    /// length, then releases it.
    pub(crate) fn recv_with<E: FromRecvFatal<Fault<F>>, R>(
        &mut self,
        deadline: Deadline,
        read: impl FnOnce(*const u8, usize) -> R,
    ) -> Result<R, E> {
        let frame = self.frame::<E>(deadline)?;
        let out = read(
            self.ring.payload_ptr(&frame),
            <F::Reader as RecvRing>::frame_len(&frame),
        );
        self.ring.release(frame);
        Ok(out)
    }

    /// The next frame as the error type `E` of the calling receive wants it.
    #[inline]
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
    #[inline]
    pub(crate) fn next_frame(
        &mut self,
        deadline: Deadline,
    ) -> Result<Option<Frame<F>>, RecvFatal<Fault<F>>> {
        if self.owner.verify(self.ring.owner_slot()).is_err() {
            return Err(RecvFatal::NotOwner);
        }
        match self.ring.try_peek(false) {
            Ok(Peek::Frame(frame)) => Ok(Some(frame)),
            Ok(Peek::Empty | Peek::Blocked) => self.next_frame_when_empty(deadline),
            Err(fault) => Err(RecvFatal::Ring(fault)),
        }
    }

    /// Nothing to read: say why (disconnected, dead peer), or wait.
    #[cold]
    #[inline(never)]
    fn next_frame_when_empty(
        &mut self,
        deadline: Deadline,
    ) -> Result<Option<Frame<F>>, RecvFatal<Fault<F>>> {
        let Receiver {
            ring,
            data,
            handshake,
            strategy,
            throttle,
            ..
        } = self;
        if let Deadline::Now = deadline {
            let check = if throttle.due() {
                Check::Slow
            } else {
                Check::Fast
            };
            return attempt(ring, check).transpose();
        }
        // The sleeper's half of the wake handshake (SYNC: waiter flag): the sender
        // publishes with the matching notification.
        let woken = data
            .get()
            .wait_until_with(*handshake, strategy, deadline.instant(), |check| {
                attempt(ring, check)
            });
        match woken {
            Ok(outcome) => outcome.map(Some),
            Err(_timeout) => Ok(None),
        }
    }
}

/// One attempt of a receiver waiting for a frame: `Some` when the call can return. With
/// the ring empty it asks whether the senders are gone (on a slow check, the kernel); if
/// so, one last look at the ring, since frames published before a close or a death are
/// still delivered.
fn attempt<R: RecvRing>(
    ring: &mut R,
    check: Check,
) -> Option<Result<R::Frame, RecvFatal<R::Fault>>> {
    let slow = check == Check::Slow;
    match ring.try_peek(slow) {
        Ok(Peek::Frame(frame)) => return Some(Ok(frame)),
        Ok(Peek::Blocked) => return None,
        Ok(Peek::Empty) => {}
        Err(fault) => return Some(Err(RecvFatal::Ring(fault))),
    }
    let gone = ring.senders_gone(slow)?;
    match ring.try_peek(false) {
        Ok(Peek::Frame(frame)) => Some(Ok(frame)),
        Ok(Peek::Blocked) => None,
        Ok(Peek::Empty) => Some(Err(match gone {
            Gone::Disconnected => RecvFatal::Disconnected,
            Gone::PeerDied => RecvFatal::PeerDied,
        })),
        Err(fault) => Some(Err(RecvFatal::Ring(fault))),
    }
}

endpoint_common!(Receiver);

/// A blocking iterator over received messages (see [`Receiver::iter`]).
pub struct Iter<'a, F: Flavor> {
    receiver: &'a mut Receiver<F>,
}

impl<F: Flavor> Iterator for Iter<'_, F> {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        self.receiver.recv().ok()
    }
}
