//! The channel's errors. Each call returns its own type, listing what that call can
//! return, as in crossbeam-channel, tokio and std: the blocking call's error says why the
//! message can never pass; the non-blocking and timed calls add their one "not now" case
//! (`Empty`/`Full`, `Timeout`) and otherwise carry the blocking call's error. Send errors
//! hand the message back.
//!
//! | call | error |
//! |---|---|
//! | `send`, `reserve` | [`SendError<T>`] |
//! | `try_send`, `try_reserve` | [`TrySendError<T>`]: `Full`, or the `SendError` |
//! | `send_timeout`, `reserve_timeout` | [`SendTimeoutError<T>`]: `Timeout`, or the `SendError` |
//! | `recv`, `read` | [`RecvError`] (broadcast: [`broadcast::RecvError`](crate::broadcast::RecvError), which adds `Lagged`) |
//! | `try_recv`, `try_read` | [`TryRecvError`]: `Empty`, or the `recv` error |
//! | `recv_timeout`, `read_timeout` | [`RecvTimeoutError`]: `Timeout`, or the `recv` error |
//! | `recv_into` | [`RecvIntoError<E>`]: `BufferTooSmall`, or `E` |
//! | typed endpoints | the same, with the typed layer's [`typed::SendError`](crate::typed::SendError) (adds `Encode`) and [`typed::RecvError`](crate::typed::RecvError) (adds `Decode`) in place of the byte ones |
//!
//! Code generic over the calls (a retry loop, a test's tally) asks any of them
//! [`CallError::is_fatal`] and [`CallError::corruption`].

use std::fmt;
use std::io;

use shm_core::header::HeaderError;
use shm_core::notify::MembarrierError;
use shm_core::RegionError;

/// What a hostile or crashed peer left in shared memory that cannot be right.
///
/// Returned instead of reading out of bounds, panicking or waiting for ever: the value
/// named was loaded once and failed its check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("corrupted shared state: {what} (value {value:#x})")]
pub struct Corruption {
    /// Which value failed which check.
    pub what: &'static str,
    /// The value as loaded.
    pub value: u64,
}

