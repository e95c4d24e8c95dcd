//! A byte stream over an SPSC ring: a drop-in for a pipe where a program already speaks
//! [`io::Read`] and [`io::Write`].
//!
//! [`pipe`] makes a [`StreamWriter`] and a [`StreamReader`] in anonymous memory (they reach
//! a child made by `fork`); [`pipe_memfd`] makes them in a sealed memfd, so they can also
//! be passed to a program started with `exec` ([`Portable`], shm-fork's `exec::Command`).
//!
//! Each `write` call sends its bytes as one or more frames (at most a quarter of the ring
//! each, so both sides stay busy); `read` copies out of the frame at the head, keeping
//! what does not fit for the next call. Like a pipe:
//!
//! | event | writer sees | reader sees |
//! |---|---|---|
//! | writer dropped | — | `Ok(0)` (end of stream) once every byte written was read |
//! | reader dropped | `Err` of kind [`BrokenPipe`](io::ErrorKind::BrokenPipe) | — |
//! | the other process died (SIGKILL, abort) | `Err` of kind [`ConnectionAborted`](io::ErrorKind::ConnectionAborted) wrapping [`StreamError::PeerDied`] | the same (never a silent end of stream) |
//! | the ring is corrupt | `Err` of kind [`InvalidData`](io::ErrorKind::InvalidData) | the same |
//! | a copy this process does not own | `Err` of kind [`PermissionDenied`](io::ErrorKind::PermissionDenied) wrapping [`StreamError::NotOwner`] | the same |
//! | a timeout set and passed | `Err` of kind [`TimedOut`](io::ErrorKind::TimedOut) | the same |
//!
//! [`is_peer_died`] tells a dead peer from the other errors. With the `tokio` feature the
//! ends are also tokio's `AsyncWrite` and `AsyncRead`, with the same errors.
//!
//! ```
//! use std::io::{Read, Write};
//! let (mut writer, mut reader) = shm_channel::stream::pipe(1 << 16)?;
//! writer.write_all(b"hello, ")?;
//! writer.write_all(b"stream")?;
//! drop(writer);
//! let mut text = String::new();
//! reader.read_to_string(&mut text)?;
//! assert_eq!(text, "hello, stream");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(feature = "tokio")]
mod async_io;

use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use crate::endpoint::{Endpoint, Parts, ReadGrant};
use crate::spsc::{self, Builder, Spsc};
use crate::transfer::{Portable, Ticket, Transfer, TransferError};
use crate::{ChannelError, RecvError, RecvTimeoutError, SendError, SendTimeoutError};

/// The errors of a stream that have no [`io::ErrorKind`] of their own, carried inside an
/// [`io::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The process at the other end died without closing the stream (seen through the
    /// kernel, within the channels' usual bound). Bytes it wrote before dying were
    /// delivered; whatever it meant to write after them is lost.
    #[error("the process at the other end of the stream died")]
    PeerDied,
    /// This process does not own this end of the stream (a copy left behind by `fork`,
    /// or an end handed over to another process).
    #[error("this process does not own this end of the stream")]
    NotOwner,
}

/// Whether `error` says the process at the other end of a stream died.
///
/// ```
/// use shm_channel::stream::{is_peer_died, StreamError};
/// let err = std::io::Error::new(std::io::ErrorKind::ConnectionAborted, StreamError::PeerDied);
/// assert!(is_peer_died(&err));
/// assert!(!is_peer_died(&std::io::ErrorKind::BrokenPipe.into()));
/// ```
pub fn is_peer_died(error: &io::Error) -> bool {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<StreamError>())
        == Some(&StreamError::PeerDied)
}

/// A stream of `capacity` bytes of ring (a power of two, at least 64) in anonymous shared
/// memory: both ends, owned by the calling process (pass one to a forked child).
pub fn pipe(capacity: usize) -> Result<(StreamWriter, StreamReader), ChannelError> {
    ends(Builder::new(capacity).create()?)
}

/// [`pipe`] in a sealed memfd: its ends can also travel to an exec'd program
/// ([`Portable`]).
pub fn pipe_memfd(capacity: usize) -> Result<(StreamWriter, StreamReader), ChannelError> {
    ends(Builder::new(capacity).create_memfd()?)
}

fn ends(
    (tx, rx): (spsc::Sender, spsc::Receiver),
) -> Result<(StreamWriter, StreamReader), ChannelError> {
    if tx.capacity() < 64 {
        return Err(ChannelError::InvalidCapacity {
            capacity: tx.capacity() as u64,
            reason: "a stream needs at least 64 bytes of ring",
        });
    }
    Ok((StreamWriter::new(tx), StreamReader::new(rx)))
}

/// The writing end of a stream ([`io::Write`]). Dropping it ends the stream.
#[derive(Debug)]
pub struct StreamWriter {
    tx: spsc::Sender,
    /// The largest frame a write sends: a quarter of the ring.
    chunk: usize,
    timeout: Option<Duration>,
}

impl StreamWriter {
    fn new(tx: spsc::Sender) -> StreamWriter {
        let chunk = (tx.capacity() / 4).min(tx.max_message_len()).max(1);
        StreamWriter {
            tx,
            chunk,
            timeout: None,
        }
    }

    /// How long a `write` may wait for room (`None`, the default: as long as it takes).
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }
}

impl Endpoint for StreamWriter {
    fn parts(&self) -> &dyn Parts {
        self.tx.parts()
    }
}

