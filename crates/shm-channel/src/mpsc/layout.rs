//! The MPSC channel's layout in shared memory: one lane per sender slot.
//!
//! ```text
//! offset     0  LayoutHeader (shm-core), padded to 128 bytes
//! offset   128  StatusLine:  receiver owner, closed flags, sender count, wake handshake
//!                            (the common status line)
//! offset   256  EventLine:   data event (the receiver sleeps on it), space event
//! offset   384  LanesLine:   lanes (fixed at creation), lanes ever used (a bitmask that
//!                            only grows)
//! offset   512  64 SlotLines of 384 bytes, one per sender slot:
//!                 +0    SenderSlot:   owner; the space event its sender sleeps on
//!                 +128  ProducerLine: the lane's recorded tail
//!                 +256  ConsumerLine: the lane's head
//! offset 25088  TypeLine:    what typed ends carry (written once by the first typed end)
//! offset 25344  data: `lanes` lanes of `capacity` bytes each, lane i at i × capacity
//! ```
//!
//! Nothing is contended: a sender writes its own lane and lines, the receiver its heads.
//! The lane count is recorded at creation; the header's capacity is that of the whole
//! data area (`lanes × capacity`).

use std::mem::{align_of, offset_of, size_of};
use std::sync::atomic::Ordering;

use shm_core::header::LayoutSpec;
use shm_core::notify::{Event, Handshake};

use super::Mpsc;
use crate::shared::creation::Creation;
use crate::shared::doorbells::Doorbells;
use crate::shared::lane::Lane;
use crate::shared::layout::ControlBlock;
use crate::shared::lines::{self, assert_offsets, layout_spec, ConsumerLine, Line, ProducerLine};
use crate::shared::primitive::{AtomicU32, AtomicU64, DataArea};
use crate::shared::view::{EventRef, View, Wake, MIN_CAPACITY};
use crate::{ChannelError, Corruption};

/// Most senders a channel can have at once (clones included): one sender slot, and one
/// lane, each. A channel has as many as [`Builder::max_senders`](crate::Builder::max_senders)
/// says, [`DEFAULT_MAX_SENDERS`] unless told.
pub const MAX_SENDERS: usize = 64;

/// The sender slots (and lanes) of a channel built without
/// [`Builder::max_senders`](crate::Builder::max_senders).
pub const DEFAULT_MAX_SENDERS: usize = 8;

/// What an MPSC channel records at creation: how many sender slots (and lanes) it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lanes {
    /// A power of two, `1 ..= MAX_SENDERS`.
    pub(crate) count: usize,
}

impl Default for Lanes {
    fn default() -> Lanes {
        Lanes {
            count: DEFAULT_MAX_SENDERS,
        }
    }
}

/// One sender's record: the process owning the slot, and the event its sender sleeps on
/// while its lane is full.
#[derive(Default)]
#[repr(C, align(128))]
pub(crate) struct SenderSlot {
    /// `ProcessIdentity` of the owning process; 0 = free.
    pub(crate) owner: AtomicU64,
    /// Space in the lane: the slot's sender sleeps on it, the receiver's releases notify it.
    pub(crate) space: Event,
    /// Nonzero while the receiver asks for lined frames in this slot's lane (see
    /// `crate::shared::lane`, "Lined frames"); a hint only: any value is safe.
    pub(crate) line_hint: AtomicU32,
}

/// The lane count, and which lanes were ever used.
#[derive(Default)]
#[repr(C, align(128))]
pub(crate) struct LanesLine {
    /// Lanes (= sender slots) of the channel, written once at creation.
    lanes: AtomicU64,
    /// Bit `i` set: slot `i` was taken at least once, so its lane may hold frames. Senders
    /// set their bit before their first frame; nobody clears one.
    pub(crate) used: AtomicU64,
}

/// One sender slot's lines.
#[derive(Default)]
#[repr(C)]
struct SlotLines {
    slot: SenderSlot,
    producer: ProducerLine,
    consumer: ConsumerLine,
}

