//! Fan-out: one sender, up to [`MAX_READERS`] (16) receivers that each see every message.
//!
//! Each receiver has its own cursor in a reader slot of the control block. The policy is
//! chosen at creation ([`Builder::policy`]):
//!
//! - [`Policy::BackPressure`] (the default): the sender waits for the slowest live
//!   receiver. A receiver whose process died is dropped from the back-pressure at the
//!   sender's next slow check (every 10 ms of a blocked send, or at most once per 10 ms of
//!   a `try_send` that finds the ring full).
//! - [`Policy::Overwrite`]: the sender never waits; it overwrites the oldest messages. A
//!   receiver that fell behind gets [`RecvError::Lagged(n)`](RecvError::Lagged) — `n`
//!   messages it missed — and continues from the oldest message still in the ring.
//!
//! Receivers join late with [`Sender::subscribe`], [`Receiver::try_clone`] or
//! [`Receiver::attach`](crate::Receiver::attach) (from another process), starting at the
//! current tail, and leave by being dropped. With no receiver, messages are dropped.
//!
//! A receiver copies each frame into a private buffer and checks it was not overwritten
//! during the copy before handing it out (through [`ReadGrant`], `recv`, `recv_into`):
//! torn data is never returned.
//!
//! # Examples
//!
//! ```
//! use shm_channel::broadcast::{self, Policy, RecvError};
//!
//! let (mut tx, mut rx1) = broadcast::Builder::new(256).policy(Policy::Overwrite).create()?;
//! let mut rx2 = tx.subscribe()?;
//! assert_eq!(tx.receiver_count(), 2);
//! tx.send(b"to everyone")?;
//! assert_eq!(rx1.recv()?, b"to everyone");
//! assert_eq!(rx2.recv()?, b"to everyone");
//!
//! // rx1 falls behind: 20 messages of 24 bytes do not fit in 256 bytes.
//! for i in 0..20u8 {
//!     tx.send(&[i; 8])?;
//! }
//! let Err(broadcast::TryRecvError::Lagged(missed)) = rx1.try_recv() else { panic!() };
//! assert_eq!(rx1.try_recv()?, [missed as u8; 8]); // the oldest still there
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::atomic::Ordering;

use crate::endpoint::{flavor_aliases, flavor_types, Claim, Flavor};
use crate::error::{from_recv_fatal, recv_error};
use crate::layout::ChannelLayout;
use crate::ring::broadcast::{seq_at, Fault, Reader, Shared, Writer};
use crate::ChannelError;

pub mod typed;

pub use crate::ring::broadcast::{region_len_for, Policy, MAX_READERS};

flavor_aliases!(Broadcast, "a broadcast");

/// Creates a broadcast channel of `capacity` bytes (a power of two, at least 32) in a fresh
/// anonymous shared region, with its sender and one receiver.
pub fn channel(capacity: usize, policy: Policy) -> Result<(Sender, Receiver), ChannelError> {
    Builder::new(capacity).policy(policy).create()
}

recv_error! {
    /// Why a broadcast `recv` (or `read`) failed.
    RecvError {
        /// The receiver fell behind an overwriting sender and missed this many messages;
        /// the next call continues from the oldest message still in the ring.
        Lagged(u64) => "the receiver fell behind and missed {0} messages",
    }
}

recv_error! {
    /// Why a broadcast `try_recv` (or `try_read`) failed.
    TryRecvError {
        /// No message now.
        Empty => "receiving on an empty channel",
        /// The receiver fell behind and missed this many messages (see
        /// [`RecvError::Lagged`]).
        Lagged(u64) => "the receiver fell behind and missed {0} messages",
    }
}

recv_error! {
    /// Why a broadcast `recv_timeout` (or `read_timeout`) failed.
    RecvTimeoutError {
        /// The deadline passed before a message came.
        Timeout => "timed out waiting for a message",
        /// The receiver fell behind and missed this many messages (see
        /// [`RecvError::Lagged`]).
        Lagged(u64) => "the receiver fell behind and missed {0} messages",
    }
}

/// A broadcast ring fault as each receive error.
macro_rules! from_fault {
    ($($name:ident),*) => {$(
        impl From<Fault> for $name {
            fn from(fault: Fault) -> $name {
                match fault {
                    Fault::Corrupted(c) => $name::Corrupted(c),
                    Fault::Lagged(n) => $name::Lagged(n),
                }
            }
        }
    )*};
}

from_fault!(RecvError, TryRecvError, RecvTimeoutError);

from_recv_fatal!(Fault:
    RecvError => None,
    TryRecvError => Some(TryRecvError::Empty),
    RecvTimeoutError => Some(RecvTimeoutError::Timeout),
);

impl crate::Builder<Broadcast> {
    /// What the sender does when the slowest receiver has not read the oldest message yet
    /// (default: [`Policy::BackPressure`]).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.options = policy;
        self
    }
}

impl crate::Sender<Broadcast> {
    /// A new receiver, starting at the current tail (it sees messages sent from now on).
    pub fn subscribe(&self) -> Result<Receiver, ChannelError> {
        let reader = Reader::join(self.ring.shared().clone())?;
        Ok(Receiver::from_ring(reader, self.wait_strategy()))
    }

    /// Receivers attached now (in any process).
    pub fn receiver_count(&self) -> usize {
        self.ring.receiver_count()
    }

    /// The channel's policy.
    pub fn policy(&self) -> Policy {
        self.ring.shared().policy
    }
}

impl crate::Receiver<Broadcast> {
    /// Another receiver of the same channel, starting at the current tail.
    pub fn try_clone(&self) -> Result<Receiver, ChannelError> {
        let reader = Reader::join(self.ring.shared().clone())?;
        Ok(Receiver::from_ring(reader, self.wait_strategy()))
    }
}

impl Flavor for Broadcast {
    flavor_types!("broadcast", RecvError, TryRecvError, RecvTimeoutError);

    fn writer(shared: Shared, claim: Claim) -> Result<Writer, ChannelError> {
        shared.status().claim_sender(claim)?;
        if claim == Claim::Create {
            return Ok(Writer::new(shared, 0));
        }
        // A sender taking over continues the sequence numbers readers expect: from the
        // frames still in the ring, else from the word its predecessor stored.
        // Acquire: SYNC: frame published (our predecessor's stores).
        let tail = shared.writer().tail.load(Ordering::Acquire);
        // Relaxed: published by the tail just loaded. Untrusted: a wrong value makes
        // readers report a stamp out of sequence, nothing worse.
        let recorded_untrusted = shared.writer().next_seq.load(Ordering::Relaxed);
        let seq = seq_at(&shared, tail).unwrap_or(recorded_untrusted);
        Ok(Writer::new(shared, seq))
    }

    fn reader(shared: Shared, claim: Claim) -> Result<Reader, ChannelError> {
        claim.open_slotted(shared, Reader::adopted, Reader::join)
    }

    fn receiver_slot(reader: &Reader) -> usize {
        reader.slot()
    }
}
