//! `shmem-ipc`: shmem-ipc 0.3's `sharedring` (a byte ring in a sealed memfd, one shared
//! count updated with a locked add per write and per read, eventfds to wake a side that
//! waits), two per pair, as its documentation uses it: a side that finds the ring empty
//! (or full) waits on the eventfd the other side signals.
//!
//! shmem-ipc has no notion of a closed or dead peer; the harness adds a flag page (one
//! word per direction) that the owner's drop sets before signalling both eventfds, and
//! waits poll the eventfd in slices so that they also end when the harness is gone or
//! the peer stalls ([`super::super::watch`]).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use shm_core::liveness::ProcessIdentity;
use shmem_ipc::sharedring::{Receiver, Sender};

use super::CloseFlags;
use crate::transport::ring::ring_capacity;
use crate::transport::watch::Owner;
use crate::transport::{check_fits, Endpoint, MsgIn, MsgOut, Pair, Transport, TransportError};

/// How long one eventfd poll sleeps before the waiter re-checks its peer, ms.
const WAIT_SLICE_MS: u8 = 100;

/// The transport.
#[derive(Debug)]
pub struct ShmemIpc;

/// `shmem-ipc`: two shmem-ipc shared rings, eventfd wake-ups.
pub static SHMEM_IPC: ShmemIpc = ShmemIpc;

fn failed(e: impl std::fmt::Display) -> TransportError {
    TransportError::Failed(format!("shmem-ipc: {e}"))
}

/// One direction's ring: the sender side and the receiver side, both made here.
fn ring(capacity: usize) -> Result<(Sender<u8>, Receiver<u8>), TransportError> {
    let tx = Sender::<u8>::new(capacity).map_err(failed)?;
    let memfd = tx.memfd().as_file().try_clone()?;
    let empty = tx.empty_signal().try_clone()?;
    let full = tx.full_signal().try_clone()?;
    let rx = Receiver::<u8>::open(capacity, memfd, empty, full).map_err(failed)?;
    Ok((tx, rx))
}

impl Transport for ShmemIpc {
    fn name(&self) -> &'static str {
        "shmem-ipc"
    }

    fn description(&self) -> &'static str {
        "peer: shmem-ipc 0.3 sharedring (memfd byte ring), two, eventfd wake-ups"
    }

    fn connect(&self, max_msg: usize) -> Result<Pair, TransportError> {
        // The same ring size as ours for the same messages.
        let capacity = ring_capacity(max_msg);
        let (down_tx, down_rx) = ring(capacity)?; // parent -> child
        let (up_tx, up_rx) = ring(capacity)?; // child -> parent
        let (parent_flags, child_flags) = CloseFlags::pair()?;
        let end = |tx, rx, flags| ShmemEnd {
            tx,
            rx,
            flags,
            buf: vec![0; max_msg],
            owner: Owner::here(),
        };
        Ok(Pair::new(
            end(down_tx, up_rx, parent_flags),
            end(up_tx, down_rx, child_flags),
        ))
    }
}

/// One side: the sender of one ring, the receiver of the other.
struct ShmemEnd {
    tx: Sender<u8>,
    rx: Receiver<u8>,
    /// Says when this side, or the peer, is gone.
    flags: CloseFlags,
    buf: Vec<u8>,
    owner: Owner,
}

/// Waits until `signal` (an eventfd) is readable and consumes its count, or a slice
/// passes. Returns whether it was signalled.
fn wait_signal(mut signal: &File) -> Result<bool, TransportError> {
    let mut fds = [PollFd::new(signal.as_fd(), PollFlags::POLLIN)];
    let ready = poll(&mut fds, PollTimeout::from(WAIT_SLICE_MS)).map_err(std::io::Error::from)?;
    if ready == 0 {
        return Ok(false);
    }
    let mut count = [0u8; 8];
    signal.read_exact(&mut count)?;
    Ok(true)
}

