//! The SPSC channel's layout in shared memory.
//!
//! ```text
//! offset   0  LayoutHeader (shm-core), padded to 128 bytes
//! offset 128  ProducerLine: tail                      written by the sender on publish,
//!                                                     read only by `len` and a new sender
//! offset 256  ConsumerLine: head                      written by the receiver on release,
//!                                                     read by the sender when it looks full
//! offset 384  StatusLine:   owners, closed flags,     written rarely (attach, drop)
//!                            wake handshake (+32)
//! offset 512  EventLine:    data and space events     touched only around sleeps
//! offset 640  TypeLine:     what typed ends carry     written once by the first typed end
//! offset 896  data: `capacity` bytes of frames, each published by its header word
//! ```
//!
//! Head and tail sit on separate 128-byte lines (two 64-byte lines: the adjacent-line
//! prefetcher pulls pairs) so the sender's and receiver's stores never share a line. The
//! status line is read on the hot path (is the peer gone?) but written only when an endpoint
//! changes hands or closes, so it stays shared in both caches.

use std::mem::{align_of, offset_of, size_of};

use shm_core::header::LayoutSpec;

use super::Spsc;
use crate::shared::creation::Creation;
use crate::shared::layout::ControlBlock;
use crate::shared::lines::{self, assert_offsets, layout_spec, ConsumerLine, ProducerLine};
use crate::shared::view::View;
use crate::ChannelError;

/// The SPSC lines before the status line: the tail, then the head, each on a line of its
/// own.
#[repr(C)]
pub(crate) struct Indices {
    producer: ProducerLine,
    consumer: ConsumerLine,
}

/// The control block at offset 0 of the region: no lines after the event line.
type Control = lines::Control<Indices, ()>;

assert_offsets! {
    Control { before: 128, after: 640 },
    Indices { consumer: 128 },
    ; data: 896
}

// The common lines' offsets, as the table above says.
#[cfg(not(loom))]
const _: () = assert!(Control::STATUS == 384 && Control::EVENTS == 512 && Control::TYPE == 640);

/// A validated view of an SPSC channel's memory.
pub(crate) type Layout = crate::shared::layout::Layout<Spsc>;

impl ControlBlock for Spsc {
    type Options = ();
    type Before = Indices;
    type After = ();
    // The layout this build speaks (bump the version on any incompatible change), hashed
    // with the size and alignment of the control block.
    const SPEC: LayoutSpec = layout_spec(
        b"SHMSPSC1",
        6,
        &[(size_of::<Control>(), align_of::<Control>())],
    );

    /// The first word of the data area is cleared: the reader's first look. Every other
    /// word it looks at is cleared by the writer before use (see `spsc::ring`), so reused
    /// memory needs no more.
    unsafe fn init(view: &View, _how: &Creation<()>) {
        // SAFETY: the offsets are those of the lines in `Control`; the caller guarantees
        // nobody uses the region yet.
        unsafe {
            view.init_line::<ProducerLine>(offset_of!(Control, before.producer));
            view.init_line::<ConsumerLine>(offset_of!(Control, before.consumer));
        }
        // Relaxed: nobody else uses the region yet; the header's publication orders it.
        view.data()
            .store_word(0, 0, std::sync::atomic::Ordering::Relaxed);
    }

    fn read_options(_view: &View) -> Result<(), ChannelError> {
        Ok(())
    }
}

impl Layout {
    /// The sender's line: the published tail.
    pub(crate) fn producer(&self) -> &ProducerLine {
        // SAFETY: the offset of the producer line in `Control`.
        unsafe { self.line(offset_of!(Control, before.producer)) }
    }

    /// The receiver's line: the released head.
    pub(crate) fn consumer(&self) -> &ConsumerLine {
        // SAFETY: the offset of the consumer line in `Control`.
        unsafe { self.line(offset_of!(Control, before.consumer)) }
    }
}

/// Region bytes an SPSC channel of `capacity` needs.
#[cfg(test)]
pub(crate) fn region_len_for(capacity: usize) -> Option<usize> {
    Layout::region_len(capacity, &Default::default())
}
