//! Transports: the ways a message gets from one process to the other.
//!
//! A transport is a factory ([`Transport`]) that, before the fork, makes a connected
//! [`Pair`] of [`Endpoint`]s. [`Pair::child`] is moved into the child with shm-fork's
//! `fork_with` (it implements [`Inherit`]: the parent hands it over and drops its copy);
//! the parent keeps [`Pair::parent`], whose copy the child drops. Dropping an endpoint must
//! release only the dropping process's share (close its descriptors, unmap its view) and,
//! when the process that *owns* it drops it, disconnect the peer: the peer's blocked
//! `recv`/`send` then returns [`TransportError::Disconnected`].
//!
//! Byte transports carry the run's message sizes in the `pingpong` and `stream` patterns;
//! transports of typed values (module `typed`) carry one value, of one encoded size, in the
//! typed patterns ([`Transport::message_size`]). Both are measured by the same loop
//! ([`run_scenario`](crate::run_scenario)).
//!
//! # Adding a transport
//!
//! 1. Write one module in this directory with a type implementing [`Transport`] (and its
//!    endpoint type implementing [`Endpoint`]; a transport that moves each message through
//!    a private buffer implements only the two calls of `buffered::ByteLink`).
//! 2. Add a `static` instance of it to [`TRANSPORTS`].
//!
//! The CLI (`--transports`), the runner, the reports and the tests pick it up from that
//! list. A transport that makes wake-up system calls (futex wakes) counts them in
//! [`Endpoint::wake_syscalls`]; the reports divide the sum of both sides by the messages.

#[cfg(feature = "bridge")]
pub mod bridge;
mod buffered;
mod fd;
mod floor;
mod floor_ring;
#[cfg(feature = "peers")]
mod peers;
mod pipe;
pub(crate) mod ring;
mod socket;
mod stream;
mod typed;
mod watch;

use std::io;

use shm_core::liveness::ProcessIdentity;
use shm_fork::{Inherit, InheritError};

use crate::config::Pattern;

