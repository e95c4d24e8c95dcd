//! [`export`]: a thread that packs the frames of a local channel into zenoh puts.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shm_channel::{CallError, Endpoint as _, Flavor, ReadGrant, Receiver};
use zenoh::qos::CongestionControl;
use zenoh::query::{ConsolidationMode, QueryTarget};
use zenoh::{Session, Wait};

use crate::exit::{self, Exit};
use crate::header::{PackHeader, PackKind, PackWriter, HEADER_LEN};
use crate::liveness;
use crate::{BridgeError, Delivery, Layout};

/// How long the exporter's thread waits for a local frame, or for an importer, before it
/// looks at its stop flag again: the bound on [`Exporter::stop`]'s wait for the thread to
/// notice, besides a `put` blocked by back-pressure.
const POLL: Duration = Duration::from_millis(20);

/// The default [`ExportOptions::pack_size`]: zenoh's default batch is 65,535 bytes
/// (`transport/link/tx/batch_size`, its maximum on TCP); 64,000 leaves room for zenoh's own
/// headers, so that a full pack travels in one batch without fragmentation.
///
/// ```
/// use shm_bridge::{ExportOptions, DEFAULT_PACK_SIZE};
/// // Smaller packs: less latency added to a frame behind a full pack, more puts.
/// let options = ExportOptions { pack_size: DEFAULT_PACK_SIZE / 4, ..ExportOptions::default() };
/// assert!(options.pack_size < u16::MAX as usize);
/// ```
pub const DEFAULT_PACK_SIZE: usize = 64_000;

/// Options of [`export`].
///
/// ```
/// use shm_bridge::{Delivery, ExportOptions};
/// use std::time::Duration;
/// let options = ExportOptions {
///     delivery: Delivery::Drop,
///     pack_delay: Duration::from_micros(200),
///     ..ExportOptions::default()
/// };
/// assert_eq!(options.pack_size, shm_bridge::DEFAULT_PACK_SIZE);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportOptions {
    /// The layout/codec tag every pack carries (importers of another layout refuse them).
    /// [`Layout::BYTES`] (the default) for a typed local channel means its type
    /// fingerprint ([`Layout::from_fingerprint`]).
    pub layout: Layout,
    /// [`Delivery::Block`] (the default): zenoh congestion control `Block`, and no frame is
    /// read from the local channel while no importer is subscribed, so a slow or absent
    /// remote consumer slows the local producer. [`Delivery::Drop`]: congestion control
    /// `Drop`, frames are forwarded whether or not anyone listens; importers count what
    /// they miss.
    pub delivery: Delivery,
    /// The largest put, in bytes (header and frame prefixes included; default
    /// [`DEFAULT_PACK_SIZE`]). Consecutive frames of the local channel are packed into one
    /// put up to this size; a longer frame travels alone.
    pub pack_size: usize,
    /// The longest a frame waits in a pack that is still filling (default 1 ms). A pack is
    /// put as soon as the local channel is empty, so a sparse stream pays one put's latency,
    /// not this; it bounds the wait of a stream that keeps the channel barely non-empty.
    pub pack_delay: Duration,
    /// How long stopping waits for importers to confirm that they received the final pack
    /// (default 10 s): [`Exporter::join`], [`Exporter::stop`], drop, and process exit
    /// return at most this long after the last put left (see [`Exporter`]).
    pub linger: Duration,
}

impl Default for ExportOptions {
    fn default() -> ExportOptions {
        ExportOptions {
            layout: Layout::BYTES,
            delivery: Delivery::Block,
            pack_size: DEFAULT_PACK_SIZE,
            pack_delay: Duration::from_millis(1),
            linger: Duration::from_secs(10),
        }
    }
}

/// Counters of an exporter, readable while it runs.
#[derive(Debug, Default)]
struct Counters {
    forwarded: AtomicU64,
}

