//! Creating and attaching channels of every flavor: one builder, one capacity check (before
//! anything is mapped), one attach path.

use std::sync::Arc;

use shm_core::notify::{Handshake, WaitStrategy};
use shm_core::{Region, SharedMemory};

use super::{Flavor, Receiver, Sender};
use crate::shared::creation::{creation_handshake, Creation};
use crate::shared::doorbells::Doorbells;
use crate::shared::layout::Layout;
use crate::shared::status::Claim;
use crate::ChannelError;

/// Whether a [`Builder`] gives its channel doorbells unless told otherwise: with the
/// `tokio` feature (never under loom, whose models use no descriptors).
const DOORBELLS_BY_DEFAULT: bool = cfg!(feature = "tokio") && !cfg!(loom);

/// Options for creating a channel of flavor `F`.
///
/// ```
/// use shm_ipc::channel::spsc::Spsc;
/// use shm_ipc::channel::Builder;
/// use shm_ipc::channel::Endpoint;
/// use shm_ipc::core::notify::WaitStrategy;
/// let (tx, rx) = Builder::<Spsc>::new(1 << 16).wait_strategy(WaitStrategy::Park).create()?;
/// assert_eq!(tx.capacity(), 1 << 16);
/// // Refused before anything is mapped:
/// assert!(Builder::<Spsc>::new(1 << 40).create().is_err());
/// # Ok::<(), shm_ipc::channel::ChannelError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until a channel is created from it"]
pub struct Builder<F: Flavor> {
    capacity: usize,
    strategy: WaitStrategy,
    /// `None`: [`Handshake::preferred`] at creation.
    handshake: Option<Handshake>,
    /// Whether the channel gets doorbells (see [`Builder::doorbells`]).
    doorbells: bool,
    pub(crate) options: F::Options,
}

impl<F: Flavor> Builder<F> {
    /// A channel of `capacity` bytes of frames (a power of two, 16 B to 4 GiB; broadcast
    /// needs at least 32).
    ///
    /// For a stream of small messages, give it 256 KiB or more: on the 2-core reference VM
    /// a 64 B stream with deferred publishing ran 2.4–2.5× faster through 1 MiB than
    /// through 64 KiB, and a 4-producer MPSC fan-in twice as fast with lanes of 256 KiB as
    /// with lanes of 128 KiB (docs/benchmarks.md). A round trip does not care.
    pub fn new(capacity: usize) -> Builder<F> {
        Builder {
            capacity,
            strategy: WaitStrategy::default(),
            handshake: None,
            doorbells: DOORBELLS_BY_DEFAULT,
            options: Default::default(),
        }
    }

    /// How the endpoints wait when the ring is full or empty (default: spin, then park).
    pub fn wait_strategy(mut self, strategy: WaitStrategy) -> Builder<F> {
        self.strategy = strategy;
        self
    }

    /// Forces the channel's wake handshake (see [`shm_core::notify::handshake`]). By
    /// default each channel takes [`Handshake::preferred`] when it is created:
    /// [`Membarrier`](Handshake::Membarrier) where the kernel allows it, unless the
    /// environment variable `SHM_IPC_HANDSHAKE=seqcst` forces [`SeqCst`](Handshake::SeqCst).
    ///
    /// The choice is recorded in the shared header: every process that attaches follows
    /// it. Forcing `Membarrier` where this process cannot register for it makes creation
    /// fail with [`ChannelError::Handshake`]. (Under `cfg(loom)` channels always use
    /// `SeqCst`: loom cannot model `membarrier`.)
    ///
    /// ```
    /// use shm_ipc::channel::spsc::Spsc;
    /// use shm_ipc::channel::Builder;
    /// use shm_ipc::channel::Endpoint;
    /// use shm_ipc::core::notify::Handshake;
    /// let (tx, rx) = Builder::<Spsc>::new(4096).handshake(Handshake::SeqCst).create()?;
    /// assert_eq!(tx.handshake(), Handshake::SeqCst);
    /// assert_eq!(rx.handshake(), Handshake::SeqCst);
    /// # Ok::<(), shm_ipc::channel::ChannelError>(())
    /// ```
    pub fn handshake(mut self, handshake: Handshake) -> Builder<F> {
        self.handshake = Some(handshake);
        self
    }

