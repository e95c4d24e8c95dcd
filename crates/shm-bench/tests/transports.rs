//! Every transport, byte and typed, moves exactly the bytes (values) it claims, in every
//! pattern, at sizes that exercise the edge cases (verify mode: every byte checked by its
//! receiver and counted); the child runs on the CPU it was given.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use common::cpus;
use shm_bench::affinity::allowed_cpus;
use shm_bench::pattern::run_scenario;
use shm_bench::payload::Payload;
use shm_bench::transport::TRANSPORTS;
use shm_bench::transport::{self, Endpoint, MsgIn, MsgOut, Pair, Transport, TransportError};
use shm_bench::typed::TYPED;
use shm_bench::{Budget, CpuPair, Pattern};
use shm_core::{Region, SharedMemory};

fn main() {
    common::run(&[
        (
            "every_transport_moves_exact_bytes_in_pingpong",
            every_transport_moves_exact_bytes_in_pingpong,
        ),
        (
            "every_transport_moves_exact_bytes_in_stream",
            every_transport_moves_exact_bytes_in_stream,
        ),
        (
            "typed_transports_move_exact_values",
            typed_transports_move_exact_values,
        ),
        ("child_runs_on_its_cpu", child_runs_on_its_cpu),
    ]);
}

/// Sizes that exercise short stamps, odd lengths, the pipe buffer boundary and 1 MiB.
const SIZES: [usize; 7] = [1, 8, 15, 100, 4096, 65_536 + 3, 1 << 20];

/// Bytes per message the receiver of `t` verifies one by one in verify mode: all of them,
/// except for the stamps-only transport, whose messages carry only their stamps (shorter
/// than 16 bytes, the stamps are the whole message).
fn verified_per_msg(t: &dyn Transport, size: usize) -> u64 {
    if t.name() == "shm-zero-copy-stamps" && size >= 16 {
        0
    } else {
        size as u64
    }
}

fn every_transport_moves_exact_bytes_in_pingpong() {
    let payload = Payload::new(1 << 20);
    for t in TRANSPORTS {
        for size in SIZES
            .into_iter()
            .filter(|&s| t.supports(Pattern::PingPong, s))
        {
            let msgs = if size > 100_000 { 4 } else { 25 };
            let budget = Budget::exact(2, msgs);
            let s = run_scenario(*t, Pattern::PingPong, size, &budget, cpus(), true, &payload)
                .unwrap_or_else(|e| panic!("{} {size}: {e}", t.name()));
            let total = 2 + msgs;
            assert_eq!(s.msgs, msgs, "{} {size}", t.name());
            assert_eq!(s.total_msgs, total, "{} {size}", t.name());
            assert_eq!(s.child_msgs, total, "{} {size}", t.name());
            let per_msg = verified_per_msg(*t, size);
            assert_eq!(s.verified_bytes, total * per_msg, "{} {size}", t.name());
            assert_eq!(
                s.child_verified_bytes,
                total * per_msg,
                "{} {size}",
                t.name()
            );
        }
    }
}

fn every_transport_moves_exact_bytes_in_stream() {
    let payload = Payload::new(1 << 20);
    for t in TRANSPORTS {
        for size in SIZES
            .into_iter()
            .filter(|&s| t.supports(Pattern::Stream, s))
        {
            let msgs = if size > 100_000 { 4 } else { 200 };
            let budget = Budget::exact(3, msgs);
            let s = run_scenario(*t, Pattern::Stream, size, &budget, cpus(), true, &payload)
                .unwrap_or_else(|e| panic!("{} {size}: {e}", t.name()));
            assert_eq!(s.msgs, msgs, "{} {size}", t.name());
            assert_eq!(s.total_msgs, 3 + msgs, "{} {size}", t.name());
            assert_eq!(
                s.verified_bytes,
                (3 + msgs) * verified_per_msg(*t, size),
                "{} {size}",
                t.name()
            );
            // The producer may have sent more than we read before we closed.
            assert!(s.child_msgs >= s.total_msgs, "{} {size}", t.name());
        }
    }
}

