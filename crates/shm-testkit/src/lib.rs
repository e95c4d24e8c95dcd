//! Test support for shm-ipc: what the fault tests, hostile tests, fuzz targets and soak runs
//! share.
//!
//! - [`fork`]: forking from inside libtest's multi-threaded harness, serialised on one lock
//!   ([`fork_lock`], [`fork_child`], [`fork_and_wait`]), and killing children;
//! - [`harness`]: a single-threaded runner for `harness = false` test binaries that fork;
//! - [`layout`]: byte offsets of every flavor's control block (SPSC, MPSC, broadcast), as
//!   plain numbers;
//! - [`message`]: checksummed, sequence-numbered messages and their checker;
//! - [`Rng`]: a deterministic xorshift;
//! - [`rerun_alone`]: one test of the binary again, in a fresh process;
//! - [`ControlPage`]: the shared page tests use to coordinate with children;
//! - [`process_cpu_time`]: what a process has used of the CPU (bounds of sleeping calls);
//! - [`garbage`]: the garbage values hostile tests write, and the tally of outcomes;
//! - [`Words`]: loading and poking words of a channel's memory;
//! - [`run_serially`]: a test binary's tests one after another on its main thread, for
//!   code that refuses to fork a multi-threaded process (`harness = false`).
//!
//! This crate depends on neither shm-core nor shm-channel (both dev-depend on it: a
//! dependency back would make two copies of their types), so it holds plain numbers and
//! bytes; `shm-channel/tests/kit_layout.rs` checks the offsets against live channels.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

mod control;
mod cpu;
pub mod fork;
pub mod garbage;
pub mod harness;
pub mod layout;
pub mod message;
mod rerun;
mod rng;
mod seccomp;
mod serial;
mod words;

pub use control::ControlPage;
pub use cpu::process_cpu_time;
pub use fork::{
    fork_and_wait, fork_child, fork_lock, hang, kill_and_reap, kill_later, kills, Latencies,
    TestChild, CHILD_PANICKED,
};
pub use garbage::{Garbage, Tally};
pub use rerun::rerun_alone;
pub use rng::Rng;
pub use seccomp::refuse_membarrier;
pub use serial::run_serially;
pub use words::Words;
