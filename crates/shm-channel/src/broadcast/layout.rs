//! The broadcast channel's layout in shared memory.
//!
//! ```text
//! offset    0  LayoutHeader (shm-core), padded to 128 bytes
//! offset  128  WriterLine:  tail, oldest, next_seq written by the sender
//! offset  256  StatusLine:  owners, closed flags, policy, wake handshake (the common
//!                           status line)
//! offset  384  EventLine:   data and space events
//! offset  512  16 ReaderSlots of 128 bytes:      owner, cursor (one line per receiver)
//! offset 2560  TypeLine:    what typed ends carry (written once by the first typed end)
//! offset 2816  data: `capacity` bytes of frames
//! ```
//!
//! A frame has a 16-byte header: word 0 is the stamp (the message's sequence number + 1; a
//! pad carries the next message's), word 1 the common frame word (`crate::shared::frame`). Frames
//! are 16-aligned.

use std::mem::{align_of, offset_of, size_of};
use std::sync::atomic::Ordering;

use shm_core::header::LayoutSpec;

use super::Broadcast;
use crate::shared::creation::Creation;
use crate::shared::layout::ControlBlock;
use crate::shared::lines::{self, assert_offsets, layout_spec, Line, StatusLine};
use crate::shared::primitive::AtomicU64;
use crate::shared::view::View;
use crate::{ChannelError, Corruption};

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

/// The control block at offset 0 of the region: the writer line before the status line,
/// the reader slots after the event line.
type Control = lines::Control<WriterLine, [ReaderSlot; MAX_READERS]>;

assert_offsets! {
    Control { before: 128, after: 512 },
    WriterLine { oldest: 8, next_seq: 16 },
    ; data: 512 + 16 * 128 + 256
}

// The common lines' offsets, as the table above says.
#[cfg(not(loom))]
const _: () = assert!(Control::STATUS == 256 && Control::EVENTS == 384 && Control::TYPE == 2560);

const SLOT_LEN: usize = size_of::<ReaderSlot>();

/// Region bytes a broadcast channel of `capacity` needs.
#[cfg(all(test, loom))]
pub(crate) fn region_len_for(capacity: usize) -> Option<usize> {
    Layout::region_len(capacity, &Default::default())
}

/// Ring bytes of a frame with `len` payload bytes.
pub(crate) const fn span_of(len: u64) -> u64 {
    HEADER + len.next_multiple_of(16)
}

/// A validated view of a broadcast channel's memory, with its policy.
pub(crate) type Layout = crate::shared::layout::Layout<Broadcast>;

impl ControlBlock for Broadcast {
    type Options = Policy;
    type Before = WriterLine;
    type After = [ReaderSlot; MAX_READERS];
    // The layout this build speaks (bump the version on any incompatible change), hashed
    // with the sizes and alignments of the control block, the reader slots and the frame
    // header.
    const SPEC: LayoutSpec = layout_spec(
        b"SHMBCST1",
        6,
        &[
            (size_of::<Control>(), align_of::<Control>()),
            (SLOT_LEN, MAX_READERS),
            (HEADER as usize, 8),
        ],
    );
    /// Two frames of an 8-byte message.
    const MIN_CAPACITY: usize = 32;

    unsafe fn init(view: &View, how: &Creation<Policy>) {
        // SAFETY: the offsets are those of the writer line and of the reader slot array in
        // `Control`; the caller guarantees nobody uses the region yet.
        unsafe {
            view.init_line::<WriterLine>(offset_of!(Control, before));
            for i in 0..MAX_READERS {
                view.init_line::<ReaderSlot>(reader_offset(i));
            }
        }
        // SAFETY: the offset of the status line in `Control`.
        let status = unsafe { view.line::<StatusLine>(Control::STATUS) };
        // Relaxed: published by the header's magic, stored with Release after it.
        status.policy.store(
            u32::from(how.options == Policy::Overwrite),
            Ordering::Relaxed,
        );
    }

    /// The policy word, checked.
    fn read_options(view: &View) -> Result<Policy, ChannelError> {
        // SAFETY: the offset of the status line in `Control`.
        let status = unsafe { view.line::<StatusLine>(Control::STATUS) };
        // Relaxed: written before the header, whose magic `attach` loaded with Acquire.
        let policy_untrusted = status.policy.load(Ordering::Relaxed);
        match policy_untrusted {
            0 => Ok(Policy::BackPressure),
            1 => Ok(Policy::Overwrite),
            other => Err(ChannelError::Corrupted(Corruption {
                what: "broadcast policy word",
                value: other.into(),
            })),
        }
    }
}

impl Layout {
    /// The channel's policy.
    pub(crate) fn policy(&self) -> Policy {
        *self.options()
    }

    /// The sender's line.
    pub(crate) fn writer(&self) -> &WriterLine {
        // SAFETY: the offset of the writer line in `Control`.
        unsafe { self.line(offset_of!(Control, before)) }
    }

    /// Reader slot `index` (clamped below `MAX_READERS`).
    pub(crate) fn reader(&self, index: usize) -> &ReaderSlot {
        // SAFETY: `reader_offset` clamps the index: a slot of the array.
        unsafe { self.line(reader_offset(index)) }
    }

    /// Where the payload of the frame at data offset `offset` starts (arithmetic only).
    pub(crate) fn payload_ptr(&self, offset: u64) -> *mut u8 {
        self.data().ptr(offset + HEADER)
    }

    /// The data area's capacity less one: a position's offset is `position & mask`.
    pub(crate) fn mask(&self) -> u64 {
        self.capacity() - 1
    }
}

fn reader_offset(index: usize) -> usize {
    offset_of!(Control, after) + index.min(MAX_READERS - 1) * SLOT_LEN
}
