//! Every transport, byte and typed, moves exactly the bytes (values) it claims, in every
//! pattern, at sizes that exercise the edge cases (verify mode: every byte checked by its
//! receiver and counted); the child runs on the CPU it was given.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use common::{cpus, ChildFault, Fault};
use shm_bench::transport::{Transport, TransportError, TRANSPORTS};
use shm_bench::{allowed_cpus, run_scenario, Budget, CpuPair, Pattern, Payload};
use shm_core::{Region, SharedMemory};

fn main() {
    shm_testkit::run_serially(&[
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
/// except for the stamps-only transport (nominal figures), whose messages carry only their
/// stamps (shorter than 16 bytes, the stamps are the whole message).
fn verified_per_msg(t: &dyn Transport, size: usize) -> u64 {
    if t.nominal() && size >= 16 {
        0
    } else {
        size as u64
    }
}

/// Every byte transport in `pattern` at every size of [`SIZES`] it supports: `warm`
/// messages of warm-up, then `msgs` measured (`[up to 100 000 bytes, larger]`), every byte
/// checked.
fn every_byte_transport_in(pattern: Pattern, warm: u64, msgs: [u64; 2]) {
    let payload = Payload::new(1 << 20);
    let byte_transports = TRANSPORTS.iter().filter(|t| t.message_size().is_none());
    for t in byte_transports {
        for size in SIZES.into_iter().filter(|&s| t.supports(pattern, s)) {
            let what = format!("{} {pattern} {size}", t.name());
            let msgs = msgs[usize::from(size > 100_000)];
            let s = run_scenario(
                *t,
                pattern,
                size,
                &Budget::exact(warm, msgs),
                cpus(),
                true,
                &payload,
            )
            .unwrap_or_else(|e| panic!("{what}: {e}"));
            let total = warm + msgs;
            assert_eq!(s.msgs, msgs, "{what}");
            assert_eq!(s.total_msgs, total, "{what}");
            let per_msg = verified_per_msg(*t, size);
            assert_eq!(s.verified_bytes, total * per_msg, "{what}");
            if pattern == Pattern::PingPong {
                assert_eq!(s.child_msgs, total, "{what}");
                assert_eq!(s.child_verified_bytes, total * per_msg, "{what}");
            } else {
                // The producer may have sent more than we read before we closed.
                assert!(s.child_msgs >= s.total_msgs, "{what}");
            }
        }
    }
}

fn every_transport_moves_exact_bytes_in_pingpong() {
    every_byte_transport_in(Pattern::PingPong, 2, [25, 4]);
}

fn every_transport_moves_exact_bytes_in_stream() {
    every_byte_transport_in(Pattern::Stream, 3, [200, 4]);
}

fn typed_transports_move_exact_values() {
    let payload = Payload::new(4096);
    let typed = TRANSPORTS
        .iter()
        .filter_map(|t| Some((*t, t.message_size()?)));
    let mut seen = 0;
    for (t, size) in typed {
        seen += 1;
        for pattern in [Pattern::TypedPingPong, Pattern::TypedStream] {
            let s = run_scenario(
                t,
                pattern,
                size,
                &Budget::exact(3, 40),
                cpus(),
                true,
                &payload,
            )
            .unwrap_or_else(|e| panic!("{} {pattern}: {e}", t.name()));
            let size = size as u64;
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
    assert_eq!(seen, 4, "four transports of typed values");
}

/// Records, at every call of the child's endpoint, the CPUs it may run on (a bit mask of
/// CPUs 0..63, plus 1 << 63 as "recorded") in a word shared with the parent.
#[derive(Clone)]
struct PinProbe {
    mask: &'static AtomicU64,
}

impl Fault for PinProbe {
    fn before(&mut self) -> Result<(), TransportError> {
        let bits = allowed_cpus()
            .into_iter()
            .filter(|&c| c < 63)
            .fold(1 << 63, |m, c| m | 1u64 << c);
        self.mask.store(bits, Ordering::SeqCst);
        Ok(())
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
    let probe = ChildFault::on("pipe", PinProbe { mask });
    for cpus in [pair, same] {
        for pattern in [Pattern::PingPong, Pattern::Stream] {
            mask.store(0, Ordering::SeqCst);
            run_scenario(
                &probe,
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
