//! The SPSC channel's layout in shared memory.
//!
//! ```text
//! offset   0  LayoutHeader (shm-core), padded to 128 bytes
//! offset 128  ProducerLine: tail                      written by the sender on publish
//! offset 256  ConsumerLine: head                      written by the receiver on release
//! offset 384  StatusLine:   owners, closed flags,     written rarely (attach, drop)
//!                            wake handshake (+32)
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

use shm_core::header::LayoutSpec;
use shm_core::SharedMemory;

use crate::shared::creation::Creation;
use crate::shared::layout::ChannelLayout;
use crate::shared::lines::{
    assert_offsets, layout_spec, ConsumerLine, EventLine, HeaderSlot, ProducerLine, StatusLine,
};
use crate::shared::primitive::DataArea;
use crate::shared::view::View;
use crate::ChannelError;

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
const DATA_OFFSET: usize = size_of::<Control>();

assert_offsets! {
    Control { producer: 128, consumer: 256, status: 384, events: 512 },
    EventLine { space: 8 },
    ; data: 640
}

/// The layout this build speaks (bump the version on any incompatible change), hashed
/// with the size and alignment of the control block.
const SPSC_SPEC: LayoutSpec = layout_spec(
    b"SHMSPSC1",
    3,
    &[(size_of::<Control>(), align_of::<Control>())],
);

/// A validated view of an SPSC channel's memory.
#[derive(Clone)]
pub(crate) struct Layout {
    view: View,
}

impl ChannelLayout for Layout {
    type Options = ();
    const DATA_OFFSET: usize = DATA_OFFSET;
    const EVENTS: usize = offset_of!(Control, events);
    const STATUS: usize = offset_of!(Control, status);

    fn create(memory: Arc<dyn SharedMemory>, how: &Creation<()>) -> Result<Layout, ChannelError> {
        let view = View::create(memory, DATA_OFFSET, how)?;
        // SAFETY: we are creating the channel: nobody uses the region yet; the offsets are
        // those of the lines in `Control`.
        unsafe {
            Self::init_common_lines(&view);
            view.init_line::<ProducerLine>(offset_of!(Control, producer));
            view.init_line::<ConsumerLine>(offset_of!(Control, consumer));
        }
        view.publish_header(&SPSC_SPEC, Self::STATUS)?;
        Ok(Layout { view })
    }

    fn attach(memory: Arc<dyn SharedMemory>) -> Result<Layout, ChannelError> {
        let view = View::attach(memory, &SPSC_SPEC, DATA_OFFSET, Self::STATUS)?;
        Ok(Layout { view })
    }

    fn view(&self) -> &View {
        &self.view
    }

    fn view_mut(&mut self) -> &mut View {
        &mut self.view
    }
}

impl Layout {
    /// The sender's line: the published tail.
    pub(crate) fn producer(&self) -> &ProducerLine {
        // SAFETY: the offset of the producer line in `Control`.
        unsafe { self.view.line(offset_of!(Control, producer)) }
    }

    /// The receiver's line: the released head.
    pub(crate) fn consumer(&self) -> &ConsumerLine {
        // SAFETY: the offset of the consumer line in `Control`.
        unsafe { self.view.line(offset_of!(Control, consumer)) }
    }

    /// The data area.
    pub(crate) fn data(&self) -> &DataArea {
        self.view.data()
    }

    /// Capacity in bytes.
    pub(crate) fn capacity(&self) -> u64 {
        self.view.capacity()
    }
}

/// Region bytes an SPSC channel of `capacity` needs.
#[cfg(all(test, loom))]
pub(crate) fn region_len_for(capacity: usize) -> Option<usize> {
    Layout::region_len(capacity)
}