/// Why a channel could not be created in, or attached to, a region.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The region could not be mapped.
    #[error(transparent)]
    Region(#[from] RegionError),
    /// The region's header is not a compatible channel header.
    #[error("the region does not hold a compatible channel: {0}")]
    Header(#[from] HeaderError),
    /// The capacity is not usable.
    #[error("invalid capacity {capacity}: {reason}")]
    InvalidCapacity {
        /// Capacity asked for, or found in the header.
        capacity: u64,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The region is smaller than the channel's control block plus its capacity.
    #[error("the region has {len} bytes but the channel needs {needed}")]
    RegionTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        len: usize,
    },
    /// Every endpoint slot of this kind is taken by a live process.
    #[error("all {max} {what} slots of the channel are taken")]
    NoFreeSlot {
        /// Which slots: `"sender"` (MPSC) or `"receiver"` (broadcast).
        what: &'static str,
        /// How many the channel has.
        max: usize,
    },
    /// A handed-over endpoint names an owner slot the channel does not have.
    #[error("the channel has no {what} slot {slot} (it has {max})")]
    NoSuchSlot {
        /// Which slots: `"sender"` (MPSC), `"owner"` (a side with one).
        what: &'static str,
        /// The slot named.
        slot: usize,
        /// How many the channel has.
        max: usize,
    },
    /// The endpoint is already owned by a live process.
    #[error(transparent)]
    Ownership(#[from] OwnershipError),
    /// The ring's indices are corrupt (or the header names a wake handshake this build
    /// does not know).
    #[error(transparent)]
    Corrupted(#[from] Corruption),
    /// The channel uses the [`Membarrier`](shm_core::notify::Handshake::Membarrier) wake
    /// handshake and this process cannot take part in it (the kernel lacks
    /// `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`, or a sandbox refuses it): its
    /// notifications could be missed by a sleeping peer, so it may not use the channel.
    /// Create the channel with [`Handshake::SeqCst`](shm_core::notify::Handshake::SeqCst)
    /// (`Builder::handshake`, or `SHM_IPC_HANDSHAKE=seqcst` in the creating process) to
    /// share it with such a process.
    #[error("this process cannot use the channel's membarrier wake handshake: {0}")]
    Handshake(#[from] MembarrierError),
    /// The channel's doorbells (the socket pair that wakes async waiters) could not be created
    /// (`EMFILE`, say): create it with [`Builder::doorbells(false)`](crate::Builder::doorbells)
    /// where no endpoint will be awaited.
    #[error("cannot create the channel's doorbells: {0}")]
    Doorbell(#[source] std::io::Error),
    /// A typed end was asked for a channel whose typed ends carry another type (see
    /// [`typed::Fingerprint`](crate::typed::Fingerprint)).
    #[error(transparent)]
    Type(#[from] crate::shared::fingerprint::TypeMismatch),
}

/// An access outside a grant's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("access of {len} bytes at offset {offset} is outside the grant of {grant_len} bytes")]
pub struct GrantBounds {
    /// First byte asked for.
    pub offset: usize,
    /// Number of bytes asked for.
    pub len: usize,
    /// Bytes in the grant.
    pub grant_len: usize,
}

/// Why an ownership change of an endpoint was refused.
#[derive(Debug, thiserror::Error)]
pub enum OwnershipError {
    /// The endpoint is owned by another process (pid given), which is alive.
    #[error("the endpoint is owned by process {pid}")]
    OwnedElsewhere {
        /// Pid of the owner.
        pid: i32,
    },
    /// The calling process already owns this side of the channel through another endpoint:
    /// two would break the single-producer or single-consumer contract.
    #[error("this process already owns that endpoint of the channel")]
    OwnedHere,
    /// The identity of the calling process could not be read from `/proc`.
    #[error("cannot read this process's identity: {0}")]
    Identity(#[source] io::Error),
}

/// A codec failed to encode or decode a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Encoding failed.
    #[error("cannot encode the message: {0}")]
    Encode(String),
    /// Decoding failed: the frame does not hold a valid `T`.
    #[error("cannot decode the message: {0}")]
    Decode(String),
    /// A plain-data frame has the wrong length for `T`.
    #[error("a frame of {found} bytes cannot hold a {expected}-byte value")]
    Length {
        /// `size_of::<T>()`.
        expected: usize,
        /// Length of the frame.
        found: usize,
    },
}

/// What every call error of this crate can say, for code generic over them (a retry loop, a
/// test's tally).
///
/// ```
/// use shm_ipc::channel::{CallError, RecvError, TryRecvError};
/// fn worth_retrying(error: &impl CallError) -> bool {
///     !error.is_fatal()
/// }
/// assert!(worth_retrying(&TryRecvError::<RecvError>::Empty));
/// assert!(!worth_retrying(&TryRecvError::Recv(RecvError::Disconnected)));
/// ```
pub trait CallError: std::error::Error {
    /// The error of the blocking call carried inside this one, if that is why this call
    /// failed (a non-blocking or timed call's error that is not "not now").
    fn blocking_error(&self) -> Option<&dyn CallError> {
        None
    }

    /// The corruption found, if that is why the call failed.
    fn corruption(&self) -> Option<Corruption> {
        self.blocking_error().and_then(CallError::corruption)
    }

    /// Whether the channel can never carry a message again (disconnected, dead peer,
    /// corrupt, not ours); `false` for a failure of this message or this moment only.
    fn is_fatal(&self) -> bool {
        self.blocking_error().is_some_and(CallError::is_fatal)
    }
}

/// Why `send` (or `reserve`, which waits as long as it takes) failed: the message can never
/// be sent. It is handed back.
#[derive(Clone, PartialEq, Eq)]
pub enum SendError<T> {
    /// The receiver was dropped: nothing sent from now on will be read.
    Disconnected(T),
    /// The process owning the receiver died without dropping it.
    PeerDied(T),
    /// The message is larger than the ring can ever hold (`max` bytes of payload).
    TooLarge(T, usize),
    /// The shared state is corrupt (see [`Corruption`]).
    Corrupted(T, Corruption),
    /// This process does not own the endpoint: a copy left behind by `fork`, or an endpoint
    /// handed over to another process.
    NotOwner(T),
}

impl<T> SendError<T> {
    /// The message that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            SendError::Disconnected(v)
            | SendError::PeerDied(v)
            | SendError::TooLarge(v, _)
            | SendError::Corrupted(v, _)
            | SendError::NotOwner(v) => v,
        }
    }

    /// The same error, carrying `f(value)` instead.
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> SendError<U> {
        match self {
            SendError::Disconnected(v) => SendError::Disconnected(f(v)),
            SendError::PeerDied(v) => SendError::PeerDied(f(v)),
            SendError::TooLarge(v, max) => SendError::TooLarge(f(v), max),
            SendError::Corrupted(v, c) => SendError::Corrupted(f(v), c),
            SendError::NotOwner(v) => SendError::NotOwner(f(v)),
        }
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Disconnected(_) => f.write_str("sending on a disconnected channel"),
            SendError::PeerDied(_) => f.write_str("the receiving process died"),
            SendError::TooLarge(_, max) => write!(
                f,
                "message larger than the channel can hold ({max} bytes at most)"
            ),
            SendError::Corrupted(_, c) => write!(f, "{c}"),
            SendError::NotOwner(_) => f.write_str("this process does not own the sending endpoint"),
        }
    }
}

// The message itself is never printed: `T` need not be `Debug`.
impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Disconnected(_) => f.write_str("Disconnected(..)"),
            SendError::PeerDied(_) => f.write_str("PeerDied(..)"),
            SendError::TooLarge(_, max) => write!(f, "TooLarge(.., {max})"),
            SendError::Corrupted(_, c) => write!(f, "Corrupted(.., {c:?})"),
            SendError::NotOwner(_) => f.write_str("NotOwner(..)"),
        }
    }
}

