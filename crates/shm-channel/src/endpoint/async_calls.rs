//! The async operations of the byte endpoints of every flavor (feature `tokio`): send,
//! reserve, receive, read, and a receiver as a `futures` `Stream`. They wait as described
//! in `async_wait`; each takes what it returns in the poll that returns it, so dropping
//! a pending future loses nothing.

use std::pin::Pin;
use std::task::{Context, Poll};

use super::async_wait::{cancel, poll_retry, retry};
use super::failure::{FromRecvFatal, RecvFatal, SendFailure, SendFatal};
use super::grant::{ReadGrant, WriteGrant};
use super::receiver::copy_out;
use super::sender::Publish;
use super::{Deadline, Fault, Flavor, Frame, Receiver, Sender, Slot};
use crate::shared::ring::RecvRing;
use crate::{RecvIntoError, SendError};

impl<F: Flavor> Sender<F> {
    /// Sends `msg`, waiting for room without blocking the thread (feature `tokio`).
    /// Dropping the future before it completes sends nothing.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let (mut tx, mut rx) = shm_ipc::channel::spsc::channel(4096)?;
    /// tx.send_async(b"hello").await?;
    /// assert_eq!(rx.recv_async().await?, b"hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn send_async(&mut self, msg: &[u8]) -> Result<(), SendError<()>> {
        let slot = self.slot_async(msg.len()).await?;
        self.write_and_commit(slot, msg, Publish::Now);
        Ok(())
    }

    /// [`reserve`](Sender::reserve), waiting without blocking the thread.
    pub async fn reserve_async(
        &mut self,
        max_len: usize,
    ) -> Result<WriteGrant<'_, F>, SendError<()>> {
        let slot = self.slot_async(max_len).await?;
        Ok(WriteGrant::new(self, slot, Publish::Now))
    }

    /// Reserves room for `len` bytes, waiting without blocking.
    pub(crate) async fn slot_async(&mut self, len: usize) -> Result<Slot<F>, SendError<()>> {
        retry(self, move |sender| {
            sender.poll_slot(len).map(|r| r.map_err(|f| f.with(())))
        })
        .await
    }

    /// One non-blocking reserve of an async call: `None` for "no room now".
    pub(crate) fn poll_slot(&mut self, len: usize) -> Option<Result<Slot<F>, SendFatal>> {
        match self.reserve_slot(len, Deadline::Now) {
            Ok(slot) => Some(Ok(slot)),
            Err(SendFailure::NotNow) => None,
            Err(SendFailure::Fatal(fatal)) => Some(Err(fatal)),
        }
    }
}

impl<F: Flavor> Receiver<F> {
    /// Waits for the next message without blocking the thread (feature `tokio`), and copies
    /// it into a new `Vec`. Dropping the future before it completes takes no message.
    pub async fn recv_async(&mut self) -> Result<Vec<u8>, F::RecvError> {
        let grant = self.read_async().await?;
        let mut message = vec![0u8; grant.len()];
        grant.copy_to(&mut message);
        Ok(message)
    }

    /// [`recv_into`](Receiver::recv_into), waiting without blocking the thread.
    pub async fn recv_into_async(
        &mut self,
        buf: &mut [u8],
    ) -> Result<usize, RecvIntoError<F::RecvError>> {
        self.read_async().await?.copy_whole_into(buf)
    }

    /// [`read`](Receiver::read), waiting without blocking the thread: a grant over the next
    /// message, released when the grant is dropped.
    pub async fn read_async(&mut self) -> Result<ReadGrant<'_, F>, F::RecvError> {
        let frame = retry(self, |receiver| receiver.poll_frame())
            .await
            .map_err(F::RecvError::from_fatal)?;
        Ok(ReadGrant::new(self, frame))
    }

    /// One non-blocking look for a frame: `None` for "nothing now".
    pub(crate) fn poll_frame(&mut self) -> Option<Result<Frame<F>, RecvFatal<Fault<F>>>> {
        self.next_frame(Deadline::Now).transpose()
    }

    /// The next message, if one is there now, handed to `read` (a pointer valid for its
    /// length) and released: `None` for "nothing now". For async receives over this one.
    pub(crate) fn poll_recv_with<R>(
        &mut self,
        read: impl FnOnce(*const u8, usize) -> R,
    ) -> Option<Result<R, RecvFatal<Fault<F>>>> {
        Some(self.poll_frame()?.map(|frame| {
            let ring = self.ring();
            let out = read(
                ring.payload_ptr(&frame),
                <F::Reader as RecvRing>::frame_len(&frame),
            );
            ring.release(frame);
            out
        }))
    }

    /// The messages as a [`Stream`](futures_core::Stream) (feature `tokio`): it ends when
    /// the senders are gone (`Disconnected`); any other failure is an `Err` item.
    ///
    /// ```
    /// use futures_core::Stream;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let (mut tx, mut rx) = shm_ipc::channel::spsc::channel(4096)?;
    /// tx.send(b"a")?;
    /// tx.send(b"b")?;
    /// drop(tx);
    /// let mut stream = rx.stream();
    /// let mut seen = Vec::new();
    /// while let Some(msg) = std::future::poll_fn(|cx| std::pin::Pin::new(&mut stream).poll_next(cx)).await {
    ///     seen.push(msg?);
    /// }
    /// assert_eq!(seen, [b"a".to_vec(), b"b".to_vec()]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stream(
        &mut self,
    ) -> impl futures_core::Stream<Item = Result<Vec<u8>, F::RecvError>> + Unpin + '_ {
        MessageStream { receiver: self }
    }
}

/// A receiver's messages as a [`Stream`](futures_core::Stream) (see [`Receiver::stream`]).
struct MessageStream<'a, F: Flavor> {
    receiver: &'a mut Receiver<F>,
}

impl<F: Flavor> futures_core::Stream for MessageStream<'_, F> {
    type Item = Result<Vec<u8>, F::RecvError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let receiver = &mut *self.get_mut().receiver;
        poll_retry(receiver, cx, |r| r.poll_recv_with(copy_out)).map(end_at_disconnect)
    }
}

impl<F: Flavor> Drop for MessageStream<'_, F> {
    fn drop(&mut self) {
        cancel(self.receiver);
    }
}

/// A stream's item for a receive's outcome: the end at `Disconnected`.
pub(crate) fn end_at_disconnect<T, Fault, E: FromRecvFatal<Fault>>(
    outcome: Result<T, RecvFatal<Fault>>,
) -> Option<Result<T, E>> {
    match outcome {
        Ok(value) => Some(Ok(value)),
        Err(RecvFatal::Disconnected) => None,
        Err(fatal) => Some(Err(E::from_fatal(fatal))),
    }
}
