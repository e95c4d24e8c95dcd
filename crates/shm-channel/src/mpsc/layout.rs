//! The MPSC channel's layout in shared memory.
//!
//! ```text
//! offset    0  LayoutHeader (shm-core), padded to 128 bytes
//! offset  128  ProducerLine: tail               CAS'd by every producer to claim
//! offset  256  ConsumerLine: head               written by the receiver on release
//! offset  384  StatusLine:   receiver owner, sender count, receiver closed
//! offset  512  EventLine:    data and space events
//! offset  640  64 SenderSlots of 128 bytes:     owner, claim intent (one line per producer)
//! offset 8832  data: `capacity` bytes of frames
//! ```
//!
//! The tail line is contended by all producers (that is the cost of one ring); each
//! producer's intent stores go to its own slot line, which nobody else writes.

use std::mem::{align_of, size_of};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use shm_core::header::{self, LayoutHeader, LayoutSpec};
use shm_core::liveness::{Liveness, PeerWatch, ProcessIdentity};
use shm_core::SharedMemory;

use super::ring::{RingMem, SenderSlot, MAX_SENDERS};
use crate::frame::FRAME_HEADER_LEN;
use crate::layout::{
    attached_capacity, check_capacity, split_region, ConsumerLine, EventLine, ProducerLine,
};
use crate::primitive::{AtomicU32, AtomicU64};
use crate::ChannelError;

/// Ownership and close state; written rarely.
#[repr(C, align(128))]
pub(crate) struct StatusLine {
    /// `ProcessIdentity` of the process owning the receiver; 0 = unclaimed.
    pub(crate) receiver_owner: AtomicU64,
    /// Producer slots in use (claimed and not yet released or reaped).
    pub(crate) senders: AtomicU32,
    /// 1 once the receiver was dropped by its owner.
    pub(crate) receiver_closed: AtomicU32,
}

/// Room for the shm-core header, on its own line.
#[repr(C, align(128))]
struct HeaderSlot([u64; 16]);

/// The control block at offset 0 of the region; reached line by line, never as a whole.
#[repr(C)]
struct Control {
    header: HeaderSlot,
    producer: ProducerLine,
    consumer: ConsumerLine,
    status: StatusLine,
    events: EventLine,
    slots: [SenderSlot; MAX_SENDERS],
}

/// Offset of the data area.
pub(crate) const DATA_OFFSET: usize = size_of::<Control>();

#[cfg(not(loom))]
const _: () = {
    use std::mem::offset_of;
    assert!(size_of::<LayoutHeader>() <= size_of::<HeaderSlot>());
    assert!(offset_of!(Control, producer) == 128);
    assert!(offset_of!(Control, consumer) == 256);
    assert!(offset_of!(Control, status) == 384);
    assert!(offset_of!(StatusLine, senders) == 8);
    assert!(offset_of!(StatusLine, receiver_closed) == 12);
    assert!(offset_of!(Control, events) == 512);
    assert!(offset_of!(Control, slots) == 640);
    assert!(size_of::<SenderSlot>() == 128);
    assert!(offset_of!(SenderSlot, intent_start) == 8);
    assert!(offset_of!(SenderSlot, intent_end) == 16);
    assert!(DATA_OFFSET == 640 + 64 * 128);
};

/// The layout this build speaks.
const MPSC_SPEC: LayoutSpec = LayoutSpec {
    magic: u64::from_le_bytes(*b"SHMMPSC1"),
    version: 1,
    layout_hash: header::layout_hash(&[
        (size_of::<LayoutHeader>(), align_of::<LayoutHeader>()),
        (size_of::<Control>(), align_of::<Control>()),
        (size_of::<StatusLine>(), align_of::<StatusLine>()),
        (size_of::<SenderSlot>(), align_of::<SenderSlot>()),
        (MAX_SENDERS, 1),
        (FRAME_HEADER_LEN, FRAME_HEADER_LEN),
    ]),
};

/// Region bytes an MPSC channel of `capacity` needs.
pub fn region_len_for(capacity: usize) -> Option<usize> {
    DATA_OFFSET.checked_add(capacity)
}

/// A validated view of an MPSC channel's memory; the capacity is cached privately.
pub(crate) struct Shared {
    memory: Arc<dyn SharedMemory>,
    control: *mut Control,
    data: *mut u8,
    capacity: u64,
}

// SAFETY: pointers into memory kept alive by `memory` (Send + Sync); everything reached
// through them is atomic or copied through raw pointers.
unsafe impl Send for Shared {}
// SAFETY: see `Send`.
unsafe impl Sync for Shared {}

