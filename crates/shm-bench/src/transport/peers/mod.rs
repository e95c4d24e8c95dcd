//! The other libraries, as transports of the same harness (the `peers` cargo feature):
//! measured between the same two pinned processes, with the same payloads and checks,
//! alternated with ours in every repetition.
//!
//! | name | library | how it is used |
//! |---|---|---|
//! | `iceoryx2` | iceoryx2 0.10 | publish-subscribe over `[u8]` slices, zero-copy loans written and read in place, busy polling |
//! | `shmem-ipc` | shmem-ipc 0.3 | two `sharedring` byte rings in memfds, eventfd wake-ups |
//! | `ipc-channel` | ipc-channel 0.23 | two `IpcBytesSender`/`IpcBytesReceiver` pairs (unix sockets) |
//!
//! Each is used the way its documentation shows; where a library has no notion of a
//! closed peer, the harness adds the least it needs to end the child's loop (see each
//! module).

use std::io;
use std::rc::Rc;
use std::sync::atomic::Ordering;

use super::buffered::{Buffered, ByteLink};
use super::watch::Owner;
use super::{Pair, TransportError};
use crate::shm::SharedMap;

mod iceoryx2;
mod ipc_channel;
mod shmem_ipc;

pub(crate) use self::iceoryx2::ICEORYX2;
pub(crate) use self::ipc_channel::IPC_CHANNEL;
pub(crate) use self::shmem_ipc::SHMEM_IPC;

/// The pair of a library with no notion of a closed peer: one link per direction (`down`
/// parent → child, `up` child → parent, each as (sender, receiver)), each side given its
/// [`CloseFlags`] by `link(sender, receiver, flags)`, each a [`Buffered`] endpoint for
/// messages of up to `max_msg` bytes.
fn pair_with_close_flags<S, R, L: ByteLink + 'static>(
    down: (S, R),
    up: (S, R),
    max_msg: usize,
    link: impl Fn(S, R, CloseFlags) -> L,
) -> Result<Pair, TransportError> {
    let ((down_tx, down_rx), (up_tx, up_rx)) = (down, up);
    let (parent_flags, child_flags) = CloseFlags::pair()?;
    Ok(Pair::new(
        Buffered::new(link(down_tx, up_rx, parent_flags), max_msg),
        Buffered::new(link(up_tx, down_rx, child_flags), max_msg),
    ))
}

/// For libraries with no notion of a closed peer: one word per direction in a shared
/// page, set by a side's owner when it closes, read by the other side; and the side's
/// owner. No data rides on the words, so they are read and written `SeqCst` with no
/// pairing to name.
pub(crate) struct CloseFlags {
    page: Rc<SharedMap>,
    ours: usize,
    theirs: usize,
    /// Whose drop closes this side.
    owner: Owner,
}

impl CloseFlags {
    /// The flags of a pair: (the harness's side, the child's side), both owned by the
    /// calling process until one is handed over.
    pub(crate) fn pair() -> io::Result<(CloseFlags, CloseFlags)> {
        let page = Rc::new(SharedMap::new(4096)?);
        let side = |ours, theirs| CloseFlags {
            page: Rc::clone(&page),
            ours,
            theirs,
            owner: Owner::here(),
        };
        Ok((side(0, 8), side(8, 0)))
    }

    /// The side's owner record ([`super::Side::owned`]), which also bounds its waits.
    pub(crate) fn owner(&self) -> &Owner {
        &self.owner
    }

    /// Whether the other side has closed.
    pub(crate) fn peer_closed(&self) -> bool {
        self.page.u64_at(self.theirs).load(Ordering::SeqCst) != 0
    }

    /// If the calling process owns this side: tells the other side that it is closing,
    /// and returns true (the owner's drop then ends its part of the conversation).
    pub(crate) fn close(&self) -> bool {
        if !self.owner.is_current() {
            return false;
        }
        self.page.u64_at(self.ours).store(1, Ordering::SeqCst);
        true
    }
}
