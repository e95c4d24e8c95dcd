//! The MPSC channel's layout in shared memory.
//!
//! ```text
//! offset    0  LayoutHeader (shm-core), padded to 128 bytes
//! offset  128  ProducerLine: tail               CAS'd by every producer to claim
//! offset  256  ConsumerLine: head               written by the receiver on release
//! offset  384  StatusLine:   owners, closed flags, sender count, wake handshake (the
//!                            common status line)
//! offset  512  EventLine:    data and space events
//! offset  640  64 SenderSlots of 128 bytes:     owner, claim intent (one line per producer)
//! offset 8832  data: `capacity` bytes of frames
//! ```
//!
//! The tail line is contended by all producers (that is the cost of one ring); each
//! producer's intent stores go to its own slot line, which nobody else writes.

use std::mem::{align_of, offset_of, size_of};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use shm_core::header::LayoutSpec;
use shm_core::liveness::{Liveness, PeerWatch, ProcessIdentity};
use shm_core::SharedMemory;

use super::{before, RingMem, SenderSlot, MAX_SENDERS};
use crate::frame::FRAME_HEADER_LEN;
use crate::layout::{
    assert_offsets, control_lines, layout_offsets, layout_spec, ChannelLayout, ConsumerLine,
    Creation, EventLine, HeaderSlot, Line, ProducerLine, StatusLine, View,
};
use crate::primitive::AtomicU64;
use crate::ChannelError;

// SAFETY: atomics only.
unsafe impl Line for SenderSlot {}

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

assert_offsets! {
    Control { producer: 128, consumer: 256, status: 384, events: 512, slots: 640 },
    SenderSlot { intent_start: 8, intent_end: 16 },
    ; data: 640 + 64 * 128
}

/// The layout this build speaks.
/// Size and alignment of the control block, for the layout hash.
const CONTROL: (usize, usize) = (size_of::<Control>(), align_of::<Control>());
const MPSC_TYPES: [(usize, usize); 2] = [CONTROL, (SLOT_LEN, MAX_SENDERS)];
const MPSC_SPEC: LayoutSpec = layout_spec(b"SHMMPSC1", 3, &MPSC_TYPES);
const SLOT_LEN: usize = size_of::<SenderSlot>();

/// Region bytes an MPSC channel of `capacity` needs.
pub fn region_len_for(capacity: usize) -> Option<usize> {
    Shared::region_len(capacity)
}

/// A validated view of an MPSC channel's memory; the capacity is cached privately.
#[derive(Clone)]
pub struct Shared {
    view: View,
}

impl ChannelLayout for Shared {
    layout_offsets!(Options = ());

    /// Lays out a fresh channel in `memory`, header last. The data area must be all zero
    /// ("header 0" means "nothing written yet"): cleared here unless `zeroed` says the
    /// memory is fresh from the kernel (so creating a large channel touches no data page).
    fn create(memory: Arc<dyn SharedMemory>, how: &Creation<()>) -> Result<Shared, ChannelError> {
        let shared = Shared {
            view: how.view(memory, DATA_OFFSET)?,
        };
        // SAFETY: we are creating the channel: nobody uses the region yet; the slot
        // offsets are those of the slot array.
        unsafe {
            Shared::init_lines(&shared.view);
            for i in 0..MAX_SENDERS {
                shared.view.init_line::<SenderSlot>(slot_offset(i));
            }
        }
        if !how.zeroed {
            shared.zero(0, shared.capacity());
        }
        shared.view.publish_header(&MPSC_SPEC, Self::STATUS)?;
        Ok(shared)
    }

    fn attach(memory: Arc<dyn SharedMemory>) -> Result<Shared, ChannelError> {
        Ok(Shared {
            view: View::attach(memory, &MPSC_SPEC, DATA_OFFSET, Self::STATUS)?,
        })
    }

    fn view(&self) -> &View {
        &self.view
    }

    fn view_mut(&mut self) -> &mut View {
        &mut self.view
    }
}

impl Shared {
    control_lines! {
        producer: ProducerLine,
        consumer: ConsumerLine,
    }

    /// Where the payload of the frame whose header is at `offset` starts (arithmetic
    /// only; the caller keeps `offset + 8 + len <= capacity`).
    pub(crate) fn payload_ptr(&self, offset: u64) -> *mut u8 {
        self.view
            .data()
            .wrapping_add(offset as usize + FRAME_HEADER_LEN)
    }

    /// The 8-aligned word at `offset` of the data area, as a std atomic.
    fn word(&self, offset: u64) -> Option<&std::sync::atomic::AtomicU64> {
        if offset % 8 != 0 || offset + 8 > self.capacity() {
            return None;
        }
        // SAFETY: in bounds (checked) and 8-aligned (data area starts at a 128-aligned
        // offset of a page-aligned region); valid as long as `self`; atomics tolerate
        // concurrent writers in other processes.
        Some(unsafe {
            std::sync::atomic::AtomicU64::from_ptr(self.view.data().add(offset as usize).cast())
        })
    }

    fn in_bounds(&self, offset: u64, len: usize) -> bool {
        offset
            .checked_add(len as u64)
            .is_some_and(|end| end <= self.capacity())
    }
}

/// Offset of producer slot `index` in the control block.
fn slot_offset(index: usize) -> usize {
    offset_of!(Control, slots) + index.min(MAX_SENDERS - 1) * SLOT_LEN
}

impl RingMem for Shared {
    fn capacity(&self) -> u64 {
        self.view.capacity()
    }

    fn tail(&self) -> &AtomicU64 {
        &self.producer().tail
    }

    fn head(&self) -> &AtomicU64 {
        &self.consumer().head
    }

    fn slot(&self, index: usize) -> &SenderSlot {
        // SAFETY: `slot_offset` clamps `index` below `MAX_SENDERS`: a slot of the array.
        unsafe { self.view.line(slot_offset(index)) }
    }

    fn load_word(&self, offset: u64, order: Ordering) -> u64 {
        self.word(offset).map_or(u64::MAX, |w| w.load(order))
    }

    fn store_word(&self, offset: u64, word: u64, order: Ordering) {
        if let Some(w) = self.word(offset) {
            w.store(word, order);
        }
    }

    fn zero(&self, offset: u64, len: u64) {
        if self.in_bounds(offset, len as usize) {
            // SAFETY: in bounds (checked). Producers do not touch these released bytes
            // until they see our Release store of `head` (SYNC: space released).
            unsafe {
                std::ptr::write_bytes(self.view.data().add(offset as usize), 0, len as usize)
            };
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
    // Relaxed: SYNC: claim intent (as above).
    let intent_start = slot.intent_start.load(Ordering::Relaxed);
    // Untrusted words: a head beyond the tail is garbage; then keep the slot as it is.
    if before(tail, head) || (intent_start != intent_end && before(head, intent_end)) {
        return false;
    }
    slot.owner
        // SYNC: owner recorded (see `ownership::swap_owner`). The receiver reaping the
        // same slot races on this CAS: one of us wins, the sender count stays right.
        .compare_exchange(dead, owner, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
}
