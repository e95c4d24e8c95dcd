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

use crate::shm::SharedMap;

pub mod iceoryx2;
pub mod ipc_channel;
pub mod shmem_ipc;

pub use self::iceoryx2::ICEORYX2;
pub use self::ipc_channel::IPC_CHANNEL;
pub use self::shmem_ipc::SHMEM_IPC;

/// For libraries with no notion of a closed peer: one word per direction in a shared
/// page, set by a side's owner when it closes, read by the other side. No data rides on
/// the words, so they are read and written `SeqCst` with no pairing to name.
pub(crate) struct CloseFlags {
    page: Rc<SharedMap>,
    ours: usize,
    theirs: usize,
}

impl CloseFlags {
    /// The flags of a pair: (the harness's side, the child's side).
    pub(crate) fn pair() -> io::Result<(CloseFlags, CloseFlags)> {
        let page = Rc::new(SharedMap::new(4096)?);
        let side = |ours, theirs| CloseFlags {
            page: Rc::clone(&page),
            ours,
            theirs,
        };
        Ok((side(0, 8), side(8, 0)))
    }

    /// Whether the other side has closed.
    pub(crate) fn peer_closed(&self) -> bool {
        self.page.u64_at(self.theirs).load(Ordering::SeqCst) != 0
    }

    /// Tells the other side that this one is closing.
    pub(crate) fn close(&self) {
        self.page.u64_at(self.ours).store(1, Ordering::SeqCst);
    }
}
