//! What every endpoint has, whatever its side and flavor: its ring side, the event it
//! sleeps on, how it waits, and its ownership check ([`Common`]); and what every endpoint
//! of the crate offers through it, bytes or typed or stream ([`Endpoint`]).

use std::sync::Arc;

use shm_core::liveness::ProcessIdentity;
use shm_core::notify::{Check, Event, Handshake, SpinBudget, Throttle, WaitStrategy, WaitTimeout};
use shm_core::SharedMemory;

use super::Deadline;
use crate::shared::doorbells::End;
use crate::shared::fingerprint::{self, Fingerprint};
use crate::shared::lines::TypeLine;
use crate::shared::ownership::{self, OwnerCheck};
use crate::shared::primitive::AtomicU64;
use crate::shared::ring::RingSide;
use crate::shared::view::{EventRef, View};
use crate::OwnershipError;

/// Counters an endpoint keeps about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// `FUTEX_WAKE` syscalls this endpoint made to wake its peer.
    pub wake_syscalls: u64,
}

/// The state every endpoint keeps beside its ring side `R`.
pub(crate) struct Common<R: RingSide> {
    pub(crate) ring: R,
    /// The event this endpoint sleeps on: space for senders, data for receivers.
    pub(crate) event: EventRef,
    /// The doorbell end an async wait of this endpoint listens on.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) bell: End,
    /// What the owner's drop does to the ring side: its sending or receiving close.
    close: fn(&mut R),
    /// The channel's wake handshake, cached at creation or attach: never re-read from
    /// shared memory.
    pub(crate) handshake: Handshake,
    pub(crate) strategy: WaitStrategy,
    /// What the waits so far taught an adaptive strategy.
    pub(crate) budget: SpinBudget,
    /// Paces the slow checks of non-blocking calls.
    pub(crate) throttle: Throttle,
    owner: OwnerCheck,
    /// How this endpoint waits in async calls, once it has.
    #[cfg(feature = "tokio")]
    pub(crate) async_wait: Option<Box<super::async_wait::AsyncWait>>,
}

impl<R: RingSide> Common<R> {
    /// Wraps a ring side whose owner slot already names the calling process (or a process
    /// it will be handed to); the endpoint sleeps on `event`, its async waits listen on
    /// doorbell end `bell`, and its owner's drop closes the side with `close`.
    pub(crate) fn new(
        ring: R,
        (event, bell): (EventRef, End),
        close: fn(&mut R),
        strategy: WaitStrategy,
    ) -> Common<R> {
        Common {
            handshake: ring.view().handshake(),
            ring,
            event,
            bell,
            close,
            strategy,
            budget: SpinBudget::new(),
            throttle: Throttle::default(),
            owner: OwnerCheck::new(),
            #[cfg(feature = "tokio")]
            async_wait: None,
        }
    }

    /// `Ok` when the calling process owns the endpoint (one private load while no `fork`
    /// happened since the last check).
    #[inline]
    pub(crate) fn verify_owner(&self) -> Result<(), ownership::NotOwner> {
        self.owner.verify(self.ring.owner_slot())
    }

    /// Waits on this endpoint's event, as [`wait_on`] does, until `poll` (handed the ring
    /// side) returns `Some` or `deadline` passes, with the mark `mark` reads off the ring
    /// side. `None` at once for [`Deadline::Now`] (no wait), and for a wait that ended by
    /// its deadline.
    pub(crate) fn wait<T>(
        &mut self,
        deadline: Deadline,
        mark: impl FnOnce(&R) -> u64,
        mut poll: impl FnMut(&mut R, Check) -> Option<T>,
    ) -> Option<T> {
        if deadline == Deadline::Now {
            return None;
        }
        let Common {
            ring,
            event,
            handshake,
            strategy,
            budget,
            ..
        } = self;
        let mark = mark(ring);
        wait_on(
            event.get(),
            *handshake,
            strategy,
            budget,
            || mark,
            deadline.instant(),
            |check| poll(ring, check),
        )
        .ok()
    }

    /// `Debug` output for the endpoint named `name` of flavor `flavor`.
    pub(crate) fn debug(
        &self,
        name: &str,
        flavor: &str,
        f: &mut std::fmt::Formatter<'_>,
    ) -> std::fmt::Result {
        f.debug_struct(name)
            .field("flavor", &flavor)
            .field("capacity", &self.ring.capacity())
            .field("strategy", &self.strategy)
            .field("handshake", &self.handshake)
            .finish_non_exhaustive()
    }
}

impl<R: RingSide> Drop for Common<R> {
    /// Closes the ring side if the calling process owns it: a copy in a process that does
    /// not own the endpoint is not ours to close.
    fn drop(&mut self) {
        if ownership::owned_here(self.ring.owner_slot()) {
            (self.close)(&mut self.ring);
        }
    }
}

