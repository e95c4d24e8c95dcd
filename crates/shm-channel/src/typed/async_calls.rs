//! Typed endpoints, async (feature `tokio`): `send_async`, `recv_async`, a receiver as a
//! `Stream` of values and a sender as a `Sink` of them (`endpoint::sink`, shared with the
//! byte senders). Waiting is the byte endpoints'
//! (`endpoint::async_wait`); a value is encoded into the ring, or decoded out of it, in
//! the poll that completes, so a dropped future loses nothing.

use std::pin::Pin;
use std::task::{Context, Poll};

use super::{Receiver, RecvError, SendError, Sender, TypedFailure};
use crate::codec::{Codec, FrameReader};
use crate::endpoint::async_wait::{cancel, poll_retry, retry};
use crate::endpoint::failure::{FromRecvFatal, RecvFatal, SendFailure, SendFatal};
use crate::endpoint::sink::{SendSink, SinkSender};
use crate::endpoint::{end_at_disconnect, Deadline, Fault, Flavor};
use crate::CodecError;

/// Why an async typed send failed, before the value is put back.
pub(crate) enum Failed {
    Fatal(SendFatal),
    Encode(CodecError),
}

impl Failed {
    fn with<T>(self, value: T) -> SendError<T> {
        match self {
            Failed::Fatal(fatal) => SendError::Send(fatal.with(value)),
            Failed::Encode(e) => SendError::Encode(value, e),
        }
    }
}

impl<T, C: Codec<T>, F: Flavor> Sender<T, F, C> {
    /// Sends `value`, waiting for room without blocking the thread (feature `tokio`).
    /// Dropping the future before it completes sends nothing.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let (mut tx, mut rx) = shm_ipc::channel::typed::channel::<String>(4096)?;
    /// tx.send_async("hi".to_string()).await?;
    /// assert_eq!(rx.recv_async().await?, "hi");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn send_async(&mut self, value: T) -> Result<(), SendError<T>> {
        let outcome = retry(self, |sender| sender.try_encode(&value)).await;
        outcome.map_err(|failed| failed.with(value))
    }

    /// One non-blocking send of `value` of an async call: `None` for "no room now".
    fn try_encode(&mut self, value: &T) -> Option<Result<(), Failed>> {
        match self.encode_and_commit(value, Deadline::Now) {
            Ok(()) => Some(Ok(())),
            Err(TypedFailure::Channel(SendFailure::NotNow)) => None,
            Err(TypedFailure::Channel(SendFailure::Fatal(fatal))) => {
                Some(Err(Failed::Fatal(fatal)))
            }
            Err(TypedFailure::Encode(e)) => Some(Err(Failed::Encode(e))),
        }
    }

    /// This sender as a [`Sink`](futures_sink::Sink) of values (feature `tokio`): a value
    /// given to `start_send` is sent by the next `poll_ready`, `poll_flush` or
    /// `poll_close`, which wait for room; its failure hands the value back.
    pub fn sink(&mut self) -> impl futures_sink::Sink<T, Error = SendError<T>> + Unpin + '_ {
        SendSink::new(self)
    }
}

/// A typed sender sinks values (see [`Sender::sink`]).
impl<T, C: Codec<T>, F: Flavor> SinkSender<T> for Sender<T, F, C> {
    type Error = SendError<T>;
    type Failure = Failed;

    fn try_put(&mut self, value: &T) -> Option<Result<(), Failed>> {
        self.try_encode(value)
    }

    fn failed(failure: Failed, value: T) -> SendError<T> {
        failure.with(value)
    }

    fn misused(value: T) -> SendError<T> {
        let misuse = "start_send with a value still pending: call poll_ready first";
        SendError::Encode(value, CodecError::Encode(misuse.into()))
    }

    fn flush(&mut self) {
        // Nothing to do: every typed send publishes at once.
    }
}

impl<T, C: Codec<T>, F: Flavor> Receiver<T, F, C> {
    /// Waits for the next value without blocking the thread (feature `tokio`). Dropping the
    /// future before it completes takes no value.
    pub async fn recv_async(&mut self) -> Result<T, RecvError<F::RecvError>> {
        retry(self, |receiver| receiver.try_decode())
            .await
            .map_err(|fatal| fatal.into_error())
    }

    /// One non-blocking receive: `None` for "nothing now".
    fn try_decode(&mut self) -> Option<Result<T, Undecoded<Fault<F>>>> {
        let scratch = &mut self.scratch;
        let outcome = self.inner.poll_recv_with(|ptr, len| {
            // SAFETY: `poll_recv_with` hands a pointer valid for reads of `len` bytes until
            // the frame is released, which is after this closure returns.
            let mut input = unsafe { FrameReader::new(ptr, len, scratch) };
            C::decode(&mut input)
        })?;
        Some(match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(Undecoded::Codec(e)),
            Err(fatal) => Err(Undecoded::Fatal(fatal)),
        })
    }

    /// The values as a [`Stream`](futures_core::Stream) (feature `tokio`): it ends when the
    /// senders are gone (`Disconnected`); any other failure is an `Err` item.
    pub fn stream(
        &mut self,
    ) -> impl futures_core::Stream<Item = Result<T, RecvError<F::RecvError>>> + Unpin + '_ {
        ValueStream { receiver: self }
    }
}

/// Why an async typed receive failed.
enum Undecoded<Fault> {
    Fatal(RecvFatal<Fault>),
    Codec(CodecError),
}

impl<Fault> Undecoded<Fault> {
    fn into_error<E: FromRecvFatal<Fault>>(self) -> RecvError<E> {
        match self {
            Undecoded::Fatal(fatal) => RecvError::Recv(E::from_fatal(fatal)),
            Undecoded::Codec(e) => RecvError::Decode(e),
        }
    }
}

/// A typed receiver's values as a [`Stream`](futures_core::Stream) (see
/// [`Receiver::stream`]).
struct ValueStream<'a, T, C: Codec<T>, F: Flavor> {
    receiver: &'a mut Receiver<T, F, C>,
}

impl<T, C: Codec<T>, F: Flavor> futures_core::Stream for ValueStream<'_, T, C, F> {
    type Item = Result<T, RecvError<F::RecvError>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let receiver = &mut *self.get_mut().receiver;
        poll_retry(receiver, cx, |r| r.try_decode()).map(|outcome| match outcome {
            Ok(value) => Some(Ok(value)),
            Err(Undecoded::Fatal(fatal)) => {
                end_at_disconnect::<T, _, RecvError<F::RecvError>>(Err(fatal))
            }
            Err(codec) => Some(Err(codec.into_error())),
        })
    }
}

impl<T, C: Codec<T>, F: Flavor> Drop for ValueStream<'_, T, C, F> {
    fn drop(&mut self) {
        cancel(self.receiver);
    }
}