/// What an exporter did, once stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// Frames put on the publisher.
    pub forwarded: u64,
    /// Frames left unsent in the local channel when the exporter was stopped (and counted
    /// as missed by importers); 0 after the local channel ended.
    pub abandoned: u64,
    /// Why the local channel ended, if it did (`None`: stopped by [`Exporter::stop`], drop
    /// or process exit).
    pub local_end: Option<String>,
    /// How many importers confirmed that they had received everything up to the final
    /// pack.
    pub confirmed_by: usize,
    /// Whether that wait ended before [`ExportOptions::linger`] (every importer reachable
    /// answered; `true` with `confirmed_by == 0` when none was subscribed).
    pub all_confirmed: bool,
}

/// A running export: a thread reading a local channel and publishing packs of frames on a
/// zenoh key.
///
/// **Ending.** [`join`](Exporter::join) waits until the local channel ends (its senders
/// dropped); [`stop`](Exporter::stop) and drop stop reading it (within 20 ms). Either way
/// the thread then puts what it has packed, puts a final pack that tells importers the
/// stream's length (and how many frames it left in the local channel), and waits until
/// every subscribed importer confirms it received everything up to there — a query that
/// travels behind the data on the same links — before it withdraws its liveliness token
/// and returns. So after `join`, `stop` or drop, every frame put has left the process and
/// reached the importers; an importer then receives every frame, and then
/// [`RemoteClosed`](crate::ImportError::RemoteClosed) (after `join`) or
/// [`RemoteGone`](crate::ImportError::RemoteGone) (after `stop`, with the abandoned frames
/// counted as missed).
///
/// **How long.** The wait for confirmation is bounded by [`ExportOptions::linger`] (10 s by
/// default); it is short (a round trip) unless an importer's local channel is full and
/// nobody reads it. Before that, a `put` held by back-pressure waits at most zenoh's
/// `block/wait_before_close` (5 s by default), after which zenoh closes the congested link.
///
/// **Process exit.** An exporter still running when its process exits through
/// `std::process::exit` or by returning from `main` (held in a static, leaked, or owned by
/// another thread) is stopped by an exit handler, which waits as above (at most linger +
/// 40 ms) so that its importers learn where the stream ended. A process that dies without
/// running exit handlers (a signal such as `SIGKILL`, an abort, `_exit`) loses what its
/// exporter had read but zenoh had not yet written to the socket (at most one pack being
/// filled and zenoh's transmit queue) and what was left in the local channel; importers
/// see [`RemoteGone`](crate::ImportError::RemoteGone) once its connection closes, and count
/// the lost frames as missed only if the same publisher later resumes (a tail loss has no
/// later sequence number to reveal it).
#[derive(Debug)]
pub struct Exporter {
    publisher: u64,
    exit: Arc<Exit>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<Result<Ending, BridgeError>>>,
}

/// How the exporter's thread ended.
#[derive(Debug)]
struct Ending {
    local_end: Option<String>,
    abandoned: u64,
    confirmed_by: usize,
    all_confirmed: bool,
}

