//! `shm-stream`: two shm-channel byte streams (`shm_channel::stream`, one per
//! direction), driven exactly as the pipes are — `write_all` of a private buffer,
//! `read_exact` into one — so that it measures the drop-in replacement of a pipe, not
//! the message API.
//!
//! Each direction's ring holds four of the largest messages (64 KiB, the pipe's default
//! capacity, at least; 4 MiB at most): a stream cuts writes into frames of at most a
//! quarter of its ring, so a message of up to that size is one frame.

use std::io::{self, Read, Write};

use shm_channel::stream::{is_peer_died, pipe, StreamReader, StreamWriter};
use shm_channel::Endpoint as _;

use super::buffered::{Buffered, ByteLink};
use super::{Owned, Pair, Side, Transport, TransportError};

/// Two byte streams in shared memory.
#[derive(Debug)]
pub(crate) struct ShmStream;

/// `shm-stream`: the pipe's drop-in.
pub(crate) static SHM_STREAM: ShmStream = ShmStream;

impl Transport for ShmStream {
    fn name(&self) -> &'static str {
        "shm-stream"
    }

    fn connect(&self, max_msg: usize) -> Result<Pair, TransportError> {
        let capacity = max_msg
            .saturating_mul(4)
            .next_power_of_two()
            .clamp(1 << 16, 1 << 22);
        let failed = |e: shm_channel::ChannelError| TransportError::Failed(e.to_string());
        let down = pipe(capacity).map_err(failed)?;
        let up = pipe(capacity).map_err(failed)?;
        Ok(Pair::crosswise(down, up, |tx, rx| {
            Buffered::new(StreamLink { rx, tx }, max_msg)
        }))
    }
}

/// One side: a reader of one stream, the writer of the other.
struct StreamLink {
    rx: StreamReader,
    tx: StreamWriter,
}

/// A stream error as the harness's.
fn stream_error(err: io::Error) -> TransportError {
    if is_peer_died(&err) {
        TransportError::PeerDied
    } else if matches!(
        err.kind(),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::BrokenPipe
    ) {
        TransportError::Disconnected
    } else {
        TransportError::Io(err)
    }
}

impl ByteLink for StreamLink {
    fn write_msg(&mut self, msg: &[u8]) -> Result<(), TransportError> {
        self.tx.write_all(msg).map_err(stream_error)
    }

    fn read_msg(&mut self, buf: &mut Vec<u8>) -> Result<(), TransportError> {
        self.rx.read_exact(buf).map_err(stream_error)
    }
}

impl Side for StreamLink {
    fn owned(&self) -> Owned<'_> {
        Owned::Halves(&self.rx, &self.tx)
    }

    fn wake_syscalls(&self) -> u64 {
        self.rx.stats().wake_syscalls + self.tx.stats().wake_syscalls
    }
}
