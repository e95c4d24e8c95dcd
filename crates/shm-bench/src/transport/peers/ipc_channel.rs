//! `ipc-channel`: ipc-channel 0.23's byte channels (`ipc::bytes_channel`, a unix
//! `SOCK_SEQPACKET` pair per channel; large messages go through a shared-memory
//! segment it passes with the message), two per pair. Made before the fork, so both
//! processes inherit the sockets; the child drops the harness's copies (and the harness
//! the child's), so a side's drop is the other side's `Disconnected` on receive.
//!
//! A sender does not learn of it: a message too large for one packet travels over a
//! socket pair of its own whose receiving end is in flight inside the closed socket,
//! and the kernel frees that only later, so a producer blocked in such a send blocked
//! for good (seen with 1 MiB messages). The harness therefore closes cooperatively: the
//! owner's drop sets a flag (one word per direction in a shared page) that a sender
//! checks before each message, closes its own sender, then drains what the peer still
//! sends until the peer's sender closes (bounded by [`STALL`]).

use std::time::{Duration, Instant};

use ipc_channel::ipc::{self, IpcBytesReceiver, IpcBytesSender};
use ipc_channel::{IpcError, TryRecvError};

use super::{pair_with_close_flags, CloseFlags};
use crate::transport::buffered::ByteLink;
use crate::transport::watch::STALL;
use crate::transport::{check_exact, Owned, Pair, Side, Transport, TransportError};

/// The transport.
#[derive(Debug)]
pub(crate) struct IpcChannel;

/// `ipc-channel`: two ipc-channel byte channels.
pub(crate) static IPC_CHANNEL: IpcChannel = IpcChannel;

fn recv_err(e: IpcError) -> TransportError {
    match e {
        IpcError::Disconnected => TransportError::Disconnected,
        IpcError::Io(e) => TransportError::Io(e),
        other => TransportError::Failed(format!("ipc-channel: {other}")),
    }
}

fn send_err(e: std::io::Error) -> TransportError {
    match e.kind() {
        std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
            TransportError::Disconnected
        }
        _ => TransportError::Io(e),
    }
}

impl Transport for IpcChannel {
    fn name(&self) -> &'static str {
        "ipc-channel"
    }

    fn connect(&self, max_msg: usize) -> Result<Pair, TransportError> {
        let (down, up) = (ipc::bytes_channel()?, ipc::bytes_channel()?);
        pair_with_close_flags(down, up, max_msg, |tx, rx, flags| IpcLink {
            tx: Some(tx),
            rx,
            flags,
        })
    }
}

/// One side: a byte sender on one channel, a byte receiver on the other.
struct IpcLink {
    /// `None` once dropped (first thing in `Drop`).
    tx: Option<IpcBytesSender>,
    rx: IpcBytesReceiver,
    /// Says when this side, or the peer, is closing.
    flags: CloseFlags,
}

impl Side for IpcLink {
    fn owned(&self) -> Owned<'_> {
        Owned::Record(self.flags.owner())
    }
}

impl ByteLink for IpcLink {
    /// Sends `msg`, unless the peer is closing.
    fn write_msg(&mut self, msg: &[u8]) -> Result<(), TransportError> {
        if self.flags.peer_closed() {
            return Err(TransportError::Disconnected);
        }
        let tx = self.tx.as_ref().ok_or(TransportError::Disconnected)?;
        tx.send(msg).map_err(send_err)
    }

    /// ipc-channel receives into a new `Vec`: it becomes the message buffer.
    fn read_msg(&mut self, buf: &mut Vec<u8>) -> Result<(), TransportError> {
        let msg = self.rx.recv().map_err(recv_err)?;
        check_exact(buf.len(), msg.len())?;
        *buf = msg;
        Ok(())
    }
}

impl Drop for IpcLink {
    fn drop(&mut self) {
        if !self.flags.close() {
            return;
        }
        // Our sender first: a peer blocked receiving from us sees the close and leaves.
        drop(self.tx.take());
        let since = Instant::now();
        while since.elapsed() < STALL {
            match self.rx.try_recv() {
                Ok(_) => {}
                Err(TryRecvError::Empty) => std::thread::sleep(Duration::from_micros(50)),
                Err(TryRecvError::IpcError(_)) => return,
            }
        }
    }
}
