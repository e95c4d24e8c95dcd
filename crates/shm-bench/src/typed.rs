//! Typed scenarios: Rust values, not byte payloads, between the parent and a forked child.
//!
//! | name | value | how |
//! |---|---|---|
//! | `shm-typed-bincode` | [`Order`] (numbers, a `String`, a small `Vec`) | `shm_channel::typed` + serde/bincode 2, encoded into and decoded out of the ring in place |
//! | `shm-typed-postcard` | [`Order`] | `shm_channel::typed` + serde/postcard |
//! | `shm-typed-plain` | [`PlainOrder`] (`bytemuck::Pod`, 64 B) | `shm_channel::typed` + `Plain`: one copy each way, no codec |
//! | `pipe-bincode` | [`Order`] | bincode 2 into a private buffer, written to a pipe with a 4-byte length prefix (the reference) |
//!
//! Patterns `typed-pingpong` (the parent sends value `seq`, the child decodes it and sends
//! it back re-encoded) and `typed-stream` (the child sends values `0, 1, 2, …`). Every
//! value is built fresh per message (its `String` and `Vec` allocated), as real senders
//! do. The receiver checks the sequence number, or (`--verify`) compares the whole value
//! with the expected one and counts its encoded size as verified bytes. The rings use
//! the default wait strategy (spin, then park). The reported size is the encoded size.

use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use shm_channel::codec::{Bincode, Codec, Plain, Postcard};
use shm_channel::{typed, RecvError, SendError};
use shm_core::liveness::ProcessIdentity;
use shm_fork::{Inherit, InheritError};

use crate::affinity::AffinityGuard;
use crate::child::{self, Watchdog, EXIT_CORRUPT, EXIT_OK, EXIT_TRANSPORT};
use crate::config::{Budget, CpuPair, Pattern};
use crate::error::BenchError;
use crate::pattern::{timed_loop, watchdog_deadline, Sample, R_MSGS, R_VERIFIED, R_WAKES};
use crate::shm::SharedMap;
use crate::transport::ring::ring_capacity;
use crate::transport::TransportError;
use shm_channel::Endpoint;

/// A realistic message: a few numbers, a short string, a small vector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// Sequence number.
    pub seq: u64,
    /// Limit price.
    pub price: f64,
    /// Quantity.
    pub qty: u32,
    /// Buy (0) or sell (1).
    pub side: u8,
    /// Instrument.
    pub symbol: String,
    /// Partial fills so far.
    pub fills: Vec<u32>,
}

/// The plain-data counterpart of [`Order`]: fixed layout, no codec.
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub struct PlainOrder {
    /// Sequence number.
    pub seq: u64,
    /// Limit price.
    pub price: f64,
    /// Quantity.
    pub qty: u32,
    /// Buy (0) or sell (1), widened to keep the struct free of padding.
    pub side: u32,
    /// Instrument, NUL-padded.
    pub symbol: [u8; 16],
    /// Partial fills so far (unused slots 0).
    pub fills: [u32; 6],
}

/// A value the typed scenarios send: made from a sequence number, checked against it.
pub trait Message: Sized + Clone + PartialEq {
    /// Value number `seq`.
    fn make(seq: u64) -> Self;
    /// Its sequence number.
    fn seq(&self) -> u64;
}

impl Message for Order {
    fn make(seq: u64) -> Order {
        Order {
            seq,
            price: 101.25 + (seq % 100) as f64 * 0.01,
            qty: 100 + (seq % 7) as u32,
            side: (seq & 1) as u8,
            symbol: "EURUSD-SPOT".to_string(),
            fills: vec![10, 20, 30, (seq % 50) as u32],
        }
    }

    fn seq(&self) -> u64 {
        self.seq
    }
}

impl Message for PlainOrder {
    fn make(seq: u64) -> PlainOrder {
        let mut symbol = [0u8; 16];
        symbol[..11].copy_from_slice(b"EURUSD-SPOT");
        PlainOrder {
            seq,
            price: 101.25 + (seq % 100) as f64 * 0.01,
            qty: 100 + (seq % 7) as u32,
            side: (seq & 1) as u32,
            symbol,
            fills: [10, 20, 30, (seq % 50) as u32, 0, 0],
        }
    }

    fn seq(&self) -> u64 {
        self.seq
    }
}

/// One side of a typed connection. The child's side is handed over to the child through
/// [`Inherit`] (shm-fork's `fork_with`).
trait TypedEnd<V>: Inherit {
    fn send(&mut self, v: V) -> Result<(), TransportError>;
    fn recv(&mut self) -> Result<V, TransportError>;
    fn wakes(&self) -> u64 {
        0
    }
}

