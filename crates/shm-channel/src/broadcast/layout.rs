//! The broadcast channel's layout in shared memory.
//!
//! ```text
//! offset    0  LayoutHeader (shm-core), padded to 128 bytes
//! offset  128  WriterLine:  tail, oldest, next_seq written by the sender
//! offset  256  StatusLine:  owners, closed flags, policy, wake handshake (the common
//!                           status line)
//! offset  384  EventLine:   data and space events
//! offset  512  16 ReaderSlots of 128 bytes:      owner, cursor (one line per receiver)
//! offset 2560  data: `capacity` bytes of frames
//! ```
//!
//! A frame has a 16-byte header: word 0 is the stamp (the message's sequence number + 1; a
//! pad carries the next message's), word 1 the common frame word (`crate::frame`). Frames
//! are 16-aligned.

use std::mem::{align_of, offset_of, size_of};
use std::sync::Arc;

use shm_core::header::LayoutSpec;
use shm_core::SharedMemory;

use crate::layout::{
    assert_offsets, control_lines, layout_offsets, layout_spec, ChannelLayout, Creation, EventLine,
    HeaderSlot, Line, StatusLine, View,
};
use crate::primitive::AtomicU64;
use crate::ChannelError;

/// Most receivers a broadcast channel can have at once.
pub const MAX_READERS: usize = 16;

/// Bytes of a frame header: stamp word, frame word.
pub(crate) const HEADER: u64 = 16;

/// What the sender does when the slowest receiver has not read the oldest message yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Policy {
    /// Wait for the slowest live receiver (the default).
    #[default]
    BackPressure,
    /// Overwrite the oldest messages; late receivers get `Lagged`.
    Overwrite,
}

/// Written by the sender.
#[derive(Default)]
#[repr(C, align(128))]
pub(crate) struct WriterLine {
    /// Bytes ever published. 16-aligned.
    pub(crate) tail: AtomicU64,
    /// Bytes below this position may be overwritten (raised before overwriting).
    pub(crate) oldest: AtomicU64,
    /// Sequence number of the next message, stored with every publication: where a sender
    /// taking over a channel continues when no frame is left to tell it.
    pub(crate) next_seq: AtomicU64,
}

/// One receiver's record.
#[derive(Default)]
#[repr(C, align(128))]
pub(crate) struct ReaderSlot {
    /// `ProcessIdentity` of the owning process; 0 = free.
    pub(crate) owner: AtomicU64,
    /// Next byte position this receiver reads.
    pub(crate) cursor: AtomicU64,
}

// SAFETY: atomics only.
unsafe impl Line for WriterLine {}

// SAFETY: atomics only.
unsafe impl Line for ReaderSlot {}

#[repr(C)]
struct Control {
    header: HeaderSlot,
    writer: WriterLine,
    status: StatusLine,
    events: EventLine,
    readers: [ReaderSlot; MAX_READERS],
}

const DATA_OFFSET: usize = size_of::<Control>();

assert_offsets! {
    Control { writer: 128, status: 256, events: 384, readers: 512 },
    WriterLine { oldest: 8, next_seq: 16 },
    ; data: 512 + 16 * 128
}

/// Size and alignment of the control block, for the layout hash.
const CONTROL: (usize, usize) = (size_of::<Control>(), align_of::<Control>());
const SLOT_LEN: usize = size_of::<ReaderSlot>();
const TYPES: [(usize, usize); 3] = [CONTROL, (SLOT_LEN, MAX_READERS), (HEADER as usize, 8)];
const BROADCAST_SPEC: LayoutSpec = layout_spec(b"SHMBCST1", 4, &TYPES);

/// Region bytes a broadcast channel of `capacity` needs.
pub fn region_len_for(capacity: usize) -> Option<usize> {
    Shared::region_len(capacity)
}

/// Ring bytes of a frame with `len` payload bytes.
pub(crate) const fn span_of(len: u64) -> u64 {
    HEADER + len.next_multiple_of(16)
}

/// A validated view of the channel's memory; capacity and policy are cached privately.
#[derive(Clone)]
pub struct Shared {
    view: View,
    pub(crate) policy: Policy,
}

impl ChannelLayout for Shared {
    layout_offsets!(Options = Policy);
    /// Two frames of an 8-byte message.
    const MIN_CAPACITY: usize = 32;

    fn create(
        memory: Arc<dyn SharedMemory>,
        how: &Creation<Policy>,
    ) -> Result<Shared, ChannelError> {
        let shared = Shared {
            view: how.view(memory, DATA_OFFSET)?,
            policy: how.options,
        };
        // SAFETY: we are creating the channel: nobody uses the region yet; the slot
        // offsets are those of the reader slot array.
        unsafe {
            Shared::init_lines(&shared.view);
            for i in 0..MAX_READERS {
                shared.view.init_line::<ReaderSlot>(reader_offset(i));
            }
        }
        // Relaxed: published by the header's magic, stored with Release after it.
        shared.status().policy.store(
            u32::from(how.options == Policy::Overwrite),
            std::sync::atomic::Ordering::Relaxed,
        );
        shared.view.publish_header(&BROADCAST_SPEC, Self::STATUS)?;
        Ok(shared)
    }

    /// Validates the header (and the policy word) of an existing channel.
    fn attach(memory: Arc<dyn SharedMemory>) -> Result<Shared, ChannelError> {
        let view = View::attach(memory, &BROADCAST_SPEC, DATA_OFFSET, Self::STATUS)?;
        let mut shared = Shared {
            view,
            policy: Policy::BackPressure,
        };
        Shared::check_capacity(shared.capacity() as usize)?;
        // Relaxed: written before the header, whose magic `attach` loaded with Acquire.
        shared.policy = match shared
            .status()
            .policy
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            0 => Policy::BackPressure,
            1 => Policy::Overwrite,
            other => {
                return Err(ChannelError::Corrupted(crate::Corruption {
                    what: "broadcast policy word",
                    value: other.into(),
                }))
            }
        };
        Ok(shared)
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
        writer: WriterLine,
    }

    /// Reader slot `index` (clamped below `MAX_READERS`).
    pub(crate) fn reader(&self, index: usize) -> &ReaderSlot {
        // SAFETY: `reader_offset` clamps the index: a slot of the array.
        unsafe { self.view.line(reader_offset(index)) }
    }

    /// The data-area word at `offset` (any value: it is masked to an 8-aligned word inside
    /// the data area).
    pub(crate) fn word(&self, offset: u64) -> &std::sync::atomic::AtomicU64 {
        let offset = (offset & self.mask()) & !7;
        // SAFETY: `offset + 8 <= capacity` (masked, 8-aligned, capacity a multiple of 16);
        // the data area is 128-aligned in a page-aligned region and lives as long as
        // `self`; atomics tolerate concurrent writers.
        unsafe {
            std::sync::atomic::AtomicU64::from_ptr(self.view.data().add(offset as usize).cast())
        }
    }

    /// Where the payload of the frame at data offset `offset` starts (arithmetic only).
    pub(crate) fn payload_ptr(&self, offset: u64) -> *mut u8 {
        self.view.data().wrapping_add((offset + HEADER) as usize)
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.view.capacity()
    }

    pub(crate) fn mask(&self) -> u64 {
        self.view.capacity() - 1
    }
}

fn reader_offset(index: usize) -> usize {
    offset_of!(Control, readers) + index.min(MAX_READERS - 1) * SLOT_LEN
}