impl io::Write for StreamWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let len = buf.len().min(self.chunk);
        let timeout = self.timeout.unwrap_or(Duration::MAX);
        match self.tx.send_timeout(&buf[..len], timeout) {
            Ok(()) => Ok(len),
            Err(err) => Err(send_error(err)),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tx.flush();
        Ok(())
    }
}

/// A failed send as the `io::Error` of the table in the module docs.
fn send_error(err: SendTimeoutError<()>) -> io::Error {
    match err {
        SendTimeoutError::Timeout(()) => io::ErrorKind::TimedOut.into(),
        SendTimeoutError::Send(SendError::Disconnected(())) => io::ErrorKind::BrokenPipe.into(),
        SendTimeoutError::Send(SendError::PeerDied(())) => channel_error(RecvError::PeerDied),
        SendTimeoutError::Send(SendError::NotOwner(())) => channel_error(RecvError::NotOwner),
        SendTimeoutError::Send(SendError::Corrupted((), c)) => {
            channel_error(RecvError::Corrupted(c))
        }
        // Cannot happen (chunks fit the ring), but if it did it would be a plain error,
        // not a panic.
        SendTimeoutError::Send(err @ SendError::TooLarge(..)) => io::Error::other(err.to_string()),
    }
}

/// A failed receive as the `io::Error` of the table in the module docs (a disconnect is the
/// end of the stream, `Ok(0)`, before this is asked).
fn recv_error(err: RecvTimeoutError) -> io::Error {
    match err {
        RecvTimeoutError::Timeout => io::ErrorKind::TimedOut.into(),
        RecvTimeoutError::Recv(err) => channel_error(err),
    }
}

/// A failure of the channel under a stream, either end, as its `io::Error`.
fn channel_error(err: RecvError) -> io::Error {
    match err {
        RecvError::Disconnected => io::ErrorKind::BrokenPipe.into(),
        RecvError::PeerDied => {
            io::Error::new(io::ErrorKind::ConnectionAborted, StreamError::PeerDied)
        }
        RecvError::NotOwner => {
            io::Error::new(io::ErrorKind::PermissionDenied, StreamError::NotOwner)
        }
        RecvError::Corrupted(corruption) => io::Error::new(io::ErrorKind::InvalidData, corruption),
    }
}

/// The reading end of a stream ([`io::Read`]).
#[derive(Debug)]
pub struct StreamReader {
    rx: spsc::Receiver,
    /// Bytes of the last frame that did not fit the caller's buffer.
    leftover: Leftover,
    timeout: Option<Duration>,
}

/// The bytes of a frame a read could not take, kept for the next.
#[derive(Debug, Default)]
struct Leftover {
    bytes: Vec<u8>,
    /// How much of `bytes` was read already.
    pos: usize,
}

impl Leftover {
    fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// Copies what is left into `buf`; how many bytes.
    fn read(&mut self, buf: &mut [u8]) -> usize {
        let n = (self.bytes.len() - self.pos).min(buf.len());
        buf[..n].copy_from_slice(&self.bytes[self.pos..self.pos + n]);
        self.pos += n;
        n
    }

    /// Copies `grant` into `buf` and keeps what does not fit; how many bytes went to `buf`.
    fn read_frame(&mut self, grant: ReadGrant<'_, Spsc>, buf: &mut [u8]) -> io::Result<usize> {
        let n = grant.copy_to(buf);
        if n < grant.len() {
            self.bytes.resize(grant.len() - n, 0);
            // In bounds: `n + bytes.len() == grant.len()`.
            grant
                .read_at(n, &mut self.bytes)
                .map_err(io::Error::other)?;
            self.pos = 0;
        }
        Ok(n)
    }
}

impl StreamReader {
    fn new(rx: spsc::Receiver) -> StreamReader {
        StreamReader {
            rx,
            leftover: Leftover::default(),
            timeout: None,
        }
    }

    /// How long a `read` may wait for bytes (`None`, the default: as long as it takes).
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }
}

impl Endpoint for StreamReader {
    fn parts(&self) -> &dyn Parts {
        self.rx.parts()
    }
}

impl io::Read for StreamReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if !self.leftover.is_empty() {
            return Ok(self.leftover.read(buf));
        }
        let timeout = self.timeout.unwrap_or(Duration::MAX);
        let grant = match self.rx.read_timeout(timeout) {
            Ok(grant) => grant,
            Err(RecvTimeoutError::Recv(RecvError::Disconnected)) => return Ok(0),
            Err(err) => return Err(recv_error(err)),
        };
        self.leftover.read_frame(grant, buf)
    }
}

impl Portable for StreamWriter {
    fn into_transfer(self) -> Result<Transfer, TransferError> {
        self.tx.into_transfer()
    }

    fn from_fds(fds: Vec<OwnedFd>, ticket: Ticket) -> Result<StreamWriter, TransferError> {
        Ok(StreamWriter::new(spsc::Sender::from_fds(fds, ticket)?))
    }
}

impl Portable for StreamReader {
    fn into_transfer(self) -> Result<Transfer, TransferError> {
        if !self.leftover.is_empty() {
            // Bytes already taken out of the ring would be lost on the way.
            return Err(TransferError::Unsupported {
                what: "stream reader holding bytes read out of its ring",
            });
        }
        self.rx.into_transfer()
    }

    fn from_fds(fds: Vec<OwnedFd>, ticket: Ticket) -> Result<StreamReader, TransferError> {
        Ok(StreamReader::new(spsc::Receiver::from_fds(fds, ticket)?))
    }
}
