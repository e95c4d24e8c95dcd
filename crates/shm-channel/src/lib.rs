//! # shm-channel
//!
//! Lock-free channels through shared memory, between threads or processes.
//!
//! - [`bytes`]: variable-length byte frames through a single-producer/single-consumer ring,
//!   with zero-copy write and read grants and batched publishing.
//! - [`typed`]: `T` values over the same ring, encoded straight into the ring by a
//!   [`Codec`](codec::Codec): bincode 2 + serde (default), postcard, or plain data
//!   (`bytemuck::Pod`) copied without any codec.
//!
//! Semantics follow crossbeam-channel: errors hand the value back and say why
//! ([`SendError`], [`RecvError`]); a message larger than the ring is refused at once
//! (`TooLarge`); when the sender is dropped the receiver still gets every message sent
//! before, then `Disconnected`; when the receiver is dropped, `send` fails.
//!
//! Across `fork`, each endpoint is owned by exactly one process, recorded in shared
//! memory: the copy left in the other process does not count. A peer process that dies
//! without dropping its endpoint (`SIGKILL`) is seen through the kernel (a pidfd) and
//! reported as `PeerDied` by the blocked call within
//! [`SLOW_CHECK_INTERVAL`](shm_core::notify::SLOW_CHECK_INTERVAL) (10 ms) plus scheduling
//! delay, or by the next call that finds the ring empty (receiver) or full (sender).
//!
//! Nothing a peer writes into shared memory can make this crate read out of bounds, panic
//! or loop forever: every shared value is loaded once and validated; a bad one is a
//! [`Corruption`].
//!
//! ```
//! let (mut tx, mut rx) = shm_channel::typed::channel::<(u32, String)>(4096)?;
//! tx.send((7, "seven".to_string()))?;
//! assert_eq!(rx.recv()?, (7, "seven".to_string()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![deny(missing_docs)]

pub mod broadcast;
pub mod bytes;
pub mod codec;
pub mod endpoint;
mod error;
mod frame;
mod layout;
#[cfg(all(test, loom))]
mod loom_tests;
pub mod mpsc;
mod ownership;
mod primitive;
mod ring;
pub mod typed;

pub use error::{
    ChannelError, CodecError, Corruption, GrantBounds, OwnershipError, RecvError, SendError,
};
pub use layout::{region_len_for, MAX_CAPACITY, MIN_CAPACITY};
