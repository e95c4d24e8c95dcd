//! Transports: the ways a message gets from one process to the other.
//!
//! A transport is a factory ([`Transport`]) that, before the fork, makes a connected
//! [`Pair`] of [`Endpoint`]s. [`Pair::child`] is moved into the child with shm-fork's
//! `fork_with` (it implements [`Inherit`]: the parent hands it over and drops its copy);
//! the parent keeps [`Pair::parent`], whose copy the child drops. Dropping an endpoint must release only
//! the dropping process's share (close its descriptors, unmap its view) and, when the
//! process that *owns* it drops it, disconnect the peer: the peer's blocked `recv`/`send`
//! then returns [`TransportError::Disconnected`].
//!
//! # Adding a transport
//!
//! 1. Write one module in this directory with a type implementing [`Transport`] (and its
//!    endpoint type implementing [`Endpoint`]).
//! 2. Add a `static` instance of it to [`TRANSPORTS`].
//!
//! The CLI (`--transports`), the runner, the reports and the tests pick it up from that
//! list. A transport that makes wake-up system calls (futex wakes) counts them in
//! [`Endpoint::wake_syscalls`]; the reports divide the sum of both sides by the messages.

#[cfg(feature = "bridge")]
pub mod bridge;
mod fd;
pub mod floor;
#[cfg(feature = "peers")]
pub mod peers;
pub mod pipe;
pub mod ring;
pub mod socket;
pub mod stream;
mod watch;

use std::io;

use shm_core::liveness::ProcessIdentity;
use shm_fork::{Inherit, InheritError};

use crate::config::Pattern;

pub use crate::msg::{MsgIn, MsgOut};
pub(crate) use fd::{read_exact as fd_read_exact, write_all as fd_write_all};

/// Why a transport operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The peer closed its endpoint (or died): end of stream.
    #[error("peer disconnected")]
    Disconnected,
    /// The peer's message does not have the expected size (a framing error).
    #[error("message of {got} bytes where {expected} were expected")]
    BadLength {
        /// The size the receiver asked for.
        expected: usize,
        /// The size the transport delivered.
        got: usize,
    },
    /// The message is larger than the endpoint was built for.
    #[error("message of {len} bytes exceeds the transport's maximum of {max}")]
    TooLarge {
        /// Requested size.
        len: usize,
        /// The maximum passed to [`Transport::connect`].
        max: usize,
    },
    /// The peer process died without closing its endpoint (seen through the kernel).
    #[error("peer process died")]
    PeerDied,
    /// The transport's shared state is corrupt, or another failure of the transport.
    #[error("{0}")]
    Failed(String),
    /// An OS error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// `TooLarge` unless a `len`-byte message fits an endpoint built for `max` bytes.
pub(crate) fn check_fits(len: usize, max: usize) -> Result<(), TransportError> {
    if len > max {
        return Err(TransportError::TooLarge { len, max });
    }
    Ok(())
}

/// `BadLength` unless the message delivered has the `expected` length.
pub(crate) fn check_exact(expected: usize, got: usize) -> Result<(), TransportError> {
    if expected != got {
        return Err(TransportError::BadLength { expected, got });
    }
    Ok(())
}

