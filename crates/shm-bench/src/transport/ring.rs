//! The shared-memory SPSC ring of `shm-channel`, two per pair (one per direction).
//!
//! | name | wait strategy | how the payload moves |
//! |---|---|---|
//! | `shm-default` | the default, `Adaptive` (spin 50 µs to 1 ms as waits have paid, then park) | copied in (`send`) and out (`recv_into`) through a private buffer |
//! | `shm-spin` | `Spin` | copied, as above |
//! | `shm-spin-park` | `SpinThenPark` (a fixed 50 µs) | copied, as above |
//! | `shm-park` | `Park` | copied, as above |
//! | `shm-zero-copy` | the default | written in place through a `WriteGrant`, read in place through a `ReadGrant` |
//! | `shm-zero-copy-stamps` | the default | in place, but only the two sequence stamps (first and last 8 bytes) are written and read |
//! | `shm-batched` | the default | copied, sent with `send_deferred` (published once an eighth of the ring is pending), flushed before every receive; the receiver releases in batches of an eighth of the ring (`set_release_batch`) |
//!
//! The copying kinds are [`ByteLink`]s (their endpoint is [`Buffered`]); the zero-copy kinds
//! have an endpoint of their own, [`GrantEnd`].
//!
//! **Rule 1 (no references into shared memory).** The zero-copy endpoints never form a
//! slice over the ring: the sender writes the message through a [`MsgOut`] wrapping the
//! grant's raw pointer (`WriteGrant::as_mut_ptr`), through which the payload template and
//! stamps are copied in with `ptr::copy_nonoverlapping`; the receiver's checker gets a
//! [`MsgIn`] wrapping `ReadGrant::as_ptr`, through which it copies the stamps (default) or
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
//! Ownership across `fork` (docs/architecture.md, rule 9): the parent hands the child's
//! endpoints to the child ([`Endpoint::hand_over`]) and the child adopts them (both called
//! by shm-fork's `fork_with`), so the parent's copy does not disconnect them when dropped.
//! A peer killed without closing is reported by the ring as `PeerDied` within ~10 ms,
//! mapped to [`TransportError::PeerDied`].

use shm_channel::spsc::Spsc;
use shm_channel::Endpoint as _;
use shm_channel::{Builder, Receiver, Sender};
use shm_channel::{RecvError, RecvIntoError, SendError};
use shm_core::liveness::ProcessIdentity;
use shm_core::notify::{WaitStrategy, DEFAULT_MAX_SPIN, DEFAULT_SPIN};

use super::buffered::{Buffered, ByteLink};
use super::floor_ring::RING_BYTES;
use super::{
    check_exact, Checker, Endpoint, MsgIn, MsgOut, Outgoing, Owned, Pair, Side, Transport,
    TransportError,
};

/// How an endpoint moves the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Through a private buffer: `send(&buf)`, then `recv_into(&mut buf)`.
    Copy,
    /// Copied, as `Copy`, but sent deferred and flushed before each receive.
    Batched,
    /// In place, every byte.
    ZeroCopy,
    /// In place, the stamps only.
    ZeroCopyStamps,
}

/// A ring transport: a wait strategy and a way of moving the payload.
#[derive(Debug)]
pub(crate) struct Ring {
    name: &'static str,
    strategy: WaitStrategy,
    mode: Mode,
}

impl Ring {
    const fn new(name: &'static str, strategy: WaitStrategy, mode: Mode) -> Ring {
        Ring {
            name,
            strategy,
            mode,
        }
    }
}

/// The default strategy (`WaitStrategy::default()`, which is not `const`).
const DEFAULT: WaitStrategy = WaitStrategy::Adaptive {
    min: DEFAULT_SPIN,
    max: DEFAULT_MAX_SPIN,
};

/// `shm-default`: copying ring, the default wait strategy: what a user gets.
pub(crate) static SHM_DEFAULT: Ring = Ring::new("shm-default", DEFAULT, Mode::Copy);

/// `shm-spin`: copying ring, pure busy-polling.
pub(crate) static SHM_SPIN: Ring = Ring::new("shm-spin", WaitStrategy::Spin, Mode::Copy);

/// `shm-spin-park`: copying ring, spinning a fixed 50 µs, then parking.
pub(crate) static SHM_SPIN_PARK: Ring = Ring::new(
    "shm-spin-park",
    WaitStrategy::SpinThenPark { spin: DEFAULT_SPIN },
    Mode::Copy,
);

