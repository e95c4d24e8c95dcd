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
//! Examples and snippets name everything through this facade (`shm_ipc::channel::…`,
//! `shm_ipc::fork::…`); [`MainError`] makes a program's `main` print its error's message
//! rather than its `Debug` form.
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

use std::error::Error;
use std::fmt;

/// The error of a program's `main`: any error (`?` converts it), printed by its message and
/// the chain of its causes when `main` returns it — not in the `Debug` form Rust prints by
/// default, which shows the error's structure (`MultiThreaded { threads: 3 }`) instead of
/// what it means ("cannot fork safely: the process runs 3 threads …").
///
/// ```should_panic
/// // Prints "Error: No such file or directory (os error 2)" and exits with status 1.
/// fn main() -> Result<(), shm_ipc::MainError> {
///     std::fs::File::open("/no/such/file")?;
///     Ok(())
/// }
/// ```
pub struct MainError(Box<dyn Error>);

impl<E: Into<Box<dyn Error>>> From<E> for MainError {
    fn from(error: E) -> MainError {
        MainError(error.into())
    }
}

impl MainError {
    /// The error inside.
    pub fn into_inner(self) -> Box<dyn Error> {
        self.0
    }
}

/// The message, then each cause on a line of its own: what `main` prints.
impl fmt::Debug for MainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, "\n  caused by: {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl fmt::Display for MainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}
