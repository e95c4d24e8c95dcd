//! The one endpoint core: [`Sender<F>`](Sender) and [`Receiver<F>`](Receiver), generic over
//! the ring flavor `F` ([`Spsc`](crate::spsc::Spsc), [`Mpsc`](crate::mpsc::Mpsc),
//! [`Broadcast`](crate::broadcast::Broadcast)).
//!
//! Waiting, deadlines, publishing, the liveness policy, ownership checks and `Drop` are
//! written here once; each flavor's ring (`crate::ring`) only reserves, commits, peeks and
//! releases. A flavor's public module is a thin face: its builder, its aliases, and the few
//! operations that are really its own.
//!
//! # Liveness policy (every flavor)
//!
//! - A blocked call checks the peer's owners through the kernel (pidfd) at every slow
//!   check: every [`SLOW_CHECK_INTERVAL`](shm_core::notify::SLOW_CHECK_INTERVAL) (10 ms) of
//!   waiting and before each sleep.
//! - A non-blocking call (`try_*`) that finds the ring full or empty makes the same check
//!   at most once per interval, so a polling loop pays one syscall per 10 ms at most.
//! - Cheap shared flags (closed, counts) are read on every call that finds the ring full
//!   or empty.
//!
//! # Ownership on use
//!
//! After `fork` both processes hold a copy of every endpoint. Each call compares the
//! process's fork generation ([`fork_generation`](shm_core::liveness::fork_generation), one
//! private load) with the one the endpoint last verified; only when they differ does it
//! re-read the owner slot. A copy this process does not own fails with `NotOwner`.

use std::time::{Duration, Instant};

use crate::error::FromRecvFatal;
use crate::layout::ChannelLayout;
use crate::ring::{RecvRing, SendRing};
use crate::ChannelError;

#[cfg(feature = "tokio")]
mod async_api;
#[cfg(feature = "tokio")]
pub(crate) mod asynchronous;
mod builder;
mod grant;
pub(crate) mod ownership;
mod receiver;
mod sender;

#[cfg(feature = "tokio")]
pub(crate) use async_api::end_at_disconnect;
#[cfg(feature = "tokio")]
pub use async_api::RecvStream;
pub use builder::{Builder, Claim};
pub(crate) use grant::Publish;
pub use grant::{Batch, BatchGrant, ReadGrant, WriteGrant};
pub use receiver::{Iter, Receiver};
pub(crate) use sender::{send_timeout_error, try_send_error};
pub use sender::{EndpointStats, Sender};

/// How long one call may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// Do not wait.
    Now,
    /// Wait until this instant (monotonic clock).
    At(Instant),
    /// Wait as long as it takes.
    Never,
}

impl Deadline {
    /// `timeout` from now (as long as it takes if that overflows the clock).
    pub fn after(timeout: Duration) -> Deadline {
        Instant::now()
            .checked_add(timeout)
            .map_or(Deadline::Never, Deadline::At)
    }