/// Forwards every frame read from `receiver` (a byte endpoint of any flavor; for a typed
/// channel pass `shm_channel::Receiver::from(typed_receiver)`: its packs carry the
/// channel's type fingerprint as their [`Layout`], which
/// [`import_typed`](crate::import_typed) of another type refuses) to a zenoh publisher on
/// `key`, packed into puts of up to [`ExportOptions::pack_size`] bytes behind
/// the bridge header (magic, version, layout, publisher id, first sequence number; see
/// [`header`](crate::header)).
///
/// The thread runs until the local channel ends (its senders dropped or dead: importers
/// are told with an end pack), until [`Exporter::stop`] or drop, or until zenoh fails.
///
/// ```no_run
/// use shm_bridge::{export, Config, ExportOptions};
/// let session = Config::loopback_peer().connect("tcp/127.0.0.1:7447")?.open()?;
/// let (mut tx, rx) = shm_ipc::channel::spsc::channel(1 << 16)?;
/// let exporter = export(&session, rx, "demo/frames", ExportOptions::default())?;
/// tx.send(b"hello, other host")?;
/// drop(tx); // the end of the stream: importers see it after this frame
/// let report = exporter.join()?; // every importer has it now
/// assert_eq!(report.forwarded, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn export<F>(
    session: &Session,
    receiver: Receiver<F>,
    key: &str,
    options: ExportOptions,
) -> Result<Exporter, BridgeError>
where
    F: Flavor,
    Receiver<F>: Send,
{
    let options = ExportOptions {
        layout: match options.layout {
            Layout::BYTES => receiver
                .type_fingerprint()
                .map_or(Layout::BYTES, |fingerprint| {
                    Layout::from_fingerprint(&fingerprint)
                }),
            chosen => chosen,
        },
        ..options
    };
    let publisher_id = liveness::new_publisher_id();
    let congestion = match options.delivery {
        Delivery::Block => CongestionControl::Block,
        Delivery::Drop => CongestionControl::Drop,
    };
    let publisher = session
        .declare_publisher(key.to_string())
        .congestion_control(congestion)
        .wait()
        .map_err(BridgeError::zenoh)?;
    let matched = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&matched);
    let listener = publisher
        .matching_listener()
        .callback(move |status| flag.store(status.matching(), Ordering::SeqCst))
        .wait()
        .map_err(BridgeError::zenoh)?;
    let token = session
        .liveliness()
        .declare_token(liveness::token_key(key, options.layout, publisher_id))
        .wait()
        .map_err(BridgeError::zenoh)?;
    let mut receiver = receiver;
    // The exporter's thread shares the cores with zenoh's threads and the local producer:
    // waiting for a frame, it yields rather than spins (see shm-core's `WaitStrategy`).
    receiver.set_wait_strategy(crate::BRIDGE_WAIT);
    let exit = exit::register(options.linger + 2 * POLL);
    let counters = Arc::new(Counters::default());
    let mut pump = Pump {
        receiver,
        out: Outlet {
            publisher,
            session: session.clone(),
            key: key.to_string(),
            header: PackHeader {
                kind: PackKind::Data,
                layout: options.layout,
                publisher: publisher_id,
                seq: 0,
                count: 0,
            },
            pack_size: options.pack_size.max(HEADER_LEN + 1),
            linger: options.linger,
            counters: Arc::clone(&counters),
        },
        pack_delay: options.pack_delay,
        wait_for_importer: options.delivery == Delivery::Block,
        matched,
        exit: Arc::clone(&exit),
    };
    let thread = std::thread::Builder::new()
        .name(format!("shm-bridge export {key}"))
        .spawn(move || {
            let result = pump.run();
            // Withdraw presence only after the final pack is confirmed (or given up on):
            // the token's withdrawal travels at a higher priority than data and could
            // overtake it.
            drop(listener);
            drop(token);
            pump.exit.finished();
            result
        })
        .map_err(|e| BridgeError::Thread(e.to_string()))?;
    Ok(Exporter {
        publisher: publisher_id,
        exit,
        counters,
        thread: Some(thread),
    })
}

impl Exporter {
    /// This exporter's publisher id, as importers see it.
    pub fn publisher_id(&self) -> u64 {
        self.publisher
    }

    /// Frames forwarded so far.
    pub fn forwarded(&self) -> u64 {
        // Relaxed: a statistic, read or bumped alone; it orders nothing.
        self.counters.forwarded.load(Ordering::Relaxed)
    }

    /// Whether the thread has ended (local channel ended, or zenoh failed).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Stops reading the local channel (within 20 ms, unless a `put` is blocked by
    /// back-pressure), puts what was read, and reports once importers confirmed it (see
    /// [`Exporter`] for how long that can take). Frames still in the local channel are
    /// abandoned: counted in [`ExportReport::abandoned`] and, by importers, as missed.
    pub fn stop(mut self) -> Result<ExportReport, BridgeError> {
        self.exit.stop.store(true, Ordering::SeqCst);
        self.finish()
    }

    /// Waits until the local channel ends and every frame has been put and confirmed by
    /// the importers (see [`Exporter`] for how long that can take), then reports.
    pub fn join(mut self) -> Result<ExportReport, BridgeError> {
        self.finish()
    }

