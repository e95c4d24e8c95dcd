//! What typed endpoints need of a byte endpoint, so that one typed layer
//! ([`typed`](crate::typed)) serves every ring: the SPSC byte channel ([`bytes`]), the MPSC
//! one ([`mpsc`]) and broadcast ([`broadcast`]).
//!
//! The traits are sealed: only this crate's endpoints implement them.

use std::time::{Duration, Instant};

use shm_core::liveness::ProcessIdentity;
use shm_core::notify::WaitStrategy;

use crate::{broadcast, bytes, mpsc, OwnershipError, RecvError, SendError};

/// How long one call may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// Do not wait.
    Now,
    /// Wait until this instant (monotonic clock).
    At(Instant),
    /// Wait as long as it takes.
    Never,
}

impl Deadline {
    /// `timeout` from now (as long as it takes if that overflows the clock).
    pub fn after(timeout: Duration) -> Deadline {
        Instant::now()
            .checked_add(timeout)
            .map_or(Deadline::Never, Deadline::At)
    }

    /// The instant to wait until, if any.
    pub fn instant(self) -> Option<Instant> {
        match self {
            Deadline::At(at) => Some(at),
            Deadline::Now | Deadline::Never => None,
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::bytes::Sender {}
    impl Sealed for crate::bytes::Receiver {}
    impl Sealed for crate::mpsc::Sender {}
    impl Sealed for crate::mpsc::Receiver {}
    impl Sealed for crate::broadcast::Sender {}
    impl Sealed for crate::broadcast::Receiver {}
}

/// Ownership and waiting: what every endpoint has.
pub trait Endpoint: sealed::Sealed {
    /// Changes how this endpoint waits.
    fn set_wait_strategy(&mut self, strategy: WaitStrategy);

    /// In the process that owns this endpoint: makes process `to` its owner (after `fork`).
    fn hand_over(&self, to: ProcessIdentity) -> Result<(), OwnershipError>;

    /// In a child created by `fork`: takes ownership of this endpoint from the parent.
    fn adopt(&self) -> Result<(), OwnershipError>;

    /// Whether the calling process owns this endpoint.
    fn is_owned_here(&self) -> bool;
}

/// A byte endpoint that sends frames written in place.
pub trait ByteSender: Endpoint {
    /// Reserves a frame of `len` bytes (waiting until `deadline`), lets `write` fill it
    /// through a pointer valid for `len` bytes, and commits it if `write` succeeds —
    /// published now, or left for a later publish if `deferred` — or drops it uncommitted
    /// (nothing delivered) if `write` fails. The outer error is the channel's; the inner
    /// one is `write`'s.
    fn send_frame<E>(
        &mut self,
        len: usize,
        deadline: Deadline,
        deferred: bool,
        write: impl FnOnce(*mut u8) -> Result<(), E>,
    ) -> Result<Result<(), E>, SendError<()>>;

    /// Publishes frames committed deferred.
    fn flush_frames(&mut self);
}

/// A byte endpoint that receives frames read in place.
pub trait ByteReceiver: Endpoint {
    /// Waits (until `deadline`) for the next frame, hands `read` a pointer valid for the
    /// frame's length, then releases the frame.
    fn recv_frame<R>(
        &mut self,
        deadline: Deadline,
        read: impl FnOnce(*const u8, usize) -> R,
    ) -> Result<R, RecvError>;
}

/// Implements [`Endpoint`] by forwarding to the type's inherent methods of the same names.
macro_rules! forward_endpoint {
    ($($endpoint:ty),*) => {$(
        impl Endpoint for $endpoint {
            fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
                <$endpoint>::set_wait_strategy(self, strategy)
            }

            fn hand_over(&self, to: ProcessIdentity) -> Result<(), OwnershipError> {
                <$endpoint>::hand_over(self, to)
            }

            fn adopt(&self) -> Result<(), OwnershipError> {
                <$endpoint>::adopt(self)
            }

            fn is_owned_here(&self) -> bool {
                <$endpoint>::is_owned_here(self)
            }
        }
    )*};
}

forward_endpoint!(
    bytes::Sender,
    bytes::Receiver,
    mpsc::Sender,
    mpsc::Receiver,
    broadcast::Sender,
    broadcast::Receiver
);

impl ByteSender for bytes::Sender {
    fn send_frame<E>(
        &mut self,
        len: usize,
        deadline: Deadline,
        deferred: bool,
        write: impl FnOnce(*mut u8) -> Result<(), E>,
    ) -> Result<Result<(), E>, SendError<()>> {
        let mut grant = self.reserve_with_deadline(len, deadline)?;
        Ok(write(grant.as_mut_ptr()).map(|()| {
            if deferred {
                grant.commit_deferred(len);
            } else {
                grant.commit(len);
            }
        }))
    }

    fn flush_frames(&mut self) {
        self.flush();
    }
}

impl ByteSender for mpsc::Sender {
    fn send_frame<E>(
        &mut self,
        len: usize,
        deadline: Deadline,
        _deferred: bool, // every MPSC commit is visible at once: it is the commit marker
        write: impl FnOnce(*mut u8) -> Result<(), E>,
    ) -> Result<Result<(), E>, SendError<()>> {
        let mut grant = self.reserve_with_deadline(len, deadline)?;
        Ok(write(grant.as_mut_ptr()).map(|()| grant.commit(len)))
    }

    fn flush_frames(&mut self) {}
}

/// Implements [`ByteReceiver`] through the receiver's read grant (`read_with_deadline`).
macro_rules! receive_through_read_grant {
    ($($receiver:ty),*) => {$(
        impl ByteReceiver for $receiver {
            fn recv_frame<R>(
                &mut self,
                deadline: Deadline,
                read: impl FnOnce(*const u8, usize) -> R,
            ) -> Result<R, RecvError> {
                let grant = self.read_with_deadline(deadline)?;
                Ok(read(grant.as_ptr(), grant.len()))
            }
        }
    )*};
}

receive_through_read_grant!(bytes::Receiver, mpsc::Receiver);

impl ByteSender for broadcast::Sender {
    fn send_frame<E>(
        &mut self,
        len: usize,
        deadline: Deadline,
        _deferred: bool, // every broadcast send publishes
        write: impl FnOnce(*mut u8) -> Result<(), E>,
    ) -> Result<Result<(), E>, SendError<()>> {
        // No write grants in a broadcast ring: encoded into a private buffer, then copied.
        self.send_encoded(len, deadline, write)
    }

    fn flush_frames(&mut self) {}
}

impl ByteReceiver for broadcast::Receiver {
    fn recv_frame<R>(
        &mut self,
        deadline: Deadline,
        read: impl FnOnce(*const u8, usize) -> R,
    ) -> Result<R, RecvError> {
        // Broadcast frames are copied out (and re-validated against overwriting) first.
        let msg = self.recv_with_deadline(deadline)?;
        Ok(read(msg.as_ptr(), msg.len()))
    }
}