impl ShmemEnd {
    /// Writes `self.buf[..len]` into the ring, waiting on its eventfd while it is full.
    fn write_buf(&mut self, len: usize) -> Result<(), TransportError> {
        let mut done = 0;
        let mut bound = self.owner.wait();
        while done < len {
            let src = &self.buf[done..len];
            let mut wrote = 0;
            // `send_raw` signals the receiver's eventfd when the ring was empty.
            self.tx
                .send_raw(|ptr, room| {
                    wrote = room.min(src.len());
                    // SAFETY: shmem-ipc hands out `room` writable bytes at `ptr`; we copy
                    // `wrote <= room` bytes from our private buffer through the raw
                    // pointer (no reference is formed over the shared ring).
                    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), ptr, wrote) };
                    wrote
                })
                .map_err(failed)?;
            done += wrote;
            if wrote > 0 {
                continue;
            }
            if self.flags.peer_closed() {
                return Err(TransportError::Disconnected);
            }
            // Full: sleep until the receiver signals room (or a slice passes).
            if !wait_signal(self.tx.full_signal())? {
                bound.check()?;
            }
        }
        Ok(())
    }

    /// Reads `len` bytes from the ring into `self.buf`, waiting on its eventfd while it
    /// is empty.
    fn read_buf(&mut self, len: usize) -> Result<(), TransportError> {
        let mut done = 0;
        let mut bound = self.owner.wait();
        while done < len {
            let dst = &mut self.buf[done..len];
            let mut took = 0;
            // `receive_raw` signals the sender's eventfd when the ring was full.
            self.rx
                .receive_raw(|ptr, avail| {
                    took = avail.min(dst.len());
                    // SAFETY: shmem-ipc hands out `avail` readable bytes at `ptr`; we copy
                    // `took <= avail` of them into our private buffer through the raw
                    // pointer.
                    unsafe { std::ptr::copy_nonoverlapping(ptr, dst.as_mut_ptr(), took) };
                    took
                })
                .map_err(failed)?;
            done += took;
            if took > 0 {
                continue;
            }
            // Empty: the peer's last bytes are delivered before its close is reported.
            if self.flags.peer_closed() {
                return Err(TransportError::Disconnected);
            }
            if !wait_signal(self.rx.empty_signal())? {
                bound.check()?;
            }
        }
        Ok(())
    }
}

impl Endpoint for ShmemEnd {
    fn send(
        &mut self,
        len: usize,
        fill: &mut dyn FnMut(&mut MsgOut<'_>),
    ) -> Result<(), TransportError> {
        check_fits(len, self.buf.len())?;
        fill(&mut MsgOut::private(&mut self.buf[..len]));
        self.write_buf(len)
    }

    fn recv(&mut self, len: usize, read: &mut dyn FnMut(&MsgIn<'_>)) -> Result<(), TransportError> {
        check_fits(len, self.buf.len())?;
        self.read_buf(len)?;
        read(&MsgIn::private(&self.buf[..len]));
        Ok(())
    }

    fn echo(
        &mut self,
        len: usize,
        inspect: &mut dyn FnMut(&MsgIn<'_>),
    ) -> Result<(), TransportError> {
        check_fits(len, self.buf.len())?;
        self.read_buf(len)?;
        inspect(&MsgIn::private(&self.buf[..len]));
        self.write_buf(len)
    }

    fn hand_over(&self, child: ProcessIdentity) -> Result<(), TransportError> {
        self.owner.hand_over(child);
        Ok(())
    }
}

impl Drop for ShmemEnd {
    fn drop(&mut self) {
        if !self.owner.is_current() {
            return;
        }
        self.flags.close();
        // Wake the peer wherever it waits: on our ring being empty, or its being full.
        let one = 1u64.to_ne_bytes();
        let _ = self.tx.empty_signal().write_all(&one);
        let _ = self.rx.full_signal().write_all(&one);
    }
}
