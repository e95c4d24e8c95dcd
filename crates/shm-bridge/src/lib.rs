//! # shm-bridge
//!
//! The same shm-ipc channels, across hosts: the local path stays shared memory, and
//! [zenoh](https://zenoh.io) (peer to peer, no broker; discovery, reliability and
//! congestion control over TCP) carries what must cross hosts.
//!
//! - [`export`] forwards every frame read from a local channel (a byte
//!   [`Receiver`](shm_channel::Receiver) of any flavor) to a zenoh publisher on a key,
//!   packing consecutive frames into one put;
//! - [`import`] returns an [`Importer`]: a local SPSC receiver fed by a zenoh subscriber,
//!   which also says when the remote side has gone or ended its stream.
//!
//! Typed channels pass through as their encoded bytes: export
//! `shm_channel::Receiver::from(typed_rx)` (or `typed_rx.into()`) and read with
//! [`import_typed`]; the packs carry the channel's type fingerprint (the one typed ends
//! record in shared memory) as their [`Layout`], so an importer of another type refuses
//! them. Every put carries a 32-byte header (magic, format
//! version, a [`Layout`] tag naming the codec/layout, a per-publisher id and the first
//! frame's sequence number; see [`header`]) and then its frames, each behind its length, so
//! a peer of another layout or version is refused, not misread. Several exporters
//! (processes, hosts) on one key fan in to one importer.
//!
//! ```
//! use shm_bridge::{export, free_loopback_endpoint, import, Config, ExportOptions, ImportOptions};
//! use std::time::Duration;
//!
//! // Two sessions in one process here; in real use, one per host.
//! let endpoint = free_loopback_endpoint()?;
//! let there = Config::loopback_peer().listen(&endpoint)?.open()?;
//! let here = Config::loopback_peer().connect(&endpoint)?.open()?;
//!
//! let mut importer = import(&there, "doc/frames", 1 << 16, ImportOptions::default())?;
//! let (mut tx, rx) = shm_ipc::channel::spsc::channel(1 << 16)?;
//! let _exporter = export(&here, rx, "doc/frames", ExportOptions::default())?;
//! tx.send(b"across hosts")?; // waits in the local ring until the importer is matched
//! assert_eq!(importer.recv_timeout(Duration::from_secs(10))?, b"across hosts");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Semantics
//!
//! **Ordering.** Frames of one exporter arrive in the order they were read from its local
//! channel. Frames of several exporters interleave in arrival order. The importer checks
//! each publisher's sequence numbers (one per frame): it never delivers a frame out of
//! order, and counts gaps ([`ImportStats::missed`]).
//!
//! **Packing.** The exporter packs the frames that are waiting in its local channel into one
//! put of up to [`ExportOptions::pack_size`] bytes (64,000 by default, about zenoh's batch),
//! and puts a pack as soon as the channel is empty, so a sparse stream pays one put's
//! latency and a dense one a put per 64 KB instead of per frame
//! ([`ExportOptions::pack_delay`] bounds how long a frame waits in a pack still filling).
//! The importer's callback checks a whole pack (header and every frame's length) before it
//! writes its frames straight into the local channel; a damaged pack is refused whole.
//!
//! **Back-pressure ([`Delivery::Block`], the default).** The exporter publishes with
//! zenoh's congestion control `Block` (reliable delivery is zenoh's default), and reads
//! nothing from its local channel while no importer is subscribed (so nothing is published
//! into the void at start-up). A full local channel at the importer holds zenoh's delivery
//! back, TCP's window fills, the exporter's `put` blocks, its local ring fills, and the
//! local producer's `send` waits: a slow consumer slows the producer, nothing is lost.
//! Limit: zenoh closes a link on which a `Block` message has waited for room longer than
//! `transport/link/tx/queue/congestion_control/block/wait_before_close` (5 s by default;
//! raise it through [`Config::insert_json5`] for consumers that stall longer). The
//! importer then sees the exporter as gone, the peers reconnect, and frames in flight may
//! be lost — counted as [`ImportStats::missed`] when that exporter resumes.
//!
//! **Drop mode ([`Delivery::Drop`]).** The exporter publishes with congestion control
//! `Drop` and forwards whether or not an importer listens; the importer drops a frame that
//! finds its local channel full. The local producer is never slowed; the importer counts
//! what it dropped ([`ImportStats::dropped`]) and what never reached it
//! ([`ImportStats::missed`], from sequence gaps and the final pack).
//!
//! **The end of a stream.** When an exporter's local senders are dropped,
//! [`Exporter::join`] returns once every frame has been put, a final *end* pack (carrying
//! the stream's length) has followed them, and every subscribed importer has confirmed it
//! handled all of it (a zenoh query that travels behind the data; bounded by
//! [`ExportOptions::linger`]); only then is the exporter's liveliness token withdrawn. The
//! importer delivers every frame, then [`ImportError::RemoteClosed`]. [`Exporter::stop`],
//! drop, and a process exit with the exporter still running (an exit handler) do the same
//! with a *stopped* pack, which also counts the frames left in the local channel (as
//! [`ImportStats::missed`]): then [`ImportError::RemoteGone`]. A receive reports the stream
//! over only once the local channel is empty and no pack is being delivered, and never
//! delivers a frame of that exporter after that ([`ImportStats::late`] counts any that
//! come, until the exporter reconnects). See [`Exporter`] for what a process that dies
//! without exit handlers loses.
//!
//! **Remote gone.** Each exporter holds a zenoh liveliness token. An exporter whose token is
//! withdrawn without a final pack is gone: while none is alive and the local channel is
//! empty, [`Importer::recv`] and friends return [`ImportError::RemoteGone`] (or
//! [`ImportError::RemoteClosed`] if the last exporter to finish ended its stream cleanly).
//! Frames delivered before the exporter went are received first. The bound: an exporter
//! **process** that dies (exit, crash, `SIGKILL`) on a host that stays up is seen within
//! milliseconds — its kernel closes the TCP connection and zenoh withdraws the token — plus
//! [`STATUS_POLL`] (20 ms). A host or network that goes silent (or a process frozen by
//! `SIGSTOP`) is seen when the link lease runs out: zenoh closes a link on which nothing,
//! not even a keep-alive (sent four times per lease), arrived for a lease
//! (`transport/link/tx/lease`, 10 s by default, [`Config::lease`]; set it on both sides).
//! So the documented bound is **lease + 20 ms**, 10.02 s by default.
//!
//! **Reconnection.** Not final: when an exporter comes back (the process restarted, the
//! network healed) receiving resumes on the same importer. A restarted exporter is a new
//! publisher (new id, sequence from 0). A peer configured with [`Config::connect`] retries
//! its endpoints for ever (zenoh's `connect/retry`, 1 s backing off to 4 s); a peer that
//! only listens waits to be connected to.
//!
//! **Bad input.** A pack with a wrong header (another layout or codec, another format
//! version — an older peer speaking format 1 is told to upgrade —, a frame length that runs
//! past the pack, trailing bytes, garbage) is refused whole and counted
//! ([`ImportStats::refused`]), and reported once per publisher and reason as
//! [`ImportError::Refused`]; an exporter whose liveliness token names another layout or
//! version is reported the same way and not counted as alive. Never a panic, a hang or a
//! silent misread.
//!
//! ## Configuration
//!
//! [`Config`] wraps zenoh's own [`zenoh::Config`] (listen and connect endpoints, mode
//! peer/client/router, lease, and any other key through [`Config::insert_json5`] or a
//! zenoh JSON5 file via [`Config::from_zenoh`]). [`Config::loopback_peer`] is a peer with
//! multicast scouting off and no endpoints: add `listen` on one side and `connect` on the
//! other (`tcp/127.0.0.1:<port>` on one host, [`free_loopback_endpoint`] picks a port).
//! zenoh is built with its TCP transport only.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]
// One unsafe call in the whole crate: registering the exit handler (`exit.rs`).
#![deny(unsafe_code)]

mod config;
mod error;
#[allow(unsafe_code)]
mod exit;
mod export;
pub mod header;
mod import;
mod liveness;

pub use config::{
    free_loopback_endpoint, Config, THROUGHPUT_QUEUE_BATCHES, THROUGHPUT_SOCKET_BUFFER,
};
pub use error::{BridgeError, ImportError};
pub use export::{export, ExportOptions, ExportReport, Exporter, DEFAULT_PACK_SIZE};
pub use header::{HeaderError, Layout};
pub use import::{
    import, import_into, import_typed, Feed, ImportOptions, ImportStats, Importer, LocalReceiver,
    RemoteStatus, BRIDGE_WAIT, STATUS_POLL,
};

/// What the bridge does when the remote side cannot keep up (see the crate docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// Back-pressure: a slow or absent consumer slows the local producer; nothing is lost.
    #[default]
    Block,
    /// Never slow the producer: frames that find no room are dropped and counted.
    Drop,
}

/// zenoh itself, as this crate uses it (sessions, configuration), so users need no direct
/// dependency of their own.
pub use zenoh;