// SAFETY: atomics only (an `Event` is a futex word and a count).
unsafe impl Line for SenderSlot {}
// SAFETY: atomics only.
unsafe impl Line for LanesLine {}

/// The MPSC lines after the event line: the lanes line, then each sender slot's lines.
#[repr(C)]
pub(crate) struct Senders {
    lanes: LanesLine,
    slots: [SlotLines; MAX_SENDERS],
}

/// The control block at offset 0 of the region: no lines before the status line.
type Control = lines::Control<(), Senders>;

const SLOT_LINES: usize = size_of::<SlotLines>();

assert_offsets! {
    Control { before: 128, after: 384 },
    Senders { slots: 128 },
    SlotLines { producer: 128, consumer: 256 },
    SenderSlot { space: 8, line_hint: 24 },
    ; data: 512 + 64 * 384 + 256
}

// The common lines' offsets, as the table above says.
#[cfg(not(loom))]
const _: () = assert!(Control::STATUS == 128 && Control::EVENTS == 256 && Control::TYPE == 25088);

/// A validated view of an MPSC channel's memory.
pub(crate) type Layout = crate::shared::layout::Layout<Mpsc>;

/// Region bytes an MPSC channel of `capacity` per lane needs, with the default lanes.
#[cfg(all(test, loom))]
pub(crate) fn region_len_for(capacity: usize) -> Option<usize> {
    Layout::region_len(capacity, &Lanes::default())
}

impl ControlBlock for Mpsc {
    type Options = Lanes;
    type Before = ();
    type After = Senders;
    // The layout this build speaks (bump the version on any incompatible change), hashed
    // with the sizes and alignments of the control block and of the slot lines.
    const SPEC: LayoutSpec = layout_spec(
        b"SHMMPSC1",
        6,
        &[
            (size_of::<Control>(), align_of::<Control>()),
            (SLOT_LINES, MAX_SENDERS),
        ],
    );

    /// Records the lane count; clears the first word of every lane (its reader's first
    /// look: see `shared::lane`).
    unsafe fn init(view: &View, how: &Creation<Lanes>) {
        // SAFETY: the offsets are those of the lines in `Control`; the caller guarantees
        // nobody uses the region yet.
        unsafe {
            view.init_line::<LanesLine>(offset_of!(Control, after.lanes));
            for i in 0..MAX_SENDERS {
                view.init_line::<SenderSlot>(slot_offset(i));
                view.init_line::<ProducerLine>(slot_offset(i) + offset_of!(SlotLines, producer));
                view.init_line::<ConsumerLine>(slot_offset(i) + offset_of!(SlotLines, consumer));
            }
            let lanes = view.line::<LanesLine>(offset_of!(Control, after.lanes));
            // Relaxed: published by the header's Release store.
            lanes
                .lanes
                .store(how.options.count as u64, Ordering::Relaxed);
        }
        let count = how.options.count as u64;
        for i in 0..count {
            // Relaxed: published by the header's Release store.
            view.data()
                .part(i, count)
                .store_word(0, 0, Ordering::Relaxed);
        }
    }

    fn read_options(view: &View) -> Result<Lanes, ChannelError> {
        // SAFETY: the offset of the lanes line in `Control`.
        let line = unsafe { view.line::<LanesLine>(offset_of!(Control, after.lanes)) };
        // Relaxed: written before the header, whose magic `attach` loaded with Acquire.
        let lanes_untrusted = line.lanes.load(Ordering::Relaxed);
        let fits = lanes_untrusted.is_power_of_two()
            && lanes_untrusted <= MAX_SENDERS as u64
            && view.capacity() / lanes_untrusted >= MIN_CAPACITY as u64;
        match fits {
            true => Ok(Lanes {
                count: lanes_untrusted as usize,
            }),
            false => Err(ChannelError::Corrupted(Corruption {
                what: "MPSC lane count",
                value: lanes_untrusted,
            })),
        }
    }

    fn area(capacity: usize, options: &Lanes) -> Option<usize> {
        capacity.checked_mul(options.count)
    }
}

