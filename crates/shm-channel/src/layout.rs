//! The SPSC channel's layout in shared memory, and creating or attaching to it.
//!
//! ```text
//! offset   0  LayoutHeader (shm-core), padded to 128 bytes
//! offset 128  ProducerLine: tail                      written by the sender on publish
//! offset 256  ConsumerLine: head                      written by the receiver on release
//! offset 384  StatusLine:   owners, closed flags      written rarely (attach, drop)
//! offset 512  EventLine:    data and space events     touched only around sleeps
//! offset 640  data: `capacity` bytes of frames
//! ```
//!
//! Head and tail sit on separate 128-byte lines (two 64-byte lines: the adjacent-line
//! prefetcher pulls pairs) so the sender's and receiver's stores never share a line. The
//! status line is read on the hot path (is the peer gone?) but written only when an endpoint
//! changes hands or closes, so it stays shared in both caches.

use std::mem::{align_of, size_of};
use std::sync::Arc;

use shm_core::header::{self, LayoutHeader, LayoutSpec};
use shm_core::notify::Event;
use shm_core::SharedMemory;

use crate::frame::FRAME_HEADER_LEN;
use crate::primitive::{AtomicU32, AtomicU64};
use crate::ChannelError;

/// Smallest capacity: one frame header plus 8 bytes of payload.
pub const MIN_CAPACITY: usize = 16;
/// Largest capacity: 4 GiB, so every payload length fits the frame header's 32-bit field.
pub const MAX_CAPACITY: usize = 1 << 32;

/// Written by the sender when it publishes frames.
#[repr(C, align(128))]
pub(crate) struct ProducerLine {
    /// Bytes ever published; frames below it are complete. Monotonic, a multiple of 8, and
    /// `tail - head <= capacity`.
    pub(crate) tail: AtomicU64,
}

/// Written by the receiver when it releases frames.
#[repr(C, align(128))]
pub(crate) struct ConsumerLine {
    /// Bytes ever released; the sender may overwrite everything below it. Monotonic.
    pub(crate) head: AtomicU64,
}

/// Ownership and close state of both endpoints; written rarely.
#[repr(C, align(128))]
pub(crate) struct StatusLine {
    /// `ProcessIdentity` of the process owning the sender; 0 = unclaimed.
    pub(crate) sender_owner: AtomicU64,
    /// `ProcessIdentity` of the process owning the receiver; 0 = unclaimed.
    pub(crate) receiver_owner: AtomicU64,
    /// 1 once the sender was dropped by its owner.
    pub(crate) sender_closed: AtomicU32,
    /// 1 once the receiver was dropped by its owner.
    pub(crate) receiver_closed: AtomicU32,
}

/// The two events endpoints sleep on.
#[repr(C, align(128))]
pub(crate) struct EventLine {
    /// The receiver sleeps here for data; the sender notifies after publishing.
    pub(crate) data: Event,
    /// The sender sleeps here for room; the receiver notifies after releasing.
    pub(crate) space: Event,
}

impl ProducerLine {
    /// The line of a fresh channel: nothing published.
    pub(crate) fn new() -> ProducerLine {
        ProducerLine {
            tail: AtomicU64::new(0),
        }
    }
}

impl ConsumerLine {
    /// The line of a fresh channel: nothing released.
    pub(crate) fn new() -> ConsumerLine {
        ConsumerLine {
            head: AtomicU64::new(0),
        }
    }
}

impl EventLine {
    /// Both events idle.
    pub(crate) fn new() -> EventLine {
        EventLine {
            data: Event::new(),
            space: Event::new(),
        }
    }
}

/// Room for the shm-core header, on its own line.
#[repr(C, align(128))]
struct HeaderSlot([u64; 16]);

/// The control block at offset 0 of the region. Never referenced as a whole: each line is
/// reached through its own pointer.
#[repr(C)]
pub(crate) struct Control {
    header: HeaderSlot,
    producer: ProducerLine,
    consumer: ConsumerLine,
    status: StatusLine,
    events: EventLine,
}

