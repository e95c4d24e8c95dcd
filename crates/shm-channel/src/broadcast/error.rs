//! Broadcast's receive error: what a receive of any flavor can say, plus `Lagged`.

use super::ring::Fault;
use crate::endpoint::failure::{FromRecvFatal, RecvFatal};
use crate::{CallError, Corruption};

/// Why a broadcast `recv` (or `read`) failed: it fell behind an overwriting sender
/// (`Lagged`, the receiver goes on), or no message can come any more (`Recv`: what a
/// receive of any flavor says then). The non-blocking and timed receives return it inside
/// [`TryRecvError`](crate::TryRecvError) and [`RecvTimeoutError`](crate::RecvTimeoutError).
///
/// ```
/// use shm_ipc::channel::broadcast::{self, Policy, RecvError};
/// let (mut tx, mut rx) = broadcast::channel(64, Policy::Overwrite)?;
/// for i in 0..8u8 {
///     tx.send(&[i; 8])?;
/// }
/// assert!(matches!(rx.recv(), Err(RecvError::Lagged(_))));
/// assert!(rx.recv().is_ok()); // the oldest message still there
/// drop(tx);
/// while rx.try_recv().is_ok() {}
/// assert_eq!(rx.recv(), Err(RecvError::Recv(shm_ipc::channel::RecvError::Disconnected)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// The receiver fell behind an overwriting sender and missed this many messages; the
    /// next call continues from the oldest message still in the ring.
    #[error("the receiver fell behind and missed {0} messages")]
    Lagged(u64),
    /// No message can come any more: the sender was dropped and everything in the ring was
    /// received, its process died, the ring is corrupt, or this process does not own the
    /// receiver.
    #[error(transparent)]
    Recv(#[from] crate::RecvError),
}

impl From<Corruption> for RecvError {
    fn from(corruption: Corruption) -> RecvError {
        RecvError::Recv(corruption.into())
    }
}

impl CallError for RecvError {
    fn blocking_error(&self) -> Option<&dyn CallError> {
        match self {
            RecvError::Lagged(_) => None,
            RecvError::Recv(e) => Some(e),
        }
    }
}

impl FromRecvFatal<Fault> for RecvError {
    fn from_fatal(fatal: RecvFatal<Fault>) -> RecvError {
        match fatal {
            RecvFatal::Ring(Fault::Lagged(n)) => RecvError::Lagged(n),
            RecvFatal::Ring(Fault::Corrupted(c)) => RecvError::Recv(c.into()),
            RecvFatal::Disconnected => RecvError::Recv(crate::RecvError::Disconnected),
            RecvFatal::PeerDied => RecvError::Recv(crate::RecvError::PeerDied),
            RecvFatal::NotOwner => RecvError::Recv(crate::RecvError::NotOwner),
        }
    }
}