/// Waits on `event` until `poll` returns `Some` or `deadline` passes, as `strategy` says
/// (learning into `budget`); under [`WaitStrategy::Batched`], with `mark` set on the event
/// for the wait's length, so that the other side wakes this waiter only once it reaches
/// the mark (see [`Event::set_mark`]).
fn wait_on<T>(
    event: &Event,
    handshake: Handshake,
    strategy: &WaitStrategy,
    budget: &mut SpinBudget,
    mark: impl FnOnce() -> u64,
    deadline: Option<std::time::Instant>,
    poll: impl FnMut(Check) -> Option<T>,
) -> Result<T, WaitTimeout> {
    let batched = matches!(strategy, WaitStrategy::Batched { .. });
    if batched {
        event.set_mark(mark());
    }
    let woken = event.wait_learning(handshake, strategy, budget, deadline, poll);
    if batched {
        event.set_mark(0);
    }
    woken
}

/// Whether a non-blocking call makes its slow check now (asking the kernel about the peer),
/// paced by `throttle` on the coarse clock. Never under loom: a model must be deterministic,
/// and neither the clock nor the kernel is part of it.
pub(crate) fn slow_check_due(throttle: &mut Throttle) -> bool {
    !cfg!(loom) && throttle.due()
}

/// The parts of an endpoint that [`Endpoint`]'s methods read: a view of its channel, its
/// owner slot and check, how it waits. Public in a private module: it seals [`Endpoint`].
/// (Unlike `Ready`, which only `Selectable` names, it stays `pub`: each of the eight
/// `Endpoint` impls names it, and a crate-private trait there would need an `allow` on
/// each.)
#[allow(private_interfaces)]
pub trait Parts {
    fn view(&self) -> &View;
    fn owner_slot(&self) -> &AtomicU64;
    fn owner(&self) -> &OwnerCheck;
    fn strategy(&self) -> WaitStrategy;
    fn set_strategy(&mut self, strategy: WaitStrategy);
    fn wakes(&self) -> u64;
    fn queued(&self) -> u64;
    fn min_frame(&self) -> u64;
    fn capacity(&self) -> u64;
    fn type_line(&self) -> &TypeLine;
    /// The state the endpoint's async waits use.
    #[cfg(feature = "tokio")]
    fn waiting(&mut self) -> &mut dyn super::async_wait::Waiting;
}

impl<R: RingSide> Parts for Common<R> {
    fn view(&self) -> &View {
        self.ring.view()
    }

    fn owner_slot(&self) -> &AtomicU64 {
        self.ring.owner_slot()
    }

    fn owner(&self) -> &OwnerCheck {
        &self.owner
    }

    fn strategy(&self) -> WaitStrategy {
        self.strategy
    }

    fn set_strategy(&mut self, strategy: WaitStrategy) {
        self.strategy = strategy;
    }

    fn wakes(&self) -> u64 {
        self.ring.wakes()
    }

    fn queued(&self) -> u64 {
        self.ring.queued()
    }

    fn min_frame(&self) -> u64 {
        R::MIN_FRAME
    }

    fn capacity(&self) -> u64 {
        self.ring.capacity()
    }

    fn type_line(&self) -> &TypeLine {
        self.ring.layout().type_line()
    }

    #[cfg(feature = "tokio")]
    fn waiting(&mut self) -> &mut dyn super::async_wait::Waiting {
        self
    }
}

/// What every endpoint of this crate offers, whatever its flavor and layer — byte
/// [`Sender`](crate::Sender) and [`Receiver`](crate::Receiver), typed, bulk, stream ends:
/// its channel's capacity, memory and wake settings, its counters, and its ownership
/// across `fork` (which `shm-fork` drives).
///
/// ```
/// use shm_ipc::channel::Endpoint;
/// let (tx, rx) = shm_ipc::channel::spsc::channel(4096)?;
/// assert_eq!(tx.capacity(), 4096);
/// assert_eq!(tx.handshake(), rx.handshake());
/// assert!(tx.is_owned_here() && rx.is_owned_here());
/// # Ok::<(), shm_ipc::channel::ChannelError>(())
/// ```
// `parts` names a trait nobody outside the crate can name: nobody else implements
// `Endpoint`.
pub trait Endpoint {
    /// The endpoint's parts (the crate's own).
    #[doc(hidden)]
    fn parts(&self) -> &dyn Parts;

    /// The same, to change them (the crate's own).
    #[doc(hidden)]
    fn parts_mut(&mut self) -> &mut dyn Parts;

    /// Capacity of the channel's ring in bytes (MPSC: of each sender's lane).
    fn capacity(&self) -> usize {
        self.parts().capacity() as usize
    }

    /// The shared memory the channel lives in.
    fn memory(&self) -> &Arc<dyn SharedMemory> {
        self.parts().view().memory()
    }

    /// The wake handshake this channel uses, as recorded in its header when it was created
    /// (see [`Builder::handshake`](crate::Builder::handshake)) and followed by every
    /// process using it.
    fn handshake(&self) -> Handshake {
        self.parts().view().handshake()
    }

