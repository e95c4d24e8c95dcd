//! What the endpoint core reports when a call does not happen, before each call turns it
//! into its own public error type (`crate::error`).

use crate::error::{Corruption, RecvError, RecvTimeoutError, SendError, TryRecvError};

/// Why the core could not send: the failures every send call shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendFatal {
    Disconnected,
    PeerDied,
    TooLarge(usize),
    Corrupted(Corruption),
    NotOwner,
}

impl SendFatal {
    /// The blocking send's error for this failure, handing `value` back.
    pub(crate) fn with<T>(self, value: T) -> SendError<T> {
        match self {
            SendFatal::Disconnected => SendError::Disconnected(value),
            SendFatal::PeerDied => SendError::PeerDied(value),
            SendFatal::TooLarge(max) => SendError::TooLarge(value, max),
            SendFatal::Corrupted(c) => SendError::Corrupted(value, c),
            SendFatal::NotOwner => SendError::NotOwner(value),
        }
    }
}

/// What the core reports when a reserve or send did not happen.
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

impl SendFailure {
    /// The error of a non-blocking or timed send for this failure: `not_now(value)`
    /// (`TrySendError::Full`, `SendTimeoutError::Timeout`), or `failed` (their `Send`) of
    /// the blocking send's error that `fatal` builds (a byte sender's [`SendError`], or a
    /// typed sender's), handing `value` back either way.
    pub(crate) fn call_error<T, E, W>(
        self,
        value: T,
        not_now: fn(T) -> W,
        failed: fn(E) -> W,
        fatal: impl FnOnce(SendFatal, T) -> E,
    ) -> W {
        match self {
            SendFailure::NotNow => not_now(value),
            SendFailure::Fatal(f) => failed(fatal(f, value)),
        }
    }
}

/// Runs a call made with `Deadline::Never` to its end: it never reports `NotNow` (an
/// endless wait cannot time out), but if it did the call would simply go on waiting.
#[inline]
pub(crate) fn until_done<T>(
    mut call: impl FnMut() -> Result<T, SendFailure>,
) -> Result<T, SendFatal> {
    loop {
        match call() {
            Ok(value) => return Ok(value),
            Err(SendFailure::Fatal(fatal)) => return Err(fatal),
            Err(SendFailure::NotNow) => continue,
        }
    }
}

/// Why the core could not receive: the failures every receive call shares, with the
/// ring's own faults (`F`: a [`Corruption`], or broadcast's, which may be a lag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecvFatal<F> {
    Disconnected,
    PeerDied,
    NotOwner,
    /// The ring's own fault.
    Ring(F),
}

/// A receive call's error type, built from the core's failures with ring faults `F`.
pub(crate) trait FromRecvFatal<F>: Sized {
    /// The error for `fatal`.
    fn from_fatal(fatal: RecvFatal<F>) -> Self;

    /// The error for "nothing came in time" (`Empty`, `Timeout`); `None` for a call that
    /// waits as long as it takes.
    fn not_ready() -> Option<Self> {
        None
    }
}

impl FromRecvFatal<Corruption> for RecvError {
    fn from_fatal(fatal: RecvFatal<Corruption>) -> RecvError {
        match fatal {
            RecvFatal::Disconnected => RecvError::Disconnected,
            RecvFatal::PeerDied => RecvError::PeerDied,
            RecvFatal::NotOwner => RecvError::NotOwner,
            RecvFatal::Ring(corruption) => RecvError::Corrupted(corruption),
        }
    }
}

impl<F, E: FromRecvFatal<F>> FromRecvFatal<F> for TryRecvError<E> {
    fn from_fatal(fatal: RecvFatal<F>) -> Self {
        TryRecvError::Recv(E::from_fatal(fatal))
    }

    fn not_ready() -> Option<Self> {
        Some(TryRecvError::Empty)
    }
}

impl<F, E: FromRecvFatal<F>> FromRecvFatal<F> for RecvTimeoutError<E> {
    fn from_fatal(fatal: RecvFatal<F>) -> Self {
        RecvTimeoutError::Recv(E::from_fatal(fatal))
    }

    fn not_ready() -> Option<Self> {
        Some(RecvTimeoutError::Timeout)
    }
}
