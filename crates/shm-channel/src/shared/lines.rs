//! The lines a channel's control block is made of: each `#[repr(C, align(128))]` and made of
//! atomics only, so a peer writing one concurrently is never a data race on our side. The
//! header slot comes first in every layout; the status and event lines are the same in
//! every flavor; the producer and consumer lines carry the SPSC and MPSC indices; the type
//! line, last before the data area in every flavor, records what typed ends carry (see
//! `super::fingerprint`).

use std::mem::{offset_of, size_of};

use shm_core::header::{self, LayoutHeader, LayoutSpec};
use shm_core::notify::Event;

use super::primitive::{AtomicU32, AtomicU64};

/// Static checks of a layout: `Type { field: offset, ... }` for the offsets it documents (and
/// tests poke), and, for a flavor's control block, `; data: n` for the offset of the data
/// area (the size of the flavor's `Control`). Not under loom, whose atomics are laid out
/// otherwise.
macro_rules! assert_offsets {
    ($($ty:ident { $($field:ident: $offset:expr),* $(,)? }),* $(,)? $(; data: $data:expr)?) => {
        #[cfg(not(loom))]
        const _: () = {
            $($(assert!(std::mem::offset_of!($ty, $field) == $offset);)*)*
            $(assert!(std::mem::size_of::<Control>() == $data);)?
        };
    };
}
pub(crate) use assert_offsets;

/// Room for the shm-core header, on its own line.
#[repr(C, align(128))]
pub(crate) struct HeaderSlot([u64; 16]);

const _: () = assert!(size_of::<LayoutHeader>() <= size_of::<HeaderSlot>());

/// A line of a control block: `#[repr(C)]`, made of atomics only.
///
/// # Safety
///
/// Implementors hold only atomics (or arrays of them), so any bit pattern is a valid value
/// and concurrent writers in other processes are not a data race on our side.
///
/// A line's `Default` is its state in a fresh channel: every word zero (idle events,
/// nobody attached, nothing published).
pub(crate) unsafe trait Line: Default {}

// SAFETY: two atomic u32s.
unsafe impl Line for Event {}

/// Written by the (SPSC or MPSC) sender side when it publishes or claims frames.
#[derive(Default)]
#[repr(C, align(128))]
pub(crate) struct ProducerLine {
    /// Bytes ever published (SPSC) or claimed (MPSC); a multiple of 8, and
    /// `tail - head <= capacity` (wrapping differences).
    pub(crate) tail: AtomicU64,
}

/// Written by the receiver when it releases frames.
#[derive(Default)]
#[repr(C, align(128))]
pub(crate) struct ConsumerLine {
    /// Bytes ever released; senders may overwrite everything below it.
    pub(crate) head: AtomicU64,
}

/// Ownership and close state of a channel, the same line in every flavor; written rarely
/// (attach, hand-over, drop), read on the slow paths.
#[derive(Default)]
#[repr(C, align(128))]
pub(crate) struct StatusLine {
    /// `ProcessIdentity` of the process owning the sender (SPSC, broadcast); 0 = unclaimed.
    /// MPSC senders own producer slots instead.
    pub(crate) sender_owner: AtomicU64,
    /// `ProcessIdentity` of the process owning the receiver (SPSC, MPSC); 0 = unclaimed.
    /// Broadcast receivers own reader slots instead.
    pub(crate) receiver_owner: AtomicU64,
    /// 1 once the sender was dropped by its owner (SPSC, broadcast).
    pub(crate) sender_closed: AtomicU32,
    /// 1 once the receiver was dropped by its owner (SPSC, MPSC).
    pub(crate) receiver_closed: AtomicU32,
    /// MPSC: producer slots in use (claimed and not yet released or reaped).
    pub(crate) senders: AtomicU32,
    /// Broadcast: 0 back-pressure, 1 overwrite.
    pub(crate) policy: AtomicU32,
    /// The channel's wake handshake ([`Handshake::to_u32`](shm_core::notify::Handshake::to_u32)): written by the creator before
    /// the header's magic is published, read once by every process that attaches, never
    /// on a hot path. 0 (unwritten) and unknown values are refused at attach.
    pub(crate) handshake: AtomicU32,
    /// SPSC: nonzero while the receiver asks for lined frames (see `crate::shared::lane`,
    /// "Lined frames"); written by the receiver when its wish changes, read by the sender
    /// every 64 reservations. A hint only: any value is safe.
    pub(crate) line_hint: AtomicU32,
}

assert_offsets! {
    StatusLine {
        receiver_owner: 8,
        sender_closed: 16,
        receiver_closed: 20,
        senders: 24,
        policy: 28,
        handshake: 32,
        line_hint: 36,
    },
}

// SAFETY: atomics only.
unsafe impl Line for StatusLine {}
// SAFETY: atomics only.
unsafe impl Line for ProducerLine {}
// SAFETY: atomics only.
unsafe impl Line for ConsumerLine {}

/// The two events endpoints sleep on.
#[derive(Default)]
#[repr(C, align(128))]
pub(crate) struct EventLine {
    /// The receiver sleeps here for data; the sender notifies after publishing.
    pub(crate) data: Event,
    /// The sender sleeps here for room; the receiver notifies after releasing.
    pub(crate) space: Event,
}

