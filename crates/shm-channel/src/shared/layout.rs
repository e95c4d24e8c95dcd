//! A flavor's region: one generic [`Layout`] over the flavor's [`ControlBlock`] — how the
//! region is created and attached, where its status and event lines are, and what its
//! notifiers wake.
//!
//! Every layout starts with the shm-core [`LayoutHeader`](shm_core::header::LayoutHeader) on
//! its own 128-byte line, then the flavor's control lines (see `super::lines`; the type line
//! last), then the data area of `capacity` bytes. What differs between flavors is only the control block:
//! its lines, their offsets, what a fresh one holds, and the options it records.

use std::fmt;
use std::mem::offset_of;
use std::sync::Arc;

use shm_core::header::LayoutSpec;
use shm_core::notify::Handshake;
use shm_core::SharedMemory;

use super::creation::Creation;
use super::doorbells::Doorbells;
use super::lines::{Control, EventLine, Line, StatusLine, TypeLine};
use super::primitive::DataArea;
use super::view::{check_capacity, EventRef, View, Wake, MIN_CAPACITY};
use crate::ChannelError;

/// A flavor's control block ([`Control`] of its own lines): its spec, the offsets of its
/// common lines and data area, and how a fresh one is written and an existing one's
/// options are read.
pub(crate) trait ControlBlock: Sized + Send + Sync + 'static {
    /// Creation options of the flavor (broadcast: its policy).
    type Options: Clone + Default + fmt::Debug + Send + Sync;
    /// Magic, version and layout hash of the flavor's region.
    const SPEC: LayoutSpec;
    /// The flavor's lines between the header slot and the status line (`()`: none).
    type Before;
    /// The flavor's lines between the event line and the type line (`()`: none).
    type After;
    /// Offset of the data area: the size of the control block.
    const DATA_OFFSET: usize = Control::<Self::Before, Self::After>::LEN;
    /// Offset of the [`EventLine`] in the control block.
    const EVENTS: usize = Control::<Self::Before, Self::After>::EVENTS;
    /// Offset of the [`StatusLine`] in the control block.
    const STATUS: usize = Control::<Self::Before, Self::After>::STATUS;
    /// Offset of the [`TypeLine`] in the control block.
    const TYPE: usize = Control::<Self::Before, Self::After>::TYPE;
    /// Smallest capacity of the flavor.
    const MIN_CAPACITY: usize = MIN_CAPACITY;

    /// Writes the flavor's own lines of a fresh channel (the status and event lines are
    /// written already) and records its options.
    ///
    /// # Safety
    ///
    /// `view` is a region being created: nobody may use it yet.
    unsafe fn init(view: &View, how: &Creation<Self::Options>);

    /// The options an existing channel recorded, checked.
    fn read_options(view: &View) -> Result<Self::Options, ChannelError>;

    /// Bytes of the data area of a channel of `capacity` with `options` (MPSC: a lane of
    /// `capacity` per sender slot); `None` if that does not fit a `usize`.
    fn area(capacity: usize, _options: &Self::Options) -> Option<usize> {
        Some(capacity)
    }
}

/// A validated view of a channel of control block `K`, with its options.
pub(crate) struct Layout<K: ControlBlock> {
    view: View,
    options: K::Options,
}

impl<K: ControlBlock> Clone for Layout<K> {
    fn clone(&self) -> Layout<K> {
        Layout {
            view: self.view.clone(),
            options: self.options.clone(),
        }
    }
}

impl<K: ControlBlock> Layout<K> {
    /// Lays out a fresh channel in `memory` as `how` says (`how.handshake`: from
    /// [`creation_handshake`](super::creation::creation_handshake)), header last. The data
    /// area is not cleared: each flavor clears what its readers look at first.
    pub(crate) fn create(
        memory: Arc<dyn SharedMemory>,
        how: &Creation<K::Options>,
    ) -> Result<Layout<K>, ChannelError> {
        let view = View::create(memory, K::DATA_OFFSET, how)?;
        // SAFETY: we are creating the channel: nobody uses the region yet; `STATUS`,
        // `EVENTS` and `TYPE` are the offsets of those lines in the flavor's control block.
        unsafe {
            view.init_line::<StatusLine>(K::STATUS);
            view.init_line::<EventLine>(K::EVENTS);
            view.init_line::<TypeLine>(K::TYPE);
            K::init(&view, how);
        }
        view.publish_header(&K::SPEC, K::STATUS)?;
        Ok(Layout {
            view,
            options: how.options.clone(),
        })
    }