/// One side of a connected transport, used by one process.
///
/// Messages are `len` bytes, `1 <= len <= max_msg` (as passed to
/// [`Transport::connect`]); both sides know `len` in advance, so a byte-stream transport
/// needs no framing. The payload is handed to closures so that a zero-copy transport can
/// let the sender write, and the receiver read, the message in place: `fill` must be
/// given exactly `len` bytes to write every byte of, and `read` exactly the `len` bytes
/// received. The closures get a [`MsgOut`]/[`MsgIn`], not a slice, because in a zero-copy
/// transport those bytes are shared memory (docs/architecture.md, rule 1).
///
/// Transports that record their owner in shared memory implement
/// [`hand_over`](Endpoint::hand_over) and [`adopt`](Endpoint::adopt); shm-fork calls them
/// on the child's endpoint through [`Inherit`] (the parent, right after the fork, before
/// it drops its copy; the child, before its closure runs and after the hand-over).
pub trait Endpoint {
    /// Sends one message of `len` bytes whose payload `fill` writes.
    fn send(
        &mut self,
        len: usize,
        fill: &mut dyn FnMut(&mut MsgOut<'_>),
    ) -> Result<(), TransportError>;

    /// Receives one message of `len` bytes and hands its payload to `read`.
    fn recv(&mut self, len: usize, read: &mut dyn FnMut(&MsgIn<'_>)) -> Result<(), TransportError>;

    /// Receives one message of `len` bytes, hands it to `inspect`, and sends the same
    /// bytes back (the child side of a round trip). Every byte must be read from the
    /// incoming message and written to the outgoing one.
    fn echo(
        &mut self,
        len: usize,
        inspect: &mut dyn FnMut(&MsgIn<'_>),
    ) -> Result<(), TransportError>;

    /// In the parent, right after the fork and before the parent drops its copy of this
    /// (the child's) endpoint: makes process `child` its owner, so that the parent's drop
    /// does not disconnect it. Default: nothing to do.
    fn hand_over(&self, child: ProcessIdentity) -> Result<(), TransportError> {
        let _ = child;
        Ok(())
    }

    /// In the child, before it uses this endpoint: takes ownership from the parent.
    /// Default: nothing to do.
    fn adopt(&self) -> Result<(), TransportError> {
        Ok(())
    }

    /// Wake-up system calls (e.g. `FUTEX_WAKE`) this endpoint has made so far. Transports
    /// whose wake-ups happen inside the kernel's own I/O calls (pipes, sockets) report 0.
    fn wake_syscalls(&self) -> u64 {
        0
    }
}

/// The child's endpoint crosses the fork through shm-fork's protocol, which calls
/// [`Endpoint::hand_over`] and [`Endpoint::adopt`].
impl Inherit for dyn Endpoint {
    fn hand_over(&self, child: ProcessIdentity) -> Result<(), InheritError> {
        Endpoint::hand_over(self, child).map_err(InheritError::new)
    }

    fn adopt(&self) -> Result<(), InheritError> {
        Endpoint::adopt(self).map_err(InheritError::new)
    }
}

/// A connected pair of endpoints made before the fork.
pub struct Pair {
    /// The endpoint the parent (the measuring side) keeps.
    pub parent: Box<dyn Endpoint>,
    /// The endpoint the child keeps.
    pub child: Box<dyn Endpoint>,
    /// Remarks for the report (e.g. "F_SETPIPE_SZ refused, pipe stays 64 KiB").
    pub notes: Vec<String>,
}

impl Pair {
    /// A pair with no remarks.
    pub fn new(parent: impl Endpoint + 'static, child: impl Endpoint + 'static) -> Pair {
        Pair {
            parent: Box::new(parent),
            child: Box::new(child),
            notes: Vec::new(),
        }
    }
}

/// A way to connect two processes. Implementations are stateless factories kept in
/// `static`s and listed in [`TRANSPORTS`].
pub trait Transport: Sync {
    /// Short unique name (CLI and reports), e.g. `pipe-1mib`.
    fn name(&self) -> &'static str;

    /// One line saying what it is.
    fn description(&self) -> &'static str;

    /// Whether its figures are nominal: the payload is not really written and read (the
    /// stamps-only ring), so they show the transport's own cost, not a user's. Reports
    /// mark them. Default: no.
    fn nominal(&self) -> bool {
        false
    }

    /// Whether it can run `pattern` with `size`-byte messages (the floors carry only
    /// small round trips); the runner skips the scenarios it cannot. Default: all.
    fn supports(&self, pattern: Pattern, size: usize) -> bool {
        let _ = (pattern, size);
        true
    }

    /// Makes a connected pair for messages of up to `max_msg` bytes, in the parent,
    /// before the fork.
    fn connect(&self, max_msg: usize) -> Result<Pair, TransportError>;
}

/// Every transport the harness knows, in the order a repetition runs them (the floors
/// first, so each repetition measures them next to the transports they bound). The
/// one named `pipe` is the reference for the "vs pipe" ratios.
pub static TRANSPORTS: &[&dyn Transport] = &[
    &floor::FLOOR_CACHELINE,
    &floor::FLOOR_FUTEX,
    &pipe::PIPE,
    &pipe::PIPE_1MIB,
    &socket::UNIX_SOCKET,
    &ring::SHM_SPIN,
    &ring::SHM_SPIN_PARK,
    &ring::SHM_PARK,
    &ring::SHM_ZERO_COPY,
    &ring::SHM_ZERO_COPY_STAMPS,
    &ring::SHM_BATCHED,
    &stream::SHM_STREAM,
    #[cfg(feature = "peers")]
    &peers::ICEORYX2,
    #[cfg(feature = "peers")]
    &peers::SHMEM_IPC,
    #[cfg(feature = "peers")]
    &peers::IPC_CHANNEL,
    #[cfg(feature = "bridge")]
    &bridge::TCP,
    #[cfg(feature = "bridge")]
    &bridge::ZENOH_BRIDGE,
];

/// The transport called `name`, if any.
pub fn by_name(name: &str) -> Option<&'static dyn Transport> {
    TRANSPORTS.iter().copied().find(|t| t.name() == name)
}

/// The names of all transports.
pub fn names() -> Vec<&'static str> {
    TRANSPORTS.iter().map(|t| t.name()).collect()
}

/// Name of the reference transport for "vs pipe" ratios.
pub const REFERENCE: &str = "pipe";

/// Name of the cache-line floor (the "vs floor" ratios of round trips).
pub const CACHELINE_FLOOR: &str = "floor-cacheline";

/// Name of the shared-futex floor (the "vs futex" ratios of round trips).
pub const FUTEX_FLOOR: &str = "floor-futex";

/// Whether `name` is one of the floors (measured as transports, reported as floors).
pub fn is_floor(name: &str) -> bool {
    name == CACHELINE_FLOOR || name == FUTEX_FLOOR
}