    /// Bytes of frames in the ring now (frame headers and alignment included): published
    /// and not yet released — for a receiver, not yet read by it. A snapshot: the peer may
    /// change it at once.
    ///
    /// ```
    /// use shm_ipc::channel::Endpoint;
    /// let (mut tx, mut rx) = shm_ipc::channel::spsc::channel(4096)?;
    /// assert!(rx.is_empty() && !tx.is_full());
    /// tx.send(b"twelve bytes")?; // an 8-byte header, 12 bytes padded to 16
    /// assert_eq!((tx.len(), rx.len()), (24, 24));
    /// rx.recv()?;
    /// assert!(tx.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn len(&self) -> usize {
        self.parts().queued() as usize
    }

    /// Whether the ring holds no frame now (see [`len`](Endpoint::len)).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the ring has no room now even for an empty message (see
    /// [`len`](Endpoint::len)).
    fn is_full(&self) -> bool {
        let parts = self.parts();
        parts.queued() + parts.min_frame() > parts.capacity()
    }

    /// What the channel's typed ends carry, as the first of them recorded it in the
    /// channel (see [`typed::Fingerprint`](crate::typed::Fingerprint)); `None` while no
    /// typed end was made of the channel. Byte ends neither record nor check it.
    ///
    /// ```
    /// use shm_ipc::channel::Endpoint;
    /// let (tx, rx) = shm_ipc::channel::typed::channel::<u64>(4096)?;
    /// assert_eq!(tx.type_fingerprint().unwrap().type_name(), "u64");
    /// let (tx, rx) = shm_ipc::channel::spsc::channel(4096)?;
    /// assert!(tx.type_fingerprint().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn type_fingerprint(&self) -> Option<Fingerprint> {
        fingerprint::recorded(self.parts().type_line())
    }

    /// The largest message the channel can carry: its capacity (MPSC: a lane's) less one
    /// frame header. A typed end's limit is on the encoded value.
    ///
    /// ```
    /// use shm_ipc::channel::Endpoint;
    /// let (mut tx, rx) = shm_ipc::channel::spsc::channel(4096)?;
    /// assert_eq!(rx.max_message_len(), 4088);
    /// assert!(tx.send(&[0; 4089]).is_err());
    /// # Ok::<(), shm_ipc::channel::ChannelError>(())
    /// ```
    fn max_message_len(&self) -> usize {
        let parts = self.parts();
        crate::shared::frame::max_payload(parts.capacity(), parts.min_frame())
    }

    /// How this endpoint waits when its ring is full (senders) or empty (receivers).
    fn wait_strategy(&self) -> WaitStrategy {
        self.parts().strategy()
    }

    /// Changes how this endpoint waits for room (senders) or messages (receivers).
    ///
    /// ```
    /// use shm_ipc::channel::Endpoint;
    /// use shm_ipc::core::notify::WaitStrategy;
    /// let (tx, mut rx) = shm_ipc::channel::typed::channel::<u64>(4096)?;
    /// rx.set_wait_strategy(WaitStrategy::Park);
    /// assert_eq!(rx.wait_strategy(), WaitStrategy::Park);
    /// # drop(tx);
    /// # Ok::<(), shm_ipc::channel::ChannelError>(())
    /// ```
    fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.parts_mut().set_strategy(strategy);
    }

    /// Whether this endpoint's channel has doorbells in this process (see
    /// [`Builder::doorbells`](crate::Builder::doorbells)): async waits on it are woken by
    /// its peer, not by periodic re-checks.
    fn has_doorbells(&self) -> bool {
        self.parts().view().doorbells().is_some()
    }

    /// Counters of this endpoint.
    fn stats(&self) -> EndpointStats {
        EndpointStats {
            wake_syscalls: self.parts().wakes(),
        }
    }

    /// In the process that owns this endpoint: makes process `to` its owner (called by
    /// `shm-fork` in the parent right after forking the child that takes the endpoint).
    /// From then on this copy is not the owner: using it fails with `NotOwner`, and
    /// dropping it does not disconnect the channel.
    fn hand_over(&self, to: ProcessIdentity) -> Result<(), OwnershipError> {
        ownership::hand_over(self.parts().owner_slot(), to)?;
        self.parts().owner().forget();
        Ok(())
    }

    /// In a child created by `fork`: takes ownership of this endpoint from the parent.
    ///
    /// Nothing else is needed for the channel's wake handshake: a
    /// [`Membarrier`](Handshake::Membarrier) channel's creator (or attacher) is registered
    /// for `membarrier`, and the registration belongs to the address space, which `fork`
    /// copies: the child is registered too (checked on Linux 6.18 with
    /// `MEMBARRIER_CMD_GET_REGISTRATIONS`, by this crate's `handshake` tests). `exec`
    /// clears it; an exec'd process reaches the channel through `attach`, which registers
    /// it.
    fn adopt(&self) -> Result<(), OwnershipError> {
        ownership::adopt(self.parts().owner_slot())
    }

    /// Whether the calling process owns this endpoint.
    fn is_owned_here(&self) -> bool {
        ownership::owned_here(self.parts().owner_slot())
    }
}