/// Offset of the data area: right after the control block.
pub(crate) const DATA_OFFSET: usize = size_of::<Control>();

#[cfg(not(loom))]
const _: () = {
    use std::mem::offset_of;
    assert!(size_of::<LayoutHeader>() <= size_of::<HeaderSlot>());
    assert!(offset_of!(Control, producer) == 128);
    assert!(offset_of!(Control, consumer) == 256);
    assert!(offset_of!(Control, status) == 384);
    assert!(offset_of!(StatusLine, receiver_owner) == 8);
    assert!(offset_of!(StatusLine, sender_closed) == 16);
    assert!(offset_of!(StatusLine, receiver_closed) == 20);
    assert!(offset_of!(Control, events) == 512);
    assert!(offset_of!(EventLine, space) == 8);
    assert!(DATA_OFFSET == 640);
};

/// The layout this build speaks: bump `version` on any incompatible change.
pub(crate) const SPSC_SPEC: LayoutSpec = LayoutSpec {
    magic: u64::from_le_bytes(*b"SHMSPSC1"),
    version: 1,
    layout_hash: header::layout_hash(&[
        (size_of::<LayoutHeader>(), align_of::<LayoutHeader>()),
        (size_of::<Control>(), align_of::<Control>()),
        (size_of::<ProducerLine>(), align_of::<ProducerLine>()),
        (size_of::<ConsumerLine>(), align_of::<ConsumerLine>()),
        (size_of::<StatusLine>(), align_of::<StatusLine>()),
        (size_of::<EventLine>(), align_of::<EventLine>()),
        (FRAME_HEADER_LEN, FRAME_HEADER_LEN),
    ]),
};

/// Region bytes a channel of `capacity` needs.
pub fn region_len_for(capacity: usize) -> Option<usize> {
    DATA_OFFSET.checked_add(capacity)
}

/// A validated view of a channel's shared memory: pointers to each line and the data area,
/// and the capacity, checked once and cached privately (never re-read from the header).
pub(crate) struct Shared {
    /// Keeps the mapping alive for as long as any pointer below is used.
    memory: Arc<dyn SharedMemory>,
    control: *mut Control,
    data: *mut u8,
    capacity: u64,
    /// Under loom, the frame header words live here (one per 8 data bytes) as loom
    /// atomics, so that the models see — and interleave — every header store and load.
    #[cfg(loom)]
    pub(crate) loom_headers: Arc<Vec<AtomicU64>>,
}

// SAFETY: `Shared` holds pointers into memory kept alive by `memory` (itself Send + Sync);
// everything reached through them is atomic or accessed through raw-pointer copies, so the
// view may move between and be shared by threads.
unsafe impl Send for Shared {}
// SAFETY: see `Send`.
unsafe impl Sync for Shared {}

impl Shared {
    /// Lays out a fresh channel of `capacity` bytes in `memory` (overwriting it), and writes
    /// the header last.
    pub(crate) fn create(
        memory: Arc<dyn SharedMemory>,
        capacity: usize,
    ) -> Result<Shared, ChannelError> {
        check_capacity(capacity as u64)?;
        let shared = Shared::view(memory, capacity as u64)?;
        let control = shared.control;
        // SAFETY: `view` checked that the control block lies inside the region, which is
        // page-aligned (so each line's alignment holds). Nothing else uses the region yet
        // (we are creating it), and `addr_of_mut!` + `write` forms no reference to the
        // not-yet-initialised lines.
        unsafe {
            std::ptr::addr_of_mut!((*control).producer).write(ProducerLine::new());
            std::ptr::addr_of_mut!((*control).consumer).write(ConsumerLine::new());
            std::ptr::addr_of_mut!((*control).status).write(StatusLine {
                sender_owner: AtomicU64::new(0),
                receiver_owner: AtomicU64::new(0),
                sender_closed: AtomicU32::new(0),
                receiver_closed: AtomicU32::new(0),
            });
            std::ptr::addr_of_mut!((*control).events).write(EventLine::new());
        }
        header::write(&*shared.memory, &SPSC_SPEC, capacity as u64)?;
        Ok(shared)
    }

