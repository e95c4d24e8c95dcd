//! A byte stream over an SPSC ring: a drop-in for a pipe where a program already speaks
//! [`io::Read`] and [`io::Write`].
//!
//! [`pipe`] makes a [`StreamWriter`] and a [`StreamReader`] in anonymous memory (they reach
//! a child made by `fork`); [`pipe_memfd`] makes them in a sealed memfd, so they can also
//! be passed to a program started with `exec` ([`Portable`], shm-fork's `exec::Command`).
//!
//! Each `write` call sends its bytes as one frame of at most a quarter of the ring (so both
//! sides stay busy), waiting for room for it; `read` returns everything at hand up to the
//! caller's buffer — across frames, keeping what does not fit of the last one for the next
//! call — and waits only when nothing is. Either end can be made non-blocking
//! ([`StreamWriter::set_nonblocking`], [`StreamReader::set_nonblocking`]): then a `write`
//! takes what fits now, and either call fails with
//! [`WouldBlock`](io::ErrorKind::WouldBlock) instead of waiting. Like a pipe:
//!
//! | event | writer sees | reader sees |
//! |---|---|---|
//! | writer dropped | — | `Ok(0)` (end of stream) once every byte written was read |
//! | reader dropped | `Err` of kind [`BrokenPipe`](io::ErrorKind::BrokenPipe) | — |
//! | the other process died (SIGKILL, abort) | `Err` of kind [`ConnectionAborted`](io::ErrorKind::ConnectionAborted) wrapping [`StreamError::PeerDied`] | the same (never a silent end of stream) |
//! | the ring is corrupt | `Err` of kind [`InvalidData`](io::ErrorKind::InvalidData) | the same |
//! | a copy this process does not own | `Err` of kind [`PermissionDenied`](io::ErrorKind::PermissionDenied) wrapping [`StreamError::NotOwner`] | the same |
//! | a timeout set and passed | `Err` of kind [`TimedOut`](io::ErrorKind::TimedOut) | the same |
//! | non-blocking, no room (no bytes) now | `Err` of kind [`WouldBlock`](io::ErrorKind::WouldBlock) | the same |
//!
//! [`is_peer_died`] tells a dead peer from the other errors. With the `tokio` feature the
//! ends are also tokio's `AsyncWrite` and `AsyncRead`, with the same errors.
//!
//! ```
//! use std::io::{Read, Write};
//! let (mut writer, mut reader) = shm_ipc::channel::stream::pipe(1 << 16)?;
//! writer.write_all(b"hello, ")?;
//! writer.write_all(b"stream")?;
//! drop(writer);
//! let mut text = String::new();
//! reader.read_to_string(&mut text)?;
//! assert_eq!(text, "hello, stream");
//!
//! // Reads take everything at hand, across writes; non-blocking, nothing at hand is
//! // `WouldBlock`.
//! let (mut writer, mut reader) = shm_ipc::channel::stream::pipe(1 << 16)?;
//! writer.write_all(&[1, 2, 3])?;
//! writer.write_all(&[4, 5])?;
//! let mut buf = [0; 16];
//! assert_eq!(reader.read(&mut buf)?, 5);
//! assert_eq!(buf[..5], [1, 2, 3, 4, 5]);
//! reader.set_nonblocking(true);
//! assert_eq!(reader.read(&mut buf).unwrap_err().kind(), std::io::ErrorKind::WouldBlock);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(feature = "tokio")]
mod async_io;

use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use crate::endpoint::{Endpoint, Parts, ReadGrant};
use crate::spsc::Spsc;
use crate::transfer::{Portable, Ticket, Transfer, TransferError};
use crate::{Builder, Receiver, Sender};
use crate::{
    ChannelError, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};

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
/// use shm_ipc::channel::stream::{is_peer_died, StreamError};
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
    ends(Builder::<Spsc>::new(capacity).create()?)
}

/// [`pipe`] in a sealed memfd: its ends can also travel to an exec'd program
/// ([`Portable`]).
pub fn pipe_memfd(capacity: usize) -> Result<(StreamWriter, StreamReader), ChannelError> {
    ends(Builder::<Spsc>::new(capacity).create_memfd()?)
}

fn ends(
    (tx, rx): (Sender<Spsc>, Receiver<Spsc>),
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
    tx: Sender<Spsc>,
    /// The largest frame a write sends: a quarter of the ring.
    chunk: usize,
    timeout: Option<Duration>,
    nonblocking: bool,
}

impl StreamWriter {
    fn new(tx: Sender<Spsc>) -> StreamWriter {
        let chunk = (tx.capacity() / 4).min(tx.max_message_len()).max(1);
        StreamWriter {
            tx,
            chunk,
            timeout: None,
            nonblocking: false,
        }
    }

