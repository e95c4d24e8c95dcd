//! [`export`]: a thread that forwards every frame of a local channel to a zenoh publisher.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use shm_channel::{CallError, Flavor, Receiver};
use zenoh::qos::CongestionControl;
use zenoh::{Session, Wait};

use crate::header::{FrameHeader, FrameKind, HEADER_LEN};
use crate::liveness;
use crate::{BridgeError, Delivery, Layout};

/// How long the exporter's thread waits for a local frame, or for an importer, before it
/// looks at its stop flag again: the bound on [`Exporter::stop`]'s wait, besides a `put`
/// blocked by back-pressure.
const POLL: Duration = Duration::from_millis(20);

/// Options of [`export`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportOptions {
    /// The layout/codec tag every frame carries (importers of another layout refuse them).
    pub layout: Layout,
    /// [`Delivery::Block`] (the default): zenoh congestion control `Block`, and no frame is
    /// read from the local channel while no importer is subscribed, so a slow or absent
    /// remote consumer slows the local producer. [`Delivery::Drop`]: congestion control
    /// `Drop`, frames are forwarded whether or not anyone listens; importers count what
    /// they miss.
    pub delivery: Delivery,
}

impl Default for ExportOptions {
    fn default() -> ExportOptions {
        ExportOptions {
            layout: Layout::BYTES,
            delivery: Delivery::Block,
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
    /// Why the local channel ended, if it did (`None`: stopped by [`Exporter::stop`]).
    pub local_end: Option<String>,
}

/// A running export: a thread reading a local channel and publishing on a zenoh key.
/// Dropping it stops the thread (as [`stop`](Exporter::stop) does) and withdraws its
/// liveliness token, which importers see as the exporter going away. Both wait for a `put`
/// held by back-pressure: at most zenoh's `block/wait_before_close` (5 s by default), after
/// which zenoh closes the congested link.
#[derive(Debug)]
pub struct Exporter {
    publisher: u64,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<Result<Option<String>, BridgeError>>>,
}

/// Forwards every frame read from `receiver` (a byte endpoint of any flavor; for a typed
/// channel pass `typed_receiver.into_bytes()` and a [`Layout`] naming the codec) to a zenoh
/// publisher on `key`, each behind the bridge header (magic, version, layout, publisher id,
/// sequence number).
///
/// The thread runs until the local channel ends (its senders dropped or dead: importers
/// are told with an end-of-stream frame), until [`Exporter::stop`], or until zenoh fails.
///
/// ```no_run
/// use shm_bridge::{export, Config, ExportOptions};
/// let session = Config::loopback_peer().connect("tcp/127.0.0.1:7447")?.open()?;
/// let (mut tx, rx) = shm_channel::spsc::channel(1 << 16)?;
/// let exporter = export(&session, rx, "demo/frames", ExportOptions::default())?;
/// tx.send(b"hello, other host")?;
/// drop(tx); // the end of the stream: importers see it after this frame
/// let report = exporter.join()?;
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
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let mut pump = Pump {
        receiver,
        publisher,
        session: session.clone(),
        key: key.to_string(),
        header: FrameHeader {
            kind: FrameKind::Data,
            layout: options.layout,
            publisher: publisher_id,
            seq: 0,
        },
        wait_for_importer: options.delivery == Delivery::Block,
        matched,
        stop: Arc::clone(&stop),
        counters: Arc::clone(&counters),
    };
    let thread = std::thread::Builder::new()
        .name(format!("shm-bridge export {key}"))
        .spawn(move || {
            let result = pump.run();
            // Withdraw presence only after the last frame is queued.
            drop(listener);
            drop(token);
            result
        })
        .map_err(|e| BridgeError::Thread(e.to_string()))?;
    Ok(Exporter {
        publisher: publisher_id,
        stop,
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

    /// Stops forwarding (within 20 ms, unless a `put` is blocked by back-pressure) and
    /// reports. Frames still in the local channel stay there.
    pub fn stop(mut self) -> Result<ExportReport, BridgeError> {
        self.stop.store(true, Ordering::SeqCst);
        self.finish()
    }

    /// Waits until the local channel ends and every frame has been put, then reports.
    pub fn join(mut self) -> Result<ExportReport, BridgeError> {
        self.finish()
    }

    fn finish(&mut self) -> Result<ExportReport, BridgeError> {
        let local_end = match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| BridgeError::Thread("the exporter thread panicked".into()))??,
            None => None,
        };
        Ok(ExportReport {
            // Relaxed: a statistic, read or bumped alone; it orders nothing.
            forwarded: self.counters.forwarded.load(Ordering::Relaxed),
            local_end,
        })
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // A failure here has nobody to report to; `stop` and `join` return it.
        let _ = self.finish();
    }
}

/// The exporter thread's state.
struct Pump<F: Flavor> {
    receiver: Receiver<F>,
    publisher: zenoh::pubsub::Publisher<'static>,
    /// For the end-of-stream frame, put with congestion control `Block` even in drop mode.
    session: Session,
    key: String,
    header: FrameHeader,
    wait_for_importer: bool,
    matched: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
}

impl<F: Flavor> Pump<F> {
    /// Forwards until stopped (`Ok(None)`) or the local channel ends (`Ok(Some(why))`).
    fn run(&mut self) -> Result<Option<String>, BridgeError> {
        while !self.stop.load(Ordering::SeqCst) {
            if self.wait_for_importer && !self.matched.load(Ordering::SeqCst) {
                // Nobody would receive a put now: leave the frames in the local channel,
                // whose producer waits (back-pressure), until an importer subscribes.
                std::thread::sleep(POLL / 4);
                continue;
            }
            let frame = match self.receiver.read_timeout(POLL) {
                Ok(grant) => {
                    let len = grant.len();
                    let payload_len =
                        u32::try_from(len).map_err(|_| BridgeError::FrameTooLong(len))?;
                    let mut frame = vec![0u8; HEADER_LEN + len];
                    grant.copy_to(&mut frame[HEADER_LEN..]);
                    drop(grant);
                    self.header.write(payload_len, &mut frame);
                    Ok(frame)
                }
                Err(error) if error.is_fatal() => Err(error.to_string()),
                // A timeout, or a broadcast receiver's lag (the frames lost there never
                // reached the bridge): keep going.
                Err(_) => continue,
            };
            let frame = match frame {
                Ok(frame) => frame,
                Err(why) => {
                    self.put_end()?;
                    return Ok(Some(why));
                }
            };
            self.publisher
                .put(frame)
                .wait()
                .map_err(BridgeError::zenoh)?;
            self.header.seq += 1;
            // Relaxed: a statistic, read or bumped alone; it orders nothing.
            self.counters.forwarded.fetch_add(1, Ordering::Relaxed);
        }
        Ok(None)
    }

    /// Tells importers that this publisher's stream ended cleanly.
    fn put_end(&mut self) -> Result<(), BridgeError> {
        let mut frame = vec![0u8; HEADER_LEN];
        let header = FrameHeader {
            kind: FrameKind::End,
            ..self.header
        };
        header.write(0, &mut frame);
        // Never dropped, even in drop mode: importers learn the stream's length from it.
        // It follows the publisher's frames on the same key and link, in order.
        self.session
            .put(self.key.as_str(), frame)
            .congestion_control(CongestionControl::Block)
            .wait()
            .map_err(BridgeError::zenoh)
    }
}
