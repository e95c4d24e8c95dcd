//! What every channel layout shares: the control-block view, the lines it is made of, the
//! capacity rules, and creating or attaching to a region.
//!
//! Every layout starts with the shm-core [`LayoutHeader`] on its own 128-byte line, then
//! the flavor's control lines (each `#[repr(C, align(128))]`, atomics only), then the data
//! area of `capacity` bytes. A flavor describes its control block as a `#[repr(C)]` struct
//! and reaches each line through [`View::line`], never through a reference to the whole
//! block (the header slot is plain bytes a peer may write).

use std::mem::size_of;
use std::ptr::NonNull;
use std::sync::Arc;

use shm_core::header::{self, LayoutHeader, LayoutSpec};
use shm_core::notify::{Event, Handshake};
use shm_core::SharedMemory;

use crate::doorbells::{Doorbells, Wake};
use crate::primitive::{AtomicU32, AtomicU64};
use crate::{ChannelError, Corruption};

mod creation;

pub(crate) use creation::{
    check_capacity, creation_handshake, effective_handshake, region_len, Creation,
};

/// Smallest capacity: one frame header plus 8 bytes of payload.
pub const MIN_CAPACITY: usize = 16;
/// Largest capacity: 4 GiB, so every payload length fits a frame header's 32-bit field.
pub const MAX_CAPACITY: usize = 1 << 32;

/// Room for the shm-core header, on its own line.
#[repr(C, align(128))]
pub(crate) struct HeaderSlot([u64; 16]);

const _: () = assert!(size_of::<LayoutHeader>() <= size_of::<HeaderSlot>());

/// A line of a control block: `#[repr(C)]`, made of atomics only.
///
/// # Safety
///
/// Implementors hold only atomics (or arrays of them), so any bit pattern is a valid value
/// and concurrent writers in other processes are not a data race on our side.
///
/// A line's `Default` is its state in a fresh channel: every word zero (idle events,
/// nobody attached, nothing published).
pub(crate) unsafe trait Line: Default {}

// SAFETY: two atomic u32s.
unsafe impl Line for Event {}

/// Written by the (SPSC or MPSC) sender side when it publishes or claims frames.
#[derive(Default)]
#[repr(C, align(128))]
pub(crate) struct ProducerLine {
    /// Bytes ever published (SPSC) or claimed (MPSC); a multiple of 8, and
    /// `tail - head <= capacity` (wrapping differences).
    pub(crate) tail: AtomicU64,
}

/// Written by the receiver when it releases frames.
#[derive(Default)]
#[repr(C, align(128))]
pub(crate) struct ConsumerLine {
    /// Bytes ever released; senders may overwrite everything below it.
    pub(crate) head: AtomicU64,
}

/// Ownership and close state of a channel, the same line in every flavor; written rarely
/// (attach, hand-over, drop), read on the slow paths.
#[derive(Default)]
#[repr(C, align(128))]
pub struct StatusLine {
    /// `ProcessIdentity` of the process owning the sender (SPSC, broadcast); 0 = unclaimed.
    /// MPSC senders own producer slots instead.
    pub(crate) sender_owner: AtomicU64,
    /// `ProcessIdentity` of the process owning the receiver (SPSC, MPSC); 0 = unclaimed.
    /// Broadcast receivers own reader slots instead.
    pub(crate) receiver_owner: AtomicU64,
    /// 1 once the sender was dropped by its owner (SPSC, broadcast).
    pub(crate) sender_closed: AtomicU32,
    /// 1 once the receiver was dropped by its owner (SPSC, MPSC).
    pub(crate) receiver_closed: AtomicU32,
    /// MPSC: producer slots in use (claimed and not yet released or reaped).
    pub(crate) senders: AtomicU32,
    /// Broadcast: 0 back-pressure, 1 overwrite.
    pub(crate) policy: AtomicU32,
    /// The channel's wake handshake ([`Handshake::to_u32`]): written by the creator before
    /// the header's magic is published, read once by every process that attaches, never
    /// on a hot path. 0 (unwritten) and unknown values are refused at attach.
    pub(crate) handshake: AtomicU32,
}

#[cfg(not(loom))]
const _: () = {
    use std::mem::offset_of;
    assert!(offset_of!(StatusLine, receiver_owner) == 8);
    assert!(offset_of!(StatusLine, sender_closed) == 16);
    assert!(offset_of!(StatusLine, receiver_closed) == 20);
    assert!(offset_of!(StatusLine, senders) == 24);
    assert!(offset_of!(StatusLine, policy) == 28);
    assert!(offset_of!(StatusLine, handshake) == 32);
};

// SAFETY: atomics only.
unsafe impl Line for StatusLine {}
// SAFETY: atomics only.
unsafe impl Line for ProducerLine {}
// SAFETY: atomics only.
unsafe impl Line for ConsumerLine {}

/// The two events endpoints sleep on.
#[derive(Default)]
#[repr(C, align(128))]
pub struct EventLine {
    /// The receiver sleeps here for data; the sender notifies after publishing.
    pub(crate) data: Event,
    /// The sender sleeps here for room; the receiver notifies after releasing.
    pub(crate) space: Event,
}

