//! The broadcast channel's layout in shared memory.
//!
//! ```text
//! offset    0  LayoutHeader (shm-core), padded to 128 bytes
//! offset  128  WriterLine:  tail, oldest, next_seq written by the sender
//! offset  256  StatusLine:  sender owner, closed, policy
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

use shm_core::header::{self, LayoutHeader, LayoutSpec};
use shm_core::SharedMemory;

use crate::layout::{EventLine, EventRef, HeaderSlot, Line, View};
use crate::primitive::{AtomicU32, AtomicU64};
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

/// Ownership and close state.
#[repr(C, align(128))]
pub(crate) struct StatusLine {
    pub(crate) sender_owner: AtomicU64,
    pub(crate) sender_closed: AtomicU32,
    /// 0 back-pressure, 1 overwrite.
    pub(crate) policy: AtomicU32,
}

/// One receiver's record.
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
unsafe impl Line for StatusLine {}
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

#[cfg(not(loom))]
const _: () = {
    assert!(offset_of!(Control, writer) == 128);
    assert!(offset_of!(Control, status) == 256);
    assert!(offset_of!(Control, events) == 384);
    assert!(offset_of!(Control, readers) == 512);
    assert!(size_of::<ReaderSlot>() == 128);
    assert!(DATA_OFFSET == 512 + 16 * 128);
};

const BROADCAST_SPEC: LayoutSpec = LayoutSpec {
    magic: u64::from_le_bytes(*b"SHMBCST1"),
    version: 2,
    layout_hash: header::layout_hash(&[
        (size_of::<LayoutHeader>(), align_of::<LayoutHeader>()),
        (size_of::<Control>(), align_of::<Control>()),
        (size_of::<WriterLine>(), align_of::<WriterLine>()),
        (size_of::<ReaderSlot>(), align_of::<ReaderSlot>()),
        (MAX_READERS, 1),
        (HEADER as usize, 8),
    ]),
};

/// Region bytes a broadcast channel of `capacity` needs.
pub fn region_len_for(capacity: usize) -> Option<usize> {
    DATA_OFFSET.checked_add(capacity)
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

impl Shared {
    pub(crate) fn create(
        memory: Arc<dyn SharedMemory>,
        capacity: usize,
        policy: Policy,
    ) -> Result<Shared, ChannelError> {
        let shared = Shared {
            view: View::new(memory, DATA_OFFSET, capacity as u64)?,
            policy,
        };
        let view = &shared.view;
        // SAFETY: the offsets are those of the lines in `Control` (checked above); nobody
        // uses the region yet: we are creating it.
        unsafe {
            view.init_line(
                offset_of!(Control, writer),
                WriterLine {
                    tail: AtomicU64::new(0),
                    oldest: AtomicU64::new(0),
                    next_seq: AtomicU64::new(0),
                },
            );
            view.init_line(
                offset_of!(Control, status),
                StatusLine {
                    sender_owner: AtomicU64::new(0),
                    sender_closed: AtomicU32::new(0),
                    policy: AtomicU32::new(u32::from(policy == Policy::Overwrite)),
                },
            );
            view.init_line(offset_of!(Control, events), EventLine::new());
            for i in 0..MAX_READERS {
                view.init_line(
                    reader_offset(i),
                    ReaderSlot {
                        owner: AtomicU64::new(0),
                        cursor: AtomicU64::new(0),
                    },
                );
            }
        }
        view.publish_header(&BROADCAST_SPEC)?;
        Ok(shared)
    }

    /// Validates the header (and the policy word) of an existing channel.
    pub(crate) fn attach(memory: Arc<dyn SharedMemory>) -> Result<Shared, ChannelError> {
        let view = View::attach(memory, &BROADCAST_SPEC, DATA_OFFSET)?;
        let mut shared = Shared {
            view,
            policy: Policy::BackPressure,
        };
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

    pub(crate) fn view(&self) -> &View {
        &self.view
    }

    pub(crate) fn writer(&self) -> &WriterLine {
        // SAFETY: the offset of `writer` in `Control`.
        unsafe { self.view.line(offset_of!(Control, writer)) }
    }

    pub(crate) fn status(&self) -> &StatusLine {
        // SAFETY: the offset of `status` in `Control`.
        unsafe { self.view.line(offset_of!(Control, status)) }
    }

    pub(crate) fn events(&self) -> &EventLine {
        // SAFETY: the offset of `events` in `Control`.
        unsafe { self.view.line(offset_of!(Control, events)) }
    }

    /// The data event (receivers sleep on it), as an owned handle.
    pub(crate) fn data_event(&self) -> EventRef {
        // SAFETY: the offset of `events.data` in `Control`.
        unsafe {
            self.view
                .event(offset_of!(Control, events) + offset_of!(EventLine, data))
        }
    }

    /// The space event (the sender sleeps on it), as an owned handle.
    pub(crate) fn space_event(&self) -> EventRef {
        // SAFETY: the offset of `events.space` in `Control`.
        unsafe {
            self.view
                .event(offset_of!(Control, events) + offset_of!(EventLine, space))
        }
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
    offset_of!(Control, readers) + index.min(MAX_READERS - 1) * size_of::<ReaderSlot>()
}
