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
use shmem_ipc::sharedring::{Receiver, Sender};

use super::{pair_with_close_flags, CloseFlags};
use crate::transport::buffered::ByteLink;
use crate::transport::ring::ring_capacity;
use crate::transport::{Owned, Pair, Side, Transport, TransportError};

/// How long one eventfd poll sleeps before the waiter re-checks its peer, ms.
const WAIT_SLICE_MS: u8 = 100;

/// The transport.
#[derive(Debug)]
pub(crate) struct ShmemIpc;

/// `shmem-ipc`: two shmem-ipc shared rings, eventfd wake-ups.
pub(crate) static SHMEM_IPC: ShmemIpc = ShmemIpc;

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

    fn connect(&self, max_msg: usize) -> Result<Pair, TransportError> {
        // The same ring size as ours for the same messages.
        let capacity = ring_capacity(max_msg);
        pair_with_close_flags(
            ring(capacity)?,
            ring(capacity)?,
            max_msg,
            |tx, rx, flags| ShmemLink { tx, rx, flags },
        )
    }
}

/// One side: the sender of one ring, the receiver of the other.
struct ShmemLink {
    tx: Sender<u8>,
    rx: Receiver<u8>,
    /// Says when this side, or the peer, is gone.
    flags: CloseFlags,
}

impl Side for ShmemLink {
    fn owned(&self) -> Owned<'_> {
        Owned::Record(self.flags.owner())
    }
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

impl ShmemLink {
    /// Moves `len` bytes through a ring: `step(done)` moves what it can from byte `done`
    /// on and says how many it moved; while it moves nothing, the side waits on `signal`
    /// (the ring's "not full" or "not empty" eventfd), or gives up when the peer has
    /// closed or stalled.
    fn pump(
        &mut self,
        len: usize,
        signal: fn(&Self) -> &File,
        mut step: impl FnMut(&mut Self, usize) -> Result<usize, TransportError>,
    ) -> Result<(), TransportError> {
        let mut done = 0;
        let mut bound = self.flags.owner().wait();
        while done < len {
            let moved = step(self, done)?;
            done += moved;
            if moved > 0 {
                continue;
            }
            // Nothing moved: what the peer sent before its close is delivered first.
            if self.flags.peer_closed() {
                return Err(TransportError::Disconnected);
            }
            if !wait_signal(signal(self))? {
                bound.check()?;
            }
        }
        Ok(())
    }
}

impl ByteLink for ShmemLink {
    fn write_msg(&mut self, msg: &[u8]) -> Result<(), TransportError> {
        // `send_raw` signals the receiver's eventfd when the ring was empty; a full ring
        // is waited out on the receiver's "room" signal.
        self.pump(
            msg.len(),
            |link| link.tx.full_signal(),
            |link, done| {
                let src = &msg[done..];
                let mut wrote = 0;
                link.tx
                    .send_raw(|ptr, room| {
                        wrote = room.min(src.len());
                        // SAFETY: shmem-ipc hands out `room` writable bytes at `ptr`; we
                        // copy `wrote <= room` bytes from private memory through the raw
                        // pointer (no reference is formed over the shared ring).
                        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), ptr, wrote) };
                        wrote
                    })
                    .map_err(failed)?;
                Ok(wrote)
            },
        )
    }

    fn read_msg(&mut self, buf: &mut Vec<u8>) -> Result<(), TransportError> {
        // `receive_raw` signals the sender's eventfd when the ring was full; an empty ring
        // is waited out on the sender's "data" signal.
        self.pump(
            buf.len(),
            |link| link.rx.empty_signal(),
            |link, done| {
                let dst = &mut buf[done..];
                let mut took = 0;
                link.rx
                    .receive_raw(|ptr, avail| {
                        took = avail.min(dst.len());
                        // SAFETY: shmem-ipc hands out `avail` readable bytes at `ptr`; we
                        // copy `took <= avail` of them into private memory through the raw
                        // pointer.
                        unsafe { std::ptr::copy_nonoverlapping(ptr, dst.as_mut_ptr(), took) };
                        took
                    })
                    .map_err(failed)?;
                Ok(took)
            },
        )
    }
}

impl Drop for ShmemLink {
    fn drop(&mut self) {
        if self.flags.close() {
            // Wake the peer wherever it waits: on our ring being empty, or its being full.
            let one = 1u64.to_ne_bytes();
            let _ = self.tx.empty_signal().write_all(&one);
            let _ = self.rx.full_signal().write_all(&one);
        }
    }
}