fn typed_transports_move_exact_values() {
    for t in TYPED {
        for pattern in [Pattern::TypedPingPong, Pattern::TypedStream] {
            let s = t
                .run(pattern, &Budget::exact(3, 40), cpus(), true)
                .unwrap_or_else(|e| panic!("{} {pattern}: {e}", t.name()));
            let size = t.encoded_size() as u64;
            assert_eq!(s.msgs, 40, "{} {pattern}", t.name());
            assert_eq!(s.total_msgs, 43, "{} {pattern}", t.name());
            assert_eq!(s.verified_bytes, 43 * size, "{} {pattern}", t.name());
            if pattern == Pattern::TypedPingPong {
                assert_eq!(s.child_msgs, 43, "{}", t.name());
                assert_eq!(s.child_verified_bytes, 43 * size, "{}", t.name());
            } else {
                assert!(s.child_msgs >= 43, "{}", t.name());
            }
        }
    }
}

/// A `pipe` whose child endpoint records, at every call, the CPUs it may run on (a bit
/// mask of CPUs 0..64, plus 1 << 63 as "recorded") in a word shared with the parent.
struct PinProbe {
    mask: &'static AtomicU64,
}

struct ProbeEnd {
    inner: Box<dyn Endpoint>,
    mask: &'static AtomicU64,
}

impl ProbeEnd {
    fn record(&self) {
        let bits = allowed_cpus()
            .into_iter()
            .filter(|&c| c < 63)
            .fold(1 << 63, |m, c| m | 1u64 << c);
        self.mask.store(bits, Ordering::SeqCst);
    }
}

impl Endpoint for ProbeEnd {
    fn send(
        &mut self,
        len: usize,
        fill: &mut dyn FnMut(&mut MsgOut<'_>),
    ) -> Result<(), TransportError> {
        self.record();
        self.inner.send(len, fill)
    }

    fn recv(&mut self, len: usize, read: &mut dyn FnMut(&MsgIn<'_>)) -> Result<(), TransportError> {
        self.record();
        self.inner.recv(len, read)
    }

    fn echo(
        &mut self,
        len: usize,
        inspect: &mut dyn FnMut(&MsgIn<'_>),
    ) -> Result<(), TransportError> {
        self.record();
        self.inner.echo(len, inspect)
    }
}

impl Transport for PinProbe {
    fn name(&self) -> &'static str {
        "pin-probe"
    }

    fn description(&self) -> &'static str {
        "pipe whose child records its affinity mask (tests only)"
    }

    fn connect(&self, max_msg: usize) -> Result<Pair, TransportError> {
        let p = transport::pipe::PIPE.connect(max_msg)?;
        Ok(Pair {
            parent: p.parent,
            child: Box::new(ProbeEnd {
                inner: p.child,
                mask: self.mask,
            }),
            notes: Vec::new(),
        })
    }
}

fn child_runs_on_its_cpu() {
    // Mapped before the forks, shared with every child; lives as long as the test binary.
    let region: &'static Region = Box::leak(Box::new(Region::anonymous(4096).unwrap()));
    let mask = region.atomic_u64(0).unwrap();
    let payload = Payload::new(64);
    let before = allowed_cpus();
    let pair = cpus();
    let same = CpuPair {
        parent: pair.parent,
        child: pair.parent,
    };
    for cpus in [pair, same] {
        for pattern in [Pattern::PingPong, Pattern::Stream] {
            mask.store(0, Ordering::SeqCst);
            run_scenario(
                &PinProbe { mask },
                pattern,
                64,
                &Budget::exact(2, 20),
                cpus,
                false,
                &payload,
            )
            .unwrap_or_else(|e| panic!("{cpus:?} {pattern}: {e}"));
            assert_eq!(
                mask.load(Ordering::SeqCst),
                1 << 63 | 1 << cpus.child,
                "{cpus:?} {pattern}: the child's affinity mask"
            );
        }
    }
    // The parent's own mask is restored after each scenario.
    assert_eq!(allowed_cpus(), before);
}