    /// Whether the channel gets doorbells: a unix datagram socket pair (two descriptors,
    /// close-on-exec) that its endpoints ring when they notify an *async* waiter
    /// (`send_async`, `recv_async`, ...). Without them an async wait still works, but learns
    /// of new messages only by re-checking (every millisecond;
    /// [`Endpoint::has_doorbells`](crate::Endpoint::has_doorbells) says whether an endpoint
    /// has them). Synchronous waits never use them, and a notifier rings one only while an
    /// async waiter has announced itself. They travel with the endpoints: inherited across
    /// `fork`, passed with the memfd by [`transfer`](crate::transfer).
    ///
    /// Default: on when this crate is built with its `tokio` feature, off otherwise (a
    /// program that makes many channels and never awaits them keeps its descriptors).
    ///
    /// ```
    /// use shm_ipc::channel::spsc::Spsc;
    /// use shm_ipc::channel::Builder;
    /// use shm_ipc::channel::Endpoint;
    /// let (tx, rx) = Builder::<Spsc>::new(4096).doorbells(true).create()?;
    /// assert!(tx.has_doorbells() && rx.has_doorbells());
    /// let (tx, _rx) = Builder::<Spsc>::new(4096).doorbells(false).create()?;
    /// assert!(!tx.has_doorbells());
    /// # Ok::<(), shm_ipc::channel::ChannelError>(())
    /// ```
    pub fn doorbells(mut self, on: bool) -> Builder<F> {
        self.doorbells = on;
        self
    }

    /// Bytes of shared memory a channel of this capacity needs.
    pub fn region_len(&self) -> Option<usize> {
        Layout::<F>::region_len(self.capacity, &self.options)
    }

    /// Creates the channel in a fresh anonymous shared region (inherited across `fork`):
    /// both endpoints, owned by the calling process.
    pub fn create(&self) -> Result<(Sender<F>, Receiver<F>), ChannelError> {
        let memory = self.fresh_region()?;
        self.create_both(memory)
    }

    /// Creates the channel in a caller's region (overwriting it): both endpoints, owned by
    /// the calling process.
    pub fn create_in(
        &self,
        memory: Arc<dyn SharedMemory>,
    ) -> Result<(Sender<F>, Receiver<F>), ChannelError> {
        self.create_both(memory)
    }

    /// Creates the channel in a caller's region and returns only the sender; a receiver
    /// attaches later with [`Receiver::attach`] (from another process, over a memfd, say).
    pub fn create_sender_in(
        &self,
        memory: Arc<dyn SharedMemory>,
    ) -> Result<Sender<F>, ChannelError> {
        self.create_one(memory, F::writer, Sender::from_ring)
    }

    /// Creates the channel in a caller's region and returns only the receiver; a sender
    /// attaches later with [`Sender::attach`].
    pub fn create_receiver_in(
        &self,
        memory: Arc<dyn SharedMemory>,
    ) -> Result<Receiver<F>, ChannelError> {
        self.create_one(memory, F::reader, Receiver::from_ring)
    }

    /// Creates the channel in a fresh sealed memfd ([`Region::memfd`]): both endpoints,
    /// owned by the calling process. Unlike [`create`](Builder::create)'s anonymous
    /// memory, this channel can reach processes `fork` did not make: its endpoints can be
    /// turned into a [`Transfer`](crate::transfer::Transfer) (the memfd plus which
    /// endpoint) and rebuilt there.
    ///
    /// ```
    /// use shm_ipc::channel::spsc::Spsc;
    /// use shm_ipc::channel::Builder;
    /// use shm_ipc::channel::Endpoint;
    /// let (tx, rx) = Builder::<Spsc>::new(4096).create_memfd()?;
    /// assert!(tx.memory().fd().is_some());
    /// # drop(rx);
    /// # Ok::<(), shm_ipc::channel::ChannelError>(())
    /// ```
    pub fn create_memfd(&self) -> Result<(Sender<F>, Receiver<F>), ChannelError> {
        let name = format!("shm-ipc-{}", F::NAME);
        let region = Region::memfd(&name, self.checked_len()?)?;
        self.create_both(Arc::new(region))
    }