    fn finish(&mut self) -> Result<ExportReport, BridgeError> {
        let ending = match self.thread.take() {
            Some(thread) => {
                let ended = thread.join();
                exit::unregister(&self.exit);
                ended.map_err(|_| BridgeError::Thread("the exporter thread panicked".into()))??
            }
            None => Ending {
                local_end: None,
                abandoned: 0,
                confirmed_by: 0,
                all_confirmed: false,
            },
        };
        Ok(ExportReport {
            // Relaxed: a statistic, read or bumped alone; it orders nothing.
            forwarded: self.counters.forwarded.load(Ordering::Relaxed),
            abandoned: ending.abandoned,
            local_end: ending.local_end,
            confirmed_by: ending.confirmed_by,
            all_confirmed: ending.all_confirmed,
        })
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.exit.stop.store(true, Ordering::SeqCst);
        // A failure here has nobody to report to; `stop` and `join` return it.
        let _ = self.finish();
    }
}

/// Where packs go: the publisher, and the exporter's place in its stream.
struct Outlet {
    publisher: zenoh::pubsub::Publisher<'static>,
    /// For the final pack (put with congestion control `Block` even in drop mode) and the
    /// confirmation query.
    session: Session,
    key: String,
    /// `seq` is the next frame's sequence number.
    header: PackHeader,
    pack_size: usize,
    linger: Duration,
    counters: Arc<Counters>,
}

impl Outlet {
    fn new_pack(&self) -> PackWriter {
        PackWriter::new(self.pack_size - HEADER_LEN)
    }

    /// Whether a frame of `len` bytes would overflow `pack`.
    fn overflows(&self, pack: &PackWriter, len: usize) -> bool {
        pack.count() > 0
            && HEADER_LEN + pack.len() + crate::header::FRAME_PREFIX_LEN + len > self.pack_size
    }

    /// Adds the frame of `grant` to `pack`, putting the pack first if it would overflow.
    fn add<F: Flavor>(
        &mut self,
        pack: &mut PackWriter,
        grant: ReadGrant<'_, F>,
    ) -> Result<(), BridgeError> {
        let len = grant.len();
        let len32 = u32::try_from(len).map_err(|_| BridgeError::FrameTooLong(len))?;
        if self.overflows(pack, len) {
            self.put(pack)?;
        }
        pack.push_with(len32, |out| {
            grant.copy_to(out);
        });
        Ok(())
    }

    /// Puts `pack` (if it holds a frame) and starts a new one.
    fn put(&mut self, pack: &mut PackWriter) -> Result<(), BridgeError> {
        if pack.count() == 0 {
            return Ok(());
        }
        let full = std::mem::replace(pack, self.new_pack());
        let count = full.count();
        let bytes = full.finish(&self.header);
        self.publisher
            .put(bytes)
            .wait()
            .map_err(BridgeError::zenoh)?;
        self.header.seq += u64::from(count);
        // Relaxed: a statistic, read or bumped alone; it orders nothing.
        self.counters
            .forwarded
            .fetch_add(u64::from(count), Ordering::Relaxed);
        Ok(())
    }

    /// Puts the final pack (`End` or `Stopped`), then waits for the importers to confirm.
    fn put_final(
        &mut self,
        kind: PackKind,
        abandoned: u64,
        local_end: Option<String>,
    ) -> Result<Ending, BridgeError> {
        let bytes = PackWriter::final_pack(
            &PackHeader {
                kind,
                ..self.header
            },
            abandoned,
        );
        // Never dropped, even in drop mode: importers learn the stream's length from it.
        // It follows the publisher's packs on the same key, priority and links, in order.
        self.session
            .put(self.key.as_str(), bytes)
            .congestion_control(CongestionControl::Block)
            .wait()
            .map_err(BridgeError::zenoh)?;
        let (confirmed_by, all_confirmed) = self.confirm()?;
        Ok(Ending {
            local_end,
            abandoned,
            confirmed_by,
            all_confirmed,
        })
    }

