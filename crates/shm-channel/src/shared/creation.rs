//! How a channel is created: its wake handshake and the creation options.

use std::sync::Arc;

use shm_core::notify::Handshake;

use super::doorbells::Doorbells;
use crate::ChannelError;

/// The handshake a new channel uses: `requested` (the builder's option), else what the
/// machine prefers ([`Handshake::preferred`]: `Membarrier` where the kernel allows it and
/// `SHM_IPC_HANDSHAKE` does not say `seqcst`); the calling process is prepared for it, so a
/// `Membarrier` channel is refused here, with a typed error, where this process cannot
/// register.
pub(crate) fn creation_handshake(requested: Option<Handshake>) -> Result<Handshake, ChannelError> {
    let handshake = match requested {
        Some(handshake) => effective_handshake(handshake),
        None if cfg!(loom) => Handshake::SeqCst,
        None => Handshake::preferred(),
    };
    handshake.prepare()?;
    Ok(handshake)
}

/// The handshake the rings follow for a channel that names `handshake`: the same, except
/// under `cfg(loom)`, where it is always [`Handshake::SeqCst`]. loom cannot model
/// `membarrier` (a barrier the kernel runs on other threads' behalf, outside the memory
/// model), so the models check the rings with `SeqCst` publication, whose orderings they
/// can see; the `Membarrier` protocol is checked by the stress tests across `fork`.
#[inline]
pub(crate) fn effective_handshake(handshake: Handshake) -> Handshake {
    if cfg!(loom) {
        Handshake::SeqCst
    } else {
        handshake
    }
}

/// How a channel is to be created: capacity, the flavor's options, the wake handshake and
/// the doorbells.
#[derive(Debug, Clone)]
pub(crate) struct Creation<O> {
    /// Data bytes of the ring.
    pub(crate) capacity: usize,
    /// The flavor's options.
    pub(crate) options: O,
    /// The wake handshake the channel will use.
    pub(crate) handshake: Handshake,
    /// The channel's doorbells, if it is to have them.
    pub(crate) doorbells: Option<Arc<Doorbells>>,
}