/// A typed scenario kind, listed in [`TYPED`].
pub trait TypedTransport: Sync {
    /// Name in the reports (`shm-typed-bincode`, …).
    fn name(&self) -> &'static str;
    /// One line saying what it is.
    fn description(&self) -> &'static str;
    /// Bytes of one encoded message (the size reported).
    fn encoded_size(&self) -> usize;
    /// Runs one scenario (`typed-pingpong` or `typed-stream`).
    fn run(
        &self,
        pattern: Pattern,
        budget: &Budget,
        cpus: CpuPair,
        verify: bool,
    ) -> Result<Sample, BenchError>;
}

/// Typed ring transport with codec `C` over values `V`.
struct RingTyped<V, C> {
    name: &'static str,
    description: &'static str,
    _t: std::marker::PhantomData<fn(V, C)>,
}

/// `shm-typed-bincode`.
pub static SHM_TYPED_BINCODE: &dyn TypedTransport = &RingTyped::<Order, Bincode> {
    name: "shm-typed-bincode",
    description: "Order struct, serde + bincode 2, over the shm ring (spin-then-park)",
    _t: std::marker::PhantomData,
};

/// `shm-typed-postcard`.
pub static SHM_TYPED_POSTCARD: &dyn TypedTransport = &RingTyped::<Order, Postcard> {
    name: "shm-typed-postcard",
    description: "Order struct, serde + postcard, over the shm ring (spin-then-park)",
    _t: std::marker::PhantomData,
};

/// `shm-typed-plain`.
pub static SHM_TYPED_PLAIN: &dyn TypedTransport = &RingTyped::<PlainOrder, Plain> {
    name: "shm-typed-plain",
    description: "PlainOrder (bytemuck::Pod), copied, no codec, over the shm ring",
    _t: std::marker::PhantomData,
};

/// `pipe-bincode`: the reference for the typed rows.
pub static PIPE_BINCODE: &dyn TypedTransport = &PipeBincode;

/// Every typed scenario kind, in the order a repetition runs them; `pipe-bincode` is the
/// reference of their "vs pipe" ratios.
pub static TYPED: &[&dyn TypedTransport] = &[
    PIPE_BINCODE,
    SHM_TYPED_BINCODE,
    SHM_TYPED_POSTCARD,
    SHM_TYPED_PLAIN,
];

/// Name of the reference of the typed rows.
pub const TYPED_REFERENCE: &str = "pipe-bincode";

/// The typed scenario kind called `name`, if any.
pub fn by_name(name: &str) -> Option<&'static dyn TypedTransport> {
    TYPED.iter().copied().find(|t| t.name() == name)
}

struct RingEnd<V, C> {
    tx: typed::Sender<V, C>,
    rx: typed::Receiver<V, C>,
}

fn send_err<V>(e: typed::SendError<V>) -> TransportError {
    match e {
        typed::SendError::Send(SendError::Disconnected(_)) => TransportError::Disconnected,
        typed::SendError::Send(SendError::PeerDied(_)) => TransportError::PeerDied,
        other => TransportError::Failed(other.to_string()),
    }
}

fn recv_err(e: typed::RecvError) -> TransportError {
    match e {
        typed::RecvError::Recv(RecvError::Disconnected) => TransportError::Disconnected,
        typed::RecvError::Recv(RecvError::PeerDied) => TransportError::PeerDied,
        other => TransportError::Failed(other.to_string()),
    }
}

impl<V, C: Codec<V>> TypedEnd<V> for RingEnd<V, C> {
    fn send(&mut self, v: V) -> Result<(), TransportError> {
        self.tx.send(v).map_err(send_err)
    }

    fn recv(&mut self) -> Result<V, TransportError> {
        self.rx.recv().map_err(recv_err)
    }

    fn wakes(&self) -> u64 {
        self.tx.stats().wake_syscalls + self.rx.stats().wake_syscalls
    }
}

/// Both rings change owner (shm-fork's `Inherit` for the typed endpoints).
impl<V, C: Codec<V>> Inherit for RingEnd<V, C> {
    fn hand_over(&self, child: ProcessIdentity) -> Result<(), InheritError> {
        Inherit::hand_over(&self.tx, child)?;
        Inherit::hand_over(&self.rx, child)
    }

    fn adopt(&self) -> Result<(), InheritError> {
        Inherit::adopt(&self.tx)?;
        Inherit::adopt(&self.rx)
    }
}

