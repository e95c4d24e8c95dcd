//! Broadcast's receive error: what a receive of any flavor can say, plus `Lagged`.

use super::ring::Fault;
use crate::endpoint::failure::{FromRecvFatal, RecvFatal};
use crate::{CallError, Corruption};

/// Why a broadcast `recv` (or `read`) failed: it fell behind an overwriting sender
/// (`Lagged`, the receiver goes on), or no message can come any more. The non-blocking and
/// timed receives return it inside [`TryRecvError`](crate::TryRecvError) and
/// [`RecvTimeoutError`](crate::RecvTimeoutError).
///
/// ```
/// use shm_ipc::channel::broadcast::{self, Policy, RecvError};
/// let (mut tx, mut rx) = broadcast::channel(64, Policy::Overwrite)?;
/// for i in 0..8u8 {
///     tx.send(&[i; 8])?;
/// }
/// assert!(matches!(rx.recv(), Err(RecvError::Lagged(_))));
/// assert!(rx.recv().is_ok()); // the oldest message still there
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// The receiver fell behind an overwriting sender and missed this many messages; the
    /// next call continues from the oldest message still in the ring.
    #[error("the receiver fell behind and missed {0} messages")]
    Lagged(u64),
    /// The sender was dropped, and every message still in the ring has been received.
    #[error("receiving on a disconnected channel")]
    Disconnected,
    /// The process owning the sender died without dropping it.
    #[error("the sending process died")]
    PeerDied,
    /// The shared state is corrupt.
    #[error(transparent)]
    Corrupted(#[from] Corruption),
    /// This process does not own the endpoint.
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
        !matches!(self, RecvError::Lagged(_))
    }
}

impl FromRecvFatal<Fault> for RecvError {
    fn from_fatal(fatal: RecvFatal<Fault>) -> RecvError {
        match fatal {
            RecvFatal::Disconnected => RecvError::Disconnected,
            RecvFatal::PeerDied => RecvError::PeerDied,
            RecvFatal::NotOwner => RecvError::NotOwner,
            RecvFatal::Ring(Fault::Corrupted(c)) => RecvError::Corrupted(c),
            RecvFatal::Ring(Fault::Lagged(n)) => RecvError::Lagged(n),
        }
    }
}