assert_offsets! {
    EventLine { space: 16 },
}

// SAFETY: two `Event`s, atomics only.
unsafe impl Line for EventLine {}

/// Bytes of a type's name a [`TypeLine`] keeps (a longer name is cut; its fingerprint hash
/// covers all of it).
pub(crate) const TYPE_NAME_BYTES: usize = 192;
/// Bytes of a codec's name a [`TypeLine`] keeps.
pub(crate) const CODEC_NAME_BYTES: usize = 16;

/// What the typed ends of a channel carry, the same line in every flavor, last before the
/// data area: written once, by the first typed end made of the channel (see
/// `super::fingerprint`); read when another typed end is made of it. Raw byte ends never
/// touch it. A peer may write any value here: the words are only compared and copied into
/// an error message, never used to index or size anything.
#[derive(Default)]
#[repr(C, align(128))]
pub(crate) struct TypeLine {
    /// The fingerprint hash of the typed ends (never 0); 0 while the channel is untyped.
    /// Set once, by a compare-and-swap from 0.
    pub(crate) fingerprint: AtomicU64,
    /// Equal to `fingerprint` once the description below is written (`SYNC: type
    /// described`); anything else means "not described (yet)".
    pub(crate) described: AtomicU64,
    /// `size_of::<T>()` where the codec's wire format is `T`'s memory (plain data).
    pub(crate) size: AtomicU64,
    /// `align_of::<T>()`, as `size`.
    pub(crate) align: AtomicU32,
    /// Bit 0: `size` and `align` are meaningful; bit 1: `schema` is set.
    pub(crate) flags: AtomicU32,
    /// The user's schema id, if bit 1 of `flags`.
    pub(crate) schema: AtomicU64,
    /// Bytes of the type's name (the first [`TYPE_NAME_BYTES`] of them are kept).
    pub(crate) name_len: AtomicU32,
    /// Bytes of the codec's name (the first [`CODEC_NAME_BYTES`] of them are kept).
    pub(crate) codec_len: AtomicU32,
    /// The codec's name, 8 bytes per word, little-endian.
    pub(crate) codec: [AtomicU64; CODEC_NAME_BYTES / 8],
    /// The type's name, 8 bytes per word, little-endian.
    pub(crate) name: [AtomicU64; TYPE_NAME_BYTES / 8],
}

assert_offsets! {
    TypeLine {
        described: 8,
        size: 16,
        align: 24,
        flags: 28,
        schema: 32,
        name_len: 40,
        codec_len: 44,
        codec: 48,
        name: 64,
    },
}

#[cfg(not(loom))]
const _: () = assert!(size_of::<TypeLine>() == 256);

// SAFETY: atomics only.
unsafe impl Line for TypeLine {}

/// A flavor's control block, at offset 0 of its region; reached line by line, never as a
/// whole. Every flavor's has this order: the header slot, the flavor's own lines `B`, the
/// status and event lines, the flavor's own lines `A`, the type line last before the data
/// area (a flavor with no lines on one side has `()` there, which takes no room).
#[repr(C)]
pub(crate) struct Control<B, A> {
    header: HeaderSlot,
    pub(crate) before: B,
    status: StatusLine,
    events: EventLine,
    pub(crate) after: A,
    types: TypeLine,
}

impl<B, A> Control<B, A> {
    /// Offset of the data area: the size of the control block.
    pub(crate) const LEN: usize = size_of::<Self>();
    /// Offset of the [`StatusLine`].
    pub(crate) const STATUS: usize = offset_of!(Self, status);
    /// Offset of the [`EventLine`].
    pub(crate) const EVENTS: usize = offset_of!(Self, events);
    /// Offset of the [`TypeLine`].
    pub(crate) const TYPE: usize = offset_of!(Self, types);
}

/// The layout spec of a flavor's region: its magic and version, and a hash over the sizes
/// and alignments of the shared types every layout has (header, status, event and type
/// lines, frame word) plus the flavor's own (`types`: its control block, lines and slots).
pub(crate) const fn layout_spec(
    magic: &[u8; 8],
    version: u32,
    types: &[(usize, usize)],
) -> LayoutSpec {
    let common = header::layout_hash(&[
        (
            size_of::<LayoutHeader>(),
            std::mem::align_of::<LayoutHeader>(),
        ),
        (size_of::<HeaderSlot>(), std::mem::align_of::<HeaderSlot>()),
        (size_of::<StatusLine>(), std::mem::align_of::<StatusLine>()),
        (size_of::<EventLine>(), std::mem::align_of::<EventLine>()),
        (size_of::<TypeLine>(), std::mem::align_of::<TypeLine>()),
        (
            super::frame::FRAME_HEADER_LEN,
            super::frame::FRAME_HEADER_LEN,
        ),
    ]);
    LayoutSpec {
        magic: u64::from_le_bytes(*magic),
        version,
        layout_hash: common ^ header::layout_hash(types).rotate_left(17),
    }
}
