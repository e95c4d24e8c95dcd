//! [`import_into`]: the subscriptions of an import, delivering into a channel the caller
//! made (an [`Importer`](crate::Importer) is a feed plus the receiving end of its own
//! channel).

use shm_channel::Sender;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shm_channel::{spsc, Endpoint as _};
use zenoh::{Session, Wait};

use super::intake::Shared;
use super::{ImportOptions, ImportStats, RemoteStatus, STATUS_POLL};
use crate::liveness;
use crate::BridgeError;

/// A live import that delivers into a channel its caller made (see [`import_into`]):
/// the zenoh subscriptions, with who is exporting and the counters. Dropping it
/// unsubscribes (and drops the sending end).
///
/// ```
/// use shm_bridge::{Feed, RemoteStatus};
/// // What a process that reads the channel elsewhere may want to know.
/// fn describe(feed: &Feed) -> String {
///     let stats = feed.stats();
///     match feed.status() {
///         RemoteStatus::Alive { exporters } => format!("{exporters} exporting, {} in", stats.delivered),
///         RemoteStatus::Closed => format!("ended cleanly after {}", stats.delivered),
///         RemoteStatus::Gone => format!("gone, {} missed", stats.missed),
///         RemoteStatus::Waiting => "nobody yet".into(),
///     }
/// }
/// ```
pub struct Feed {
    pub(super) shared: Arc<Shared>,
    _data: zenoh::pubsub::Subscriber<()>,
    _tokens: zenoh::pubsub::Subscriber<()>,
    _flush: zenoh::query::Queryable<()>,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("status", &self.status())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Subscribes to `key` like [`import`](crate::import), but delivers the frames into `tx`,
/// the sending end of an SPSC channel the caller made — e.g. one shared with another
/// process (memfd, or created before a `fork`), so that a process that runs no zenoh
/// reads what arrives. Frames arrive in each publisher's order, checked as `import`
/// checks them; the end of a remote stream is not marked in the channel: ask
/// [`Feed::status`]. `tx`'s wait strategy is set to yield while it waits for room.
///
/// ```
/// use shm_bridge::{export, free_loopback_endpoint, import_into, Config, ExportOptions, ImportOptions, RemoteStatus};
/// use std::time::Duration;
///
/// let endpoint = free_loopback_endpoint()?;
/// let there = Config::loopback_peer().listen(&endpoint)?.open()?;
/// let here = Config::loopback_peer().connect(&endpoint)?.open()?;
///
/// let (into, mut rx) = shm_ipc::channel::spsc::channel(1 << 16)?; // e.g. shared with a child
/// let feed = import_into(&there, "doc/feed", into, ImportOptions::default())?;
/// let (mut tx, out) = shm_ipc::channel::spsc::channel(1 << 16)?;
/// let exporter = export(&here, out, "doc/feed", ExportOptions::default())?;
/// tx.send(b"into a channel of mine")?;
/// drop(tx);
/// exporter.join()?;
/// assert_eq!(rx.recv_timeout(Duration::from_secs(10))?, b"into a channel of mine");
/// assert_eq!(feed.status(), RemoteStatus::Closed);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn import_into(
    session: &Session,
    key: &str,
    mut tx: Sender<spsc::Spsc>,
    options: ImportOptions,
) -> Result<Feed, BridgeError> {
    // zenoh's thread delivers into the local channel; waiting for room there (back-pressure)
    // it yields rather than spins, leaving the core to the consumer it waits for.
    tx.set_wait_strategy(crate::BRIDGE_WAIT);
    let shared = Arc::new(Shared::new(options.layout, options.delivery, tx));
    let on_token = Arc::clone(&shared);
    let tokens = session
        .liveliness()
        .declare_subscriber(liveness::token_pattern(key))
        .history(true)
        .callback(move |sample| on_token.on_token(&sample))
        .wait()
        .map_err(BridgeError::zenoh)?;
    // The flush queryable before the data subscriber: declarations travel a link in
    // order, so an exporter that has seen this importer's subscriber (its matching
    // status, which it waits for) also knows the queryable, and the confirmation it asks
    // for after its final pack reaches this importer. Declared the other way round, an
    // exporter that ends at once could ask before the queryable is known, get no reply,
    // and return from `join` before the final pack is handled here.
    let on_flush = Arc::clone(&shared);
    let flush = session
        .declare_queryable(liveness::flush_key(key))
        .callback(move |query| on_flush.on_flush(&query))
        .wait()
        .map_err(BridgeError::zenoh)?;
    let on_sample = Arc::clone(&shared);
    let data = session
        .declare_subscriber(key.to_string())
        .callback(move |sample| on_sample.on_sample(&sample))
        .wait()
        .map_err(BridgeError::zenoh)?;
    Ok(Feed {
        shared,
        _data: data,
        _tokens: tokens,
        _flush: flush,
    })
}

impl Feed {
    /// Who is exporting now.
    pub fn status(&self) -> RemoteStatus {
        self.shared.status()
    }

    /// Waits until at least one exporter is alive; `false` if none came within `timeout`.
    pub fn wait_for_exporter(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if matches!(self.status(), RemoteStatus::Alive { .. }) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(STATUS_POLL / 4);
        }
    }

    /// The counters.
    pub fn stats(&self) -> ImportStats {
        let c = &self.shared.counters;
        // Relaxed: a statistic, read or bumped alone; it orders nothing.
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ImportStats {
            delivered: load(&c.delivered),
            dropped: load(&c.dropped),
            oversized: load(&c.oversized),
            refused: load(&c.refused),
            missed: load(&c.missed),
            out_of_order: load(&c.out_of_order),
            late: load(&c.late),
        }
    }
}