impl<V, C> TypedTransport for RingTyped<V, C>
where
    V: Message + 'static,
    C: Codec<V> + 'static,
{
    fn name(&self) -> &'static str {
        self.name
    }

    fn description(&self) -> &'static str {
        self.description
    }

    fn encoded_size(&self) -> usize {
        C::encoded_len(&V::make(0)).unwrap_or(0)
    }

    fn run(
        &self,
        pattern: Pattern,
        budget: &Budget,
        cpus: CpuPair,
        verify: bool,
    ) -> Result<Sample, BenchError> {
        let size = self.encoded_size();
        let cap = ring_capacity(size.max(64));
        let failed = |e: shm_channel::ChannelError| BenchError::Transport {
            transport: self.name.to_string(),
            source: TransportError::Failed(e.to_string()),
        };
        let (down_tx, down_rx) = typed::channel_with::<V, C>(cap).map_err(failed)?;
        let (up_tx, up_rx) = typed::channel_with::<V, C>(cap).map_err(failed)?;
        let parent = RingEnd {
            tx: down_tx,
            rx: up_rx,
        };
        let child = RingEnd {
            tx: up_tx,
            rx: down_rx,
        };
        run_typed(
            self.name, size, parent, child, pattern, budget, cpus, verify,
        )
    }
}

/// `pipe-bincode`: bincode into a private buffer, length-prefixed, through two pipes.
struct PipeBincode;

struct PipeEnd {
    rx: OwnedFd,
    tx: OwnedFd,
    buf: Vec<u8>,
}

fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Descriptors record no owner: nothing to hand over.
impl Inherit for PipeEnd {
    fn hand_over(&self, _child: ProcessIdentity) -> Result<(), InheritError> {
        Ok(())
    }

    fn adopt(&self) -> Result<(), InheritError> {
        Ok(())
    }
}

impl TypedEnd<Order> for PipeEnd {
    fn send(&mut self, v: Order) -> Result<(), TransportError> {
        self.buf.clear();
        self.buf.extend_from_slice(&[0; 4]);
        bincode::serde::encode_into_std_write(&v, &mut self.buf, bincode_config())
            .map_err(|e| TransportError::Failed(e.to_string()))?;
        let n = (self.buf.len() - 4) as u32;
        self.buf[..4].copy_from_slice(&n.to_le_bytes());
        crate::transport::fd_write_all(&self.tx, &self.buf)
    }

    fn recv(&mut self) -> Result<Order, TransportError> {
        let mut len = [0u8; 4];
        crate::transport::fd_read_exact(&self.rx, &mut len)?;
        let n = u32::from_le_bytes(len) as usize;
        if n > 1 << 20 {
            return Err(TransportError::BadLength {
                expected: 1 << 20,
                got: n,
            });
        }
        self.buf.resize(n, 0);
        crate::transport::fd_read_exact(&self.rx, &mut self.buf)?;
        bincode::serde::decode_from_slice(&self.buf, bincode_config())
            .map(|(v, _)| v)
            .map_err(|e| TransportError::Failed(e.to_string()))
    }
}

impl TypedTransport for PipeBincode {
    fn name(&self) -> &'static str {
        TYPED_REFERENCE
    }

    fn description(&self) -> &'static str {
        "Order struct, bincode 2 into a private buffer, length-prefixed, through two pipes"
    }

    fn encoded_size(&self) -> usize {
        bincode::serde::encode_to_vec(Order::make(0), bincode_config()).map_or(0, |v| v.len())
    }

    fn run(
        &self,
        pattern: Pattern,
        budget: &Budget,
        cpus: CpuPair,
        verify: bool,
    ) -> Result<Sample, BenchError> {
        let io = |e: nix::Error| BenchError::nix("pipe2", e);
        let flags = nix::fcntl::OFlag::O_CLOEXEC;
        let (down_r, down_w) = nix::unistd::pipe2(flags).map_err(io)?;
        let (up_r, up_w) = nix::unistd::pipe2(flags).map_err(io)?;
        let parent = PipeEnd {
            rx: up_r,
            tx: down_w,
            buf: Vec::new(),
        };
        let child = PipeEnd {
            rx: down_r,
            tx: up_w,
            buf: Vec::new(),
        };
        let size = self.encoded_size();
        run_typed(
            self.name(),
            size,
            parent,
            child,
            pattern,
            budget,
            cpus,
            verify,
        )
    }
}

/// Checks received values in sequence.
struct TypedChecker {
    full: bool,
    size: usize,
    next_seq: u64,
    verified_bytes: u64,
    first_bad: Option<u64>,
}

impl TypedChecker {
    fn check<V: Message>(&mut self, v: &V) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let ok = if self.full {
            let ok = *v == V::make(seq);
            if ok {
                self.verified_bytes += self.size as u64;
            }
            ok
        } else {
            v.seq() == seq
        };
        if !ok && self.first_bad.is_none() {
            self.first_bad = Some(seq);
        }
    }
}

fn terr(name: &str) -> impl Fn(TransportError) -> BenchError + '_ {
    move |source| BenchError::Transport {
        transport: name.to_string(),
        source,
    }
}

