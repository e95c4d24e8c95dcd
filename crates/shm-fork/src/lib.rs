//! # shm-fork
//!
//! Fork helpers for shm-ipc: run a closure in a forked child, hand shared-memory endpoints
//! over to it, and wait for it with the guarantees a parent needs.
//!
//! - [`fork`] / [`fork_with`] / [`ChildOptions`]: fork a child that runs a closure and ends
//!   with `_exit(code)`. A panic in the child becomes [`ExitStatus::Panicked`] (exit code
//!   [`PANIC_EXIT_CODE`] plus a record in a page shared with the parent, so a closure that
//!   merely returns 101 is not mistaken for a panic).
//! - [`Child`]: `wait`, `try_wait`, `wait_timeout` (pidfd + `poll`, monotonic clock),
//!   `kill`; dropping an unreaped handle kills and reaps the child by default ([`OnDrop`]),
//!   and by default a child dies with its parent (`PR_SET_PDEATHSIG`).
//! - [`Inherit`]: the hand-over protocol for values moved into a child (docs/architecture.md, rule 9):
//!   the parent calls `hand_over(child)` right after the fork and drops its copy, the child
//!   calls `adopt()` before its closure runs.
//! - [`exec`]: start *another program* (a [`std::process::Command`]) with channel endpoints
//!   passed as memfds; the program takes them with [`exec::inherited`].
//! - [`rendezvous`]: two processes started separately find each other by name (an abstract
//!   unix socket) and pass endpoints with `SCM_RIGHTS`.
//!
//! ## Fork safety
//!
//! A forked child holds only the forking thread; locks other threads held stay locked in it.
//! The safe entry points therefore refuse to fork a process that has more than one thread
//! ([`ForkError::MultiThreaded`]); [`ChildOptions::fork_with_unchecked`] forks anyway under a
//! documented contract. This also means the safe API cannot be used from the libtest
//! harness (which runs tests on threads): this crate's tests are `harness = false` binaries.
//!
//! ```
//! use shm_ipc::core::{Region, SharedMemory};
//! use std::sync::atomic::Ordering;
//!
//! // A MAP_SHARED page survives the fork: the child's write is seen by the parent.
//! let region = Region::anonymous(4096)?;
//! let mut child = shm_ipc::fork::fork(|| {
//!     region.atomic_u64(0).unwrap().store(42, Ordering::SeqCst);
//!     0
//! })?;
//! assert!(child.wait()?.success());
//! assert_eq!(region.atomic_u64(0)?.load(Ordering::SeqCst), 42);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

mod channel;
mod child;
pub mod exec;
mod fork;
mod inherit;
pub mod pipeline;
pub mod rendezvous;
mod report;
mod sys;
pub mod worker;

pub use child::{
    Child, ChildError, ExitStatus, OnDrop, ADOPT_FAILED_EXIT_CODE, DOWNSTREAM_LOST_EXIT_CODE,
    FAILED_EXIT_CODE, PANIC_EXIT_CODE, UPSTREAM_LOST_EXIT_CODE,
};
pub use fork::{fork, fork_with, fork_with_unchecked, ChildOptions, ForkError};
pub use inherit::{Inherit, InheritError};
pub use pipeline::{Pipeline, PipelineError, RunningPipeline, StageFailure};
pub use worker::{spawn_pool, spawn_worker, Worker, WorkerError, WorkerOptions, WorkerPool};
