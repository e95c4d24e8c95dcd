//! The one endpoint core: [`Sender<F>`](Sender) and [`Receiver<F>`](Receiver), generic over
//! the ring flavor `F` ([`Spsc`](crate::spsc::Spsc), [`Mpsc`](crate::mpsc::Mpsc),
//! [`Broadcast`](crate::broadcast::Broadcast)).
//!
//! Waiting, deadlines, publishing, the liveness policy, ownership checks and `Drop` are
//! written here once, over the ring contract of `crate::shared::ring`; each flavor's ring
//! sides only reserve, commit, peek and release. A flavor's public module is a thin face:
//! its marker type, its `channel` function, and the few operations that are really its
//! own. There is one `Sender`, one `Receiver` and one `Builder`: a flavor is their parameter.
//!
//! | module | what it holds |
//! |---|---|
//! | `common` | the state both ends keep, and the [`Endpoint`] trait over it |
//! | `sender`, `receiver` | the two ends: copy in and out, the full- and empty-ring waits |
//! | `grant` | zero-copy [`WriteGrant`] and [`ReadGrant`], and the calls that hand them out |
//! | `builder` | creating and attaching channels |
//! | `failure` | the core's failures, before each call makes them its own error type |
//! | `async_wait`, `async_calls`, `sink` | (feature `tokio`) the async wait, the async calls over it, a sender as a `Sink` |
//!
//! # Liveness policy (every flavor)
//!
//! - A blocked call checks the peer's owners through the kernel (pidfd) at every slow
//!   check: every [`SLOW_CHECK_INTERVAL`](shm_core::notify::SLOW_CHECK_INTERVAL) (10 ms) of
//!   waiting and before each sleep.
//! - A non-blocking call (`try_*`) that finds the ring full or empty makes the same check
//!   at most once per interval, so a polling loop pays one syscall per 10 ms at most.
//! - Cheap shared flags (closed, counts) are read on every call that finds the ring full
//!   or empty; a sender reads the receivers' closed flag on every send.
//! - A sender that keeps finding room asks the kernel about its receivers once per 8 ms
//!   (`RECEIVER_LOOK` in `sender.rs`), paced by a private countdown and a clock read per
//!   stride of sends ([`Lookout`](shm_core::notify::Lookout)): a receiver killed while the
//!   sender streams is `PeerDied` within 10 ms of sends, blocking or not, long before the
//!   ring is full — without a system call per send.
//!
//! # Ownership on use
//!
//! After `fork` both processes hold a copy of every endpoint. Each call compares the
//! process's fork generation ([`fork_generation`](shm_core::liveness::fork_generation), one
//! private load) with the one the endpoint last verified; only when they differ does it
//! re-read the owner slot. A copy this process does not own fails with `NotOwner`.

use std::time::{Duration, Instant};

use crate::error::CallError;
use crate::shared::layout::{ControlBlock, Layout};
use crate::shared::ring::{RecvRing, SendRing};
use crate::shared::status::Claim;
use crate::ChannelError;

#[cfg(feature = "tokio")]
mod async_calls;
#[cfg(feature = "tokio")]
pub(crate) mod async_wait;
mod builder;
mod common;
pub(crate) mod failure;
mod grant;
mod receiver;
mod sender;
#[cfg(feature = "tokio")]
pub(crate) mod sink;

#[cfg(feature = "tokio")]
pub(crate) use async_calls::end_at_disconnect;
pub use builder::Builder;
pub(crate) use common::Parts;
pub use common::{Endpoint, EndpointStats};
pub use grant::{ReadGrant, WriteGrant};
pub use receiver::Receiver;
pub(crate) use receiver::{Probe, Ready};
pub(crate) use sender::Publish;
pub use sender::Sender;

use failure::FromRecvFatal;

/// How long one call may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deadline {
    /// Do not wait.
    Now,
    /// Wait until this instant (monotonic clock).
    At(Instant),
    /// Wait as long as it takes.
    Never,
}

impl Deadline {
    /// `timeout` from now (as long as it takes if that overflows the clock).
    pub(crate) fn after(timeout: Duration) -> Deadline {
        Instant::now()
            .checked_add(timeout)
            .map_or(Deadline::Never, Deadline::At)
    }

    /// The instant to wait until, if any.
    pub(crate) fn instant(self) -> Option<Instant> {
        match self {
            Deadline::At(at) => Some(at),
            Deadline::Now | Deadline::Never => None,
        }
    }
}

/// A ring flavor: which ring algorithm an endpoint drives, and the error its blocking
/// receives return (broadcast's can say `Lagged`). Sealed: the flavors are this crate's
/// three, [`Spsc`](crate::spsc::Spsc), [`Mpsc`](crate::mpsc::Mpsc) and
/// [`Broadcast`](crate::broadcast::Broadcast).
// Sealed by `Rings`, which nobody outside the crate can name, so nobody else can implement.
#[allow(private_bounds)]
pub trait Flavor: Rings + Sized + 'static {
    /// The error of `recv` and `read`: [`RecvError`](crate::RecvError), or for broadcast
    /// [`broadcast::RecvError`](crate::broadcast::RecvError).
    type RecvError: FromRecvFatal<Fault<Self>>
        + CallError
        + std::fmt::Debug
        + Clone
        + PartialEq
        + Send
        + Sync
        + 'static;
    /// The flavor's name (`"spsc"`, `"mpsc"`, `"broadcast"`), for `Debug` output.
    const NAME: &'static str;
}

/// What the endpoint core needs of a flavor: its layout and ring sides, and how a side is
/// opened for the calling process.
pub(crate) trait Rings: ControlBlock {
    /// The sending side of the ring.
    type Writer: SendRing<Control = Self>;
    /// The receiving side of the ring.
    type Reader: RecvRing<Control = Self>;

    /// The sending side for the calling process.
    fn writer(layout: Layout<Self>, claim: Claim) -> Result<Self::Writer, ChannelError>;

    /// The receiving side for the calling process.
    fn reader(layout: Layout<Self>, claim: Claim) -> Result<Self::Reader, ChannelError>;

    /// The owner slot a sending side holds (MPSC senders have one each; the others `0`).
    fn sender_slot(_writer: &Self::Writer) -> usize {
        0
    }

    /// The owner slot a receiving side holds (broadcast receivers have one each; the
    /// others `0`).
    fn receiver_slot(_reader: &Self::Reader) -> usize {
        0
    }
}

/// The ring fault type of flavor `F`.
pub(crate) type Fault<F> = <<F as Rings>::Reader as RecvRing>::Fault;
/// Room reserved by a sender of flavor `F`.
pub(crate) type Slot<F> = <<F as Rings>::Writer as SendRing>::Slot;
/// A frame found by a receiver of flavor `F`.
pub(crate) type Frame<F> = <<F as Rings>::Reader as RecvRing>::Frame;
