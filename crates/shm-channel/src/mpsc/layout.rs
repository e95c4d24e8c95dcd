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
//! offset 8832  TypeLine:     what typed ends carry (written once by the first typed end)
//! offset 9088  data: `capacity` bytes of frames
//! ```
//!
//! The tail line is contended by all producers (that is the cost of one ring); each
//! producer's intent stores go to its own slot line, which nobody else writes.

use std::mem::{align_of, offset_of, size_of};
use std::sync::atomic::Ordering;

use shm_core::header::LayoutSpec;
use shm_core::liveness::{Liveness, PeerWatch, ProcessIdentity};

use super::ring::{SenderSlot, MAX_SENDERS};
use super::Mpsc;
use crate::shared::creation::Creation;
use crate::shared::frame::FRAME_HEADER_LEN;
use crate::shared::layout::ControlBlock;
use crate::shared::lines::{
    assert_offsets, layout_spec, ConsumerLine, EventLine, HeaderSlot, Line, ProducerLine,
    StatusLine, TypeLine,
};
use crate::shared::primitive::AtomicU64;
use crate::shared::ring::before;
use crate::shared::view::View;
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
    types: TypeLine,
}

/// Offset of the data area.
const DATA_OFFSET: usize = size_of::<Control>();

assert_offsets! {
    Control { producer: 128, consumer: 256, status: 384, events: 512, slots: 640, types: 8832 },
    SenderSlot { intent_start: 8, intent_end: 16 },
    ; data: 640 + 64 * 128 + 256
}

const SLOT_LEN: usize = size_of::<SenderSlot>();

/// Region bytes an MPSC channel of `capacity` needs.
#[cfg(all(test, loom))]
pub(crate) fn region_len_for(capacity: usize) -> Option<usize> {
    Layout::region_len(capacity)
}

/// A validated view of an MPSC channel's memory.
pub(crate) type Layout = crate::shared::layout::Layout<Mpsc>;

impl ControlBlock for Mpsc {
    type Options = ();
    // The layout this build speaks (bump the version on any incompatible change), hashed
    // with the sizes and alignments of the control block and of the producer slots.
    const SPEC: LayoutSpec = layout_spec(
        b"SHMMPSC1",
        4,
        &[
            (size_of::<Control>(), align_of::<Control>()),
            (SLOT_LEN, MAX_SENDERS),
        ],
    );
    const DATA_OFFSET: usize = DATA_OFFSET;
    const EVENTS: usize = offset_of!(Control, events);
    const STATUS: usize = offset_of!(Control, status);
    const TYPE: usize = offset_of!(Control, types);

    /// The data area must be all zero ("header 0" means "nothing written yet"): cleared
    /// here unless `zeroed` says the memory is fresh from the kernel (so creating a large
    /// channel touches no data page).
    unsafe fn init(view: &View, how: &Creation<()>) {
        // SAFETY: the offsets are those of the lines and of the slot array in `Control`;
        // the caller guarantees nobody uses the region yet.
        unsafe {
            view.init_line::<ProducerLine>(offset_of!(Control, producer));
            view.init_line::<ConsumerLine>(offset_of!(Control, consumer));
            for i in 0..MAX_SENDERS {
                view.init_line::<SenderSlot>(slot_offset(i));
            }
        }
        if !how.zeroed {
            view.data().zero(0, view.capacity());
        }
    }

    fn read_options(_view: &View) -> Result<(), ChannelError> {
        Ok(())
    }
}

impl Layout {
    /// Bytes ever claimed by producers.
    pub(crate) fn tail(&self) -> &AtomicU64 {
        // SAFETY: the offset of the producer line in `Control`.
        &unsafe { self.line::<ProducerLine>(offset_of!(Control, producer)) }.tail
    }

    /// Bytes ever released by the consumer.
    pub(crate) fn head(&self) -> &AtomicU64 {
        // SAFETY: the offset of the consumer line in `Control`.
        &unsafe { self.line::<ConsumerLine>(offset_of!(Control, consumer)) }.head
    }

    /// Producer slot `index` (clamped below `MAX_SENDERS`).
    pub(crate) fn slot(&self, index: usize) -> &SenderSlot {
        // SAFETY: `slot_offset` clamps `index` below `MAX_SENDERS`: a slot of the array.
        unsafe { self.line(slot_offset(index)) }
    }

    /// Where the payload of the frame whose header is at `offset` starts (arithmetic
    /// only; the caller keeps `offset + 8 + len <= capacity`).
    pub(crate) fn payload_ptr(&self, offset: u64) -> *mut u8 {
        self.data().ptr(offset + FRAME_HEADER_LEN as u64)
    }
}

/// Offset of producer slot `index` in the control block.
fn slot_offset(index: usize) -> usize {
    offset_of!(Control, slots) + index.min(MAX_SENDERS - 1) * SLOT_LEN
}

/// Finds a free producer slot and claims it for `owner`; counts it as a sender. With no
/// free slot, takes over the slot of a sender whose process died (see
/// [`take_over_dead_slot`]).
pub(crate) fn claim_free_slot(layout: &Layout, owner: u64) -> Option<usize> {
    let free = (0..MAX_SENDERS).find(|&i| {
        layout
            .slot(i)
            .owner
            // SYNC: owner recorded (see `ownership::swap_owner`).
            .compare_exchange(0, owner, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
            && {
                layout.status().senders.fetch_add(1, Ordering::SeqCst);
                true
            }
    });
    free.or_else(|| (0..MAX_SENDERS).find(|&i| take_over_dead_slot(layout, i, owner)))
}

/// Takes producer slot `index` over for `owner` if the process owning it is dead (asked
/// of the kernel) and the receiver has passed — read, or skipped as abandoned — the last
/// claim it recorded: then nothing in the ring still names the slot, and its intent is no
/// longer needed to skip a half-written frame. The slot goes on counting as one sender:
/// the dead one's place in `senders` becomes ours.
fn take_over_dead_slot(layout: &Layout, index: usize, owner: u64) -> bool {
    let slot = layout.slot(index);
    // Acquire: SYNC: owner recorded (see `ownership::swap_owner`).
    let dead_untrusted = slot.owner.load(Ordering::Acquire);
    let Some(identity) = ProcessIdentity::from_raw(dead_untrusted) else {
        return false;
    };
    if PeerWatch::new().check(identity) != Liveness::Dead {
        return false;
    }
    // SYNC: claim intent. Acquire pairs with the producers' AcqRel CAS of `tail`: the
    // intent the dead producer recorded before its last claim is visible (and it writes
    // no other any more).
    let tail_untrusted = layout.tail().load(Ordering::Acquire);
    // SYNC: space released. Acquire pairs with the receiver's Release store of `head`.
    let head_untrusted = layout.head().load(Ordering::Acquire);
    // Relaxed: SYNC: claim intent (ordered by the Acquire load of `tail` above).
    let end_untrusted = slot.intent_end.load(Ordering::Relaxed);
    // Relaxed: SYNC: claim intent (as above).
    let start_untrusted = slot.intent_start.load(Ordering::Relaxed);
    // A head beyond the tail is garbage; then keep the slot as it is.
    if before(tail_untrusted, head_untrusted)
        || (start_untrusted != end_untrusted && before(head_untrusted, end_untrusted))
    {
        return false;
    }
    slot.owner
        // SYNC: owner recorded (see `ownership::swap_owner`). The receiver reaping the
        // same slot races on this CAS: one of us wins, the sender count stays right.
        .compare_exchange(dead_untrusted, owner, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
}
