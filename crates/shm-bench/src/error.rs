//! The harness's error type.

use std::io;

use crate::transport::TransportError;

/// Why a benchmark run, a scenario or a floor measurement failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A system call made by the harness itself failed.
    #[error("{what}: {source}")]
    Sys {
        /// What the harness was doing.
        what: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A transport failed in the parent process.
    #[error("transport {transport}: {source}")]
    Transport {
        /// The transport's name.
        transport: String,
        /// What went wrong.
        #[source]
        source: TransportError,
    },
    /// A received payload did not carry the bytes the sender wrote.
    #[error("{transport}: corrupt payload in message {seq} ({size} bytes)")]
    Corrupt {
        /// The transport's name.
        transport: String,
        /// Sequence number of the first bad message.
        seq: u64,
        /// The message size.
        size: usize,
    },
    /// A benchmark child (or its watchdog) could not be forked; [`shm_fork::ForkError`]
    /// says why (`MultiThreaded`: the harness was called from a process with threads).
    #[error("{what}: cannot fork the child: {source}")]
    Fork {
        /// The scenario the child was to run.
        what: String,
        /// Why shm-fork refused or failed.
        #[source]
        source: shm_fork::ForkError,
    },
    /// Waiting for a benchmark child failed.
    #[error("{what}: cannot reap the child: {source}")]
    Reap {
        /// The scenario the child ran.
        what: String,
        /// Why.
        #[source]
        source: shm_fork::ChildError,
    },
    /// The benchmark child ended abnormally.
    #[error("{what}: child {detail}")]
    Child {
        /// The scenario the child ran.
        what: String,
        /// How it ended.
        detail: String,
    },
    /// The peer made no progress within the harness's deadline.
    #[error("{what}: no progress for {secs} s (peer stuck or dead)")]
    Stalled {
        /// The scenario.
        what: String,
        /// The deadline in seconds.
        secs: u64,
    },
    /// Writing an output file failed.
    #[error("writing {path}: {source}")]
    Output {
        /// The output path.
        path: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The configuration cannot be run.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl BenchError {
    /// Wraps a nix error with a description of the failed call.
    pub(crate) fn nix(what: &'static str, e: nix::Error) -> Self {
        BenchError::Sys {
            what,
            source: io::Error::from(e),
        }
    }
}