impl Shared {
    /// Lays out a fresh channel in `memory`, header last.
    pub(crate) fn create(
        memory: Arc<dyn SharedMemory>,
        capacity: usize,
    ) -> Result<Shared, ChannelError> {
        check_capacity(capacity as u64)?;
        let shared = Shared::view(memory, capacity as u64)?;
        let control = shared.control;
        // SAFETY: `view` checked the control block lies inside the page-aligned region;
        // nobody else uses it yet; `addr_of_mut!` + `write` form no reference to
        // uninitialised lines.
        unsafe {
            std::ptr::addr_of_mut!((*control).producer).write(ProducerLine::new());
            std::ptr::addr_of_mut!((*control).consumer).write(ConsumerLine::new());
            std::ptr::addr_of_mut!((*control).status).write(StatusLine {
                receiver_owner: AtomicU64::new(0),
                senders: AtomicU32::new(0),
                receiver_closed: AtomicU32::new(0),
            });
            std::ptr::addr_of_mut!((*control).events).write(EventLine::new());
            let slots = std::ptr::addr_of_mut!((*control).slots).cast::<SenderSlot>();
            for i in 0..MAX_SENDERS {
                slots.add(i).write(SenderSlot::new());
            }
        }
        // The data area must be all zero: "header 0" means "nothing written yet".
        shared.zero(0, shared.capacity);
        header::write(&*shared.memory, &MPSC_SPEC, capacity as u64)?;
        Ok(shared)
    }

    /// Validates the header of an existing channel and returns a view of it.
    pub(crate) fn attach(memory: Arc<dyn SharedMemory>) -> Result<Shared, ChannelError> {
        let capacity = attached_capacity(&*memory, &MPSC_SPEC)?;
        Shared::view(memory, capacity)
    }

    fn view(memory: Arc<dyn SharedMemory>, capacity: u64) -> Result<Shared, ChannelError> {
        let (control, data) = split_region(&*memory, DATA_OFFSET, capacity)?;
        let control = control.cast::<Control>();
        Ok(Shared {
            memory,
            control,
            data,
            capacity,
        })
    }

    pub(crate) fn status(&self) -> &StatusLine {
        // SAFETY: inside the live region (checked in `view`), initialised (by `create` or
        // the creator whose header `attach` validated; zero bytes are valid too), atomics
        // only.
        unsafe { &*std::ptr::addr_of!((*self.control).status) }
    }

    pub(crate) fn events(&self) -> &EventLine {
        // SAFETY: as in `status`.
        unsafe { &*std::ptr::addr_of!((*self.control).events) }
    }

    /// The event line, borrowed independently of `self`, for wait loops that also need
    /// `&mut` access to the endpoint owning this view (which keeps the mapping alive for
    /// the whole wait): no `Arc` clone, whose count's line would bounce between processes'
    /// threads on every wait.
    pub(crate) fn events_detached<'a>(&self) -> &'a EventLine {
        // SAFETY: as in `status`; the lifetime is unbound, and callers use the reference
        // only while the endpoint that owns this view (and its `Arc` of the mapping) lives.
        unsafe { &*std::ptr::addr_of!((*self.control).events) }
    }

    pub(crate) fn memory(&self) -> &Arc<dyn SharedMemory> {
        &self.memory
    }

    /// Where the payload of the frame whose header is at `offset` starts (arithmetic
    /// only; the caller keeps `offset + 8 + len <= capacity`).
    pub(crate) fn payload_ptr(&self, offset: u64) -> *mut u8 {
        self.data.wrapping_add(offset as usize + FRAME_HEADER_LEN)
    }

    /// The 8-aligned word at `offset` of the data area, as a std atomic.
    fn word(&self, offset: u64) -> Option<&std::sync::atomic::AtomicU64> {
        if offset % 8 != 0 || offset + 8 > self.capacity {
            return None;
        }
        // SAFETY: in bounds (checked) and 8-aligned (data area starts at a 128-aligned
        // offset of a page-aligned region); valid as long as `self`; atomics tolerate
        // concurrent writers in other processes.
        Some(unsafe {
            std::sync::atomic::AtomicU64::from_ptr(self.data.add(offset as usize).cast())
        })
    }

    fn in_bounds(&self, offset: u64, len: usize) -> bool {
        offset
            .checked_add(len as u64)
            .is_some_and(|end| end <= self.capacity)
    }
}

impl RingMem for Shared {
    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn tail(&self) -> &AtomicU64 {
        // SAFETY: as in `status`.
        unsafe { &(*std::ptr::addr_of!((*self.control).producer)).tail }
    }