/// The fork skeleton of [`crate::pattern::run_scenario`], for typed endpoints.
#[allow(clippy::too_many_arguments)]
fn run_typed<V: Message, E: TypedEnd<V>>(
    name: &'static str,
    size: usize,
    parent: E,
    child_ep: E,
    pattern: Pattern,
    budget: &Budget,
    cpus: CpuPair,
    verify: bool,
) -> Result<Sample, BenchError> {
    let what = format!("{name} {pattern} {size} B");
    let report = SharedMap::new(4096).map_err(|source| BenchError::Sys {
        what: "mmap (child report)",
        source,
    })?;
    let _pin = AffinityGuard::pin(cpus.parent)?;
    let mut parent_ep = Some(parent);
    // `child_ep` is handed over to the child and adopted there (shm-fork's `Inherit`).
    let proc = child::spawn(&what, cpus.child, child_ep, |mut ep| {
        // The parent's endpoint is not ours: release this process's copy only.
        drop(parent_ep.take());
        let mut checker = TypedChecker {
            full: verify,
            size,
            next_seq: 0,
            verified_bytes: 0,
            first_bad: None,
        };
        let code = match pattern {
            Pattern::TypedPingPong => loop {
                let v = match ep.recv() {
                    Ok(v) => v,
                    Err(TransportError::Disconnected) => break EXIT_OK,
                    Err(_) => break EXIT_TRANSPORT,
                };
                checker.check(&v);
                if checker.first_bad.is_some() {
                    break EXIT_CORRUPT;
                }
                match ep.send(v) {
                    Ok(()) => {}
                    Err(TransportError::Disconnected) => break EXIT_OK,
                    Err(_) => break EXIT_TRANSPORT,
                }
            },
            _ => loop {
                match ep.send(V::make(checker.next_seq)) {
                    Ok(()) => checker.next_seq += 1,
                    Err(TransportError::Disconnected) => break EXIT_OK,
                    Err(_) => break EXIT_TRANSPORT,
                }
            },
        };
        report
            .u64_at(R_MSGS)
            .store(checker.next_seq, Ordering::SeqCst);
        report
            .u64_at(R_VERIFIED)
            .store(checker.verified_bytes, Ordering::SeqCst);
        report.u64_at(R_WAKES).store(ep.wakes(), Ordering::SeqCst);
        drop(ep);
        code
    })?;
    let mut ep = parent_ep.take().expect("parent endpoint in the parent");
    let deadline = watchdog_deadline(budget);
    let dog = Watchdog::arm(&proc, deadline)?;

    let mut checker = TypedChecker {
        full: verify,
        size,
        next_seq: 0,
        verified_bytes: 0,
        first_bad: None,
    };
    let pingpong = pattern == Pattern::TypedPingPong;
    let step = |ep: &mut E, checker: &mut TypedChecker| -> Result<(), BenchError> {
        if pingpong {
            ep.send(V::make(checker.next_seq)).map_err(terr(name))?;
        }
        let v = ep.recv().map_err(terr(name))?;
        checker.check(&v);
        match checker.first_bad {
            Some(seq) => Err(BenchError::Corrupt {
                transport: name.to_string(),
                seq,
                size,
            }),
            None => Ok(()),
        }
    };
    // Ping-pong: every round trip timed; stream: batches of 64 values.
    let measured = timed_loop(budget, if pingpong { 1 } else { 64 }, || {
        step(&mut ep, &mut checker)
    });
    let parent_wakes = ep.wakes();
    drop(ep);
    let child_result = dog.finish(proc);
    let (msgs, elapsed, hist) = match (measured, child_result) {
        (Ok(m), Ok(())) => m,
        (Err(_), Err(child_err)) => return Err(child_err),
        (Err(e), Ok(())) | (Ok(_), Err(e)) => return Err(e),
    };
    Ok(Sample {
        msgs,
        total_msgs: checker.next_seq,
        elapsed,
        hist,
        verified_bytes: checker.verified_bytes,
        child_msgs: report.u64_at(R_MSGS).load(Ordering::SeqCst),
        child_verified_bytes: report.u64_at(R_VERIFIED).load(Ordering::SeqCst),
        wakes: parent_wakes + report.u64_at(R_WAKES).load(Ordering::SeqCst),
        notes: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_sizes_are_known() {
        for t in TYPED {
            assert!(t.encoded_size() > 0, "{}", t.name());
        }
        assert_eq!(SHM_TYPED_PLAIN.encoded_size(), 64);
        assert_eq!(
            SHM_TYPED_BINCODE.encoded_size(),
            PIPE_BINCODE.encoded_size()
        );
    }
}
