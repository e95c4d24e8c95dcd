//! What arrives from zenoh: the data subscriber's, the liveliness subscriber's and the
//! flush queryable's callbacks, run on zenoh's threads, and the state they share with the
//! importer.
//!
//! Lock order: `data` before `presence` (the data callback takes both; the liveliness
//! callback takes only `presence`; the receiving side takes `data` only with `try_lock`,
//! then `presence`). The data callback holds `data` while it waits for room in the local
//! channel: that wait is the back-pressure.
//!
//! **When a stream is over.** A publisher is over once its final pack (end or stopped) has
//! been handled — it travels behind all its data, so every frame before it is in the local
//! channel by then — or once its liveliness token is withdrawn without one (its process
//! died, its host or network went silent for a lease, or it gave up waiting for
//! confirmation). A receive reports the stream over only when no publisher is active, the
//! local channel is empty and no pack is being delivered (it holds `data` for that
//! decision); from then on, packs of a publisher reported over are discarded and counted
//! ([`ImportStats::late`](crate::ImportStats::late)) until its token comes back (the same
//! exporter reconnecting resumes).

use shm_channel::Sender;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Read as _;
use std::iter;
use std::mem::Discriminant;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

use shm_channel::{spsc, Endpoint as _, TrySendError};
use zenoh::bytes::ZBytes;
use zenoh::query::Query;
use zenoh::sample::{Sample, SampleKind};
use zenoh::Wait;

use crate::header::{HeaderError, Pack, PackHeader, PackKind, FORMAT_VERSION, LONE_HEAD_LEN};
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
    pub late: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            // Relaxed: a statistic, read or bumped alone; it orders nothing.
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// The data path: the local channel's sending end and each publisher's next sequence
/// number.
pub(crate) struct DataPath {
    tx: Sender<spsc::Spsc>,
    next_seq: HashMap<u64, u64>,
}

/// One publisher, as presence knows it.
#[derive(Debug, Default, Clone, Copy)]
struct Publisher {
    /// Its liveliness token is live.
    alive: bool,
    /// Its final pack was handled: nothing more comes from it.
    ended: bool,
    /// A receive reported the stream over while this publisher was not alive.
    told: bool,
}

/// Who is exporting, and what is still to be reported.
#[derive(Default)]
struct Presence {
    /// Publishers of the right version and layout seen by token or by a final pack.
    publishers: HashMap<u64, Publisher>,
    /// Whether the last publisher to be over ended its stream cleanly (an end pack).
    last_clean: bool,
    /// Refusals not yet returned by a receive call.
    refusals: VecDeque<ImportError>,
    /// Refusals already queued once, by publisher and reason.
    reported: HashSet<(u64, Discriminant<HeaderError>)>,
}

impl Presence {
    fn status(&self) -> RemoteStatus {
        let active = self
            .publishers
            .values()
            .filter(|p| p.alive && !p.ended)
            .count();
        match (active, self.publishers.is_empty(), self.last_clean) {
            (0, true, _) => RemoteStatus::Waiting,
            (0, false, false) => RemoteStatus::Gone,
            (0, false, true) => RemoteStatus::Closed,
            (exporters, _, _) => RemoteStatus::Alive { exporters },
        }
    }
}

/// State shared by the callbacks and the importer.
pub(crate) struct Shared {
    layout: Layout,
    delivery: Delivery,
    data: Mutex<DataPath>,
    presence: Mutex<Presence>,
    /// Whether `presence.refusals` may hold something: lets every receive skip the lock.
    refusals_pending: AtomicBool,
    pub counters: Counters,
}