    /// How long a `write` may wait for room (`None`, the default: as long as it takes).
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// Whether a `write` waits for room (`false`, the default) or takes what fits now and
    /// fails with [`WouldBlock`](io::ErrorKind::WouldBlock) when nothing does.
    pub fn set_nonblocking(&mut self, nonblocking: bool) {
        self.nonblocking = nonblocking;
    }

    /// Sends the longest head of `buf` (not empty, at most a chunk) that fits in the ring
    /// now, as one frame: the ring's free bytes less a frame header bound the first try,
    /// halved while the frame does not fit where it would go.
    fn write_now(&mut self, buf: &[u8]) -> io::Result<usize> {
        let free = self.tx.capacity().saturating_sub(self.tx.len());
        let mut len = buf.len().min(free.saturating_sub(8) & !7).max(1);
        loop {
            match self.tx.try_send(&buf[..len]) {
                Ok(()) => return Ok(len),
                Err(TrySendError::Full(())) if len > 1 => len /= 2,
                Err(TrySendError::Full(())) => return Err(io::ErrorKind::WouldBlock.into()),
                Err(TrySendError::Send(err)) => {
                    return Err(send_error(SendTimeoutError::Send(err)))
                }
            }
        }
    }
}

impl Endpoint for StreamWriter {
    fn parts(&self) -> &dyn Parts {
        self.tx.parts()
    }

    fn parts_mut(&mut self) -> &mut dyn Parts {
        self.tx.parts_mut()
    }
}

impl io::Write for StreamWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let len = buf.len().min(self.chunk);
        if self.nonblocking {
            return self.write_now(&buf[..len]);
        }
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
    rx: Receiver<Spsc>,
    /// Bytes of the last frame that did not fit the caller's buffer.
    leftover: Leftover,
    timeout: Option<Duration>,
    nonblocking: bool,
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
    fn new(rx: Receiver<Spsc>) -> StreamReader {
        StreamReader {
            rx,
            leftover: Leftover::default(),
            timeout: None,
            nonblocking: false,
        }
    }

    /// How long a `read` may wait for bytes (`None`, the default: as long as it takes).
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// Whether a `read` with nothing at hand waits (`false`, the default) or fails with
    /// [`WouldBlock`](io::ErrorKind::WouldBlock).
    pub fn set_nonblocking(&mut self, nonblocking: bool) {
        self.nonblocking = nonblocking;
    }

    /// Copies into `buf` what is at hand — the bytes kept from the last frame, then the
    /// frames in the ring now — until `buf` is full or nothing is left; how many bytes. A
    /// failure once some bytes were taken is left for the next call, which meets it again.
    fn take_at_hand(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = self.leftover.read(buf);
        while n < buf.len() {
            let Ok(grant) = self.rx.try_read() else {
                break;
            };
            n += self.leftover.read_frame(grant, &mut buf[n..])?;
        }
        Ok(n)
    }
}

impl Endpoint for StreamReader {
    fn parts(&self) -> &dyn Parts {
        self.rx.parts()
    }

    fn parts_mut(&mut self) -> &mut dyn Parts {
        self.rx.parts_mut()
    }
}

impl io::Read for StreamReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let at_hand = self.take_at_hand(buf)?;
        if at_hand > 0 {
            return Ok(at_hand);
        }
        // Nothing at hand: wait for a frame (or say so), then take the rest of what came.
        let grant = if self.nonblocking {
            match self.rx.try_read() {
                Ok(grant) => grant,
                Err(TryRecvError::Empty) => return Err(io::ErrorKind::WouldBlock.into()),
                Err(TryRecvError::Recv(RecvError::Disconnected)) => return Ok(0),
                Err(TryRecvError::Recv(err)) => return Err(channel_error(err)),
            }
        } else {
            let timeout = self.timeout.unwrap_or(Duration::MAX);
            match self.rx.read_timeout(timeout) {
                Ok(grant) => grant,
                Err(RecvTimeoutError::Recv(RecvError::Disconnected)) => return Ok(0),
                Err(err) => return Err(recv_error(err)),
            }
        };
        let n = self.leftover.read_frame(grant, buf)?;
        Ok(n + self.take_at_hand(&mut buf[n..])?)
    }
}

impl Portable for StreamWriter {
    fn into_transfer(self) -> Result<Transfer, TransferError> {
        self.tx.into_transfer()
    }

    fn from_fds(fds: Vec<OwnedFd>, ticket: Ticket) -> Result<StreamWriter, TransferError> {
        Ok(StreamWriter::new(Sender::<Spsc>::from_fds(fds, ticket)?))
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
        Ok(StreamReader::new(Receiver::<Spsc>::from_fds(fds, ticket)?))
    }
}
