//! A channel's doorbells in this process: the two ends of a [`Doorbell`] pair its peers
//! ring when they notify an async waiter. Senders ring the data event through the sender
//! end and wait for space on it; receivers ring the space event through the receiver end
//! and wait for data on it (a ring reaches the other end only). Created with the channel,
//! inherited across `fork`, passed with the memfd across `exec` and unix sockets
//! (`crate::transfer`); process-local, never in shared memory.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use shm_core::notify::{Doorbell, DoorbellError, Event};

use crate::layout::View;

/// The doorbells of one channel (public in a private module: part of the sealed layout
/// contract).
#[derive(Debug)]
pub struct Doorbells {
    /// Rung by senders (data published); senders wait on it for space.
    pub(crate) sender_end: Doorbell,
    /// Rung by receivers (space released); receivers wait on it for data.
    pub(crate) receiver_end: Doorbell,
}

impl Doorbells {
    /// Fresh doorbells for a channel being created.
    pub(crate) fn new() -> io::Result<Arc<Doorbells>> {
        let (sender_end, receiver_end) = Doorbell::pair()?;
        Ok(Arc::new(Doorbells {
            sender_end,
            receiver_end,
        }))
    }

    /// Duplicates of both descriptors (close-on-exec), the sender end first, to pass on.
    pub(crate) fn duplicate(&self) -> io::Result<[OwnedFd; 2]> {
        Ok([
            self.sender_end.try_clone()?.into_fd(),
            self.receiver_end.try_clone()?.into_fd(),
        ])
    }

    /// Doorbells received from another process (the sender end first), each checked to be
    /// a unix datagram socket.
    pub(crate) fn from_fds(
        [sender_end, receiver_end]: [OwnedFd; 2],
    ) -> Result<Arc<Doorbells>, DoorbellError> {
        Ok(Arc::new(Doorbells {
            sender_end: Doorbell::from_fd(sender_end)?,
            receiver_end: Doorbell::from_fd(receiver_end)?,
        }))
    }
}

/// Which end of a channel's doorbell an event is rung through:
/// [`Doorbells::sender_end`] or [`Doorbells::receiver_end`].
pub(crate) type End = fn(&Doorbells) -> &Doorbell;

impl Doorbells {
    /// The end senders ring (data published) and wait on for space.
    pub(crate) fn sender_end(&self) -> &Doorbell {
        &self.sender_end
    }

    /// The end receivers ring (space released) and wait on for data.
    pub(crate) fn receiver_end(&self) -> &Doorbell {
        &self.receiver_end
    }
}

/// An event of a channel, and where its doorbell is if the channel has one here: what a
/// notifier wakes. The doorbell is looked up only on the cold path, after a notification
/// that found a waiter; the publishing path just carries the references.
#[derive(Clone, Copy)]
pub struct Wake<'a> {
    pub(crate) event: &'a Event,
    pub(crate) view: &'a View,
    pub(crate) end: End,
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
        if let Some(doorbells) = self.view.doorbells() {
            // A doorbell that cannot be rung (EBADF cannot happen on a descriptor we own)
            // leaves the async waiter to its slow-check ticks, as a failing FUTEX_WAKE
            // leaves a sleeper to its slice: a delay, not a hang.
            let _ = self.event.ring_if_async((self.end)(doorbells));
        }
    }

    /// [`Event::notify`] (a full fence: for the rare wake-ups of closing endpoints), and
    /// the doorbell.
    pub(crate) fn notify(self) -> bool {
        self.then_ring(self.event.notify())
    }
}
