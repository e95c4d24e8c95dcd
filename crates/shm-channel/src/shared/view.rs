//! A validated view of a channel's region: the control block, the data area and the
//! capacity, checked once and cached privately (never re-read from the header); the events
//! in it, and what a notifier wakes.
//!
//! A flavor describes its control block as a `#[repr(C)]` struct of [`Line`]s and reaches
//! each line through [`View::line`], never through a reference to the whole block (the
//! header slot is plain bytes a peer may write).

use std::mem::size_of;
use std::ptr::NonNull;
use std::sync::Arc;

use shm_core::header::{self, LayoutSpec};
use shm_core::notify::{Event, Handshake};
use shm_core::SharedMemory;

use super::creation::{effective_handshake, Creation};
use super::doorbells::{Doorbells, End};
use super::lines::{Line, StatusLine};
use super::primitive::DataArea;
use super::queue::SendQueue;
use crate::{ChannelError, Corruption};

/// Smallest capacity: one frame header plus 8 bytes of payload.
pub const MIN_CAPACITY: usize = 16;
/// Largest capacity: 4 GiB, so every payload length fits a frame header's 32-bit field.
pub const MAX_CAPACITY: usize = 1 << 32;

/// Region bytes a channel whose data area starts at `data_offset` needs for `capacity`.
pub(crate) fn region_len(data_offset: usize, capacity: u64) -> Result<usize, ChannelError> {
    usize::try_from(capacity)
        .ok()
        .and_then(|capacity| data_offset.checked_add(capacity))
        .ok_or(ChannelError::InvalidCapacity {
            capacity,
            reason: "too large for this address space",
        })
}

/// A capacity is a power of two between `MIN_CAPACITY` and `MAX_CAPACITY`.
pub(crate) fn check_capacity(capacity: u64) -> Result<(), ChannelError> {
    let reason = if !capacity.is_power_of_two() {
        "must be a power of two"
    } else if capacity < MIN_CAPACITY as u64 {
        "must be at least 16 bytes"
    } else if capacity > MAX_CAPACITY as u64 {
        "must be at most 4 GiB"
    } else {
        return Ok(());
    };
    Err(ChannelError::InvalidCapacity { capacity, reason })
}

/// A validated view of a channel's region: the control block, the data area and the
/// capacity, checked once and cached privately (never re-read from the header).
pub(crate) struct View {
    /// Keeps the mapping alive for as long as any pointer below is used.
    memory: Arc<dyn SharedMemory>,
    control: NonNull<u8>,
    control_len: usize,
    /// The data area: `capacity` bytes after the control block.
    data: DataArea,
    /// The channel's wake handshake: chosen at creation, or read from the status line and
    /// validated at attach, then never re-read from shared memory. The calling process is
    /// prepared for it (registered, for `Membarrier`).
    handshake: Handshake,
    /// The channel's doorbells in this process, if it has them (see `super::doorbells`).
    doorbells: Option<Arc<Doorbells>>,
    /// The async senders waiting in this process (see `super::queue`), shared by the
    /// views cloned from this one.
    senders: Arc<SendQueue>,
}

// SAFETY: `View` holds pointers into memory kept alive by `memory` (itself Send + Sync);
// everything reached through them is atomic or copied through raw pointers.
unsafe impl Send for View {}
// SAFETY: see `Send`.
unsafe impl Sync for View {}

impl Clone for View {
    fn clone(&self) -> View {
        View {
            memory: Arc::clone(&self.memory),
            control: self.control,
            control_len: self.control_len,
            data: self.data.clone(),
            handshake: self.handshake,
            doorbells: self.doorbells.clone(),
            senders: Arc::clone(&self.senders),
        }
    }
}

impl View {
    /// Checks that a control block of `data_offset` bytes and `capacity` data bytes fit in
    /// `memory`, and that the capacity is one a channel may have.
    fn new(
        memory: Arc<dyn SharedMemory>,
        data_offset: usize,
        capacity: u64,
    ) -> Result<View, ChannelError> {
        check_capacity(capacity)?;
        let len = memory.len();
        let needed = region_len(data_offset, capacity)?;
        let too_small = |_| ChannelError::RegionTooSmall { needed, len };
        let control = memory.ptr_at(0, data_offset).map_err(too_small)?;
        let data = memory
            .ptr_at(data_offset, capacity as usize)
            .map_err(too_small)?;
        let control = NonNull::new(control).ok_or(ChannelError::RegionTooSmall { needed, len })?;
        // SAFETY: `data` is valid for `capacity` bytes of the mapping `memory` keeps alive
        // (checked by `ptr_at`), 8-aligned (the layouts' data offsets are multiples of 128
        // in a page-aligned region), and the capacity passed `check_capacity`.
        let data = unsafe { DataArea::new(data, capacity) };
        Ok(View {
            memory,
            control,
            control_len: data_offset,
            data,
            handshake: Handshake::SeqCst,
            doorbells: None,
            senders: Arc::default(),
        })
    }