impl<T> std::error::Error for SendError<T> {}

impl<T> CallError for SendError<T> {
    fn corruption(&self) -> Option<Corruption> {
        match self {
            SendError::Corrupted(_, c) => Some(*c),
            _ => None,
        }
    }

    fn is_fatal(&self) -> bool {
        !matches!(self, SendError::TooLarge(..))
    }
}

/// Why `try_send` (or `try_reserve`) failed: no room now (the message is handed back), or
/// the error `E` a blocking send would give (by default [`SendError`]; a typed sender's is
/// [`typed::SendError`](crate::typed::SendError)).
///
/// ```
/// use shm_ipc::channel::{SendError, TrySendError};
/// let (mut tx, rx) = shm_ipc::channel::spsc::channel(16)?;
/// tx.try_send(&[1; 8])?;
/// assert!(matches!(tx.try_send(&[2; 8]), Err(TrySendError::Full(()))));
/// drop(rx);
/// assert!(matches!(tx.try_send(&[2; 8]), Err(TrySendError::Send(SendError::Disconnected(())))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrySendError<T, E = SendError<T>> {
    /// The ring has no room now.
    #[error("sending on a full channel")]
    Full(T),
    /// The message can never be sent: what a blocking send would return.
    #[error(transparent)]
    Send(E),
}

/// Why `send_timeout` (or `reserve_timeout`) failed: the deadline passed before there was
/// room (the message is handed back), or the error `E` a blocking send would give.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendTimeoutError<T, E = SendError<T>> {
    /// The deadline passed before there was room.
    #[error("timed out waiting for room in the channel")]
    Timeout(T),
    /// The message can never be sent: what a blocking send would return.
    #[error(transparent)]
    Send(E),
}

impl<T, E: fmt::Debug> fmt::Debug for TrySendError<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Send(e) => f.debug_tuple("Send").field(e).finish(),
        }
    }
}

