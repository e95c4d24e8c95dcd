//! A sender as a `futures` [`Sink`](futures_sink::Sink) (feature `tokio`), written once for
//! the byte senders of every flavor ([`Sender::sink`]) and the typed ones
//! ([`typed::Sender::sink`](crate::typed::Sender::sink)): an item given to `start_send` is
//! sent by the next `poll_ready`, `poll_flush` or `poll_close`, which wait for room as every
//! async call does; its failure hands the item back.

use std::pin::Pin;
use std::task::{Context, Poll};

use super::async_wait::{cancel, poll_retry};
use super::failure::SendFatal;
use super::sender::Publish;
use super::{Endpoint, Flavor, Sender};
use crate::SendError;

/// A sender a [`SendSink`] drives: one non-blocking send of an item at a time.
pub(crate) trait SinkSender<T>: Endpoint {
    /// What a failed send returns, with the item back.
    type Error;
    /// Why a send failed, before the item is put back.
    type Failure;

    /// One non-blocking send of `item`: `None` for "no room now".
    fn try_put(&mut self, item: &T) -> Option<Result<(), Self::Failure>>;

    /// The error of `failure`, handing `item` back.
    fn failed(failure: Self::Failure, item: T) -> Self::Error;

    /// The error for a `start_send` made while an item is still pending.
    fn misused(item: T) -> Self::Error;

    /// Publishes what was sent.
    fn flush(&mut self);
}

/// A sender as a [`Sink`](futures_sink::Sink). An item taken by `start_send` is sent by
/// the next `poll_ready`/`poll_flush`/`poll_close`; a sink dropped before that drops the
/// item unsent (flush or close it first).
pub(crate) struct SendSink<'a, S: Endpoint, T> {
    sender: &'a mut S,
    /// The item `start_send` took, not sent yet.
    pending: Option<T>,
}

impl<'a, S: SinkSender<T>, T> SendSink<'a, S, T> {
    pub(crate) fn new(sender: &'a mut S) -> Self {
        SendSink {
            sender,
            pending: None,
        }
    }

    /// Sends the pending item, if any, waiting for room.
    fn poll_send_pending(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        let Some(item) = &self.pending else {
            return Poll::Ready(Ok(()));
        };
        match poll_retry(self.sender, cx, |sender| sender.try_put(item)) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(outcome) => {
                let item = self.pending.take();
                Poll::Ready(match (outcome, item) {
                    (Err(failure), Some(item)) => Err(S::failed(failure, item)),
                    _ => Ok(()),
                })
            }
        }
    }
}

// The pending item is never pinned (no `Pin<&mut T>` is ever made of it): moving the sink
// cannot break a pin guarantee, whatever `T` is.
impl<S: Endpoint, T> Unpin for SendSink<'_, S, T> {}

impl<S: SinkSender<T>, T> futures_sink::Sink<T> for SendSink<'_, S, T> {
    type Error = S::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().poll_send_pending(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: T) -> Result<(), Self::Error> {
        let this = self.get_mut();
        // The `Sink` contract has `poll_ready` return `Ready(Ok)` first, which leaves
        // nothing pending; a caller that skips it gets this item back, and the earlier
        // one is still sent by the next poll.
        if this.pending.is_some() {
            return Err(S::misused(item));
        }
        this.pending = Some(item);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        let sent = std::task::ready!(this.poll_send_pending(cx));
        this.sender.flush();
        Poll::Ready(sent)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.poll_flush(cx)
    }
}

impl<S: Endpoint, T> Drop for SendSink<'_, S, T> {
    fn drop(&mut self) {
        cancel(self.sender);
    }
}

/// A byte sender sinks messages: anything that is bytes (`Vec<u8>`, `&[u8]`, `Bytes`, …).
impl<F: Flavor, B: AsRef<[u8]>> SinkSender<B> for Sender<F> {
    type Error = SendError<B>;
    type Failure = SendFatal;

    fn try_put(&mut self, item: &B) -> Option<Result<(), SendFatal>> {
        let msg = item.as_ref();
        Some(self.poll_slot(msg.len())?.map(|slot| {
            self.write_and_commit(slot, msg, Publish::Now);
        }))
    }

    fn failed(failure: SendFatal, item: B) -> SendError<B> {
        failure.with(item)
    }

    fn misused(item: B) -> SendError<B> {
        // The message would not be sent: refused as if too large for nothing at all (the
        // contract's misuse has no error of its own in the byte sender's errors).
        SendFatal::TooLarge(0).with(item)
    }

    fn flush(&mut self) {
        Sender::flush(self);
    }
}

impl<F: Flavor> Sender<F> {
    /// This sender as a [`Sink`](futures_sink::Sink) of messages (feature `tokio`): any
    /// `B: AsRef<[u8]>` (a `Vec<u8>`, a slice, …). A message given to `start_send` is sent
    /// by the next `poll_ready`, `poll_flush` or `poll_close`, which wait for room; its
    /// failure hands the message back. Calling `start_send` twice without `poll_ready` in
    /// between is refused with the second message (`TooLarge` with a limit of 0).
    ///
    /// ```
    /// use std::future::poll_fn;
    /// use std::pin::Pin;
    /// use futures_sink::Sink;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let (mut tx, mut rx) = shm_ipc::channel::spsc::channel(4096)?;
    /// let mut sink = tx.sink::<Vec<u8>>();
    /// for msg in [b"one".to_vec(), b"two".to_vec()] {
    ///     poll_fn(|cx| Pin::new(&mut sink).poll_ready(cx)).await?;
    ///     Pin::new(&mut sink).start_send(msg)?;
    /// }
    /// poll_fn(|cx| Pin::new(&mut sink).poll_flush(cx)).await?;
    /// assert_eq!(rx.recv()?, b"one");
    /// assert_eq!(rx.recv()?, b"two");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sink<'a, B: AsRef<[u8]> + 'a>(
        &'a mut self,
    ) -> impl futures_sink::Sink<B, Error = SendError<B>> + Unpin + 'a {
        SendSink::new(self)
    }
}