    /// Views the region of a channel being created as `how` says, with a control block of
    /// `data_offset` bytes (its handshake comes from
    /// [`creation_handshake`](super::creation::creation_handshake): the calling process is
    /// prepared for it). Nothing is written yet.
    pub(crate) fn create<O>(
        memory: Arc<dyn SharedMemory>,
        data_offset: usize,
        how: &Creation<O>,
    ) -> Result<View, ChannelError> {
        let mut view = View::new(memory, data_offset, how.capacity as u64)?;
        view.handshake = how.handshake;
        view.doorbells = how.doorbells.clone();
        Ok(view)
    }

    /// Validates the header of a channel of kind `spec` in `memory` and views it: also the
    /// handshake recorded in the status line at `status` (a flavor's `STATUS` offset),
    /// which the calling process is then prepared for.
    pub(crate) fn attach(
        memory: Arc<dyn SharedMemory>,
        spec: &LayoutSpec,
        data_offset: usize,
        status: usize,
    ) -> Result<View, ChannelError> {
        let capacity = header::validate(&*memory, spec)?.capacity_untrusted;
        let mut view = View::new(memory, data_offset, capacity)?;
        // SAFETY: `status` is the offset of the status line in the flavor's control block.
        let line = unsafe { view.line::<StatusLine>(status) };
        // Relaxed: written before the header, whose magic `header::validate` loaded with
        // Acquire (SYNC: header published). Loaded once, here.
        let handshake_untrusted = line.handshake.load(std::sync::atomic::Ordering::Relaxed);
        let handshake = Handshake::from_u32(handshake_untrusted).ok_or(ChannelError::Corrupted(
            Corruption {
                what: "wake handshake word",
                value: handshake_untrusted.into(),
            },
        ))?;
        let handshake = effective_handshake(handshake);
        // This process publishes too (each side notifies the other): it must take part.
        handshake.prepare()?;
        view.handshake = handshake;
        Ok(view)
    }

    /// Writes the handshake word into the status line at `status`, then the header of kind
    /// `spec`: the last step of creating a channel (the magic is stored last, with Release,
    /// so an attacher that validates it sees the lines and the handshake).
    pub(crate) fn publish_header(
        &self,
        spec: &LayoutSpec,
        status: usize,
    ) -> Result<(), ChannelError> {
        // SAFETY: `status` is the offset of the status line in the flavor's control block.
        let line = unsafe { self.line::<StatusLine>(status) };
        // Relaxed: published by the Release store of the magic in `header::write` (SYNC:
        // header published).
        line.handshake.store(
            self.handshake.to_u32(),
            std::sync::atomic::Ordering::Relaxed,
        );
        header::write(&*self.memory, spec, self.capacity())?;
        Ok(())
    }

    /// The channel's wake handshake, as cached at creation or attach.
    #[inline]
    pub(crate) fn handshake(&self) -> Handshake {
        self.handshake
    }

    /// The async senders waiting for room in this process.
    #[inline]
    pub(crate) fn send_queue(&self) -> &SendQueue {
        &self.senders
    }

    /// The channel's doorbells in this process, if it has them.
    pub(crate) fn doorbells(&self) -> Option<&Arc<Doorbells>> {
        self.doorbells.as_ref()
    }

    /// Gives the view the channel's doorbells (creating it, or attaching with doorbells
    /// passed from another process).
    pub(crate) fn set_doorbells(&mut self, doorbells: Option<Arc<Doorbells>>) {
        self.doorbells = doorbells;
    }

    /// The line of type `T` at `offset` of the control block.
    ///
    /// # Safety
    ///
    /// `offset` must be the offset of a `T` in this flavor's control block (checked
    /// statically with `offset_of!` by each layout), so it is aligned for `T`.
    pub(crate) unsafe fn line<T: Line>(&self, offset: usize) -> &T {
        debug_assert!(offset + size_of::<T>() <= self.control_len);
        debug_assert!(offset % std::mem::align_of::<T>() == 0);
        // SAFETY: the caller passes the offset of a `T` inside the control block, which lies
        // inside the live mapping (checked in `new`) at a page-aligned base; `T` is atomics
        // only (`Line`), valid for any bit pattern and for concurrent writers; the reference
        // lives no longer than `self`, which keeps the mapping.
        unsafe { &*self.control.as_ptr().add(offset).cast::<T>() }
    }

