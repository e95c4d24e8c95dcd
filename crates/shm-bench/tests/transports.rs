//! Every transport, byte and typed, moves exactly the bytes (values) it claims, in every
//! pattern, at sizes that exercise the edge cases (verify mode: every byte checked by its
//! receiver and counted).

mod common;

use common::cpus;
use shm_bench::pattern::run_scenario;
use shm_bench::payload::Payload;
use shm_bench::transport::{Transport, TRANSPORTS};
use shm_bench::typed::TYPED;
use shm_bench::{Budget, Pattern};

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
        for size in SIZES {
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
        for size in SIZES {
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
