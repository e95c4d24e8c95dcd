//! # shm-channel
//!
//! Lock-free channels through shared memory, between threads or processes.
//!
//! Three flavors of ring, one endpoint core:
//!
//! - [`spsc`]: variable-length byte frames through a single-producer/single-consumer
//!   ring, with zero-copy write and read grants and batched publishing;
//! - [`mpsc`]: many sender processes into one receiver;
//! - [`broadcast`]: one sender to many receivers, with back-pressure or overwrite-oldest.
//!
//! Every flavor's endpoints are the same two types, [`Sender<F>`](Sender) and
//! [`Receiver<F>`](Receiver) (waiting, deadlines, liveness, ownership and grants are written
//! once), with a few operations of the flavor's own. [`typed`] carries `T` values over any
//! of them, encoded straight into the ring by a [`Codec`](codec::Codec): bincode 2 + serde
//! (default), postcard, or plain data (`bytemuck::Pod`) copied without any codec.
//!
//! Semantics follow crossbeam-channel: each call has its own error type, listing only what
//! it can return, and send errors hand the value back ([`SendError`], [`TrySendError`],
//! [`SendTimeoutError`], [`RecvError`], [`TryRecvError`], [`RecvTimeoutError`]); a message
//! larger than the ring is refused at once (`TooLarge`); when the sender is dropped the
//! receiver still gets every message sent before, then `Disconnected`; when the receiver is
//! dropped, `send` fails.
//!
//! Across `fork`, each endpoint is owned by exactly one process, recorded in shared
//! memory: the copy left in the other process does not count, and using it fails with
//! `NotOwner`. A peer process that dies
//! without dropping its endpoint (`SIGKILL`) is seen through the kernel (a pidfd) and
//! reported as `PeerDied` by the blocked call within
//! [`SLOW_CHECK_INTERVAL`](shm_core::notify::SLOW_CHECK_INTERVAL) (10 ms) plus scheduling
//! delay, or by the next call that finds the ring empty (receiver) or full (sender).
//!
//! Nothing a peer writes into shared memory can make this crate read out of bounds, panic
//! or loop forever: every shared value is loaded once and validated; a bad one is a
//! [`Corruption`], and no peer-written value keeps a blocked call waiting when no live
//! process could end the wait.
//!
//! ```
//! let (mut tx, mut rx) = shm_channel::typed::channel::<(u32, String)>(4096)?;
//! tx.send((7, "seven".to_string()))?;
//! assert_eq!(rx.recv()?, (7, "seven".to_string()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

pub mod broadcast;
pub mod bulk;
pub mod codec;
mod doorbells;
mod endpoint;
mod error;
mod frame;
mod layout;
pub mod mpsc;
mod primitive;
mod ring;
pub mod spsc;
pub mod stream;
pub mod transfer;
pub mod typed;

#[cfg(feature = "tokio")]
pub use endpoint::RecvStream;
pub use endpoint::{
    Batch, BatchGrant, Builder, Deadline, EndpointStats, Flavor, Iter, ReadGrant, Receiver, Sender,
    WriteGrant,
};
pub use error::{
    CallError, ChannelError, CodecError, Corruption, GrantBounds, OwnershipError, RecvError,
    RecvIntoError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
pub use layout::{MAX_CAPACITY, MIN_CAPACITY};