    /// Validates the header of an existing channel in `memory` and returns a view of it.
    pub(crate) fn attach(memory: Arc<dyn SharedMemory>) -> Result<Shared, ChannelError> {
        let capacity = attached_capacity(&*memory, &SPSC_SPEC)?;
        Shared::view(memory, capacity)
    }

    /// Checks that the control block and `capacity` data bytes fit in `memory`.
    fn view(memory: Arc<dyn SharedMemory>, capacity: u64) -> Result<Shared, ChannelError> {
        let (control, data) = split_region(&*memory, DATA_OFFSET, capacity)?;
        let control = control.cast::<Control>();
        Ok(Shared {
            memory,
            control,
            data,
            capacity,
            #[cfg(loom)]
            loom_headers: Arc::new((0..capacity / 8).map(|_| AtomicU64::new(0)).collect()),
        })
    }

    pub(crate) fn producer(&self) -> &ProducerLine {
        // SAFETY: the line lies inside the live region (checked in `view`), is initialised
        // (by `create`, or by the creator whose header `attach` validated; all-zero bytes are
        // valid too), and holds only atomics, which tolerate concurrent writers.
        unsafe { &*std::ptr::addr_of!((*self.control).producer) }
    }

    pub(crate) fn consumer(&self) -> &ConsumerLine {
        // SAFETY: as in `producer`.
        unsafe { &*std::ptr::addr_of!((*self.control).consumer) }
    }

    pub(crate) fn status(&self) -> &StatusLine {
        // SAFETY: as in `producer`.
        unsafe { &*std::ptr::addr_of!((*self.control).status) }
    }

    pub(crate) fn events(&self) -> &EventLine {
        // SAFETY: as in `producer`.
        unsafe { &*std::ptr::addr_of!((*self.control).events) }
    }

    /// The event line, borrowed independently of `self`: for wait loops that also need
    /// `&mut` access to the endpoint that owns this view.
    ///
    /// The reference stays valid as long as any `Shared` of this region lives (the `Arc`
    /// keeps the mapping); callers hold one for the whole wait.
    pub(crate) fn events_detached<'a>(&self) -> &'a EventLine {
        // SAFETY: as in `producer`: in bounds, initialised, atomics only. The lifetime is
        // unbound: the caller keeps an owner of this view (its endpoint) alive while it uses
        // the reference, so the mapping outlives it.
        unsafe { &*std::ptr::addr_of!((*self.control).events) }
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

/// Splits `memory` into a control block of `data_offset` bytes and a data area of
/// `capacity` bytes right after it, checking both fit: the layout every channel kind shares.
pub(crate) fn split_region(
    memory: &dyn SharedMemory,
    data_offset: usize,
    capacity: u64,
) -> Result<(*mut u8, *mut u8), ChannelError> {
    let len = memory.len();
    let needed = usize::try_from(capacity)
        .ok()
        .and_then(|capacity| data_offset.checked_add(capacity))
        .ok_or(ChannelError::InvalidCapacity {
            capacity,
            reason: "too large for this address space",
        })?;
    let too_small = |_| ChannelError::RegionTooSmall { needed, len };
    let control = memory.ptr_at(0, data_offset).map_err(too_small)?;
    let data = memory
        .ptr_at(data_offset, capacity as usize)
        .map_err(too_small)?;
    Ok((control, data))
}

/// Validates the header of a channel of kind `spec` in `memory` and its capacity; returns
/// the capacity, which the caller caches privately (never re-read from the header).
pub(crate) fn attached_capacity(
    memory: &dyn SharedMemory,
    spec: &LayoutSpec,
) -> Result<u64, ChannelError> {
    let capacity = header::validate(memory, spec)?.capacity_untrusted;
    check_capacity(capacity)?;
    Ok(capacity)
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

impl Clone for Shared {
    fn clone(&self) -> Shared {
        Shared {
            memory: Arc::clone(&self.memory),
            control: self.control,
            data: self.data,
            capacity: self.capacity,
            #[cfg(loom)]
            loom_headers: Arc::clone(&self.loom_headers),
        }
    }
}
