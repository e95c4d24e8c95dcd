//! Descriptors a reactor (tokio, epoll) can wait on, for waiters that must not block a
//! thread: a [`Doorbell`] rung by the peer that notifies an [`Event`](super::Event), and a
//! [`Ticker`] for the periodic slow checks (peer liveness) a blocked wait makes.
//!
//! A doorbell is an eventfd shared with the peer processes (inherited across `fork`,
//! passed across `exec` or a unix socket). The notifier rings it only when an *async*
//! waiter has announced itself in the event ([`Event::announce_async`](super::Event::announce_async)):
//! synchronous users never make the call.
//!
//! ```
//! use shm_core::notify::{Doorbell, Event};
//!
//! let event = Event::new();
//! let bell = Doorbell::new()?;
//! // Nobody waits asynchronously: notifying rings nothing.
//! event.notify();
//! assert!(!event.ring_if_async(&bell)?);
//! // An async waiter announces itself; now a notification rings the doorbell.
//! event.announce_async(shm_core::notify::Handshake::SeqCst);
//! assert!(event.notify());
//! assert!(event.ring_if_async(&bell)?);
//! assert_eq!(bell.take()?, 1);
//! event.withdraw_async();
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::sys;

/// An eventfd a peer process rings when it notifies an event an async waiter waits on.
///
/// Readable (to `poll`/epoll) once rung; every ring is a new edge for an edge-triggered
/// reactor, so waiters need not drain it. Cloning shares the same doorbell.
#[derive(Debug)]
pub struct Doorbell {
    fd: OwnedFd,
}

/// Why a received descriptor is not a doorbell.
#[derive(Debug, thiserror::Error)]
pub enum DoorbellError {
    /// The descriptor is not an eventfd (what `/proc/self/fd` says it is instead).
    #[error("descriptor {fd} is not an eventfd (it is {target:?})")]
    NotAnEventfd {
        /// The descriptor number.
        fd: RawFd,
        /// Its `/proc/self/fd` link.
        target: String,
    },
    /// `/proc/self/fd` could not be read.
    #[error("cannot inspect descriptor {fd}: {source}")]
    Inspect {
        /// The descriptor number.
        fd: RawFd,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl Doorbell {
    /// A new doorbell (close-on-exec, non-blocking).
    pub fn new() -> io::Result<Doorbell> {
        Ok(Doorbell {
            fd: sys::eventfd()?,
        })
    }

    /// Adopts a descriptor received from another process, after checking that it is an
    /// eventfd: ringing any other kind of file would write 8 bytes into it.
    pub fn from_fd(fd: OwnedFd) -> Result<Doorbell, DoorbellError> {
        let raw = fd.as_raw_fd();
        let target = sys::fd_target(fd.as_fd())
            .map_err(|source| DoorbellError::Inspect { fd: raw, source })?;
        if target.as_os_str() != "anon_inode:[eventfd]" {
            return Err(DoorbellError::NotAnEventfd {
                fd: raw,
                target: target.to_string_lossy().into_owned(),
            });
        }
        Ok(Doorbell { fd })
    }

    /// Rings: makes the descriptor readable. Never blocks, even if a peer cleared the
    /// shared `O_NONBLOCK` flag (it is set again first).
    pub fn ring(&self) -> io::Result<()> {
        sys::eventfd_add_one(self.fd.as_fd())
    }

    /// Reads and resets the count of rings since the last `take` (0 if none).
    pub fn take(&self) -> io::Result<u64> {
        sys::read_counter(self.fd.as_fd())
    }

    /// A second descriptor for the same doorbell (close-on-exec): to pass to another
    /// process, or to register with a second reactor.
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
/// slow checks, without depending on a runtime's timer.
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
        sys::read_counter(self.fd.as_fd())
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
    fn a_ring_is_counted_and_taken_once() {
        let bell = Doorbell::new().unwrap();
        assert_eq!(bell.take().unwrap(), 0);
        bell.ring().unwrap();
        bell.ring().unwrap();
        assert_eq!(bell.take().unwrap(), 2);
        assert_eq!(bell.take().unwrap(), 0);
    }

    #[test]
    fn a_clone_rings_the_same_doorbell() {
        let bell = Doorbell::new().unwrap();
        bell.try_clone().unwrap().ring().unwrap();
        assert_eq!(bell.take().unwrap(), 1);
    }

    #[test]
    fn other_descriptors_are_refused() {
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        let refused = Doorbell::from_fd(OwnedFd::from(file));
        assert!(matches!(refused, Err(DoorbellError::NotAnEventfd { .. })));
        let bell = Doorbell::new().unwrap();
        assert!(Doorbell::from_fd(bell.into_fd()).is_ok());
    }

    #[test]
    fn ringing_never_blocks_even_with_o_nonblock_cleared() {
        let bell = Doorbell::new().unwrap();
        let raw = bell.as_raw_fd();
        // A peer sharing the open file clears O_NONBLOCK and fills the counter.
        // SAFETY: F_SETFL on a descriptor we hold.
        unsafe { libc::fcntl(raw, libc::F_SETFL, 0) };
        let near_max: u64 = u64::MAX - 1;
        // SAFETY: writes the 8 bytes of `near_max`.
        let wrote = unsafe { libc::write(raw, (&near_max as *const u64).cast(), 8) };
        assert_eq!(wrote, 8);
        // SAFETY: F_SETFL again: blocking, as the hostile peer left it.
        unsafe { libc::fcntl(raw, libc::F_SETFL, 0) };
        // A blocking write would hang here for ever; ours returns.
        bell.ring().unwrap();
        assert_eq!(bell.take().unwrap(), near_max);
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
