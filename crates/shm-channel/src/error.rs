//! The channel's errors, one enum per failure domain. Send errors hand the value back.

use std::fmt;
use std::io;

use shm_core::header::HeaderError;
use shm_core::RegionError;

/// What a hostile or crashed peer left in shared memory that cannot be right.
///
/// Returned (inside [`SendError::Corrupted`] / [`RecvError::Corrupted`]) instead of reading
/// out of bounds, panicking or looping: the value named was loaded once and failed its check.
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
    /// The endpoint is already owned by a live process.
    #[error(transparent)]
    Ownership(#[from] OwnershipError),
    /// The ring's indices are corrupt.
    #[error(transparent)]
    Corrupted(#[from] Corruption),
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
    /// The identity of the calling process could not be read from `/proc`.
    #[error("cannot read this process's identity: {0}")]
    Identity(#[source] io::Error),
}

/// Why a message was not sent. The message is handed back.
///
/// Which variants a call can return: [`Full`](SendError::Full) only from `try_*`,
/// [`Timeout`](SendError::Timeout) only from `*_timeout`; the others from any.
pub enum SendError<T> {
    /// The ring has no room now (`try_send`).
    Full(T),
    /// The deadline passed before there was room.
    Timeout(T),
    /// The receiver was dropped: nothing sent from now on will be read.
    Disconnected(T),
    /// The process owning the receiver died without dropping it.
    PeerDied(T),
    /// The message is larger than the ring can ever hold (`max` bytes of payload).
    TooLarge(T, usize),
    /// The shared state is corrupt (see [`Corruption`]).
    Corrupted(T, Corruption),
    /// The codec could not encode the message.
    Encode(T, CodecError),
}

impl<T> SendError<T> {
    /// The message that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            SendError::Full(v)
            | SendError::Timeout(v)
            | SendError::Disconnected(v)
            | SendError::PeerDied(v)
            | SendError::TooLarge(v, _)
            | SendError::Corrupted(v, _)
            | SendError::Encode(v, _) => v,
        }
    }

    /// The same error, carrying `value` instead.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> SendError<U> {
        match self {
            SendError::Full(v) => SendError::Full(f(v)),
            SendError::Timeout(v) => SendError::Timeout(f(v)),
            SendError::Disconnected(v) => SendError::Disconnected(f(v)),
            SendError::PeerDied(v) => SendError::PeerDied(f(v)),
            SendError::TooLarge(v, max) => SendError::TooLarge(f(v), max),
            SendError::Corrupted(v, c) => SendError::Corrupted(f(v), c),
            SendError::Encode(v, e) => SendError::Encode(f(v), e),
        }
    }

    /// Whether the channel can never carry a message again (disconnected, dead, corrupt).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            SendError::Disconnected(_) | SendError::PeerDied(_) | SendError::Corrupted(..)
        )
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The message itself is not printed: `T` need not be `Debug`.
        match self {
            SendError::Full(_) => f.write_str("Full(..)"),
            SendError::Timeout(_) => f.write_str("Timeout(..)"),
            SendError::Disconnected(_) => f.write_str("Disconnected(..)"),
            SendError::PeerDied(_) => f.write_str("PeerDied(..)"),
            SendError::TooLarge(_, max) => write!(f, "TooLarge(.., {max})"),
            SendError::Corrupted(_, c) => write!(f, "Corrupted(.., {c:?})"),
            SendError::Encode(_, e) => write!(f, "Encode(.., {e:?})"),
        }
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Full(_) => f.write_str("sending on a full channel"),
            SendError::Timeout(_) => f.write_str("timed out waiting for room in the channel"),
            SendError::Disconnected(_) => f.write_str("sending on a disconnected channel"),
            SendError::PeerDied(_) => f.write_str("the receiving process died"),
            SendError::TooLarge(_, max) => {
                write!(
                    f,
                    "message larger than the channel can hold ({max} bytes at most)"
                )
            }
            SendError::Corrupted(_, c) => write!(f, "{c}"),
            SendError::Encode(_, e) => write!(f, "{e}"),
        }
    }
}

impl<T> std::error::Error for SendError<T> {}

/// Why no message was received.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// No message now (`try_recv`).
    #[error("receiving on an empty channel")]
    Empty,
    /// The deadline passed before a message came.
    #[error("timed out waiting for a message")]
    Timeout,
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
    /// The caller's buffer is smaller than the message (which stays in the channel).
    #[error("the message needs a buffer of {needed} bytes")]
    BufferTooSmall {
        /// Length of the message.
        needed: usize,
    },
    /// The codec could not decode the message (which is consumed).
    #[error(transparent)]
    Decode(#[from] CodecError),
    /// A broadcast receiver fell behind an overwriting sender and missed this many
    /// messages; the next call continues from the oldest message still in the ring.
    #[error("the receiver fell behind and missed {0} messages")]
    Lagged(u64),
}

impl RecvError {
    /// Whether the channel can never deliver a message again.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            RecvError::Disconnected | RecvError::PeerDied | RecvError::Corrupted(_)
        )
    }
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