/// Offset of sender slot `index`'s lines in the control block (`index` clamped below
/// `MAX_SENDERS`).
fn slot_offset(index: usize) -> usize {
    offset_of!(Control, after.slots) + index.min(MAX_SENDERS - 1) * SLOT_LINES
}

impl Layout {
    /// Sender slots (and lanes) of the channel.
    pub(crate) fn lanes(&self) -> usize {
        self.options().count
    }

    /// Bytes of one lane.
    pub(crate) fn lane_capacity(&self) -> u64 {
        self.capacity() / self.lanes() as u64
    }

    /// The lane count and the lanes ever used.
    pub(crate) fn lanes_line(&self) -> &LanesLine {
        // SAFETY: the offset of the lanes line in `Control`.
        unsafe { self.line(offset_of!(Control, after.lanes)) }
    }

    /// Sender slot `index` (clamped below `MAX_SENDERS`).
    pub(crate) fn slot(&self, index: usize) -> &SenderSlot {
        // SAFETY: `slot_offset` clamps `index`: a slot of the array.
        unsafe { self.line(slot_offset(index)) }
    }

    /// The space event of slot `index`, as an owned handle (its sender sleeps on it).
    pub(crate) fn slot_event(&self, index: usize) -> EventRef {
        // SAFETY: the offset of `space` in slot `index`'s `SenderSlot` (clamped).
        unsafe {
            self.view()
                .event(slot_offset(index) + offset_of!(SenderSlot, space))
        }
    }

    /// What a release in lane `index` wakes: its sender, and async waiters on senders.
    pub(crate) fn slot_wake(&self, index: usize) -> Wake<'_> {
        Wake::new(
            &self.slot(index).space,
            self.view(),
            Doorbells::receiver_end,
        )
    }

    /// Lane `index`'s recorded tail.
    fn lane_tail(&self, index: usize) -> &AtomicU64 {
        // SAFETY: the offset of the producer line of slot `index` (clamped).
        &unsafe { self.line::<ProducerLine>(slot_offset(index) + offset_of!(SlotLines, producer)) }
            .tail
    }

    /// Lane `index`'s head.
    fn lane_head(&self, index: usize) -> &AtomicU64 {
        // SAFETY: the offset of the consumer line of slot `index` (clamped).
        &unsafe { self.line::<ConsumerLine>(slot_offset(index) + offset_of!(SlotLines, consumer)) }
            .head
    }
}

/// Lane `index` of an MPSC channel: the lane's words in its slot lines and its part of
/// the data area; its frames wake the receiver, its releases the slot's sender.
pub(crate) struct MpscLane {
    layout: Layout,
    index: usize,
    data: DataArea,
}

impl MpscLane {
    /// Lane `index` (below the channel's lane count) of `layout`.
    pub(crate) fn new(layout: Layout, index: usize) -> MpscLane {
        let lanes = layout.lanes();
        debug_assert!(index < lanes);
        MpscLane {
            data: layout.data().part(index as u64, lanes as u64),
            layout,
            index,
        }
    }

    /// The channel's layout.
    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The lane's (and its sender slot's) index.
    pub(crate) fn index(&self) -> usize {
        self.index
    }
}

impl Lane for MpscLane {
    #[inline]
    fn tail(&self) -> &AtomicU64 {
        self.layout.lane_tail(self.index)
    }

    #[inline]
    fn head(&self) -> &AtomicU64 {
        self.layout.lane_head(self.index)
    }

    #[inline]
    fn data(&self) -> &DataArea {
        &self.data
    }

    #[inline]
    fn handshake(&self) -> Handshake {
        self.layout.handshake()
    }

    #[inline]
    fn data_wake(&self) -> Wake<'_> {
        self.layout.data_wake()
    }

    #[inline]
    fn space_wake(&self) -> Wake<'_> {
        self.layout.slot_wake(self.index)
    }

    #[inline]
    fn line_hint(&self) -> &AtomicU32 {
        &self.layout.slot(self.index).line_hint
    }
}
