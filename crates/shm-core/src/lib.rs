//! # shm-core
//!
//! The floor every other shm-ipc crate stands on:
//!
//! - [`Region`]: a `MAP_SHARED` mapping (anonymous, `/dev/zero`-backed or a sealed memfd),
//!   unmapped on drop, reached through raw pointers and bounds-checked copy/atomic helpers
//!   only — never through a `&[u8]` that another process could change under us.
//! - [`HeapRegion`]: the same [`SharedMemory`] abstraction over a private heap buffer, so
//!   that algorithms built on regions run under loom and Miri.
//! - [`header`]: a versioned layout header written by a region's creator and validated,
//!   field by field, by whoever attaches.
//! - [`notify`]: a cross-process futex ([`notify::Futex`]), an event count with a waiter
//!   flag so that notifying nobody costs no syscall ([`notify::Event`]), and the wait
//!   strategies (spin, spin-then-park, park).
//! - [`liveness`]: process identities that survive pid reuse and a kernel-backed check
//!   (pidfd) that a peer process is still alive.
//!
//! ```
//! use shm_ipc::core::{Region, SharedMemory};
//!
//! let region = Region::anonymous(100)?; // rounded up to one page
//! assert_eq!(region.len(), 4096);
//! region.write_bytes(8, b"string 1")?;
//! let counter = region.atomic_u64(0)?;
//! counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
//! let mut text = [0u8; 8];
//! region.read_bytes(8, &mut text)?;
//! assert_eq!(&text, b"string 1");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

pub mod header;
mod heap;
pub mod liveness;
pub mod notify;
mod region;
mod shared;
mod sys;

pub use heap::HeapRegion;
pub use region::{Region, RegionError, RegionKind, RegionOptions};
pub use shared::{AccessError, SharedMemory};