/// `shm-park`: copying ring, parks on the futex at once.
pub(crate) static SHM_PARK: Ring = Ring::new("shm-park", WaitStrategy::Park, Mode::Copy);

/// `shm-zero-copy`: payload written and read in place through grants.
pub(crate) static SHM_ZERO_COPY: Ring = Ring::new("shm-zero-copy", DEFAULT, Mode::ZeroCopy);

/// `shm-zero-copy-stamps`: in place, only the first and last 8 bytes touched.
pub(crate) static SHM_ZERO_COPY_STAMPS: Ring =
    Ring::new("shm-zero-copy-stamps", DEFAULT, Mode::ZeroCopyStamps);

/// `shm-batched`: copying ring with deferred (batched) publishing.
pub(crate) static SHM_BATCHED: Ring = Ring::new("shm-batched", DEFAULT, Mode::Batched);

/// Ring capacity for messages of up to `max_msg` bytes: room for four messages with their
/// 8-byte frame headers (so a streaming producer is rarely stopped by a full ring), as a
/// power of two, at least the floor ring's bytes ([`RING_BYTES`], 1 MiB), so that a stream
/// and the floor it is compared with buffer as much. (Until 2026-12-07 the least was
/// 64 KiB, and it cost small-message streams dearly: on the 2-core VM, three sittings
/// alternated, 64 B `shm-batched` streamed 2.4–2.5× as many messages a second in a 1 MiB
/// ring as in a 64 KiB one, 8 B 1.5×, the default strategy 1.02–1.17×; docs/benchmarks.md.)
pub(crate) fn ring_capacity(max_msg: usize) -> usize {
    (4 * (max_msg + 8)).next_power_of_two().max(RING_BYTES)
}

impl Transport for Ring {
    fn name(&self) -> &'static str {
        self.name
    }

    fn nominal(&self) -> bool {
        self.mode == Mode::ZeroCopyStamps
    }

    fn connect(&self, max_msg: usize) -> Result<Pair, TransportError> {
        let capacity = ring_capacity(max_msg);
        let builder = Builder::<Spsc>::new(capacity).wait_strategy(self.strategy);
        let failed = |e: shm_channel::ChannelError| TransportError::Failed(e.to_string());
        let down = builder.create().map_err(failed)?;
        let up = builder.create().map_err(failed)?;
        let mode = self.mode;
        Ok(match mode {
            Mode::Copy | Mode::Batched => {
                Pair::crosswise(down, up, |tx, mut rx: Receiver<Spsc>| {
                    let batched = mode == Mode::Batched;
                    if batched {
                        // Releases batched too: the head stored once per eighth of the ring.
                        rx.set_release_batch(capacity / 8);
                    }
                    Buffered::new(RingLink { tx, rx, batched }, max_msg)
                })
            }
            Mode::ZeroCopy | Mode::ZeroCopyStamps => Pair::crosswise(down, up, |tx, rx| GrantEnd {
                tx,
                rx,
                stamps_only: mode == Mode::ZeroCopyStamps,
            }),
        })
    }
}

/// A ring's send error as the harness's.
pub(crate) fn send_err<T>(e: SendError<T>) -> TransportError {
    match e {
        SendError::Disconnected(_) => TransportError::Disconnected,
        SendError::PeerDied(_) => TransportError::PeerDied,
        other => TransportError::Failed(other.to_string()),
    }
}

/// A ring's receive error as the harness's.
pub(crate) fn recv_err(e: RecvError) -> TransportError {
    match e {
        RecvError::Disconnected => TransportError::Disconnected,
        RecvError::PeerDied => TransportError::PeerDied,
        other => TransportError::Failed(other.to_string()),
    }
}

/// One side of a copying ring: a sender on one ring, a receiver on the other.
struct RingLink {
    tx: Sender<Spsc>,
    rx: Receiver<Spsc>,
    /// Sends deferred, flushed before each receive.
    batched: bool,
}

impl ByteLink for RingLink {
    #[inline(always)]
    fn write_msg(&mut self, msg: &[u8]) -> Result<(), TransportError> {
        let sent = if self.batched {
            self.tx.send_deferred(msg)
        } else {
            self.tx.send(msg)
        };
        sent.map_err(send_err)
    }

