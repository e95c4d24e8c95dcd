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

use std::mem::{align_of, size_of};
use std::sync::Arc;

use shm_core::header::LayoutSpec;
use shm_core::SharedMemory;

use crate::layout::{
    assert_offsets, control_lines, layout_offsets, layout_spec, ChannelLayout, ConsumerLine,
    Creation, EventLine, HeaderSlot, ProducerLine, StatusLine, View,
};
#[cfg(loom)]
use crate::primitive::AtomicU64;
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
pub(crate) const DATA_OFFSET: usize = size_of::<Control>();

assert_offsets! {
    Control { producer: 128, consumer: 256, status: 384, events: 512 },
    EventLine { space: 8 },
    ; data: 640
}

/// The layout this build speaks: bump `version` on any incompatible change.
/// Size and alignment of the control block, for the layout hash.
const CONTROL: (usize, usize) = (size_of::<Control>(), align_of::<Control>());
const SPSC_SPEC: LayoutSpec = layout_spec(b"SHMSPSC1", 3, &[CONTROL]);

/// A validated view of an SPSC channel's memory.
#[derive(Clone)]
pub struct Shared {
    view: View,
    /// Under loom, the frame header words live here (one per 8 data bytes) as loom
    /// atomics, so that the models see — and interleave — every header store and load.
    #[cfg(loom)]
    pub(crate) loom_headers: Arc<Vec<AtomicU64>>,
}

impl ChannelLayout for Shared {
    layout_offsets!(Options = ());

    fn create(memory: Arc<dyn SharedMemory>, how: &Creation<()>) -> Result<Shared, ChannelError> {
        let view = how.view(memory, DATA_OFFSET)?;
        let shared = Shared::from_view(view);
        // SAFETY: we are creating the channel: nobody uses the region yet.
        unsafe { Shared::init_lines(&shared.view) };
        shared.view.publish_header(&SPSC_SPEC, Self::STATUS)?;
        Ok(shared)
    }

    fn attach(memory: Arc<dyn SharedMemory>) -> Result<Shared, ChannelError> {
        Ok(Shared::from_view(View::attach(
            memory,
            &SPSC_SPEC,
            DATA_OFFSET,
            Self::STATUS,
        )?))
    }

    fn view(&self) -> &View {
        &self.view
    }

    fn view_mut(&mut self) -> &mut View {
        &mut self.view
    }
}

impl Shared {
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

    control_lines! {
        producer: ProducerLine,
        consumer: ConsumerLine,
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
    Shared::region_len(capacity)
}
