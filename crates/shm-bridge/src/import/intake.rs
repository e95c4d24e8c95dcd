//! What arrives from zenoh: the data subscriber's and the liveliness subscriber's
//! callbacks, run on zenoh's threads, and the state they share with the importer.
//!
//! Lock order: `data` before `presence` (the data callback takes both; the liveliness
//! callback and the receiving side take only `presence`). The data callback holds `data`
//! while it waits for room in the local channel: that wait is the back-pressure.

use std::collections::{HashMap, HashSet, VecDeque};
use std::mem::Discriminant;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use shm_channel::{spsc, CallError, TrySendError};
use zenoh::sample::{Sample, SampleKind};

use crate::header::{FrameHeader, FrameKind, HeaderError, FORMAT_VERSION};
use crate::liveness::{self, TokenInfo};
use crate::{Delivery, ImportError, Layout, RemoteStatus};

/// The importer's counters (see [`ImportStats`](crate::ImportStats) for their meaning).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub delivered: AtomicU64,
    pub dropped: AtomicU64,
    pub oversized: AtomicU64,
    pub refused: AtomicU64,
    pub missed: AtomicU64,
    pub out_of_order: AtomicU64,
}

/// The data path: the local channel's sending end and each publisher's next sequence
/// number.
struct DataPath {
    tx: spsc::Sender,
    next_seq: HashMap<u64, u64>,
}

/// Who is exporting, and what is still to be reported.
#[derive(Default)]
struct Presence {
    /// Publishers of the right version and layout whose token is live.
    alive: HashSet<u64>,
    /// Whether any such publisher was ever seen.
    ever: bool,
    /// Publishers whose end-of-stream frame arrived.
    ended: HashSet<u64>,
    /// Whether the last publisher to go had ended its stream first.
    last_clean: bool,
    /// Refusals not yet returned by a receive call.
    refusals: VecDeque<ImportError>,
    /// Refusals already queued once, by publisher and reason.
    reported: HashSet<(u64, Discriminant<HeaderError>)>,
}

/// State shared by the callbacks and the importer.
pub(crate) struct Shared {
    layout: Layout,
    delivery: Delivery,
    data: Mutex<DataPath>,
    presence: Mutex<Presence>,
    pub counters: Counters,
}

/// Locks a mutex, taking over its state if a panicking thread held it (every update here
/// leaves the state consistent between statements).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub fn new(layout: Layout, delivery: Delivery, tx: spsc::Sender) -> Shared {
        Shared {
            layout,
            delivery,
            data: Mutex::new(DataPath {
                tx,
                next_seq: HashMap::new(),
            }),
            presence: Mutex::default(),
            counters: Counters::default(),
        }
    }

    /// A sample of the data subscriber.
    pub fn on_sample(&self, sample: &Sample) {
        let bytes = sample.payload().to_bytes();
        let (header, payload) = match FrameHeader::parse(&bytes, self.layout) {
            Ok(parsed) => parsed,
            Err(reason) => {
                // The publisher id, when the header got that far (a layout or version
                // mismatch); 0 for garbage.
                let publisher = match (&reason, bytes.get(16..24)) {
                    (HeaderError::Layout { .. } | HeaderError::Version { .. }, Some(id)) => {
                        id.try_into().map_or(0, u64::from_le_bytes)
                    }
                    _ => 0,
                };
                self.refuse(publisher, reason);
                return;
            }
        };
        let mut data = lock(&self.data);
        let next = data.next_seq.entry(header.publisher).or_insert(0);
        if header.seq < *next {
            // Never delivered out of order (TCP links do not reorder; a restarted
            // publisher takes a new id).
            // Relaxed: a statistic, read or bumped alone; it orders nothing.
            self.counters.out_of_order.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let missed = header.seq - *next;
        *next = header.seq.saturating_add(1);
        if missed > 0 {
            // Relaxed: a statistic, read or bumped alone; it orders nothing.
            self.counters.missed.fetch_add(missed, Ordering::Relaxed);
        }
        if header.kind == FrameKind::End {
            drop(data);
            self.on_end(header.publisher);
            return;
        }
        let sent = match self.delivery {
            Delivery::Block => data.tx.send(payload).map_err(|e| e.is_fatal()),
            Delivery::Drop => match data.tx.try_send(payload) {
                Ok(()) => Ok(()),
                Err(TrySendError::Full(())) => Err(false),
                Err(e) => Err(e.is_fatal()),
            },
        };
        let counter = match sent {
            Ok(()) => &self.counters.delivered,
            // The importer was dropped while this frame waited: nobody to deliver to.
            Err(true) => return,
            Err(false) if payload.len() > data.tx.max_message_len() => &self.counters.oversized,
            Err(false) => &self.counters.dropped,
        };
        // Relaxed: a statistic, read or bumped alone; it orders nothing.
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A sample of the liveliness subscriber: an exporter's token appeared or went.
    pub fn on_token(&self, sample: &Sample) {
        let Some(info) = liveness::parse_token(sample.key_expr().as_str()) else {
            return;
        };
        let mut presence = lock(&self.presence);
        match sample.kind() {
            SampleKind::Put => match self.mismatch(info) {
                Some(reason) => Self::queue_refusal(&mut presence, info.publisher, reason),
                None => {
                    presence.alive.insert(info.publisher);
                    presence.ever = true;
                }
            },
            SampleKind::Delete => {
                if presence.alive.remove(&info.publisher) {
                    presence.last_clean = presence.ended.remove(&info.publisher);
                }
            }
        }
    }

    /// Why a token's exporter cannot feed this importer, if it cannot.
    fn mismatch(&self, info: TokenInfo) -> Option<HeaderError> {
        if info.version != FORMAT_VERSION {
            Some(HeaderError::Version {
                found: info.version,
            })
        } else if info.layout != self.layout.tag() {
            Some(HeaderError::Layout {
                expected: self.layout.tag(),
                found: info.layout,
            })
        } else {
            None
        }
    }

    /// A publisher's end-of-stream frame.
    fn on_end(&self, publisher: u64) {
        let mut presence = lock(&self.presence);
        if presence.alive.contains(&publisher) {
            presence.ended.insert(publisher);
        } else if presence.alive.is_empty() {
            // Its token went first: the stream did end cleanly.
            presence.last_clean = true;
        }
    }

    fn refuse(&self, publisher: u64, reason: HeaderError) {
        // Relaxed: a statistic, read or bumped alone; it orders nothing.
        self.counters.refused.fetch_add(1, Ordering::Relaxed);
        Self::queue_refusal(&mut lock(&self.presence), publisher, reason);
    }

    fn queue_refusal(presence: &mut Presence, publisher: u64, reason: HeaderError) {
        if presence
            .reported
            .insert((publisher, std::mem::discriminant(&reason)))
        {
            presence
                .refusals
                .push_back(ImportError::Refused { publisher, reason });
        }
    }

    /// The next refusal to report, if any.
    pub fn take_refusal(&self) -> Option<ImportError> {
        lock(&self.presence).refusals.pop_front()
    }

    /// Who is exporting now.
    pub fn status(&self) -> RemoteStatus {
        let presence = lock(&self.presence);
        match (presence.alive.len(), presence.ever, presence.last_clean) {
            (0, false, _) => RemoteStatus::Waiting,
            (0, true, false) => RemoteStatus::Gone,
            (0, true, true) => RemoteStatus::Closed,
            (exporters, _, _) => RemoteStatus::Alive { exporters },
        }
    }
}
