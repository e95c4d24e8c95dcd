//! What the transports that keep their own state in shared memory (the floors, the
//! peers) need to end their waits and to disconnect their peer: who owns an endpoint, and
//! a bounded wait.
//!
//! An endpoint is made in the harness (its creator) and one of each pair is handed to the
//! child; each process keeps a copy of both. Only the owner's drop tells the peer that
//! this side is gone ([`Owner::is_current`]); a wait gives up when the harness is gone
//! (seen from the child) or after [`STALL`] without progress.

use std::cell::Cell;
use std::hint::spin_loop;
use std::time::{Duration, Instant};

use nix::unistd::{getpid, Pid};
use shm_core::liveness::ProcessIdentity;

use super::TransportError;
use crate::child;

/// How long a side waits without seeing its peer move before it reports a stall.
/// Generous: a descheduled peer on a loaded 2-core VM can stall for a good fraction of a
/// second; the harness's watchdog ends a child that hangs longer.
pub(crate) const STALL: Duration = Duration::from_secs(10);

/// Who owns an endpoint: its creator (the harness) until handed over to the child.
#[derive(Clone, Debug)]
pub(crate) struct Owner {
    creator: Pid,
    owner: Cell<i32>,
}

impl Owner {
    /// Owned by the calling process, which made it.
    pub(crate) fn here() -> Owner {
        let creator = getpid();
        Owner {
            creator,
            owner: Cell::new(creator.as_raw()),
        }
    }

    /// Makes `child` the owner ([`super::Endpoint::hand_over`]).
    pub(crate) fn hand_over(&self, child: ProcessIdentity) {
        self.owner.set(child.pid());
    }

    /// Whether the calling process owns the endpoint.
    pub(crate) fn is_current(&self) -> bool {
        getpid().as_raw() == self.owner.get()
    }

    /// Whether the calling process made the endpoint (the harness, not its child).
    #[cfg(feature = "peers")]
    pub(crate) fn is_creator(&self) -> bool {
        getpid() == self.creator
    }

    /// A bounded wait for this endpoint's peer, starting now. Free until its first
    /// [`check`](BoundedWait::check): a wait that ends at once (most, in a round trip)
    /// makes no system call.
    pub(crate) fn wait(&self) -> BoundedWait {
        BoundedWait {
            creator: self.creator,
            in_child: None,
            since: None,
            spins: 0,
        }
    }
}

/// A wait that ends when the harness is gone or nothing moved for [`STALL`].
#[derive(Debug)]
pub(crate) struct BoundedWait {
    creator: Pid,
    /// Whether the waiter is the harness's child: asked (`getpid`) at the first check.
    in_child: Option<bool>,
    since: Option<Instant>,
    /// Polls so far of a spinning wait ([`spin`](BoundedWait::spin)).
    spins: u32,
}

impl BoundedWait {
    /// Called now and then while waiting (not every poll: it reads the clock):
    /// `Disconnected` if the harness is gone, `Failed` once the wait has lasted [`STALL`].
    pub(crate) fn check(&mut self) -> Result<(), TransportError> {
        let since = *self.since.get_or_insert_with(Instant::now);
        let creator = self.creator;
        let in_child = *self.in_child.get_or_insert_with(|| getpid() != creator);
        if in_child && child::parent_gone(creator) {
            return Err(TransportError::Disconnected);
        }
        if since.elapsed() > STALL {
            return Err(TransportError::Failed(format!(
                "the peer did nothing for {} s",
                STALL.as_secs()
            )));
        }
        Ok(())
    }

    /// One poll of a spinning wait: a spin-loop hint, and a [`check`](BoundedWait::check)
    /// every 4096 polls (a few µs: the clock is read rarely, the harness's exit seen soon).
    #[inline]
    pub(crate) fn spin(&mut self) -> Result<(), TransportError> {
        spin_loop();
        self.spins = self.spins.wrapping_add(1);
        if self.spins % 4096 == 0 {
            return self.check();
        }
        Ok(())
    }
}