    fn fresh_region(&self) -> Result<Arc<dyn SharedMemory>, ChannelError> {
        Ok(Arc::new(Region::anonymous(self.checked_len()?)?))
    }

    /// The region length for this capacity, after the capacity check.
    fn checked_len(&self) -> Result<usize, ChannelError> {
        self.checked_area()?;
        self.region_len().ok_or(ChannelError::InvalidCapacity {
            capacity: self.capacity as u64,
            reason: "too large for this address space",
        })
    }

    /// The channel's data area for this capacity (MPSC: all its lanes), after the checks
    /// of the capacity and of the area.
    fn checked_area(&self) -> Result<usize, ChannelError> {
        Layout::<F>::check_capacity(self.capacity)?;
        let area = F::area(self.capacity, &self.options).ok_or(ChannelError::InvalidCapacity {
            capacity: self.capacity as u64,
            reason: "too large for this address space",
        })?;
        crate::shared::view::check_capacity(area as u64)?;
        Ok(area)
    }

    fn create_shared(&self, memory: Arc<dyn SharedMemory>) -> Result<Layout<F>, ChannelError> {
        let area = self.checked_area()?;
        let handshake = creation_handshake(self.handshake)?;
        Layout::<F>::create(
            memory,
            &Creation {
                capacity: area,
                options: self.options.clone(),
                handshake,
                doorbells: match self.doorbells {
                    true => Some(Doorbells::new().map_err(ChannelError::Doorbell)?),
                    false => None,
                },
            },
        )
    }

    /// One end of a fresh channel in `memory`: the ring side `open` opens, made an endpoint
    /// by `end`.
    fn create_one<R, E>(
        &self,
        memory: Arc<dyn SharedMemory>,
        open: fn(Layout<F>, Claim) -> Result<R, ChannelError>,
        end: fn(R, WaitStrategy) -> E,
    ) -> Result<E, ChannelError> {
        let side = open(self.create_shared(memory)?, Claim::Create)?;
        Ok(end(side, self.strategy))
    }

    fn create_both(
        &self,
        memory: Arc<dyn SharedMemory>,
    ) -> Result<(Sender<F>, Receiver<F>), ChannelError> {
        let layout = self.create_shared(memory)?;
        let writer = F::writer(layout.clone(), Claim::Create)?;
        let reader = F::reader(layout, Claim::Create)?;
        Ok((
            Sender::from_ring(writer, self.strategy),
            Receiver::from_ring(reader, self.strategy),
        ))
    }
}

impl<F: Flavor> Sender<F> {
    /// Attaches as a sender to a channel created in `memory` by another process,
    /// validating its header. SPSC and broadcast: refused while another live process owns
    /// the sender (a dead one's place is taken over); MPSC: takes a free sender slot.
    pub fn attach(memory: Arc<dyn SharedMemory>) -> Result<Sender<F>, ChannelError> {
        let writer = F::writer(Layout::<F>::attach(memory)?, Claim::Attach)?;
        Ok(Sender::from_ring(writer, WaitStrategy::default()))
    }
}

impl<F: Flavor> Receiver<F> {
    /// Attaches as a receiver to a channel created in `memory` by another process,
    /// validating its header. SPSC and MPSC: refused while another live process owns the
    /// receiver (a dead one's place is taken over, continuing after the last message it
    /// released); broadcast: joins as a new receiver at the current tail.
    pub fn attach(memory: Arc<dyn SharedMemory>) -> Result<Receiver<F>, ChannelError> {
        let reader = F::reader(Layout::<F>::attach(memory)?, Claim::Attach)?;
        Ok(Receiver::from_ring(reader, WaitStrategy::default()))
    }
}
