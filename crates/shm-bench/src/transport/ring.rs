//! The shared-memory SPSC ring of `shm-channel`, two per pair (one per direction).
//!
//! | name | wait strategy | how the payload moves |
//! |---|---|---|
//! | `shm-spin` | `Spin` | copied in (`send`) and out (`recv_into`) through a private buffer |
//! | `shm-spin-park` | `SpinThenPark` (default, 50 µs) | copied, as above |
//! | `shm-park` | `Park` | copied, as above |
//! | `shm-zero-copy` | `SpinThenPark` | written in place through a `WriteGrant`, read in place through a `ReadGrant` |
//! | `shm-zero-copy-stamps` | `SpinThenPark` | in place, but only the two sequence stamps (first and last 8 bytes) are written and read |
//! | `shm-batched` | `SpinThenPark` | copied, sent with `send_deferred` (published once an eighth of the ring is pending), flushed before every receive; the receiver releases in batches of an eighth of the ring (`set_release_batch`) |
//!
//! **Rule 1 (no references into shared memory).** The zero-copy endpoints never form a
//! slice over the ring: the sender's `fill` gets a [`MsgOut`] wrapping the grant's raw
//! pointer (`WriteGrant::as_mut_ptr`), through which the payload template and stamps are
//! copied in with `ptr::copy_nonoverlapping`; the receiver's `read` gets a [`MsgIn`]
//! wrapping `ReadGrant::as_ptr`, through which the checker copies the stamps (default) or
//! every byte, in 4 KiB chunks (`--verify`), out into private memory before comparing.
//! The echo of a round trip copies the message from the incoming ring's grant to the
//! outgoing ring's grant, pointer to pointer.
//!
//! `shm-zero-copy-stamps` measures what a zero-copy message costs the ring itself, apart
//! from writing and reading its payload: its frames have the full length, but the
//! sender writes (and the echo copies) only the first and last 8 bytes and the receiver
//! reads only those; the other bytes are whatever the ring held. Under `--verify` its
//! receivers check the stamps only and count no verified bytes.
//!
//! Ownership across `fork` (docs/architecture.md, rule 9): the parent hands the child's endpoints to
//! the child ([`Endpoint::hand_over`]) and the child adopts them (both called by
//! shm-fork's `fork_with`), so the parent's copy does not disconnect them when dropped. A peer killed without closing is reported by the
//! ring as `PeerDied` within ~10 ms, mapped to [`TransportError::PeerDied`].

use shm_channel::spsc::{Builder, Receiver, Sender};
use shm_channel::{RecvError, RecvIntoError, SendError};
use shm_core::liveness::ProcessIdentity;
use shm_core::notify::{WaitStrategy, DEFAULT_SPIN};

use super::{check_exact, Endpoint, MsgIn, MsgOut, Pair, Transport, TransportError};
use shm_channel::Endpoint as _;

/// How an endpoint moves the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Through a private buffer: `send(&buf)`, then `recv_into(&mut buf)`.
    Copy,
    /// In place, every byte.
    ZeroCopy,
    /// In place, the stamps only.
    ZeroCopyStamps,
    /// Copied, as `Copy`, but sent deferred and flushed before each receive.
    Batched,
}

/// A ring transport: a wait strategy and a way of moving the payload.
#[derive(Debug)]
pub struct Ring {
    name: &'static str,
    description: &'static str,
    strategy: WaitStrategy,
    mode: Mode,
}

/// `shm-spin`: copying ring, pure busy-polling.
pub static SHM_SPIN: Ring = Ring {
    name: "shm-spin",
    description: "shm ring (two, one per direction), copy in/out, spin",
    strategy: WaitStrategy::Spin,
    mode: Mode::Copy,
};

/// `shm-spin-park`: copying ring, the default spin-then-park strategy.
pub static SHM_SPIN_PARK: Ring = Ring {
    name: "shm-spin-park",
    description: "shm ring, copy in/out, spin 50 µs then futex park (default)",
    strategy: WaitStrategy::SpinThenPark { spin: DEFAULT_SPIN },
    mode: Mode::Copy,
};

/// `shm-park`: copying ring, parks on the futex at once.
pub static SHM_PARK: Ring = Ring {
    name: "shm-park",
    description: "shm ring, copy in/out, futex park at once",
    strategy: WaitStrategy::Park,
    mode: Mode::Copy,
};

/// `shm-zero-copy`: payload written and read in place through grants.
pub static SHM_ZERO_COPY: Ring = Ring {
    name: "shm-zero-copy",
    description: "shm ring, written/read in place through grants (raw pointers), spin-then-park",
    strategy: WaitStrategy::SpinThenPark { spin: DEFAULT_SPIN },
    mode: Mode::ZeroCopy,
};

