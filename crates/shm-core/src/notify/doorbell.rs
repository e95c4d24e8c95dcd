//! Descriptors a reactor (tokio, epoll) can wait on, for waiters that must not block a
//! thread: a [`Doorbell`] rung by the peer that notifies an [`Event`](super::Event), and a
//! [`Ticker`] for the periodic slow checks (peer liveness) a blocked wait makes.
//!
//! A doorbell is one end of a unix datagram socket pair shared with the peer processes
//! (inherited across `fork`, passed across `exec` or a unix socket): ringing one end makes
//! the other readable. The notifier rings only when an *async* waiter has announced itself
//! in the event ([`Event::announce_async`](super::Event::announce_async)): synchronous
//! users never make the call.
//!
//! Why a socket pair and not an eventfd: an eventfd's `O_NONBLOCK` belongs to the open
//! file every holder shares, so a peer could clear it and make our `write` (its counter
//! full) or `read` block for ever; a socket's `MSG_DONTWAIT` is per call, out of the
//! peer's reach.
//!
//! ```
//! use shm_ipc::core::notify::{Doorbell, Event, Handshake};
//!
//! let event = Event::new();
//! let (notifier_end, waiter_end) = Doorbell::pair()?;
//! // Nobody waits asynchronously: notifying rings nothing.
//! event.notify();
//! assert!(!event.ring_if_async(&notifier_end)?);
//! // An async waiter announces itself; now a notification rings the doorbell.
//! event.announce_async(Handshake::SeqCst);
//! assert!(event.notify());
//! assert!(event.ring_if_async(&notifier_end)?);
//! assert_eq!(waiter_end.take()?, 1);
//! event.withdraw_async();
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::sys;

/// The most rings one [`Doorbell::take`] drains: a peer that rings without pause cannot
/// keep a waiter in the call.
const MAX_DRAIN: u64 = 1024;

/// One end of a doorbell: ringing it makes the other end readable (to `poll`/epoll; every
/// ring is a new edge for an edge-triggered reactor). Neither ringing nor taking ever
/// blocks, whatever a peer holding the same sockets does to their flags.
#[derive(Debug)]
pub struct Doorbell {
    fd: OwnedFd,
}

/// Why a received descriptor is not a doorbell.
#[derive(Debug, thiserror::Error)]
pub enum DoorbellError {
    /// The descriptor is not a unix datagram socket.
    #[error("descriptor {fd} is not a unix datagram socket (a doorbell)")]
    NotADoorbell {
        /// The descriptor number.
        fd: RawFd,
    },
}

impl Doorbell {
    /// The two ends of a new doorbell (close-on-exec, non-blocking).
    pub fn pair() -> io::Result<(Doorbell, Doorbell)> {
        let (a, b) = sys::datagram_pair()?;
        Ok((Doorbell { fd: a }, Doorbell { fd: b }))
    }

    /// Adopts a descriptor received from another process, after checking that it is a
    /// unix datagram socket: ringing any other kind of file would write into it.
    pub fn from_fd(fd: OwnedFd) -> Result<Doorbell, DoorbellError> {
        if !sys::is_unix_datagram_socket(fd.as_fd()) {
            return Err(DoorbellError::NotADoorbell { fd: fd.as_raw_fd() });
        }
        Ok(Doorbell { fd })
    }

    /// Rings: makes the other end readable. Never blocks (a full queue means the other
    /// end is readable already).
    pub fn ring(&self) -> io::Result<()> {
        sys::send_byte_now(self.fd.as_fd())
    }

    /// Takes the rings that reached this end since the last `take` (0 if none; at most
    /// 1024 per call). Never blocks.
    pub fn take(&self) -> io::Result<u64> {
        sys::drain_datagrams(self.fd.as_fd(), MAX_DRAIN)
    }

