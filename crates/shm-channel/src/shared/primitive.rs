//! The atomics the ring algorithms use: std's normally, loom's under `cfg(loom)` so the
//! models explore every interleaving of the ring's index and flag operations.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64};