/// Locks a mutex, taking over its state if a panicking thread held it (every update here
/// leaves the state consistent between statements).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub fn new(layout: Layout, delivery: Delivery, tx: Sender<spsc::Spsc>) -> Shared {
        Shared {
            layout,
            delivery,
            data: Mutex::new(DataPath {
                tx,
                next_seq: HashMap::new(),
            }),
            presence: Mutex::default(),
            refusals_pending: AtomicBool::new(false),
            counters: Counters::default(),
        }
    }

    /// A sample of the data subscriber: one pack.
    pub fn on_sample(&self, sample: &Sample) {
        let payload = sample.payload();
        if let Some(header) = lone_frame(payload, self.layout) {
            let frame = iter::once((header.seq, Payload::Pieces(payload)));
            self.take(header, 0, |data, first| self.deliver(data, frame, first));
            return;
        }
        let bytes = payload.to_bytes();
        let pack = match Pack::parse(&bytes, self.layout) {
            Ok(pack) => pack,
            Err(reason) => {
                let publisher = Pack::publisher_of(&bytes, &reason).unwrap_or(0);
                Counters::add(&self.counters.refused, 1);
                self.queue_refusal(&mut lock(&self.presence), publisher, reason);
                return;
            }
        };
        let frames = pack
            .frames()
            .map(|(seq, bytes)| (seq, Payload::Whole(bytes)));
        self.take(pack.header(), pack.abandoned(), |data, first| {
            self.deliver(data, frames, first)
        });
    }

    /// Takes in a checked pack: its publisher's state and sequence numbers, and its frames
    /// through `deliver` (given the data path and the first sequence number not yet
    /// delivered) if it is a data pack; `abandoned` is what a final pack says was left.
    fn take(&self, header: PackHeader, abandoned: u64, deliver: impl FnOnce(&mut DataPath, u64)) {
        let mut data = lock(&self.data);
        {
            let presence = lock(&self.presence);
            let state = presence.publishers.get(&header.publisher).copied();
            match state {
                // After its final pack: nothing can follow in order.
                Some(p) if p.ended => {
                    Counters::add(&self.counters.out_of_order, u64::from(header.count));
                    return;
                }
                // The stream was reported over and the publisher has not come back.
                Some(p) if p.told && !p.alive => {
                    Counters::add(&self.counters.late, u64::from(header.count));
                    return;
                }
                _ => {}
            }
        }
        let next = data.next_seq.entry(header.publisher).or_insert(0);
        let first = *next;
        Counters::add(&self.counters.missed, header.seq.saturating_sub(first));
        match header.kind {
            PackKind::Data => {
                // Parsing checked that seq + count does not overflow.
                *next = (*next).max(header.seq + u64::from(header.count));
                deliver(&mut data, first);
            }
            PackKind::End | PackKind::Stopped => {
                *next = (*next).max(header.seq);
                Counters::add(&self.counters.missed, abandoned);
                let mut presence = lock(&self.presence);
                let publisher = presence.publishers.entry(header.publisher).or_default();
                publisher.ended = true;
                presence.last_clean = header.kind == PackKind::End;
            }
        }
    }

    /// Puts `frames` (sequence numbers and payloads, in order) numbered `first` and on into
    /// the local channel.
    fn deliver<'a>(
        &self,
        data: &mut DataPath,
        frames: impl Iterator<Item = (u64, Payload<'a>)>,
        first: u64,
    ) {
        let max = data.tx.max_message_len();
        let (mut delivered, mut dropped, mut oversized, mut stale) = (0, 0, 0, 0);
        for (seq, payload) in frames {
            if seq < first {
                // Never delivered twice or out of order (TCP links do not reorder; a
                // restarted publisher takes a new id).
                stale += 1;
                continue;
            }
            if payload.len() > max {
                oversized += 1;
                continue;
            }
            match payload.send(&mut data.tx, self.delivery) {
                Ok(()) => delivered += 1,
                Err(Unsent::Dropped) => dropped += 1,
                // The importer was dropped while this pack waited: nobody to deliver to.
                Err(Unsent::Gone) => break,
            }
        }
        data.tx.flush();
        let c = &self.counters;
        Counters::add(&c.delivered, delivered);
        Counters::add(&c.dropped, dropped);
        Counters::add(&c.oversized, oversized);
        Counters::add(&c.out_of_order, stale);
    }

    /// A sample of the liveliness subscriber: an exporter's token appeared or went.
    pub fn on_token(&self, sample: &Sample) {
        let Some(info) = liveness::parse_token(sample.key_expr().as_str()) else {
            return;
        };
        let mut presence = lock(&self.presence);
        match sample.kind() {
            SampleKind::Put => match self.mismatch(info) {
                Some(reason) => self.queue_refusal(&mut presence, info.publisher, reason),
                None => {
                    let publisher = presence.publishers.entry(info.publisher).or_default();
                    publisher.alive = true;
                    // Back (reconnected): its packs are delivered again.
                    publisher.told = false;
                }
            },
            SampleKind::Delete => {
                if let Some(publisher) = presence.publishers.get_mut(&info.publisher) {
                    let was_active = publisher.alive && !publisher.ended;
                    publisher.alive = false;
                    if was_active {
                        presence.last_clean = false;
                    }
                }
            }
        }
    }

    /// A query on the flush key: an exporter asks, after its final pack, whether this
    /// importer has handled everything before the query. It has: zenoh hands this
    /// importer a link's messages in order, and the data callback returns only once a
    /// pack is in the local channel.
    pub fn on_flush(&self, query: &Query) {
        // A failed reply only makes the exporter wait out its linger.
        let _ = query.reply(query.key_expr().clone(), Vec::new()).wait();
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

    fn queue_refusal(&self, presence: &mut Presence, publisher: u64, reason: HeaderError) {
        if presence
            .reported
            .insert((publisher, std::mem::discriminant(&reason)))
        {
            presence
                .refusals
                .push_back(ImportError::Refused { publisher, reason });
            // Relaxed: a hint read under no ordering; the refusal itself is passed under
            // the `presence` lock, and a receive that misses the hint sees it next time.
            self.refusals_pending.store(true, Ordering::Relaxed);
        }
    }

    /// The next refusal to report, if any (checked on every receive: inlined up to the
    /// one load that finds none).
    #[inline(always)]
    pub fn take_refusal(&self) -> Option<ImportError> {
        // Relaxed: see `queue_refusal`.
        if !self.refusals_pending.load(Ordering::Relaxed) {
            return None;
        }
        self.pop_refusal()
    }

    #[cold]
    fn pop_refusal(&self) -> Option<ImportError> {
        let mut presence = lock(&self.presence);
        let refusal = presence.refusals.pop_front();
        if presence.refusals.is_empty() {
            // Relaxed: cleared under the lock that guards the queue it describes.
            self.refusals_pending.store(false, Ordering::Relaxed);
        }
        refusal
    }

    /// Who is exporting now.
    pub fn status(&self) -> RemoteStatus {
        lock(&self.presence).status()
    }

    /// Decides, for a receive that found the local channel empty, whether the stream is
    /// over. With `data` held no pack is half-delivered, so `take` (a non-blocking receive
    /// from the local channel) finding nothing means nothing more comes before the end:
    /// then every publisher not alive is marked as told, so that nothing of theirs is
    /// delivered after this.
    pub fn decide<T>(
        &self,
        take: impl FnOnce() -> Result<Option<T>, ImportError>,
    ) -> Result<Decision<T>, ImportError> {
        let data = match self.data.try_lock() {
            Ok(data) => data,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return Ok(Decision::Busy),
        };
        let mut presence = lock(&self.presence);
        let over = match presence.status() {
            RemoteStatus::Gone => ImportError::RemoteGone,
            RemoteStatus::Closed => ImportError::RemoteClosed,
            RemoteStatus::Waiting | RemoteStatus::Alive { .. } => return Ok(Decision::NotOver),
        };
        if let Some(item) = take()? {
            return Ok(Decision::Item(item));
        }
        for publisher in presence.publishers.values_mut() {
            if !publisher.alive {
                publisher.told = true;
            }
        }
        drop(presence);
        drop(data);
        Ok(Decision::Over(over))
    }
}