    /// Writes a fresh line of type `T` at `offset` (creating a channel).
    ///
    /// # Safety
    ///
    /// As for [`line`](View::line); and no other endpoint may use the region yet.
    pub(crate) unsafe fn init_line<T: Line>(&self, offset: usize) {
        debug_assert!(offset + size_of::<T>() <= self.control_len);
        // SAFETY: in bounds and aligned (the caller's contract); nobody reads the line while
        // the channel is being created, and `write` forms no reference to the old bytes.
        unsafe {
            self.control
                .as_ptr()
                .add(offset)
                .cast::<T>()
                .write(T::default())
        }
    }

    /// An owned handle on the event at `offset`, for wait loops that also need `&mut`
    /// access to the endpoint (the handle keeps the mapping alive by itself).
    ///
    /// # Safety
    ///
    /// As for [`line`](View::line).
    pub(crate) unsafe fn event(&self, offset: usize) -> EventRef {
        // SAFETY: forwarded to the caller.
        let event = NonNull::from(unsafe { self.line::<Event>(offset) });
        EventRef {
            _memory: Arc::clone(&self.memory),
            event,
        }
    }

    /// The data area: `capacity` bytes of frames.
    #[inline]
    pub(crate) fn data(&self) -> &DataArea {
        &self.data
    }

    /// Capacity in bytes: a power of two in `MIN_CAPACITY ..= MAX_CAPACITY`.
    #[inline]
    pub(crate) fn capacity(&self) -> u64 {
        self.data.capacity()
    }

    /// The memory this view keeps alive.
    pub(crate) fn memory(&self) -> &Arc<dyn SharedMemory> {
        &self.memory
    }
}

/// An event in a channel's control block, with the mapping it lives in kept alive: owned,
/// so a wait on it can run while the endpoint it belongs to is borrowed mutably.
#[derive(Clone)]
pub(crate) struct EventRef {
    _memory: Arc<dyn SharedMemory>,
    event: NonNull<Event>,
}

// SAFETY: the pointer targets an `Event` (atomics only) in a mapping `_memory` keeps alive.
unsafe impl Send for EventRef {}
// SAFETY: see `Send`.
unsafe impl Sync for EventRef {}

impl EventRef {
    /// The event.
    pub(crate) fn get(&self) -> &Event {
        // SAFETY: `View::event` made the pointer from a valid `&Event` in the mapping that
        // `_memory` keeps alive as long as `self`.
        unsafe { self.event.as_ref() }
    }
}

/// An event of a channel, and where its doorbell is if the channel has one here: what a
/// notifier wakes. The doorbell is looked up only on the cold path, after a notification
/// that found a waiter; the publishing path just carries the references.
#[derive(Clone, Copy)]
pub(crate) struct Wake<'a> {
    pub(crate) event: &'a Event,
    view: &'a View,
    end: End,
}

impl<'a> Wake<'a> {
    /// What notifying `event` of the channel viewed by `view` wakes: its sleepers, and the
    /// async waiters behind the doorbell `end`.
    pub(crate) fn new(event: &'a Event, view: &'a View, end: End) -> Wake<'a> {
        Wake { event, view, end }
    }

    /// After a notification of `event` that found a waiter (`woke`): rings the doorbell if
    /// an async waiter is among them. Passes `woke` through.
    #[inline]
    pub(crate) fn then_ring(self, woke: bool) -> bool {
        if woke {
            self.ring_async();
        }
        woke
    }

    #[cold]
    #[inline(never)]
    fn ring_async(self) {
        if let Some(doorbells) = self.view.doorbells() {
            // A doorbell that cannot be rung (EBADF cannot happen on a descriptor we own)
            // leaves the async waiter to its slow-check ticks, as a failing FUTEX_WAKE
            // leaves a sleeper to its slice: a delay, not a hang.
            let _ = self.event.ring_if_async((self.end)(doorbells));
        }
    }

    /// [`Event::notify`] (a full fence: for the rare wake-ups of closing endpoints), and
    /// the doorbell.
    pub(crate) fn notify(self) -> bool {
        self.then_ring(self.event.notify())
    }
}
