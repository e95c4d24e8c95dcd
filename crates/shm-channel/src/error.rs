//! The channel's errors, one type per call as in crossbeam-channel and tokio: each lists
//! only what its call can return. Send errors hand the value back.
//!
//! | call | error |
//! |---|---|
//! | `send`, `reserve` | [`SendError<T>`] |
//! | `try_send`, `try_reserve` | [`TrySendError<T>`] (adds `Full`) |
//! | `send_timeout`, `reserve_timeout` | [`SendTimeoutError<T>`] (adds `Timeout`) |
//! | `recv`, `read` | [`RecvError`] |
//! | `try_recv`, `try_read` | [`TryRecvError`] (adds `Empty`) |
//! | `recv_timeout`, `read_timeout` | [`RecvTimeoutError`] (adds `Timeout`) |
//! | `recv_into` and its forms | [`RecvIntoError<E>`] (adds `BufferTooSmall` to `E`) |
//! | broadcast receives | `broadcast::{RecvError, TryRecvError, RecvTimeoutError}` (add `Lagged`) |
//!
//! `Encode` and `Decode` come only from typed endpoints.

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

/// What every call error of this crate can say, for code generic over them (a test's tally,
/// a retry loop).
///
/// ```
/// use shm_channel::{CallError, TryRecvError};
/// fn worth_retrying(error: &impl CallError) -> bool {
///     !error.is_fatal()
/// }
/// assert!(worth_retrying(&TryRecvError::Empty));
/// assert!(!worth_retrying(&TryRecvError::Disconnected));
/// ```
pub trait CallError: std::error::Error {
    /// The corruption found, if that is why the call failed.
    fn corruption(&self) -> Option<Corruption>;
    /// Whether the channel can never carry a message again.
    fn is_fatal(&self) -> bool;
}

/// Why the endpoint core could not send: the failures every send call shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendFatal {
    Disconnected,
    PeerDied,
    TooLarge(usize),
    Corrupted(Corruption),
    NotOwner,
}

/// What the endpoint core reports when a reserve or send did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendFailure {
    /// No room before the deadline (`Full` without waiting, `Timeout` with).
    NotNow,
    /// A failure no waiting can fix.
    Fatal(SendFatal),
}

impl From<SendFatal> for SendFailure {
    fn from(fatal: SendFatal) -> SendFailure {
        SendFailure::Fatal(fatal)
    }
}

/// Defines one send error type: the shared variants plus `$extra` (`Full`, `Timeout`).
macro_rules! send_error {
    (
        $(#[$doc:meta])*
        $name:ident { $($(#[$xdoc:meta])* $extra:ident => $xmsg:literal)? }
    ) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub enum $name<T> {
            $($(#[$xdoc])* $extra(T),)?
            /// The receiver was dropped: nothing sent from now on will be read.
            Disconnected(T),
            /// The process owning the receiver died without dropping it.
            PeerDied(T),
            /// The message is larger than the ring can ever hold (`max` bytes of payload).
            TooLarge(T, usize),
            /// The shared state is corrupt (see [`Corruption`]).
            Corrupted(T, Corruption),
            /// This process does not own the endpoint: a copy left behind by `fork`, or an
            /// endpoint handed over to another process.
            NotOwner(T),
            /// The codec could not encode the message (typed senders only).
            Encode(T, CodecError),
        }

        impl<T> $name<T> {
            /// The message that was not sent.
            pub fn into_inner(self) -> T {
                match self {
                    $($name::$extra(v) |)?
                    $name::Disconnected(v)
                    | $name::PeerDied(v)
                    | $name::TooLarge(v, _)
                    | $name::Corrupted(v, _)
                    | $name::NotOwner(v)
                    | $name::Encode(v, _) => v,
                }
            }

            /// The same error, carrying `f(value)` instead.
            pub fn map<U>(self, f: impl FnOnce(T) -> U) -> $name<U> {
                match self {
                    $($name::$extra(v) => $name::$extra(f(v)),)?
                    $name::Disconnected(v) => $name::Disconnected(f(v)),
                    $name::PeerDied(v) => $name::PeerDied(f(v)),
                    $name::TooLarge(v, max) => $name::TooLarge(f(v), max),
                    $name::Corrupted(v, c) => $name::Corrupted(f(v), c),
                    $name::NotOwner(v) => $name::NotOwner(f(v)),
                    $name::Encode(v, e) => $name::Encode(f(v), e),
                }
            }

            /// Whether the channel can never carry a message again (disconnected, dead,
            /// corrupt, not ours).
            pub fn is_fatal(&self) -> bool {
                matches!(
                    self,
                    $name::Disconnected(_)
                        | $name::PeerDied(_)
                        | $name::Corrupted(..)
                        | $name::NotOwner(_)
                )
            }

            /// The corruption found, if that is why the call failed.
            pub fn corruption(&self) -> Option<Corruption> {
                match self {
                    $name::Corrupted(_, c) => Some(*c),
                    _ => None,
                }
            }

            pub(crate) fn fatal(fatal: SendFatal, value: T) -> $name<T> {
                match fatal {
                    SendFatal::Disconnected => $name::Disconnected(value),
                    SendFatal::PeerDied => $name::PeerDied(value),
                    SendFatal::TooLarge(max) => $name::TooLarge(value, max),
                    SendFatal::Corrupted(c) => $name::Corrupted(value, c),
                    SendFatal::NotOwner => $name::NotOwner(value),
                }
            }
        }

        impl<T> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // The message itself is not printed: `T` need not be `Debug`.
                match self {
                    $($name::$extra(_) => f.write_str(concat!(stringify!($extra), "(..)")),)?
                    $name::Disconnected(_) => f.write_str("Disconnected(..)"),
                    $name::PeerDied(_) => f.write_str("PeerDied(..)"),
                    $name::TooLarge(_, max) => write!(f, "TooLarge(.., {max})"),
                    $name::Corrupted(_, c) => write!(f, "Corrupted(.., {c:?})"),
                    $name::NotOwner(_) => f.write_str("NotOwner(..)"),
                    $name::Encode(_, e) => write!(f, "Encode(.., {e:?})"),
                }
            }
        }

        impl<T> fmt::Display for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $($name::$extra(_) => f.write_str($xmsg),)?
                    $name::Disconnected(_) => f.write_str("sending on a disconnected channel"),
                    $name::PeerDied(_) => f.write_str("the receiving process died"),
                    $name::TooLarge(_, max) => write!(
                        f,
                        "message larger than the channel can hold ({max} bytes at most)"
                    ),
                    $name::Corrupted(_, c) => write!(f, "{c}"),
                    $name::NotOwner(_) => {
                        f.write_str("this process does not own the sending endpoint")
                    }
                    $name::Encode(_, e) => write!(f, "{e}"),
                }
            }
        }

        impl<T> std::error::Error for $name<T> {}

        impl<T> CallError for $name<T> {
            fn corruption(&self) -> Option<Corruption> {
                $name::corruption(self)
            }

            fn is_fatal(&self) -> bool {
                $name::is_fatal(self)
            }
        }
    };
}