// SAFETY: two `Event`s, atomics only.
unsafe impl Line for EventLine {}

/// The layout spec of a flavor's region: its magic and version, and a hash over the sizes
/// and alignments of the shared types every layout has (header, status and event lines,
/// frame word) plus the flavor's own (`types`: its control block, lines and slots).
pub(crate) const fn layout_spec(
    magic: &[u8; 8],
    version: u32,
    types: &[(usize, usize)],
) -> LayoutSpec {
    let common = header::layout_hash(&[
        (
            size_of::<LayoutHeader>(),
            std::mem::align_of::<LayoutHeader>(),
        ),
        (size_of::<HeaderSlot>(), std::mem::align_of::<HeaderSlot>()),
        (size_of::<StatusLine>(), std::mem::align_of::<StatusLine>()),
        (size_of::<EventLine>(), std::mem::align_of::<EventLine>()),
        (
            crate::frame::FRAME_HEADER_LEN,
            crate::frame::FRAME_HEADER_LEN,
        ),
    ]);
    LayoutSpec {
        magic: u64::from_le_bytes(*magic),
        version,
        layout_hash: common ^ header::layout_hash(types).rotate_left(17),
    }
}

/// Static checks of a flavor's control block: `Type { field: offset, ... }` for the offsets
/// the layout documents (and tests poke), and `DATA_OFFSET` (the size of `Control`).
macro_rules! assert_offsets {
    ($($ty:ident { $($field:ident: $offset:expr),* $(,)? }),* $(,)? ; data: $data:expr) => {
        #[cfg(not(loom))]
        const _: () = {
            $($(assert!(std::mem::offset_of!($ty, $field) == $offset);)*)*
            assert!(DATA_OFFSET == $data);
        };
    };
}
pub(crate) use assert_offsets;

/// The items every `ChannelLayout` impl gives the same way: its options type, and the
/// offsets from the flavor's `Control` block and `DATA_OFFSET` in scope.
macro_rules! layout_offsets {
    (Options = $options:ty) => {
        type Options = $options;
        const DATA_OFFSET: usize = DATA_OFFSET;
        const EVENTS: usize = std::mem::offset_of!(Control, events);
        const STATUS: usize = std::mem::offset_of!(Control, status);
    };
}
pub(crate) use layout_offsets;

/// A validated view of a channel's region: the control block, the data area and the
/// capacity, checked once and cached privately (never re-read from the header).
pub struct View {
    /// Keeps the mapping alive for as long as any pointer below is used.
    memory: Arc<dyn SharedMemory>,
    control: NonNull<u8>,
    control_len: usize,
    data: *mut u8,
    capacity: u64,
    /// The channel's wake handshake: chosen at creation, or read from the status line and
    /// validated at attach, then never re-read from shared memory. The calling process is
    /// prepared for it (registered, for `Membarrier`).
    handshake: Handshake,
    /// The channel's doorbells in this process, if it has them (see `crate::doorbells`).
    doorbells: Option<Arc<Doorbells>>,
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
            data: self.data,
            capacity: self.capacity,
            handshake: self.handshake,
            doorbells: self.doorbells.clone(),
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
        Ok(View {
            memory,
            control,
            control_len: data_offset,
            data,
            capacity,
            handshake: Handshake::SeqCst,
            doorbells: None,
        })
    }

    /// Views the region of a channel being created with a control block of `data_offset`
    /// bytes and `capacity` data bytes, using `handshake` (from [`creation_handshake`]: the
    /// calling process is prepared for it). Nothing is written yet.
    pub(crate) fn create(
        memory: Arc<dyn SharedMemory>,
        data_offset: usize,
        capacity: u64,
        handshake: Handshake,
    ) -> Result<View, ChannelError> {
        let mut view = View::new(memory, data_offset, capacity)?;
        view.handshake = handshake;
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
        header::write(&*self.memory, spec, self.capacity)?;
        Ok(())
    }

    /// The channel's wake handshake, as cached at creation or attach.
    #[inline]
    pub(crate) fn handshake(&self) -> Handshake {
        self.handshake
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

    /// Start of the data area: valid for `capacity` bytes.
    pub(crate) fn data(&self) -> *mut u8 {
        self.data
    }

    /// Capacity in bytes: a power of two in `MIN_CAPACITY ..= MAX_CAPACITY`.
    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The memory this view keeps alive.
    pub(crate) fn memory(&self) -> &Arc<dyn SharedMemory> {
        &self.memory
    }
}

/// A flavor's region: how it is created and attached, and where its events are. Public in
/// a private module: part of the sealed flavor contract.
pub trait ChannelLayout: Clone + Send + Sync + Sized {
    /// Creation options of the flavor (broadcast: its policy).
    type Options: Clone + Default + std::fmt::Debug;
    /// Offset of the data area: the size of the control block.
    const DATA_OFFSET: usize;
    /// Offset of the [`EventLine`] in the control block.
    const EVENTS: usize;
    /// Offset of the [`StatusLine`] in the control block.
    const STATUS: usize;
    /// Smallest capacity of the flavor.
    const MIN_CAPACITY: usize = MIN_CAPACITY;