    /// Asks every importer on the key to confirm; the query travels behind the final pack
    /// (same priority, same links: zenoh keeps them in order), and an importer answers once
    /// its callbacks have handled everything before it. (How many answered, whether all did
    /// before `linger`.)
    fn confirm(&self) -> Result<(usize, bool), BridgeError> {
        let replies = self
            .session
            .get(liveness::flush_key(&self.key))
            .target(QueryTarget::All)
            .consolidation(ConsolidationMode::None)
            .congestion_control(CongestionControl::Block)
            .timeout(self.linger)
            .wait()
            .map_err(BridgeError::zenoh)?;
        let (mut confirmed, mut all) = (0, true);
        while let Ok(reply) = replies.recv() {
            match reply.result() {
                Ok(_) => confirmed += 1,
                // zenoh's timeout, the only error an importer's queryable never sends.
                Err(_) => all = false,
            }
        }
        Ok((confirmed, all))
    }
}

/// The exporter thread's state.
struct Pump<F: Flavor> {
    receiver: Receiver<F>,
    out: Outlet,
    pack_delay: Duration,
    wait_for_importer: bool,
    matched: Arc<AtomicBool>,
    exit: Arc<Exit>,
}

/// How many frames are packed between looks at the clock ([`ExportOptions::pack_delay`]):
/// a clock read costs about as much as packing a small frame.
const FRAMES_PER_CLOCK_LOOK: u32 = 64;

impl<F: Flavor> Pump<F> {
    /// Forwards until stopped or the local channel ends, then puts the final pack.
    fn run(&mut self) -> Result<Ending, BridgeError> {
        let mut pack = self.out.new_pack();
        loop {
            if self.exit.stop.load(Ordering::SeqCst) {
                let abandoned = self.abandon();
                return self.out.put_final(PackKind::Stopped, abandoned, None);
            }
            if self.wait_for_importer && !self.matched.load(Ordering::SeqCst) {
                // Nobody would receive a put now: leave the frames in the local channel,
                // whose producer waits (back-pressure), until an importer subscribes.
                std::thread::sleep(POLL / 4);
                continue;
            }
            match self.receiver.read_timeout(POLL) {
                Ok(grant) => self.out.add(&mut pack, grant)?,
                Err(error) if error.is_fatal() => {
                    return self
                        .out
                        .put_final(PackKind::End, 0, Some(error.to_string()))
                }
                // A timeout, or a broadcast receiver's lag (the frames lost there never
                // reached the bridge): keep going.
                Err(_) => continue,
            }
            let ended = self.fill(&mut pack)?;
            self.out.put(&mut pack)?;
            if let Some(why) = ended {
                return self.out.put_final(PackKind::End, 0, Some(why));
            }
        }
    }

    /// Packs the frames that are in the local channel now, putting each pack that fills,
    /// until the channel is empty or the pack's delay is up; `Some(why)` if the channel
    /// ended.
    fn fill(&mut self, pack: &mut PackWriter) -> Result<Option<String>, BridgeError> {
        let opened = Instant::now();
        let mut since_look = 0;
        loop {
            match self.receiver.try_read() {
                Ok(grant) => self.out.add(pack, grant)?,
                Err(error) if error.is_fatal() => return Ok(Some(error.to_string())),
                // Empty (or a broadcast lag): put what there is.
                Err(_) => return Ok(None),
            }
            since_look += 1;
            if since_look == FRAMES_PER_CLOCK_LOOK {
                since_look = 0;
                if opened.elapsed() >= self.pack_delay {
                    return Ok(None);
                }
            }
        }
    }

    /// Consumes and counts the frames left in the local channel: at most as many as it can
    /// hold at once (a frame takes at least 8 bytes of it), so that a producer that keeps
    /// sending cannot hold the stop up.
    fn abandon(&mut self) -> u64 {
        let most = (self.receiver.capacity() / 8) as u64;
        let mut abandoned = 0;
        while abandoned < most {
            match self.receiver.try_read() {
                Ok(grant) => {
                    drop(grant);
                    abandoned += 1;
                }
                Err(_) => break,
            }
        }
        abandoned
    }
}
