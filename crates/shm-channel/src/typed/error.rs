//! The typed layer's errors: the byte endpoints' errors, plus what a codec can say. A typed
//! call returns the byte call's error type (`TrySendError`, `RecvTimeoutError`, ...) around
//! the typed blocking error here, which adds `Encode` to [`crate::SendError`] and `Decode`
//! to the flavor's receive error.

use std::fmt;

use crate::endpoint::failure::{FromRecvFatal, RecvFatal};
use crate::{CallError, CodecError, RecvTimeoutError, TryRecvError};

/// Why a typed `send` failed: the codec could not encode the value, or the channel refused
/// it ([`crate::SendError`]). The value is handed back either way.
///
/// ```
/// use shm_ipc::channel::{typed, SendError, TrySendError};
/// let (mut tx, rx) = typed::channel::<u64>(4096)?;
/// drop(rx);
/// let Err(TrySendError::Send(typed::SendError::Send(SendError::Disconnected(v)))) = tx.try_send(7)
/// else { panic!() };
/// assert_eq!(v, 7);
/// # Ok::<(), shm_ipc::channel::ChannelError>(())
/// ```
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError<T> {
    /// The codec could not encode the value; nothing was sent.
    #[error("{1}")]
    Encode(T, CodecError),
    /// The channel refused the value, as a byte send would.
    #[error(transparent)]
    Send(crate::SendError<T>),
}

impl<T> SendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            SendError::Encode(value, _) => value,
            SendError::Send(e) => e.into_inner(),
        }
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Encode(_, e) => write!(f, "Encode(.., {e:?})"),
            SendError::Send(e) => f.debug_tuple("Send").field(e).finish(),
        }
    }
}

impl<T> CallError for SendError<T> {
    fn blocking_error(&self) -> Option<&dyn CallError> {
        match self {
            SendError::Encode(..) => None,
            SendError::Send(e) => Some(e),
        }
    }
}

/// Why a typed `recv` failed: the frame did not decode as a `T` (it is consumed; the next
/// receive goes on), or the receive failed as a byte receive would (`E`: the flavor's
/// [`RecvError`](crate::RecvError), or broadcast's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecvError<E = crate::RecvError> {
    /// The frame does not hold a valid `T`; it is consumed.
    #[error(transparent)]
    Decode(CodecError),
    /// The receive failed, as a byte receive would.
    #[error(transparent)]
    Recv(E),
}

impl<E: CallError> CallError for RecvError<E> {
    fn blocking_error(&self) -> Option<&dyn CallError> {
        match self {
            RecvError::Decode(_) => None,
            RecvError::Recv(e) => Some(e),
        }
    }
}

impl<F, E: FromRecvFatal<F>> FromRecvFatal<F> for RecvError<E> {
    fn from_fatal(fatal: RecvFatal<F>) -> Self {
        RecvError::Recv(E::from_fatal(fatal))
    }
}

/// A typed receive call's error for a frame that did not decode.
pub(crate) trait FromDecodeError {
    fn from_decode(error: CodecError) -> Self;
}

impl<E> FromDecodeError for RecvError<E> {
    fn from_decode(error: CodecError) -> Self {
        RecvError::Decode(error)
    }
}

impl<E: FromDecodeError> FromDecodeError for TryRecvError<E> {
    fn from_decode(error: CodecError) -> Self {
        TryRecvError::Recv(E::from_decode(error))
    }
}

impl<E: FromDecodeError> FromDecodeError for RecvTimeoutError<E> {
    fn from_decode(error: CodecError) -> Self {
        RecvTimeoutError::Recv(E::from_decode(error))
    }
}