impl<T, E: fmt::Debug> fmt::Debug for SendTimeoutError<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.write_str("Timeout(..)"),
            SendTimeoutError::Send(e) => f.debug_tuple("Send").field(e).finish(),
        }
    }
}

/// Why `recv` (or `read`) failed: no message can come any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// The sender was dropped and every message it sent has been received.
    #[error("receiving on a disconnected channel")]
    Disconnected,
    /// The process owning the sender died without dropping it; every message it committed
    /// before dying has been received.
    #[error("the sending process died")]
    PeerDied,
    /// The shared state is corrupt.
    #[error(transparent)]
    Corrupted(#[from] Corruption),
    /// This process does not own the endpoint: a copy left behind by `fork`, or an endpoint
    /// handed over to another process.
    #[error("this process does not own the receiving endpoint")]
    NotOwner,
}

impl CallError for RecvError {
    fn corruption(&self) -> Option<Corruption> {
        match self {
            RecvError::Corrupted(c) => Some(*c),
            _ => None,
        }
    }

    fn is_fatal(&self) -> bool {
        true
    }
}

/// Why `try_recv` (or `try_read`) failed: no message now, or the error `E` a blocking
/// receive would give (by default [`RecvError`]; broadcast's adds `Lagged`, a typed
/// receiver's `Decode`).
///
/// ```
/// use shm_ipc::channel::{RecvError, TryRecvError};
/// let (tx, mut rx) = shm_ipc::channel::spsc::channel(4096)?;
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
/// drop(tx);
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Recv(RecvError::Disconnected)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TryRecvError<E = RecvError> {
    /// No message now.
    #[error("receiving on an empty channel")]
    Empty,
    /// What a blocking receive would return.
    #[error(transparent)]
    Recv(E),
}

/// Why `recv_timeout` (or `read_timeout`) failed: no message before the deadline, or the
/// error `E` a blocking receive would give.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecvTimeoutError<E = RecvError> {
    /// The deadline passed before a message came.
    #[error("timed out waiting for a message")]
    Timeout,
    /// What a blocking receive would return.
    #[error(transparent)]
    Recv(E),
}

/// Why a `recv_into` call failed: the buffer was too small (the message stays in the
/// channel), or the receive itself failed (`E`: the error of the matching receive call).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecvIntoError<E> {
    /// The caller's buffer is smaller than the message, which stays in the channel.
    #[error("the message needs a buffer of {needed} bytes")]
    BufferTooSmall {
        /// Length of the message.
        needed: usize,
    },
    /// The receive failed.
    #[error(transparent)]
    Recv(#[from] E),
}

impl<T, E: CallError> CallError for TrySendError<T, E> {
    fn blocking_error(&self) -> Option<&dyn CallError> {
        match self {
            TrySendError::Full(_) => None,
            TrySendError::Send(e) => Some(e),
        }
    }
}

impl<T, E: CallError> CallError for SendTimeoutError<T, E> {
    fn blocking_error(&self) -> Option<&dyn CallError> {
        match self {
            SendTimeoutError::Timeout(_) => None,
            SendTimeoutError::Send(e) => Some(e),
        }
    }
}

impl<E: CallError> CallError for TryRecvError<E> {
    fn blocking_error(&self) -> Option<&dyn CallError> {
        match self {
            TryRecvError::Empty => None,
            TryRecvError::Recv(e) => Some(e),
        }
    }
}

impl<E: CallError> CallError for RecvTimeoutError<E> {
    fn blocking_error(&self) -> Option<&dyn CallError> {
        match self {
            RecvTimeoutError::Timeout => None,
            RecvTimeoutError::Recv(e) => Some(e),
        }
    }
}

impl<E: CallError> CallError for RecvIntoError<E> {
    fn blocking_error(&self) -> Option<&dyn CallError> {
        match self {
            RecvIntoError::BufferTooSmall { .. } => None,
            RecvIntoError::Recv(e) => Some(e),
        }
    }
}
