//! A channel's doorbells in this process: the two ends of a [`Doorbell`] pair its peers
//! ring when they notify an async waiter. Senders ring the data event through the sender
//! end and wait for space on it; receivers ring the space event through the receiver end
//! and wait for data on it (a ring reaches the other end only). Created with the channel,
//! inherited across `fork`, passed with the memfd across `exec` and unix sockets
//! (`crate::transfer`); process-local, never in shared memory.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use shm_core::notify::{Doorbell, DoorbellError};

/// The doorbells of one channel.
#[derive(Debug)]
pub(crate) struct Doorbells {
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