    /// The instant to wait until, if any.
    pub fn instant(self) -> Option<Instant> {
        match self {
            Deadline::At(at) => Some(at),
            Deadline::Now | Deadline::Never => None,
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::spsc::Spsc {}
    impl Sealed for crate::mpsc::Mpsc {}
    impl Sealed for crate::broadcast::Broadcast {}
}

/// A ring flavor: which ring algorithm an endpoint drives, and the receive errors it
/// returns (broadcast's can say `Lagged`). Sealed: the flavors are this crate's three.
pub trait Flavor: sealed::Sealed + Sized + 'static {
    /// The sending side of the ring.
    #[doc(hidden)]
    type Writer: SendRing;
    /// The receiving side of the ring.
    #[doc(hidden)]
    type Reader: RecvRing;
    /// The error of `recv` and `read`.
    type RecvError: FromRecvFatal<Fault<Self>> + std::error::Error + Send + Sync + 'static;
    /// The error of `try_recv` and `try_read`.
    type TryRecvError: FromRecvFatal<Fault<Self>> + std::error::Error + Send + Sync + 'static;
    /// The error of `recv_timeout` and `read_timeout`.
    type RecvTimeoutError: FromRecvFatal<Fault<Self>> + std::error::Error + Send + Sync + 'static;
    /// The flavor's name (`"spsc"`, `"mpsc"`, `"broadcast"`), for `Debug` output.
    const NAME: &'static str;

    /// The flavor's validated view of its region.
    #[doc(hidden)]
    type Shared: ChannelLayout;

    /// The sending side for the calling process.
    #[doc(hidden)]
    fn writer(shared: Self::Shared, claim: Claim) -> Result<Self::Writer, ChannelError>;

    /// The receiving side for the calling process.
    #[doc(hidden)]
    fn reader(shared: Self::Shared, claim: Claim) -> Result<Self::Reader, ChannelError>;

    /// The owner slot a sending side holds (MPSC senders have one each; the others `0`).
    #[doc(hidden)]
    fn sender_slot(_writer: &Self::Writer) -> usize {
        0
    }

    /// The owner slot a receiving side holds (broadcast receivers have one each; the
    /// others `0`).
    #[doc(hidden)]
    fn receiver_slot(_reader: &Self::Reader) -> usize {
        0
    }
}

/// The ring fault type of flavor `F`.
pub(crate) type Fault<F> = <<F as Flavor>::Reader as RecvRing>::Fault;

/// The marker type and public aliases of a flavor's face module: `Sender`, `Receiver`, `Builder`,
/// `WriteGrant`, `ReadGrant`, `Batch`, `BatchGrant`, for flavor `$flavor` (named `$what` in
/// the docs).
macro_rules! flavor_aliases {
    ($flavor:ident, $what:literal) => {
        #[doc = concat!("The flavor of ", $what, " channel: a marker type (see [`Sender`], [`Receiver`]).")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $flavor;

        #[doc = concat!("The sending end of ", $what, " channel.")]
        pub type Sender = $crate::Sender<$flavor>;
        #[doc = concat!("A receiving end of ", $what, " channel.")]
        pub type Receiver = $crate::Receiver<$flavor>;
        #[doc = concat!("Options for creating ", $what, " channel.")]
        pub type Builder = $crate::Builder<$flavor>;
        #[doc = concat!("Room reserved in ", $what, " ring, written in place.")]
        pub type WriteGrant<'a> = $crate::WriteGrant<'a, $flavor>;
        #[doc = concat!("A received message of ", $what, " channel.")]
        pub type ReadGrant<'a> = $crate::ReadGrant<'a, $flavor>;
        #[doc = concat!("Messages sent through ", $what, " sender, published together.")]
        pub type Batch<'a> = $crate::Batch<'a, $flavor>;
        /// A write grant inside a batch.
        pub type BatchGrant<'a> = $crate::BatchGrant<'a, $flavor>;
    };
}
pub(crate) use flavor_aliases;

/// What the two endpoints of every flavor have alike, written once: the accessors, the
/// ownership calls, `Drop` and `Debug`. `$endpoint` is `Sender` or `Receiver`, whose fields
/// `ring` (a [`SendRing`] or [`RecvRing`]), `strategy` and `owner` it uses.
macro_rules! endpoint_common {
    ($endpoint:ident) => {
        impl<F: Flavor> $endpoint<F> {
            /// Changes how this endpoint waits.
            pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
                self.strategy = strategy;
            }

            /// How this endpoint waits.
            pub fn wait_strategy(&self) -> WaitStrategy {
                self.strategy
            }

            /// The wake handshake this channel uses, as recorded in its header when it was
            /// created (see [`Builder::handshake`](crate::Builder::handshake)) and followed
            /// by every process using it.
            ///
            /// ```
            /// use shm_core::notify::Handshake;
            /// let (tx, rx) = shm_channel::spsc::channel(4096)?;
            /// assert_eq!(tx.handshake(), rx.handshake());
            /// if std::env::var_os("SHM_IPC_HANDSHAKE").is_none() {
            ///     assert_eq!(tx.handshake(), Handshake::preferred());
            /// }
            /// # Ok::<(), shm_channel::ChannelError>(())
            /// ```
            pub fn handshake(&self) -> Handshake {
                self.handshake
            }

            /// Capacity of the ring in bytes.
            pub fn capacity(&self) -> usize {
                self.ring.view().capacity() as usize
            }

            /// The shared memory the channel lives in.
            pub fn memory(&self) -> &Arc<dyn SharedMemory> {
                self.ring.view().memory()
            }

            /// Whether this endpoint's channel has doorbells in this process (see
            /// [`Builder::doorbells`](crate::Builder::doorbells)): async waits on it are
            /// woken by its peer, not by periodic re-checks.
            pub fn has_doorbells(&self) -> bool {
                self.ring.view().doorbells().is_some()
            }

            /// Counters of this endpoint.
            pub fn stats(&self) -> EndpointStats {
                EndpointStats {
                    wake_syscalls: self.ring.wakes(),
                }
            }

            /// In the process that owns this endpoint: makes process `to` its owner (called
            /// by `shm-fork` in the parent right after forking the child that takes the
            /// endpoint). From then on this copy is not the owner: using it fails with
            /// `NotOwner`, and dropping it does not disconnect the channel.
            pub fn hand_over(&self, to: ProcessIdentity) -> Result<(), OwnershipError> {
                ownership::hand_over(self.ring.owner_slot(), to)?;
                self.owner.forget();
                Ok(())
            }

            /// In a child created by `fork`: takes ownership of this endpoint from the
            /// parent.
            ///
            /// Nothing else is needed for the channel's wake handshake: a
            /// [`Membarrier`](Handshake::Membarrier) channel's creator (or attacher) is
            /// registered for `membarrier`, and the registration belongs to the address
            /// space, which `fork` copies: the child is registered too (checked on Linux
            /// 6.18 with `MEMBARRIER_CMD_GET_REGISTRATIONS`, by this crate's `handshake`
            /// tests). `exec` clears it; an exec'd process reaches the channel through
            /// `attach`, which registers it.
            pub fn adopt(&self) -> Result<(), OwnershipError> {
                ownership::adopt(self.ring.owner_slot())
            }

            /// Whether the calling process owns this endpoint.
            pub fn is_owned_here(&self) -> bool {
                ownership::owned_here(self.ring.owner_slot())
            }
        }

        impl<F: Flavor> Drop for $endpoint<F> {
            fn drop(&mut self) {
                // A copy in a process that does not own the endpoint: not ours to close.
                if ownership::owned_here(self.ring.owner_slot()) {
                    self.ring.close();
                }
            }
        }

        impl<F: Flavor> std::fmt::Debug for $endpoint<F> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($endpoint))
                    .field("flavor", &F::NAME)
                    .field("capacity", &self.capacity())
                    .field("strategy", &self.strategy)
                    .field("handshake", &self.handshake)
                    .finish_non_exhaustive()
            }
        }
    };
}
pub(crate) use endpoint_common;

/// The associated items every [`Flavor`] impl names the same way: the ring sides
/// (`Writer`, `Reader`) and layout (`Shared`) in scope, the flavor's name, and its three
/// receive error types.
macro_rules! flavor_types {
    ($name:literal, $recv:ty, $try_recv:ty, $recv_timeout:ty) => {
        type Writer = Writer;
        type Reader = Reader;
        type Shared = Shared;
        type RecvError = $recv;
        type TryRecvError = $try_recv;
        type RecvTimeoutError = $recv_timeout;
        const NAME: &'static str = $name;
    };
}
pub(crate) use flavor_types;
