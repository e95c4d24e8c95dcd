//! A channel's doorbells in this process: the two eventfds ([`Doorbell`]) its peers ring
//! when they notify an async waiter, one per event (data: receivers wait; space: senders
//! wait). Created with the channel, inherited across `fork`, passed with the memfd across
//! `exec` and unix sockets (`crate::transfer`); process-local, never in shared memory.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use shm_core::notify::{Doorbell, DoorbellError, Event};

/// The doorbells of one channel (public in a private module: part of the sealed layout
/// contract).
#[derive(Debug)]
pub struct Doorbells {
    pub(crate) data: Doorbell,
    pub(crate) space: Doorbell,
}

impl Doorbells {
    /// Fresh doorbells for a channel being created.
    pub(crate) fn new() -> io::Result<Arc<Doorbells>> {
        Ok(Arc::new(Doorbells {
            data: Doorbell::new()?,
            space: Doorbell::new()?,
        }))
    }

    /// Duplicates of both descriptors (close-on-exec), data first, to pass on.
    pub(crate) fn duplicate(&self) -> io::Result<[OwnedFd; 2]> {
        Ok([
            self.data.try_clone()?.into_fd(),
            self.space.try_clone()?.into_fd(),
        ])
    }

    /// Doorbells received from another process (data first), each checked to be an eventfd.
    pub(crate) fn from_fds([data, space]: [OwnedFd; 2]) -> Result<Arc<Doorbells>, DoorbellError> {
        Ok(Arc::new(Doorbells {
            data: Doorbell::from_fd(data)?,
            space: Doorbell::from_fd(space)?,
        }))
    }
}

/// An event of a channel together with its doorbell in this process (if the channel has
/// doorbells here): what a notifier wakes.
#[derive(Clone, Copy)]
pub struct Wake<'a> {
    pub(crate) event: &'a Event,
    pub(crate) bell: Option<&'a Doorbell>,
}

impl Wake<'_> {
    /// After a notification of `event` that found a waiter (`woke`): rings the doorbell if
    /// an async waiter is among them. Passes `woke` through.
    #[inline]
    pub(crate) fn then_ring(self, woke: bool) -> bool {
        if woke {
            self.ring_async();
        }
        woke
    }

    #[cold]
    #[inline(never)]
    fn ring_async(self) {
        if let Some(bell) = self.bell {
            // A doorbell that cannot be rung (EBADF cannot happen on a descriptor we own)
            // leaves the async waiter to its slow-check ticks, as a failing FUTEX_WAKE
            // leaves a sleeper to its slice: a delay, not a hang.
            let _ = self.event.ring_if_async(bell);
        }
    }

    /// [`Event::notify`] (a full fence: for the rare wake-ups of closing endpoints), and
    /// the doorbell.
    pub(crate) fn notify(self) -> bool {
        self.then_ring(self.event.notify())
    }
}
