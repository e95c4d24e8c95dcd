//! The bridge's errors: one enum for setting up and one for receiving.

use crate::header::HeaderError;

/// Why a bridge could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// zenoh refused a configuration value, a key expression, or a declaration.
    #[error("zenoh: {0}")]
    Zenoh(String),
    /// The local shared-memory channel could not be created.
    #[error(transparent)]
    Channel(#[from] shm_channel::ChannelError),
    /// The exporter's thread could not be started or panicked.
    #[error("exporter thread: {0}")]
    Thread(String),
    /// A local frame is too long for the bridge header's 32-bit length.
    #[error("frame of {0} bytes is too long to bridge")]
    FrameTooLong(usize),
}

impl BridgeError {
    /// Wraps a zenoh error (its type is a boxed `dyn Error`, so only its text is kept).
    pub(crate) fn zenoh(error: impl std::fmt::Display) -> BridgeError {
        BridgeError::Zenoh(error.to_string())
    }
}

/// Why a receive from an [`Importer`](crate::Importer) returned no message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// No message came before the timeout (only `recv_timeout` and `try_recv`).
    #[error("timed out waiting for a bridged message")]
    Timeout,
    /// Every exporter seen on the key is gone (process killed, host or network lost, or its
    /// session closed) and every frame it delivered has been received. Not final: once an
    /// exporter comes back, receiving resumes.
    #[error("no exporter is alive on the key any more")]
    RemoteGone,
    /// Every exporter seen on the key ended its stream cleanly (its local senders were
    /// dropped) and every frame it sent has been received. Not final either.
    #[error("every exporter on the key ended its stream")]
    RemoteClosed,
    /// A publisher sent frames this importer refuses (another layout or codec, another
    /// format version, garbage). Reported once per publisher and reason; every refused
    /// frame is counted in [`ImportStats::refused`](crate::ImportStats::refused).
    #[error("refused frames from publisher {publisher:#018x}: {reason}")]
    Refused {
        /// The publisher id, `0` when the header was too damaged to name one.
        publisher: u64,
        /// What was wrong.
        reason: HeaderError,
    },
    /// A frame passed the header check but the local codec could not decode it (typed
    /// importers only); the frame is consumed.
    #[error(transparent)]
    Decode(#[from] shm_channel::CodecError),
    /// The local channel failed (it is private to the importer, so this is a bug or a
    /// corrupted process, not a remote peer's doing).
    #[error("local channel: {0}")]
    Local(String),
}
