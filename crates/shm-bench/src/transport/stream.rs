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
use shm_core::liveness::ProcessIdentity;

use super::{check_fits, Endpoint, MsgIn, MsgOut, Pair, Transport, TransportError};

/// Two byte streams in shared memory.
#[derive(Debug)]
pub struct ShmStream;

/// `shm-stream`: the pipe's drop-in.
pub static SHM_STREAM: ShmStream = ShmStream;

impl Transport for ShmStream {
    fn name(&self) -> &'static str {
        "shm-stream"
    }

    fn description(&self) -> &'static str {
        "two shm-channel byte streams (io::Read/io::Write), used as the pipes are"
    }

    fn connect(&self, max_msg: usize) -> Result<Pair, TransportError> {
        let capacity = max_msg
            .saturating_mul(4)
            .next_power_of_two()
            .clamp(1 << 16, 1 << 22);
        let failed = |e: shm_channel::ChannelError| TransportError::Failed(e.to_string());
        let (down_w, down_r) = pipe(capacity).map_err(failed)?; // parent -> child
        let (up_w, up_r) = pipe(capacity).map_err(failed)?; // child -> parent
        Ok(Pair::new(
            StreamEndpoint::new(up_r, down_w, max_msg),
            StreamEndpoint::new(down_r, up_w, max_msg),
        ))
    }
}

/// One side: a reader, a writer and a private message buffer.
struct StreamEndpoint {
    rx: StreamReader,
    tx: StreamWriter,
    buf: Vec<u8>,
}

impl StreamEndpoint {
    fn new(rx: StreamReader, tx: StreamWriter, max_msg: usize) -> StreamEndpoint {
        StreamEndpoint {
            rx,
            tx,
            buf: vec![0u8; max_msg],
        }
    }

    fn message(&mut self, len: usize) -> Result<&mut [u8], TransportError> {
        check_fits(len, self.buf.len())?;
        Ok(&mut self.buf[..len])
    }
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

impl Endpoint for StreamEndpoint {
    fn send(
        &mut self,
        len: usize,
        fill: &mut dyn FnMut(&mut MsgOut<'_>),
    ) -> Result<(), TransportError> {
        let msg = self.message(len)?;
        fill(&mut MsgOut::private(msg));
        let msg = &self.buf[..len];
        self.tx.write_all(msg).map_err(stream_error)
    }

    fn recv(&mut self, len: usize, read: &mut dyn FnMut(&MsgIn<'_>)) -> Result<(), TransportError> {
        self.message(len)?;
        let msg = &mut self.buf[..len];
        self.rx.read_exact(msg).map_err(stream_error)?;
        read(&MsgIn::private(msg));
        Ok(())
    }

    fn echo(
        &mut self,
        len: usize,
        inspect: &mut dyn FnMut(&MsgIn<'_>),
    ) -> Result<(), TransportError> {
        self.message(len)?;
        let msg = &mut self.buf[..len];
        self.rx.read_exact(msg).map_err(stream_error)?;
        inspect(&MsgIn::private(msg));
        self.tx.write_all(msg).map_err(stream_error)
    }

    fn hand_over(&self, child: ProcessIdentity) -> Result<(), TransportError> {
        let failed = |e: shm_channel::OwnershipError| TransportError::Failed(e.to_string());
        self.rx.hand_over(child).map_err(failed)?;
        self.tx.hand_over(child).map_err(failed)
    }

    fn adopt(&self) -> Result<(), TransportError> {
        let failed = |e: shm_channel::OwnershipError| TransportError::Failed(e.to_string());
        self.rx.adopt().map_err(failed)?;
        self.tx.adopt().map_err(failed)
    }

    fn wake_syscalls(&self) -> u64 {
        self.rx.stats().wake_syscalls + self.tx.stats().wake_syscalls
    }
}