/// `shm-zero-copy-stamps`: in place, only the first and last 8 bytes touched.
pub static SHM_ZERO_COPY_STAMPS: Ring = Ring {
    name: "shm-zero-copy-stamps",
    description:
        "shm ring in place, only the 2 stamp words written/read (ring cost without payload)",
    strategy: WaitStrategy::SpinThenPark { spin: DEFAULT_SPIN },
    mode: Mode::ZeroCopyStamps,
};

/// `shm-batched`: copying ring with deferred (batched) publishing.
pub static SHM_BATCHED: Ring = Ring {
    name: "shm-batched",
    description:
        "shm ring, copy in/out, deferred sends published per 1/8 ring, flushed before receiving",
    strategy: WaitStrategy::SpinThenPark { spin: DEFAULT_SPIN },
    mode: Mode::Batched,
};

/// Ring capacity for messages of up to `max_msg` bytes: room for four messages with their
/// 8-byte frame headers (so a streaming producer is rarely stopped by a full ring), as a
/// power of two, at least 64 KiB.
pub fn ring_capacity(max_msg: usize) -> usize {
    (4 * (max_msg + 8)).next_power_of_two().max(64 << 10)
}

impl Transport for Ring {
    fn name(&self) -> &'static str {
        self.name
    }

    fn description(&self) -> &'static str {
        self.description
    }

    fn nominal(&self) -> bool {
        self.mode == Mode::ZeroCopyStamps
    }

    fn connect(&self, max_msg: usize) -> Result<Pair, TransportError> {
        let builder = Builder::new(ring_capacity(max_msg)).wait_strategy(self.strategy);
        let failed = |e: shm_channel::ChannelError| TransportError::Failed(e.to_string());
        let (down_tx, down_rx) = builder.create().map_err(failed)?; // parent -> child
        let (up_tx, up_rx) = builder.create().map_err(failed)?; // child -> parent
        let capacity = ring_capacity(max_msg);
        let end = |tx, mut rx: Receiver| {
            if self.mode == Mode::Batched {
                // Releases batched too: the head stored once per eighth of the ring.
                rx.set_release_batch(capacity / 8);
            }
            RingEnd {
                tx,
                rx,
                mode: self.mode,
                buf: vec![0u8; max_msg],
            }
        };
        Ok(Pair::new(end(down_tx, up_rx), end(up_tx, down_rx)))
    }
}

/// One side: a sender on one ring, a receiver on the other.
struct RingEnd {
    tx: Sender,
    rx: Receiver,
    mode: Mode,
    /// Private message buffer (copy mode).
    buf: Vec<u8>,
}

pub(super) fn send_err(len: usize) -> impl FnOnce(SendError<()>) -> TransportError {
    move |e| match e {
        SendError::Disconnected(()) => TransportError::Disconnected,
        SendError::PeerDied(()) => TransportError::PeerDied,
        SendError::TooLarge((), max) => TransportError::TooLarge { len, max },
        other => TransportError::Failed(other.to_string()),
    }
}

pub(super) fn recv_err(e: RecvError) -> TransportError {
    match e {
        RecvError::Disconnected => TransportError::Disconnected,
        RecvError::PeerDied => TransportError::PeerDied,
        other => TransportError::Failed(other.to_string()),
    }
}

impl RingEnd {
    /// Whether the payload goes through the private buffer.
    fn copies(&self) -> bool {
        matches!(self.mode, Mode::Copy | Mode::Batched)
    }

    /// Sends the private buffer's first `len` bytes, deferred in batched mode.
    fn send_buf(&mut self, len: usize) -> Result<(), TransportError> {
        let msg = &self.buf[..len];
        let sent = if self.mode == Mode::Batched {
            self.tx.send_deferred(msg)
        } else {
            self.tx.send(msg)
        };
        sent.map_err(send_err(len))
    }

    /// Before waiting for a message: publish what batched mode holds back.
    fn flush(&mut self) {
        if self.mode == Mode::Batched {
            self.tx.flush();
        }
    }

    fn check_len(&self, len: usize) -> Result<(), TransportError> {
        if self.copies() {
            super::check_fits(len, self.buf.len())?;
        }
        Ok(())
    }

    /// Copy mode: the next message, copied out of the ring into `buf` (and released).
    fn recv_copy(&mut self, len: usize) -> Result<(), TransportError> {
        match self.rx.recv_into(&mut self.buf[..len]) {
            Ok(got) => check_exact(len, got),
            Err(RecvIntoError::BufferTooSmall { needed }) => check_exact(len, needed),
            Err(RecvIntoError::Recv(e)) => Err(recv_err(e)),
        }
    }

    fn stamps_only(&self) -> bool {
        self.mode == Mode::ZeroCopyStamps
    }
}

/// The bytes of a `len`-byte message the stamps-only mode moves: `[0, 8)` and
/// `[len - 8, len)` (the whole message when shorter than 16 bytes).
fn stamp_ranges(len: usize) -> [(usize, usize); 2] {
    if len < 16 {
        [(0, len), (len, 0)]
    } else {
        [(0, 8), (len - 8, 8)]
    }
}

