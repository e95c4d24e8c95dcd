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
use shm_core::liveness::ProcessIdentity;

use super::CloseFlags;
use crate::transport::watch::{Owner, STALL};
use crate::transport::{
    check_exact, check_fits, Endpoint, MsgIn, MsgOut, Pair, Transport, TransportError,
};

/// The transport.
#[derive(Debug)]
pub struct IpcChannel;

/// `ipc-channel`: two ipc-channel byte channels.
pub static IPC_CHANNEL: IpcChannel = IpcChannel;

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

    fn description(&self) -> &'static str {
        "peer: ipc-channel 0.23 byte channels (unix SEQPACKET sockets), two"
    }

    fn connect(&self, max_msg: usize) -> Result<Pair, TransportError> {
        let (down_tx, down_rx) = ipc::bytes_channel()?; // parent -> child
        let (up_tx, up_rx) = ipc::bytes_channel()?; // child -> parent
        let (parent_flags, child_flags) = CloseFlags::pair()?;
        let end = |tx, rx, flags| IpcEnd {
            tx: Some(tx),
            rx,
            buf: vec![0; max_msg],
            flags,
            owner: Owner::here(),
        };
        Ok(Pair::new(
            end(down_tx, up_rx, parent_flags),
            end(up_tx, down_rx, child_flags),
        ))
    }
}

/// One side: a byte sender on one channel, a byte receiver on the other.
struct IpcEnd {
    /// `None` once dropped (first thing in `Drop`).
    tx: Option<IpcBytesSender>,
    rx: IpcBytesReceiver,
    /// The outgoing message (ipc-channel sends from a slice and receives into a new
    /// `Vec`).
    buf: Vec<u8>,
    /// Says when this side, or the peer, is closing.
    flags: CloseFlags,
    owner: Owner,
}

impl IpcEnd {
    fn check_len(&self, len: usize) -> Result<(), TransportError> {
        check_fits(len, self.buf.len())
    }

    /// Sends `msg`, unless the peer is closing.
    fn send_msg(&self, msg: &[u8]) -> Result<(), TransportError> {
        if self.flags.peer_closed() {
            return Err(TransportError::Disconnected);
        }
        let tx = self.tx.as_ref().ok_or(TransportError::Disconnected)?;
        tx.send(msg).map_err(send_err)
    }

    fn recv_msg(&mut self, len: usize) -> Result<Vec<u8>, TransportError> {
        let msg = self.rx.recv().map_err(recv_err)?;
        check_exact(len, msg.len())?;
        Ok(msg)
    }
}

impl Endpoint for IpcEnd {
    fn send(
        &mut self,
        len: usize,
        fill: &mut dyn FnMut(&mut MsgOut<'_>),
    ) -> Result<(), TransportError> {
        self.check_len(len)?;
        fill(&mut MsgOut::private(&mut self.buf[..len]));
        self.send_msg(&self.buf[..len])
    }

    fn recv(&mut self, len: usize, read: &mut dyn FnMut(&MsgIn<'_>)) -> Result<(), TransportError> {
        self.check_len(len)?;
        let msg = self.recv_msg(len)?;
        read(&MsgIn::private(&msg));
        Ok(())
    }

    fn echo(
        &mut self,
        len: usize,
        inspect: &mut dyn FnMut(&MsgIn<'_>),
    ) -> Result<(), TransportError> {
        self.check_len(len)?;
        let msg = self.recv_msg(len)?;
        inspect(&MsgIn::private(&msg));
        self.send_msg(&msg)
    }

    fn hand_over(&self, child: ProcessIdentity) -> Result<(), TransportError> {
        self.owner.hand_over(child);
        Ok(())
    }
}

impl Drop for IpcEnd {
    fn drop(&mut self) {
        if !self.owner.is_current() {
            return;
        }
        self.flags.close();
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