    /// A second descriptor for the same end (close-on-exec): to pass to another process,
    /// or to register with a reactor of its own.
    pub fn try_clone(&self) -> io::Result<Doorbell> {
        Ok(Doorbell {
            fd: self.fd.try_clone()?,
        })
    }

    /// The descriptor, for passing it on.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

impl AsFd for Doorbell {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Doorbell {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// A timerfd that becomes readable every interval while armed: the clock of an async wait's
/// slow checks, without depending on a runtime's timer. Private to the process that made
/// it (never passed to a peer).
#[derive(Debug)]
pub struct Ticker {
    fd: OwnedFd,
}

impl Ticker {
    /// A disarmed ticker (close-on-exec, non-blocking).
    pub fn new() -> io::Result<Ticker> {
        Ok(Ticker {
            fd: sys::timerfd()?,
        })
    }

    /// Ticks every `interval` from now on (`None`: stops).
    pub fn every(&self, interval: Option<Duration>) -> io::Result<()> {
        sys::timerfd_every(self.fd.as_fd(), interval.filter(|i| !i.is_zero()))
    }

    /// Ticks since the last `take` (0 if none); makes the descriptor unreadable again.
    pub fn take(&self) -> io::Result<u64> {
        sys::read_timer(self.fd.as_fd())
    }
}

impl AsFd for Ticker {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Ticker {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_reaches_the_other_end_and_is_taken_once() {
        let (a, b) = Doorbell::pair().unwrap();
        assert_eq!(b.take().unwrap(), 0);
        a.ring().unwrap();
        a.ring().unwrap();
        assert_eq!(a.take().unwrap(), 0, "a ring does not reach its own end");
        assert_eq!(b.take().unwrap(), 2);
        assert_eq!(b.take().unwrap(), 0);
        b.ring().unwrap();
        assert_eq!(a.take().unwrap(), 1);
    }

    #[test]
    fn a_clone_rings_the_same_doorbell() {
        let (a, b) = Doorbell::pair().unwrap();
        a.try_clone().unwrap().ring().unwrap();
        assert_eq!(b.take().unwrap(), 1);
    }

    #[test]
    fn other_descriptors_are_refused() {
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        let refused = Doorbell::from_fd(OwnedFd::from(file));
        assert!(matches!(refused, Err(DoorbellError::NotADoorbell { .. })));
        let stream = std::os::unix::net::UnixStream::pair().unwrap().0;
        assert!(Doorbell::from_fd(OwnedFd::from(stream)).is_err());
        let (a, _b) = Doorbell::pair().unwrap();
        assert!(Doorbell::from_fd(a.into_fd()).is_ok());
    }

    #[test]
    fn neither_ringing_nor_taking_blocks_whatever_the_shared_flags() {
        let (a, b) = Doorbell::pair().unwrap();
        // A peer sharing the open files clears O_NONBLOCK on both ends...
        for raw in [a.as_raw_fd(), b.as_raw_fd()] {
            // SAFETY: F_SETFL on a descriptor we hold.
            unsafe { libc::fcntl(raw, libc::F_SETFL, 0) };
        }
        // ...then nothing is there to take: a blocking read would hang here.
        assert_eq!(b.take().unwrap(), 0);
        // ...and it fills the queue: a blocking send would hang here.
        for _ in 0..100_000 {
            a.ring().unwrap();
        }
        let taken = b.take().unwrap();
        assert!(taken > 0 && taken <= MAX_DRAIN, "{taken}");
    }

    #[test]
    fn a_ticker_ticks_while_armed() {
        let ticker = Ticker::new().unwrap();
        assert_eq!(ticker.take().unwrap(), 0);
        ticker.every(Some(Duration::from_millis(1))).unwrap();
        let start = std::time::Instant::now();
        while ticker.take().unwrap() == 0 {
            assert!(start.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(1));
        }
        ticker.every(None).unwrap();
        ticker.take().unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(ticker.take().unwrap(), 0);
    }
}