    /// Validates the header of an existing channel in `memory`, its capacity and options,
    /// and views it.
    pub(crate) fn attach(memory: Arc<dyn SharedMemory>) -> Result<Layout<K>, ChannelError> {
        let view = View::attach(memory, &K::SPEC, K::DATA_OFFSET, K::STATUS)?;
        Layout::<K>::check_capacity(view.capacity() as usize)?;
        let options = K::read_options(&view)?;
        Ok(Layout { view, options })
    }

    /// This layout with the channel's doorbells in this process.
    pub(crate) fn with_doorbells(mut self, doorbells: Option<Arc<Doorbells>>) -> Self {
        self.view.set_doorbells(doorbells);
        self
    }

    /// Region bytes a channel of `capacity` with `options` needs, if the sum fits.
    pub(crate) fn region_len(capacity: usize, options: &K::Options) -> Option<usize> {
        K::DATA_OFFSET.checked_add(K::area(capacity, options)?)
    }

    /// Checks `capacity` (before anything is mapped): a power of two, at least the
    /// flavor's `MIN_CAPACITY`, at most `MAX_CAPACITY`.
    pub(crate) fn check_capacity(capacity: usize) -> Result<(), ChannelError> {
        check_capacity(capacity as u64)?;
        if capacity < K::MIN_CAPACITY {
            return Err(ChannelError::InvalidCapacity {
                capacity: capacity as u64,
                reason: "below the smallest capacity of this kind of channel",
            });
        }
        Ok(())
    }

    /// The validated view.
    #[inline]
    pub(crate) fn view(&self) -> &View {
        &self.view
    }

    /// The channel's options (broadcast: its policy), as created or read at attach.
    pub(crate) fn options(&self) -> &K::Options {
        &self.options
    }

    /// The channel's wake handshake (cached privately at creation or attach).
    #[inline]
    pub(crate) fn handshake(&self) -> Handshake {
        self.view.handshake()
    }

    /// The data area.
    #[inline]
    pub(crate) fn data(&self) -> &DataArea {
        self.view.data()
    }

    /// Capacity of the data area in bytes.
    #[inline]
    pub(crate) fn capacity(&self) -> u64 {
        self.view.capacity()
    }

    /// The line of type `T` at `offset` of the control block.
    ///
    /// # Safety
    ///
    /// `offset` must be the offset of a `T` in `K`'s control block.
    #[inline]
    pub(crate) unsafe fn line<T: Line>(&self, offset: usize) -> &T {
        // SAFETY: forwarded to the caller.
        unsafe { self.view.line(offset) }
    }

    /// The status line: owners and closed flags.
    pub(crate) fn status(&self) -> &StatusLine {
        // SAFETY: `STATUS` is the offset of the status line in the flavor's control block.
        unsafe { self.line(K::STATUS) }
    }

    /// The type line: what the channel's typed ends carry.
    pub(crate) fn type_line(&self) -> &TypeLine {
        // SAFETY: `TYPE` is the offset of the type line in the flavor's control block.
        unsafe { self.line(K::TYPE) }
    }

    /// Both events.
    fn events(&self) -> &EventLine {
        // SAFETY: `EVENTS` is the offset of the event line in the flavor's control block.
        unsafe { self.line(K::EVENTS) }
    }

    /// The data event and its doorbell: what a publishing sender wakes.
    pub(crate) fn data_wake(&self) -> Wake<'_> {
        Wake::new(&self.events().data, &self.view, Doorbells::sender_end)
    }

    /// The space event and its doorbell: what a releasing receiver wakes.
    pub(crate) fn space_wake(&self) -> Wake<'_> {
        Wake::new(&self.events().space, &self.view, Doorbells::receiver_end)
    }

    /// The data event (receivers sleep on it), as an owned handle.
    pub(crate) fn data_event(&self) -> EventRef {
        // SAFETY: the offset of `data` in the event line of the control block.
        unsafe { self.view.event(K::EVENTS + offset_of!(EventLine, data)) }
    }

    /// The space event (senders sleep on it), as an owned handle.
    pub(crate) fn space_event(&self) -> EventRef {
        // SAFETY: the offset of `space` in the event line of the control block.
        unsafe { self.view.event(K::EVENTS + offset_of!(EventLine, space)) }
    }
}