    #[inline(always)]
    fn read_msg(&mut self, buf: &mut Vec<u8>) -> Result<(), TransportError> {
        if self.batched {
            // Before waiting for a message: publish what batched mode holds back.
            self.tx.flush();
        }
        match self.rx.recv_into(buf) {
            Ok(got) => check_exact(buf.len(), got),
            Err(RecvIntoError::BufferTooSmall { needed }) => check_exact(buf.len(), needed),
            Err(RecvIntoError::Recv(e)) => Err(recv_err(e)),
        }
    }
}

impl Side for RingLink {
    fn owned(&self) -> Owned<'_> {
        Owned::Halves(&self.tx, &self.rx)
    }

    fn wake_syscalls(&self) -> u64 {
        wakes(&self.tx, &self.rx)
    }
}

/// The wake-up system calls of a side's two rings.
fn wakes(tx: &Sender<Spsc>, rx: &Receiver<Spsc>) -> u64 {
    tx.stats().wake_syscalls + rx.stats().wake_syscalls
}

/// One side of a zero-copy ring: messages written and read in place through grants.
struct GrantEnd {
    tx: Sender<Spsc>,
    rx: Receiver<Spsc>,
    /// Only the two stamps of each message are written and read.
    stamps_only: bool,
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

/// The message at `ptr` (a read grant's), as the checker reads it: every byte, or only
/// the stamps.
///
/// # Safety
///
/// `ptr` must be valid for reads of `len` bytes while the result lives, with no reference
/// formed over them (a read grant's pointer, the grant outliving the result).
unsafe fn granted<'g>(stamps_only: bool, ptr: *const u8, len: usize) -> MsgIn<'g> {
    // SAFETY: the caller's guarantee, passed on.
    unsafe {
        if stamps_only {
            MsgIn::shared_stamps_only(ptr, len)
        } else {
            MsgIn::shared(ptr, len)
        }
    }
}

impl Endpoint for GrantEnd {
    fn send(&mut self, msg: &Outgoing<'_>) -> Result<(), TransportError> {
        let len = msg.size();
        let stamps_only = self.stamps_only;
        let mut grant = self.tx.reserve(len).map_err(send_err)?;
        let ptr = grant.as_volatile_slice().ptr_guard_mut().as_ptr();
        {
            // SAFETY: the grant's bytes are valid for writes of `len` bytes until it is
            // committed, and `out` is dropped before that; no reference is formed over it.
            let mut out = unsafe {
                if stamps_only {
                    MsgOut::shared_stamps_only(ptr, len)
                } else {
                    MsgOut::shared(ptr, len)
                }
            };
            msg.write_to(&mut out);
        }
        grant
            .commit(len)
            .map_err(|e| TransportError::Failed(e.to_string()))?;
        Ok(())
    }

    fn recv(&mut self, check: &mut Checker<'_>) -> Result<(), TransportError> {
        let len = check.size();
        let grant = self.rx.read().map_err(recv_err)?;
        check_exact(len, grant.len())?;
        let ptr = grant.as_volatile_slice().ptr_guard().as_ptr();
        // SAFETY: the grant's bytes are valid for reads of `len` bytes while the grant
        // lives, and the message is dropped before the grant; no reference is formed.
        check.check(&unsafe { granted(self.stamps_only, ptr, len) });
        // The message is not used past here: the grant (and its frame) is released.
        drop(grant);
        Ok(())
    }

    fn echo(&mut self, check: &mut Checker<'_>) -> Result<(), TransportError> {
        let len = check.size();
        let incoming = self.rx.read().map_err(recv_err)?;
        check_exact(len, incoming.len())?;
        let src = incoming.as_volatile_slice().ptr_guard().as_ptr();
        // SAFETY: as in `recv`: valid for `len` bytes while `incoming` lives.
        check.check(&unsafe { granted(self.stamps_only, src, len) });
        let mut outgoing = self.tx.reserve(len).map_err(send_err)?;
        let dst = outgoing.as_volatile_slice().ptr_guard_mut().as_ptr();
        if self.stamps_only {
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
        outgoing
            .commit(len)
            .map_err(|e| TransportError::Failed(e.to_string()))?;
        drop(incoming);
        Ok(())
    }

    fn wake_syscalls(&self) -> u64 {
        wakes(&self.tx, &self.rx)
    }

    fn hand_over(&self, child: ProcessIdentity) -> Result<(), TransportError> {
        Owned::Halves(&self.tx, &self.rx).hand_over(child)
    }

    fn adopt(&self) -> Result<(), TransportError> {
        Owned::Halves(&self.tx, &self.rx).adopt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_holds_four_largest_messages() {
        assert_eq!(ring_capacity(8), RING_BYTES);
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