send_error! {
    /// Why `send` (or `reserve`, which waits as long as it takes) failed. The message is
    /// handed back.
    SendError {}
}

send_error! {
    /// Why `try_send` (or `try_reserve`) failed. The message is handed back.
    TrySendError {
        /// The ring has no room now.
        Full => "sending on a full channel"
    }
}

send_error! {
    /// Why `send_timeout` (or `reserve_timeout`) failed. The message is handed back.
    SendTimeoutError {
        /// The deadline passed before there was room.
        Timeout => "timed out waiting for room in the channel"
    }
}

/// Conversions between a non-blocking or timed send error and the blocking one.
macro_rules! send_error_conversions {
    ($($name:ident :: $extra:ident),*) => {$(
        impl<T> From<SendError<T>> for $name<T> {
            fn from(error: SendError<T>) -> $name<T> {
                match error {
                    SendError::Disconnected(v) => $name::Disconnected(v),
                    SendError::PeerDied(v) => $name::PeerDied(v),
                    SendError::TooLarge(v, max) => $name::TooLarge(v, max),
                    SendError::Corrupted(v, c) => $name::Corrupted(v, c),
                    SendError::NotOwner(v) => $name::NotOwner(v),
                    SendError::Encode(v, e) => $name::Encode(v, e),
                }
            }
        }

        impl<T> $name<T> {
            #[doc = concat!("The error a blocking `send` would give, or `Err(value)` for `", stringify!($extra), "`.")]
            pub fn into_send_error(self) -> Result<SendError<T>, T> {
                match self {
                    $name::$extra(v) => Err(v),
                    $name::Disconnected(v) => Ok(SendError::Disconnected(v)),
                    $name::PeerDied(v) => Ok(SendError::PeerDied(v)),
                    $name::TooLarge(v, max) => Ok(SendError::TooLarge(v, max)),
                    $name::Corrupted(v, c) => Ok(SendError::Corrupted(v, c)),
                    $name::NotOwner(v) => Ok(SendError::NotOwner(v)),
                    $name::Encode(v, e) => Ok(SendError::Encode(v, e)),
                }
            }
        }
    )*};
}

send_error_conversions!(TrySendError::Full, SendTimeoutError::Timeout);

/// Why the endpoint core could not receive: the failures every receive call shares, with
/// the ring's own faults (`F`: a [`Corruption`], or broadcast's, which may be a lag).
/// (Public in this private module, so it may appear in the sealed traits' bounds.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvFatal<F> {
    /// See `RecvError::Disconnected`.
    Disconnected,
    /// See `RecvError::PeerDied`.
    PeerDied,
    /// See `RecvError::NotOwner`.
    NotOwner,
    /// The ring's own fault.
    Ring(F),
}

