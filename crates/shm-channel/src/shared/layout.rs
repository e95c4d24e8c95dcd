//! The contract every flavor's layout meets: how its region is created and attached, where
//! its status and event lines are, and what its notifiers wake.
//!
//! Every layout starts with the shm-core [`LayoutHeader`](shm_core::header::LayoutHeader) on
//! its own 128-byte line, then the flavor's control lines (see `super::lines`), then the
//! data area of `capacity` bytes.

use std::sync::Arc;

use shm_core::notify::Handshake;
use shm_core::SharedMemory;

use super::creation::Creation;
use super::doorbells::Doorbells;
use super::lines::{EventLine, StatusLine};
use super::view::{check_capacity, EventRef, View, Wake, MIN_CAPACITY};
use crate::ChannelError;

/// A flavor's region: how it is created and attached, and where its events are.
pub(crate) trait ChannelLayout: Clone + Send + Sync + Sized {
    /// Creation options of the flavor (broadcast: its policy).
    type Options: Clone + Default + std::fmt::Debug;
    /// Offset of the data area: the size of the control block.
    const DATA_OFFSET: usize;
    /// Offset of the [`EventLine`] in the control block.
    const EVENTS: usize;
    /// Offset of the [`StatusLine`] in the control block.
    const STATUS: usize;
    /// Smallest capacity of the flavor.
    const MIN_CAPACITY: usize = MIN_CAPACITY;

    /// Lays out a fresh channel in `memory` as `how` says (`how.zeroed`: the memory is
    /// known to be all zero, so nothing needs clearing; `how.handshake`: from
    /// [`creation_handshake`](super::creation::creation_handshake)), header last.
    fn create(
        memory: Arc<dyn SharedMemory>,
        how: &Creation<Self::Options>,
    ) -> Result<Self, ChannelError>;

    /// Validates the header of an existing channel in `memory` and views it.
    fn attach(memory: Arc<dyn SharedMemory>) -> Result<Self, ChannelError>;

    /// The validated view.
    fn view(&self) -> &View;

    /// The validated view, to give it doorbells after an attach.
    fn view_mut(&mut self) -> &mut View;

    /// This layout with the channel's doorbells in this process.
    fn with_doorbells(mut self, doorbells: Option<Arc<Doorbells>>) -> Self {
        self.view_mut().set_doorbells(doorbells);
        self
    }

    /// The channel's wake handshake (cached privately at creation or attach).
    #[inline]
    fn handshake(&self) -> Handshake {
        self.view().handshake()
    }

    /// Region bytes a channel of `capacity` needs, if the sum fits.
    fn region_len(capacity: usize) -> Option<usize> {
        Self::DATA_OFFSET.checked_add(capacity)
    }

    /// Checks `capacity` (before anything is mapped): a power of two, at least
    /// `MIN_CAPACITY`, at most `MAX_CAPACITY`.
    fn check_capacity(capacity: usize) -> Result<(), ChannelError> {
        check_capacity(capacity as u64)?;
        if capacity < Self::MIN_CAPACITY {
            return Err(ChannelError::InvalidCapacity {
                capacity: capacity as u64,
                reason: "below the smallest capacity of this kind of channel",
            });
        }
        Ok(())
    }

    /// The status line: owners and closed flags.
    fn status(&self) -> &StatusLine {
        // SAFETY: `STATUS` is the offset of the status line in the flavor's control block.
        unsafe { self.view().line(Self::STATUS) }
    }

    /// Both events.
    fn events(&self) -> &EventLine {
        // SAFETY: `EVENTS` is the offset of the event line in the flavor's control block.
        unsafe { self.view().line(Self::EVENTS) }
    }

    /// The data event and its doorbell: what a publishing sender wakes.
    fn data_wake(&self) -> Wake<'_> {
        Wake::new(&self.events().data, self.view(), Doorbells::sender_end)
    }

    /// The space event and its doorbell: what a releasing receiver wakes.
    fn space_wake(&self) -> Wake<'_> {
        Wake::new(&self.events().space, self.view(), Doorbells::receiver_end)
    }

    /// Writes the status and event lines of a fresh channel (each flavor writes its own
    /// lines too).
    ///
    /// # Safety
    ///
    /// Nobody may use the region yet: we are creating it.
    unsafe fn init_common_lines(view: &View) {
        // SAFETY: `STATUS` and `EVENTS` are the offsets of those lines in the flavor's
        // control block; the caller guarantees exclusive use.
        unsafe {
            view.init_line::<StatusLine>(Self::STATUS);
            view.init_line::<EventLine>(Self::EVENTS);
        }
    }

    /// The data event (receivers sleep on it), as an owned handle.
    fn data_event(&self) -> EventRef {
        // SAFETY: the offset of `data` in the event line.
        unsafe {
            self.view()
                .event(Self::EVENTS + std::mem::offset_of!(EventLine, data))
        }
    }

    /// The space event (senders sleep on it), as an owned handle.
    fn space_event(&self) -> EventRef {
        // SAFETY: the offset of `space` in the event line.
        unsafe {
            self.view()
                .event(Self::EVENTS + std::mem::offset_of!(EventLine, space))
        }
    }
}
