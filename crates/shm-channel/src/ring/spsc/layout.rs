//! The SPSC channel's layout in shared memory.
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

use std::mem::{align_of, offset_of, size_of};
use std::sync::Arc;

use shm_core::header::{self, LayoutHeader, LayoutSpec};
use shm_core::SharedMemory;

use crate::frame::FRAME_HEADER_LEN;
use crate::layout::{EventLine, EventRef, HeaderSlot, Line, View};
use crate::primitive::{AtomicU32, AtomicU64};
use crate::ChannelError;

/// Written by the sender when it publishes frames.
#[repr(C, align(128))]
pub(crate) struct ProducerLine {
    /// Bytes ever published; frames below it are complete. A multiple of 8, and
    /// `tail - head <= capacity` (wrapping differences).
    pub(crate) tail: AtomicU64,
}

/// Written by the receiver when it releases frames.
#[repr(C, align(128))]
pub(crate) struct ConsumerLine {
    /// Bytes ever released; the sender may overwrite everything below it.
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

// SAFETY: each line holds atomics only.
unsafe impl Line for ProducerLine {}
// SAFETY: atomics only.
unsafe impl Line for ConsumerLine {}
// SAFETY: atomics only.
unsafe impl Line for StatusLine {}

/// The control block at offset 0 of the region; reached line by line, never as a whole.
#[repr(C)]
struct Control {
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
const SPSC_SPEC: LayoutSpec = LayoutSpec {
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

/// A validated view of an SPSC channel's memory.
#[derive(Clone)]
pub struct Shared {
    view: View,
    /// Under loom, the frame header words live here (one per 8 data bytes) as loom
    /// atomics, so that the models see — and interleave — every header store and load.
    #[cfg(loom)]
    pub(crate) loom_headers: Arc<Vec<AtomicU64>>,
}

impl Shared {
    /// Lays out a fresh channel of `capacity` bytes in `memory` (overwriting it), and writes
    /// the header last.
    pub(crate) fn create(
        memory: Arc<dyn SharedMemory>,
        capacity: usize,
    ) -> Result<Shared, ChannelError> {
        let shared = Shared::from_view(View::new(memory, DATA_OFFSET, capacity as u64)?);
        let view = &shared.view;
        // SAFETY: the offsets are those of the lines in `Control` (checked above); nobody
        // uses the region yet: we are creating it.
        unsafe {
            view.init_line(
                offset_of!(Control, producer),
                ProducerLine {
                    tail: AtomicU64::new(0),
                },
            );
            view.init_line(
                offset_of!(Control, consumer),
                ConsumerLine {
                    head: AtomicU64::new(0),
                },
            );
            view.init_line(
                offset_of!(Control, status),
                StatusLine {
                    sender_owner: AtomicU64::new(0),
                    receiver_owner: AtomicU64::new(0),
                    sender_closed: AtomicU32::new(0),
                    receiver_closed: AtomicU32::new(0),
                },
            );
            view.init_line(offset_of!(Control, events), EventLine::new());
        }
        view.publish_header(&SPSC_SPEC)?;
        Ok(shared)
    }

    /// Validates the header of an existing channel in `memory` and returns a view of it.
    pub(crate) fn attach(memory: Arc<dyn SharedMemory>) -> Result<Shared, ChannelError> {
        Ok(Shared::from_view(View::attach(
            memory,
            &SPSC_SPEC,
            DATA_OFFSET,
        )?))
    }

    fn from_view(view: View) -> Shared {
        Shared {
            #[cfg(loom)]
            loom_headers: Arc::new(
                (0..view.capacity() / 8)
                    .map(|_| AtomicU64::new(0))
                    .collect(),
            ),
            view,
        }
    }

    pub(crate) fn view(&self) -> &View {
        &self.view
    }

    pub(crate) fn producer(&self) -> &ProducerLine {
        // SAFETY: the offset of `producer` in `Control`.
        unsafe { self.view.line(offset_of!(Control, producer)) }
    }

    pub(crate) fn consumer(&self) -> &ConsumerLine {
        // SAFETY: the offset of `consumer` in `Control`.
        unsafe { self.view.line(offset_of!(Control, consumer)) }
    }

    pub(crate) fn status(&self) -> &StatusLine {
        // SAFETY: the offset of `status` in `Control`.
        unsafe { self.view.line(offset_of!(Control, status)) }
    }

    pub(crate) fn events(&self) -> &EventLine {
        // SAFETY: the offset of `events` in `Control`.
        unsafe { self.view.line(offset_of!(Control, events)) }
    }

    /// The data event (the receiver sleeps on it), as an owned handle.
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

    /// Start of the data area: valid for `capacity` bytes.
    pub(crate) fn data(&self) -> *mut u8 {
        self.view.data()
    }

    /// Capacity in bytes.
    pub(crate) fn capacity(&self) -> u64 {
        self.view.capacity()
    }
}

/// Region bytes an SPSC channel of `capacity` needs.
pub fn region_len_for(capacity: usize) -> Option<usize> {
    DATA_OFFSET.checked_add(capacity)
}
