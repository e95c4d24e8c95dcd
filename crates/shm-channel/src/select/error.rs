//! The errors of [`Select`](super::Select)'s calls, one per call as crossbeam's: only the
//! size of the set can make a select fail; what a receiver found (a message, or the error
//! that ends its stream) makes it ready.

use shm_core::notify::MAX_WAIT_ANY;

/// Why [`Select::select`](super::Select::select) cannot wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// No receiver was added: nothing could ever be ready.
    #[error("no receiver to select from")]
    NoReceivers,
    /// More receivers than one sleep can watch ([`MAX_RECEIVERS`](super::MAX_RECEIVERS),
    /// the kernel's `futex_waitv` limit); [`try_select`](super::Select::try_select) has no
    /// limit.
    #[error("cannot wait on {count} receivers at once (at most {max})", max = MAX_WAIT_ANY)]
    TooManyReceivers {
        /// How many receivers were added.
        count: usize,
    },
}

/// [`Select::try_select`](super::Select::try_select) found no receiver ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no receiver is ready")]
pub struct TrySelectError;

/// Why [`Select::select_timeout`](super::Select::select_timeout) returned no index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SelectTimeoutError {
    /// No receiver became ready in time.
    #[error("no receiver became ready in time")]
    Timeout,
    /// The set cannot be waited on.
    #[error(transparent)]
    Select(#[from] SelectError),
}