impl Endpoint for RingEnd {
    fn send(
        &mut self,
        len: usize,
        fill: &mut dyn FnMut(&mut MsgOut<'_>),
    ) -> Result<(), TransportError> {
        self.check_len(len)?;
        if self.copies() {
            fill(&mut MsgOut::private(&mut self.buf[..len]));
            return self.send_buf(len);
        }
        let stamps = self.stamps_only();
        let mut grant = self.tx.reserve(len).map_err(send_err(len))?;
        let ptr = grant.as_mut_ptr();
        {
            // SAFETY: the grant's pointer is valid for writes of `len` bytes until it is
            // committed, and `out` is dropped before that; no reference is formed over it.
            let mut out = unsafe {
                if stamps {
                    MsgOut::shared_stamps_only(ptr, len)
                } else {
                    MsgOut::shared(ptr, len)
                }
            };
            fill(&mut out);
        }
        grant.commit(len);
        Ok(())
    }

    fn recv(&mut self, len: usize, read: &mut dyn FnMut(&MsgIn<'_>)) -> Result<(), TransportError> {
        self.check_len(len)?;
        self.flush();
        if self.copies() {
            self.recv_copy(len)?;
            read(&MsgIn::private(&self.buf[..len]));
            return Ok(());
        }
        let stamps = self.stamps_only();
        let grant = self.rx.read().map_err(recv_err)?;
        check_exact(len, grant.len())?;
        // SAFETY: the grant's pointer is valid for reads of `len` bytes while the grant
        // lives, and `msg` is dropped before the grant; no reference is formed over it.
        let msg = unsafe {
            if stamps {
                MsgIn::shared_stamps_only(grant.as_ptr(), len)
            } else {
                MsgIn::shared(grant.as_ptr(), len)
            }
        };
        read(&msg);
        // `msg` is not used past here: the grant (and its frame) is released.
        drop(grant);
        Ok(())
    }

    fn echo(
        &mut self,
        len: usize,
        inspect: &mut dyn FnMut(&MsgIn<'_>),
    ) -> Result<(), TransportError> {
        self.check_len(len)?;
        self.flush();
        if self.copies() {
            self.recv_copy(len)?;
            inspect(&MsgIn::private(&self.buf[..len]));
            return self.send_buf(len);
        }
        let stamps = self.stamps_only();
        let incoming = self.rx.read().map_err(recv_err)?;
        check_exact(len, incoming.len())?;
        // SAFETY: as in `recv`: valid for `len` bytes while `incoming` lives.
        let msg = unsafe {
            if stamps {
                MsgIn::shared_stamps_only(incoming.as_ptr(), len)
            } else {
                MsgIn::shared(incoming.as_ptr(), len)
            }
        };
        inspect(&msg);
        let mut outgoing = self.tx.reserve(len).map_err(send_err(len))?;
        let dst = outgoing.as_mut_ptr();
        let src = msg.as_ptr();
        if stamps {
            for (at, n) in stamp_ranges(len) {
                // SAFETY: `at + n <= len`: inside both grants, which are in two different
                // rings (no overlap); raw-pointer copy, no reference formed.
                unsafe { std::ptr::copy_nonoverlapping(src.add(at), dst.add(at), n) };
            }
        } else {
            // SAFETY: both pointers are valid for `len` bytes while their grants live;
            // the grants are in two different rings, so the ranges do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(src, dst, len) };
        }
        outgoing.commit(len);
        drop(incoming);
        Ok(())
    }

    fn wake_syscalls(&self) -> u64 {
        self.tx.stats().wake_syscalls + self.rx.stats().wake_syscalls
    }

    fn hand_over(&self, child: ProcessIdentity) -> Result<(), TransportError> {
        let failed = |e: shm_channel::OwnershipError| TransportError::Failed(e.to_string());
        self.tx.hand_over(child).map_err(failed)?;
        self.rx.hand_over(child).map_err(failed)
    }

    fn adopt(&self) -> Result<(), TransportError> {
        let failed = |e: shm_channel::OwnershipError| TransportError::Failed(e.to_string());
        self.tx.adopt().map_err(failed)?;
        self.rx.adopt().map_err(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_holds_four_largest_messages() {
        assert_eq!(ring_capacity(8), 64 << 10);
        assert_eq!(ring_capacity(1 << 20), 8 << 20);
        for m in [1, 100, 4096, 65_539, 1 << 20] {
            let c = ring_capacity(m);
            assert!(c.is_power_of_two() && c >= 4 * (m + 8), "{m}");
        }
    }

    #[test]
    fn stamp_ranges_stay_inside_the_message() {
        for len in [1, 8, 15, 16, 17, 1 << 20] {
            for (at, n) in stamp_ranges(len) {
                assert!(at + n <= len, "{len}");
            }
        }
    }
}