/// The header of `payload` if it is a data pack of one frame that arrived in several pieces
/// (a frame longer than a zenoh batch is fragmented on the way, and zenoh hands over the
/// fragments as they came): such a frame is copied from the pieces straight into the local
/// channel, not joined into one buffer first. `None` for a pack in one piece, or any
/// other: it is parsed whole.
fn lone_frame(payload: &ZBytes, layout: Layout) -> Option<PackHeader> {
    // In one piece: parsed whole, borrowed from zenoh's buffer.
    payload.slices().nth(1)?;
    let mut first = [0u8; LONE_HEAD_LEN];
    payload.reader().read_exact(&mut first).ok()?;
    PackHeader::of_lone_frame(&first, payload.len(), layout)
}

/// A frame's payload as it arrived.
enum Payload<'a> {
    /// In one piece.
    Whole(&'a [u8]),
    /// A lone frame's pack in pieces (see [`lone_frame`]): the payload is its bytes from
    /// [`LONE_HEAD_LEN`] on.
    Pieces(&'a ZBytes),
}

/// Why a frame was not put into the local channel.
enum Unsent {
    /// Its ring was full and the delivery drops.
    Dropped,
    /// The importer is gone.
    Gone,
}

impl Payload<'_> {
    fn len(&self) -> usize {
        match self {
            Payload::Whole(bytes) => bytes.len(),
            Payload::Pieces(pack) => pack.len() - LONE_HEAD_LEN,
        }
    }

    /// Puts the payload into `tx` unpublished (the caller flushes), waiting for room or
    /// dropping it when there is none, as `delivery` says.
    fn send(&self, tx: &mut Sender<spsc::Spsc>, delivery: Delivery) -> Result<(), Unsent> {
        let full = |e: TrySendError<()>| match e {
            TrySendError::Full(()) => Unsent::Dropped,
            _ => Unsent::Gone,
        };
        let pack = match *self {
            Payload::Whole(bytes) => {
                return match delivery {
                    // Published at the latest after the pack, or when the ring fills.
                    Delivery::Block => tx.send_deferred(bytes).map_err(|_| Unsent::Gone),
                    Delivery::Drop => tx.try_send(bytes).map_err(full),
                };
            }
            Payload::Pieces(pack) => pack,
        };
        let len = self.len();
        let mut grant = match delivery {
            Delivery::Block => tx.reserve(len).map_err(|_| Unsent::Gone)?,
            Delivery::Drop => tx.try_reserve(len).map_err(full)?,
        };
        let mut skip = LONE_HEAD_LEN;
        let mut at = 0;
        for slice in pack.slices() {
            let piece = slice.get(skip..).unwrap_or_default();
            skip = skip.saturating_sub(slice.len());
            // The pieces after the head add up to `len`, the grant's size: a write out
            // of bounds cannot happen; if it did, the frame is dropped (and counted).
            grant.write_at(at, piece).map_err(|_| Unsent::Dropped)?;
            at += piece.len();
        }
        grant.commit_deferred(len).map_err(|_| Unsent::Dropped)
    }
}

/// What [`Shared::decide`] found.
pub(crate) enum Decision<T> {
    /// A frame was still there: the last words before the end.
    Item(T),
    /// The stream is over (and the caller must say so).
    Over(ImportError),
    /// Someone is exporting (or nobody was seen yet).
    NotOver,
    /// A pack is being delivered: look at the local channel again.
    Busy,
}
