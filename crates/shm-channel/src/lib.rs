//! # shm-channel
//!
//! Lock-free channels through shared memory, between threads or processes.
//!
//! Three flavors of ring, one endpoint core:
//!
//! - [`spsc`]: variable-length byte frames through a single-producer/single-consumer
//!   ring, with zero-copy write and read grants and deferred publishing;
//! - [`mpsc`]: many sender processes into one receiver;
//! - [`broadcast`]: one sender to many receivers, with back-pressure or overwrite-oldest.
//!
//! Every flavor's endpoints are the same two types, [`Sender<F>`](Sender) and
//! [`Receiver<F>`](Receiver) (waiting, deadlines, liveness, ownership and grants are written
//! once), with a few operations of the flavor's own. [`typed`] carries `T` values over any
//! of them, encoded straight into the ring by a [`Codec`](codec::Codec): bincode 2 + serde
//! (default), postcard, or plain data (`bytemuck::Pod`) copied without any codec.
//!
//! ## Which to use
//!
//! | you have | use | send | receive |
//! |---|---|---|---|
//! | Rust values, one process to another | [`typed::channel`], or [`typed::pair`] over any channel | `send`, `try_send`, `send_timeout` | `recv`, `try_recv`, `recv_timeout`, `recv_into` (in place), `iter` |
//! | byte messages | [`spsc::channel`], [`mpsc::channel`], [`broadcast::channel`] | the same, over `&[u8]` | the same, into a `Vec`, or [`recv_into`](Receiver::recv_into) your buffer |
//! | large messages, no copy | the byte endpoints' grants | [`reserve`](Sender::reserve) → [`WriteGrant`] | [`read`](Receiver::read) → [`ReadGrant`] |
//! | a stream of small messages | any byte sender (typed values: [`bulk`]) | [`send_deferred`](Sender::send_deferred) + [`flush`](Sender::flush) (one publication per batch) | as usual |
//! | many small values per frame | [`bulk`] | `send(&[T])` | `drain_into(&mut Vec<T>, max)` |
//! | bytes, like a pipe | [`stream::pipe`] | `io::Write` | `io::Read` |
//! | async code (feature `tokio`) | any endpoint | `send_async`, `reserve_async` | `recv_async`, `read_async`, `stream()` |
//! | requests and replies, any two processes | [`rpc::pair`] | `Client::call` | `Server::serve` |
//! | several receivers, whichever has something | [`select::Select`], [`select!`] | | the index of a ready receiver, then its `try_recv` |
//! | another process that `fork` did not make | [`Builder::create_memfd`] and [`transfer`] (or `shm-fork`'s `exec` and rendezvous) | | |
//!
//! ## Errors
//!
//! Semantics follow crossbeam-channel: each call has its own error type, listing only what
//! it can return, and send errors hand the value back (see [`error`](crate#errors) below: the
//! blocking calls' [`SendError`] and [`RecvError`], and the non-blocking and timed calls'
//! [`TrySendError`], [`SendTimeoutError`], [`TryRecvError`], [`RecvTimeoutError`], which add
//! their "not now" case); a message larger than the ring is refused at once (`TooLarge`);
//! when the sender is dropped the receiver still gets every message sent before, then
//! `Disconnected`; when the receiver is dropped, `send` fails.
//!
//! Across `fork`, each endpoint is owned by exactly one process, recorded in shared
//! memory: the copy left in the other process does not count, and using it fails with
//! `NotOwner`. A peer process that dies without dropping its endpoint (`SIGKILL`) is seen
//! through the kernel (a pidfd) and reported as `PeerDied` by the blocked call within
//! [`SLOW_CHECK_INTERVAL`](shm_core::notify::SLOW_CHECK_INTERVAL) (10 ms) plus scheduling
//! delay, or by the next call that finds the ring empty (receiver) or full (sender).
//!
//! Nothing a peer writes into shared memory can make this crate read out of bounds, panic
//! or loop forever: every shared value is loaded once and validated; a bad one is a
//! [`Corruption`], and no peer-written value keeps a blocked call waiting when no live
//! process could end the wait.
//!
//! ```
//! let (mut tx, mut rx) = shm_ipc::channel::typed::channel::<(u32, String)>(4096)?;
//! tx.send((7, "seven".to_string()))?;
//! assert_eq!(rx.recv()?, (7, "seven".to_string()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Layout of the crate
//!
//! The flavors (`spsc/`, `mpsc/`, `broadcast/`) are faces over one endpoint core
//! (`endpoint/`), which drives each flavor's ring sides through the contract of the layer
//! below it (`shared/`: frame words, control-block lines, ownership, status, doorbells, the
//! loom seam). The typed, bulk and stream layers wrap the byte endpoints. See
//! `docs/architecture.md` in the repository.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

pub mod broadcast;
pub mod bulk;
pub mod codec;
mod endpoint;
mod error;
pub mod mpsc;
pub mod rpc;
pub mod select;
mod shared;
pub mod spsc;
pub mod stream;
pub mod transfer;
pub mod typed;

pub use endpoint::{
    Builder, Endpoint, EndpointStats, Flavor, ReadGrant, Receiver, Sender, WriteGrant,
};
pub use error::{
    CallError, ChannelError, CodecError, Corruption, GrantBounds, OwnershipError, RecvError,
    RecvIntoError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
pub use shared::view::{MAX_CAPACITY, MIN_CAPACITY};
/// rust-vmm's `vm-memory`, whose [`VolatileSlice`](vm_memory::VolatileSlice) the grants hand
/// out for safe in-place access ([`WriteGrant::as_volatile_slice`],
/// [`ReadGrant::as_volatile_slice`]); re-exported so that its traits (`Bytes`,
/// `VolatileMemory`) are the version the grants speak.
pub use vm_memory;