    /// Lays out a fresh channel in `memory` (`zeroed`: the memory is known to be all zero,
    /// so nothing needs clearing) using `handshake` (from [`creation_handshake`]), header
    /// last.
    fn create(
        memory: Arc<dyn SharedMemory>,
        how: &Creation<Self::Options>,
    ) -> Result<Self, ChannelError>;

    /// Validates the header of an existing channel in `memory` and views it.
    fn attach(memory: Arc<dyn SharedMemory>) -> Result<Self, ChannelError>;

    /// The validated view.
    fn view(&self) -> &View;

    /// The validated view, to give it doorbells after an attach.
    fn view_mut(&mut self) -> &mut View;

    /// This layout with the channel's doorbells in this process.
    fn with_doorbells(mut self, doorbells: Option<Arc<Doorbells>>) -> Self {
        self.view_mut().set_doorbells(doorbells);
        self
    }

    /// The channel's wake handshake (cached privately at creation or attach).
    #[inline]
    fn handshake(&self) -> Handshake {
        self.view().handshake()
    }

    /// Region bytes a channel of `capacity` needs, if the sum fits.
    fn region_len(capacity: usize) -> Option<usize> {
        Self::DATA_OFFSET.checked_add(capacity)
    }

    /// Checks `capacity` (before anything is mapped): a power of two, at least
    /// `MIN_CAPACITY`, at most `MAX_CAPACITY`.
    fn check_capacity(capacity: usize) -> Result<(), ChannelError> {
        check_capacity(capacity as u64)?;
        if capacity < Self::MIN_CAPACITY {
            return Err(ChannelError::InvalidCapacity {
                capacity: capacity as u64,
                reason: "below the smallest capacity of this kind of channel",
            });
        }
        Ok(())
    }

    /// The status line: owners and closed flags.
    fn status(&self) -> &StatusLine {
        // SAFETY: `STATUS` is the offset of the status line in the flavor's control block.
        unsafe { self.view().line(Self::STATUS) }
    }

    /// Both events.
    fn events(&self) -> &EventLine {
        // SAFETY: `EVENTS` is the offset of the event line in the flavor's control block.
        unsafe { self.view().line(Self::EVENTS) }
    }

    /// The data event and its doorbell: what a publishing sender wakes.
    fn data_wake(&self) -> Wake<'_> {
        Wake {
            event: &self.events().data,
            view: self.view(),
            end: Doorbells::sender_end,
        }
    }

    /// The space event and its doorbell: what a releasing receiver wakes.
    fn space_wake(&self) -> Wake<'_> {
        Wake {
            event: &self.events().space,
            view: self.view(),
            end: Doorbells::receiver_end,
        }
    }

    /// The data event (receivers sleep on it), as an owned handle.
    fn data_event(&self) -> EventRef {
        // SAFETY: the offset of `data` in the event line.
        unsafe {
            self.view()
                .event(Self::EVENTS + std::mem::offset_of!(EventLine, data))
        }
    }

    /// The space event (senders sleep on it), as an owned handle.
    fn space_event(&self) -> EventRef {
        // SAFETY: the offset of `space` in the event line.
        unsafe {
            self.view()
                .event(Self::EVENTS + std::mem::offset_of!(EventLine, space))
        }
    }
}

/// For a flavor's `Control` block (in scope as `Control`, viewed by `self.view`): an
/// accessor per line, `name: Type`, and `init_lines`, which writes each listed line fresh,
/// plus the status line at `status` and the event line at `events`.
macro_rules! control_lines {
    ($($name:ident: $line:ty),* $(,)?) => {
        $(
            pub(crate) fn $name(&self) -> &$line {
                // SAFETY: the offset of the `$name` line in this flavor's `Control` block.
                unsafe { self.view.line(std::mem::offset_of!(Control, $name)) }
            }
        )*

        /// Writes every line of a fresh channel (the flavor adds its slot arrays).
        ///
        /// # Safety
        ///
        /// Nobody may use the region yet: we are creating it.
        unsafe fn init_lines(view: &$crate::layout::View) {
            // SAFETY: the offsets are those of the lines in `Control` (checked statically
            // by the flavor's layout); the caller guarantees exclusive use.
            unsafe {
                $(view.init_line::<$line>(std::mem::offset_of!(Control, $name));)*
                view.init_line::<$crate::layout::StatusLine>(std::mem::offset_of!(Control, status));
                view.init_line::<$crate::layout::EventLine>(std::mem::offset_of!(Control, events));
            }
        }
    };
}
pub(crate) use control_lines;

/// An event in a channel's control block, with the mapping it lives in kept alive: owned,
/// so a wait on it can run while the endpoint it belongs to is borrowed mutably.
pub struct EventRef {
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