    fn head(&self) -> &AtomicU64 {
        // SAFETY: as in `status`.
        unsafe { &(*std::ptr::addr_of!((*self.control).consumer)).head }
    }

    fn slot(&self, index: usize) -> &SenderSlot {
        let index = index.min(MAX_SENDERS - 1);
        // SAFETY: as in `status`; `index < MAX_SENDERS` keeps it inside the array.
        unsafe {
            &*std::ptr::addr_of!((*self.control).slots)
                .cast::<SenderSlot>()
                .add(index)
        }
    }

    fn load_word(&self, offset: u64, order: Ordering) -> u64 {
        self.word(offset).map_or(u64::MAX, |w| w.load(order))
    }

    fn store_word(&self, offset: u64, word: u64, order: Ordering) {
        if let Some(w) = self.word(offset) {
            w.store(word, order);
        }
    }

    fn write_bytes(&self, offset: u64, src: &[u8]) {
        if self.in_bounds(offset, src.len()) {
            // SAFETY: in bounds (checked); `src` is private memory, so no overlap.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    src.as_ptr(),
                    self.data.add(offset as usize),
                    src.len(),
                )
            };
        }
    }

    fn read_bytes(&self, offset: u64, dst: &mut [u8]) {
        if self.in_bounds(offset, dst.len()) {
            // SAFETY: in bounds (checked); `dst` is private memory.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    self.data.add(offset as usize),
                    dst.as_mut_ptr(),
                    dst.len(),
                )
            };
        }
    }

    fn zero(&self, offset: u64, len: u64) {
        if self.in_bounds(offset, len as usize) {
            // SAFETY: in bounds (checked). Producers do not touch these released bytes
            // until they see our Release store of `head` (SYNC: space released).
            unsafe { std::ptr::write_bytes(self.data.add(offset as usize), 0, len as usize) };
        }
    }
}

impl Clone for Shared {
    fn clone(&self) -> Shared {
        Shared {
            memory: Arc::clone(&self.memory),
            control: self.control,
            data: self.data,
            capacity: self.capacity,
        }
    }
}

/// Finds a free producer slot and claims it for `owner`; counts it as a sender. With no
/// free slot, takes over the slot of a sender whose process died (see
/// [`take_over_dead_slot`]).
pub(crate) fn claim_free_slot(shared: &Shared, owner: u64) -> Option<usize> {
    let free = (0..MAX_SENDERS).find(|&i| {
        shared
            .slot(i)
            .owner
            // SYNC: owner recorded (see `ownership::swap_owner`).
            .compare_exchange(0, owner, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
            && {
                shared.status().senders.fetch_add(1, Ordering::SeqCst);
                true
            }
    });
    free.or_else(|| (0..MAX_SENDERS).find(|&i| take_over_dead_slot(shared, i, owner)))
}

/// Takes producer slot `index` over for `owner` if the process owning it is dead (asked
/// of the kernel) and the receiver has passed — read, or skipped as abandoned — the last
/// claim it recorded: then nothing in the ring still names the slot, and its intent is no
/// longer needed to skip a half-written frame. The slot goes on counting as one sender:
/// the dead one's place in `senders` becomes ours.
fn take_over_dead_slot(shared: &Shared, index: usize, owner: u64) -> bool {
    let slot = shared.slot(index);
    // Acquire: SYNC: owner recorded (see `ownership::swap_owner`).
    let dead = slot.owner.load(Ordering::Acquire);
    let Some(identity) = ProcessIdentity::from_raw(dead) else {
        return false;
    };
    if PeerWatch::new().check(identity) != Liveness::Dead {
        return false;
    }
    // SYNC: claim intent. Acquire pairs with the producers' AcqRel CAS of `tail`: the
    // intent the dead producer recorded before its last claim is visible (and it writes
    // no other any more).
    let tail = shared.tail().load(Ordering::Acquire);
    // SYNC: space released. Acquire pairs with the receiver's Release store of `head`.
    let head = shared.head().load(Ordering::Acquire);
    // Relaxed: SYNC: claim intent (ordered by the Acquire load of `tail` above).
    let intent_end = slot.intent_end.load(Ordering::Relaxed);
    // Untrusted words: a head beyond the tail is garbage; then keep the slot as it is.
    if head > tail || intent_end > head {
        return false;
    }
    slot.owner
        // SYNC: owner recorded (see `ownership::swap_owner`). The receiver reaping the
        // same slot races on this CAS: one of us wins, the sender count stays right.
        .compare_exchange(dead, owner, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
}
