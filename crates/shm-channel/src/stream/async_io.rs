//! The stream's ends as tokio's [`AsyncWrite`] and [`AsyncRead`] (feature `tokio`), with
//! the errors of the table in the module docs. They wait as every async endpoint does
//! (`endpoint::async_wait`): a write commits, or a read takes, in the poll that returns;
//! a read takes everything at hand, as the synchronous one does.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{channel_error, send_error, StreamReader, StreamWriter};
use crate::endpoint::async_wait::poll_retry;
use crate::endpoint::failure::{FromRecvFatal, RecvFatal};
use crate::endpoint::{Publish, ReadGrant};
use crate::{RecvError, SendTimeoutError};

impl AsyncWrite for StreamWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let len = buf.len().min(this.chunk);
        match std::task::ready!(poll_retry(&mut this.tx, cx, |tx| tx.poll_slot(len))) {
            Ok(slot) => {
                this.tx.write_and_commit(slot, &buf[..len], Publish::Now);
                Poll::Ready(Ok(len))
            }
            Err(fatal) => Poll::Ready(Err(send_error(SendTimeoutError::Send(fatal.with(()))))),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().tx.flush();
        Poll::Ready(Ok(()))
    }

    /// Publishes what is written; the stream ends (the reader sees end of stream) when the
    /// writer is dropped.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

impl AsyncRead for StreamReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let at_hand = this.take_at_hand(buf.initialize_unfilled())?;
        if at_hand > 0 {
            buf.advance(at_hand);
            return Poll::Ready(Ok(()));
        }
        let frame = match std::task::ready!(poll_retry(&mut this.rx, cx, |rx| rx.poll_frame())) {
            Ok(frame) => frame,
            // End of stream: nothing put in `buf`.
            Err(RecvFatal::Disconnected) => return Poll::Ready(Ok(())),
            Err(fatal) => return Poll::Ready(Err(channel_error(RecvError::from_fatal(fatal)))),
        };
        let grant = ReadGrant::new(&mut this.rx, frame);
        let n = this.leftover.read_frame(grant, buf.initialize_unfilled())?;
        buf.advance(n);
        let rest = this.take_at_hand(buf.initialize_unfilled())?;
        buf.advance(rest);
        Poll::Ready(Ok(()))
    }
}