/// Defines one receive error type: `$extra` variants, then the shared ones.
macro_rules! recv_error {
    (
        $(#[$doc:meta])*
        $name:ident { $($(#[$xdoc:meta])* $extra:ident $(($xty:ty))? => $xmsg:literal,)* }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
        pub enum $name {
            $($(#[$xdoc])* #[error($xmsg)] $extra $(($xty))?,)*
            /// The sender was dropped and every message it sent has been received.
            #[error("receiving on a disconnected channel")]
            Disconnected,
            /// The process owning the sender died without dropping it; every message it
            /// committed before dying has been received.
            #[error("the sending process died")]
            PeerDied,
            /// The shared state is corrupt.
            #[error(transparent)]
            Corrupted(#[from] $crate::Corruption),
            /// This process does not own the endpoint: a copy left behind by `fork`, or an
            /// endpoint handed over to another process.
            #[error("this process does not own the receiving endpoint")]
            NotOwner,
            /// The codec could not decode the message, which is consumed (typed receivers
            /// only).
            #[error(transparent)]
            Decode(#[from] $crate::CodecError),
        }

        impl $name {
            /// The corruption found, if that is why the call failed.
            pub fn corruption(&self) -> Option<$crate::Corruption> {
                match self {
                    $name::Corrupted(c) => Some(*c),
                    _ => None,
                }
            }

            /// Whether the channel can never deliver a message again.
            pub fn is_fatal(&self) -> bool {
                matches!(
                    self,
                    $name::Disconnected | $name::PeerDied | $name::Corrupted(_) | $name::NotOwner
                )
            }
        }

        impl $crate::CallError for $name {
            fn corruption(&self) -> Option<$crate::Corruption> {
                $name::corruption(self)
            }

            fn is_fatal(&self) -> bool {
                $name::is_fatal(self)
            }
        }
    };
}
pub(crate) use recv_error;

recv_error! {
    /// Why `recv` (or `read`) failed.
    RecvError {}
}

recv_error! {
    /// Why `try_recv` (or `try_read`) failed.
    TryRecvError {
        /// No message now.
        Empty => "receiving on an empty channel",
    }
}

recv_error! {
    /// Why `recv_timeout` (or `read_timeout`) failed.
    RecvTimeoutError {
        /// The deadline passed before a message came.
        Timeout => "timed out waiting for a message",
    }
}

/// A blocking receive's error as the non-blocking or timed call's (a subset of it).
macro_rules! recv_error_from_blocking {
    ($base:ident => $($name:ident),*) => {$(
        impl From<$base> for $name {
            fn from(error: $base) -> $name {
                match error {
                    $base::Disconnected => $name::Disconnected,
                    $base::PeerDied => $name::PeerDied,
                    $base::Corrupted(c) => $name::Corrupted(c),
                    $base::NotOwner => $name::NotOwner,
                    $base::Decode(e) => $name::Decode(e),
                }
            }
        }
    )*};
}

recv_error_from_blocking!(RecvError => TryRecvError, RecvTimeoutError);

impl<E: CallError> CallError for RecvIntoError<E> {
    fn corruption(&self) -> Option<Corruption> {
        match self {
            RecvIntoError::Recv(e) => e.corruption(),
            RecvIntoError::BufferTooSmall { .. } => None,
        }
    }

    fn is_fatal(&self) -> bool {
        matches!(self, RecvIntoError::Recv(e) if e.is_fatal())
    }
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

/// The receive error types of a flavor, built from the endpoint core's failures (public in
/// this private module: a bound of the sealed flavor traits, not nameable by users).
pub trait FromRecvFatal<F>: Sized + From<CodecError> {
    /// The error for `fatal`.
    fn from_fatal(fatal: RecvFatal<F>) -> Self;
    /// The error for "nothing came in time" (`Empty`, `Timeout`), if the call can return it.
    fn not_ready() -> Option<Self>;
}

/// Implements [`FromRecvFatal`] for receive error types: `$fault` is the ring's fault type
/// (the error must be `From<$fault>`), `$not_ready` what the call reports when nothing
/// came in time (`None` for a call without a deadline).
macro_rules! from_recv_fatal {
    ($fault:ty: $($name:ty => $not_ready:expr),* $(,)?) => {$(
        impl $crate::error::FromRecvFatal<$fault> for $name {
            fn from_fatal(fatal: $crate::error::RecvFatal<$fault>) -> $name {
                use $crate::error::RecvFatal;
                match fatal {
                    RecvFatal::Disconnected => <$name>::Disconnected,
                    RecvFatal::PeerDied => <$name>::PeerDied,
                    RecvFatal::NotOwner => <$name>::NotOwner,
                    RecvFatal::Ring(fault) => <$name>::from(fault),
                }
            }

            fn not_ready() -> Option<$name> {
                $not_ready
            }
        }
    )*};
}
pub(crate) use from_recv_fatal;

from_recv_fatal!(Corruption:
    RecvError => None,
    TryRecvError => Some(TryRecvError::Empty),
    RecvTimeoutError => Some(RecvTimeoutError::Timeout),
);
