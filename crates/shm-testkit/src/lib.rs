//! Test support for shm-ipc: what the fault tests, hostile tests, fuzz targets and soak runs
//! share.
//!
//! - [`fork`]: forking from inside libtest's multi-threaded harness, serialised on one lock
//!   ([`fork_lock`], [`fork_child`], [`fork_and_wait`]), and killing children;
//! - [`layout`]: byte offsets of every flavor's control block (SPSC, MPSC, broadcast), as
//!   plain numbers;
//! - [`message`]: checksummed, sequence-numbered messages and their checker;
//! - [`Rng`]: a deterministic xorshift;
//! - [`ControlPage`]: the shared page tests use to coordinate with children;
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
pub mod fork;
pub mod garbage;
pub mod layout;
pub mod message;
mod rng;
mod seccomp;
mod serial;
mod words;

pub use control::ControlPage;
pub use fork::{
    fork_and_wait, fork_child, fork_lock, hang, kill_and_reap, kills, Latencies, TestChild,
    CHILD_PANICKED,
};
pub use garbage::{Garbage, Tally};
pub use rng::Rng;
pub use seccomp::refuse_membarrier;
pub use serial::run_serially;
pub use words::Words;