pub use crate::msg::{MsgIn, MsgOut};
pub use crate::payload::{Checker, Outgoing};

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
/// All messages of a scenario have one size, `1 <= size <= max_msg` (as passed to
/// [`Transport::connect`]), known to both sides in advance, so a byte-stream transport
/// needs no framing. The sender gets the message as an [`Outgoing`], which writes every
/// byte of it into a [`MsgOut`] (or names the typed value to send); the receiver hands what
/// it received to a [`Checker`] as a [`MsgIn`] (or as the typed value). A zero-copy
/// transport wraps the ring's own memory in these, so that the message is written and read
/// in place: they copy through raw pointers, never forming a slice over shared memory
/// (docs/architecture.md, rule 1).
///
/// Transports that record their owner in shared memory implement
/// [`hand_over`](Endpoint::hand_over) and [`adopt`](Endpoint::adopt); shm-fork calls them
/// on the child's endpoint through [`Inherit`] (the parent, right after the fork, before
/// it drops its copy; the child, before its closure runs and after the hand-over).
pub trait Endpoint {
    /// Sends the message `msg` (of [`Outgoing::size`] bytes).
    fn send(&mut self, msg: &Outgoing<'_>) -> Result<(), TransportError>;

    /// Receives the next message (of [`Checker::size`] bytes) and hands it to `check`.
    fn recv(&mut self, check: &mut Checker<'_>) -> Result<(), TransportError>;

    /// Receives the next message, hands it to `check`, and sends the same bytes back (the
    /// child side of a round trip). Every byte must be read from the incoming message and
    /// written to the outgoing one.
    fn echo(&mut self, check: &mut Checker<'_>) -> Result<(), TransportError>;

    /// Sends `n` messages in a row: `msg`, then the ones after it (`msg` is advanced past
    /// each message sent), stopping at the first error. A stream's producer sends this way:
    /// one dynamic call per batch, not per message, and the loop is compiled for each
    /// endpoint type, so that a transport's `send` is inlined into it as into a user's own
    /// loop. Default: `send` in a loop (override it only to do better).
    fn send_batch(&mut self, msg: &mut Outgoing<'_>, n: u64) -> Result<(), TransportError> {
        for _ in 0..n {
            self.send(msg)?;
            msg.advance();
        }
        Ok(())
    }

    /// Receives up to `n` messages in a row into `check`, stopping at the first error or
    /// the first bad message: a stream's consumer receives this way (see
    /// [`send_batch`](Endpoint::send_batch)). Default: `recv` in a loop.
    fn recv_batch(&mut self, check: &mut Checker<'_>, n: u64) -> Result<(), TransportError> {
        for _ in 0..n {
            self.recv(check)?;
            if check.first_bad.is_some() {
                break;
            }
        }
        Ok(())
    }

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

/// What changes owner with one side of a transport across fork: how the endpoints built
/// on links ([`buffered::ByteLink`], the typed links) and on shm-channel's endpoints
/// implement [`Endpoint::hand_over`] and [`Endpoint::adopt`].
pub(crate) enum Owned<'a> {
    /// Nothing: descriptors, whose holders the kernel knows.
    Nothing,
    /// The two shm-channel endpoints the side is made of (a sender and a receiver, or a
    /// stream's writer and reader), handed over through shm-fork's [`Inherit`].
    Halves(&'a dyn Inherit, &'a dyn Inherit),
    /// An owner record of the harness's own (the floors, the peers: memory of their own
    /// or libraries without a notion of owners).
    Record(&'a watch::Owner),
}

impl Owned<'_> {
    /// [`Endpoint::hand_over`].
    pub(crate) fn hand_over(&self, child: ProcessIdentity) -> Result<(), TransportError> {
        match self {
            Owned::Nothing => Ok(()),
            Owned::Halves(a, b) => a
                .hand_over(child)
                .and_then(|()| b.hand_over(child))
                .map_err(inherit_failed),
            Owned::Record(owner) => {
                owner.hand_over(child);
                Ok(())
            }
        }
    }

    /// [`Endpoint::adopt`].
    pub(crate) fn adopt(&self) -> Result<(), TransportError> {
        match self {
            Owned::Halves(a, b) => a.adopt().and_then(|()| b.adopt()).map_err(inherit_failed),
            Owned::Nothing | Owned::Record(_) => Ok(()),
        }
    }
}

fn inherit_failed(e: InheritError) -> TransportError {
    TransportError::Failed(e.to_string())
}

/// What a link (the moving part of an endpoint built by a generic adapter) tells its
/// endpoint besides moving messages.
pub(crate) trait Side {
    /// What changes owner with it across fork. Default: nothing.
    fn owned(&self) -> Owned<'_> {
        Owned::Nothing
    }

    /// [`Endpoint::wake_syscalls`]. Default: none.
    fn wake_syscalls(&self) -> u64 {
        0
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

    /// The pair of a transport made of one one-way link per direction: `down` carries
    /// parent → child, `up` child → parent; `end(sender, receiver)` makes one side.
    pub(crate) fn crosswise<S, R, E: Endpoint + 'static>(
        down: (S, R),
        up: (S, R),
        end: impl Fn(S, R) -> E,
    ) -> Pair {
        let ((down_tx, down_rx), (up_tx, up_rx)) = (down, up);
        Pair::new(end(down_tx, up_rx), end(up_tx, down_rx))
    }
}

/// A way to connect two processes. Implementations are stateless factories kept in
/// `static`s and listed in [`TRANSPORTS`].
pub trait Transport: Sync {
    /// Short unique name (CLI and reports), e.g. `pipe-1mib`.
    fn name(&self) -> &'static str;

    /// Whether its figures are nominal: the payload is not really written and read (the
    /// stamps-only ring), so they show the transport's own cost, not a user's. Reports
    /// mark them. Default: no.
    fn nominal(&self) -> bool {
        false
    }

    /// The one message size it carries, for a transport of typed values (the encoded size
    /// of its value, what its rows report); `None` (the default) for a byte transport,
    /// which carries the run's sizes.
    fn message_size(&self) -> Option<usize> {
        None
    }

    /// Whether it can run `pattern` with `size`-byte messages; the runner skips the
    /// scenarios it cannot. Default: the byte patterns, at any size.
    fn supports(&self, pattern: Pattern, size: usize) -> bool {
        let _ = size;
        !pattern.is_typed()
    }

    /// Makes a connected pair for messages of up to `max_msg` bytes, in the parent,
    /// before the fork.
    fn connect(&self, max_msg: usize) -> Result<Pair, TransportError>;
}

/// Every transport the harness knows, in the order a repetition runs them (the floors
/// first, so each repetition measures them next to the transports they bound; the typed
/// ones last). The one named `pipe` is the reference for the "vs pipe" ratios of the byte
/// patterns, `pipe-bincode` for those of the typed patterns.
pub static TRANSPORTS: &[&dyn Transport] = &[
    &floor::FLOOR_CACHELINE,
    &floor::FLOOR_FUTEX,
    &floor_ring::FLOOR_RING,
    &pipe::PIPE,
    &pipe::PIPE_1MIB,
    &socket::UNIX_SOCKET,
    &ring::SHM_DEFAULT,
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
    &typed::PIPE_BINCODE,
    &typed::SHM_TYPED_BINCODE,
    &typed::SHM_TYPED_POSTCARD,
    &typed::SHM_TYPED_PLAIN,
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
pub(crate) fn names() -> Vec<&'static str> {
    TRANSPORTS.iter().map(|t| t.name()).collect()
}

/// Name of the reference transport for the "vs pipe" ratios of the byte patterns.
pub(crate) const REFERENCE: &str = "pipe";

/// Name of the reference transport for the "vs pipe" ratios of the typed patterns.
pub(crate) const TYPED_REFERENCE: &str = typed::PIPE_BINCODE_NAME;

/// Name of the cache-line floor (the "vs floor" ratios of round trips).
pub(crate) const CACHELINE_FLOOR: &str = "floor-cacheline";

/// Name of the shared-futex floor (the "vs futex" ratios of round trips).
pub(crate) const FUTEX_FLOOR: &str = "floor-futex";

/// Name of the ring floor (the "vs ring floor" ratios of streams).
pub(crate) const RING_FLOOR: &str = "floor-ring";

/// Whether `name` is one of the floors (measured as transports, reported as floors).
pub fn is_floor(name: &str) -> bool {
    [CACHELINE_FLOOR, FUTEX_FLOOR, RING_FLOOR].contains(&name)
}
