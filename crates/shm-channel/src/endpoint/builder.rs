//! Creating and attaching channels of every flavor: one builder, one capacity check (before
//! anything is mapped), one attach path.

use std::sync::Arc;

use shm_core::notify::WaitStrategy;
use shm_core::{Region, SharedMemory};

use super::{Flavor, Receiver, Sender};
use crate::layout::ChannelLayout;
use crate::ChannelError;

/// How a ring side is set up for the calling process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// In a channel this process is creating: the owner slot is simply written.
    Create,
    /// In an existing channel: the slot is claimed, refused while a live process owns it.
    Attach,
}

/// Options for creating a channel of flavor `F`.
///
/// ```
/// use shm_channel::spsc::Builder;
/// use shm_core::notify::WaitStrategy;
/// let (tx, rx) = Builder::new(1 << 16).wait_strategy(WaitStrategy::Park).create()?;
/// assert_eq!(tx.capacity(), 1 << 16);
/// // Refused before anything is mapped:
/// assert!(Builder::new(1 << 40).create().is_err());
/// # Ok::<(), shm_channel::ChannelError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until a channel is created from it"]
pub struct Builder<F: Flavor> {
    capacity: usize,
    strategy: WaitStrategy,
    pub(crate) options: <F::Shared as ChannelLayout>::Options,
}

impl<F: Flavor> Builder<F> {
    /// A channel of `capacity` bytes of frames (a power of two, 16 B to 4 GiB; broadcast
    /// needs at least 32).
    pub fn new(capacity: usize) -> Builder<F> {
        Builder {
            capacity,
            strategy: WaitStrategy::default(),
            options: Default::default(),
        }
    }

    /// How the endpoints wait when the ring is full or empty (default: spin, then park).
    pub fn wait_strategy(mut self, strategy: WaitStrategy) -> Builder<F> {
        self.strategy = strategy;
        self
    }

    /// Bytes of shared memory a channel of this capacity needs.
    pub fn region_len(&self) -> Option<usize> {
        F::Shared::region_len(self.capacity)
    }

    /// Creates the channel in a fresh anonymous shared region (inherited across `fork`):
    /// both endpoints, owned by the calling process.
    pub fn create(&self) -> Result<(Sender<F>, Receiver<F>), ChannelError> {
        let memory = self.fresh_region()?;
        self.create_both(memory, true)
    }

    /// Creates the channel in a caller's region (overwriting it): both endpoints, owned by
    /// the calling process.
    pub fn create_in(
        &self,
        memory: Arc<dyn SharedMemory>,
    ) -> Result<(Sender<F>, Receiver<F>), ChannelError> {
        self.create_both(memory, false)
    }

    /// Creates the channel in a caller's region and returns only the sender; a receiver
    /// attaches later with [`Receiver::attach`] (from another process, over a memfd, say).
    pub fn create_sender_in(
        &self,
        memory: Arc<dyn SharedMemory>,
    ) -> Result<Sender<F>, ChannelError> {
        let shared = self.create_shared(memory, false)?;
        Ok(Sender::from_ring(
            F::writer(shared, Claim::Create)?,
            self.strategy,
        ))
    }

    /// Creates the channel in a caller's region and returns only the receiver; a sender
    /// attaches later with [`Sender::attach`].
    pub fn create_receiver_in(
        &self,
        memory: Arc<dyn SharedMemory>,
    ) -> Result<Receiver<F>, ChannelError> {
        let shared = self.create_shared(memory, false)?;
        Ok(Receiver::from_ring(
            F::reader(shared, Claim::Create)?,
            self.strategy,
        ))
    }

    fn fresh_region(&self) -> Result<Arc<dyn SharedMemory>, ChannelError> {
        F::Shared::check_capacity(self.capacity)?;
        let len = self.region_len().ok_or(ChannelError::InvalidCapacity {
            capacity: self.capacity as u64,
            reason: "too large for this address space",
        })?;
        Ok(Arc::new(Region::anonymous(len)?))
    }

    fn create_shared(
        &self,
        memory: Arc<dyn SharedMemory>,
        zeroed: bool,
    ) -> Result<F::Shared, ChannelError> {
        F::Shared::check_capacity(self.capacity)?;
        F::Shared::create(memory, self.capacity, &self.options, zeroed)
    }

    fn create_both(
        &self,
        memory: Arc<dyn SharedMemory>,
        zeroed: bool,
    ) -> Result<(Sender<F>, Receiver<F>), ChannelError> {
        let shared = self.create_shared(memory, zeroed)?;
        let writer = F::writer(shared.clone(), Claim::Create)?;
        let reader = F::reader(shared, Claim::Create)?;
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
        let shared = F::Shared::attach(memory)?;
        Ok(Sender::from_ring(
            F::writer(shared, Claim::Attach)?,
            WaitStrategy::default(),
        ))
    }
}

impl<F: Flavor> Receiver<F> {
    /// Attaches as a receiver to a channel created in `memory` by another process,
    /// validating its header. SPSC and MPSC: refused while another live process owns the
    /// receiver (a dead one's place is taken over, continuing after the last message it
    /// released); broadcast: joins as a new receiver at the current tail.
    pub fn attach(memory: Arc<dyn SharedMemory>) -> Result<Receiver<F>, ChannelError> {
        let shared = F::Shared::attach(memory)?;
        Ok(Receiver::from_ring(
            F::reader(shared, Claim::Attach)?,
            WaitStrategy::default(),
        ))
    }
}
