//! # shm-ipc
//!
//! Inter-process communication through shared memory on Linux.
//!
//! This facade re-exports the member crates so that one dependency brings them all:
//!
//! - [`core`] (`shm-core`): shared regions, versioned layout headers, cross-process
//!   notification and peer liveness.
//! - [`channel`] (`shm-channel`): lock-free shared-memory channels: SPSC byte rings with
//!   zero-copy grants, typed channels.
//! - [`fork`] (`shm-fork`): fork children that inherit channel endpoints, workers, pipelines.
//!
//! ```
//! use shm_ipc::core::{Region, SharedMemory};
//!
//! let region = Region::anonymous(4096)?;
//! region.write_bytes(0, b"hello")?;
//! let mut out = [0u8; 5];
//! region.read_bytes(0, &mut out)?;
//! assert_eq!(&out, b"hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![doc = include_str!("../README.md")]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

pub use shm_channel as channel;
pub use shm_core as core;
pub use shm_fork as fork;
