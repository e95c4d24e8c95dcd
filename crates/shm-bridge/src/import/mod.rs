//! [`import`]: a local receiver fed by a zenoh subscriber, and what it says when the remote
//! side goes away.

use shm_channel::Receiver;
use std::time::{Duration, Instant};

use shm_channel::codec::Codec;
use shm_channel::{spsc, typed, RecvError, RecvTimeoutError, TryRecvError};
use shm_channel::{ChannelError, Endpoint as _};
use shm_core::notify::WaitStrategy;
use zenoh::Session;

use crate::{BridgeError, Delivery, ImportError, Layout};

mod feed;
mod intake;

pub use feed::{import_into, Feed};
use intake::Decision;

/// How often a waiting receive looks at who is exporting: the remote-gone bound is zenoh's
/// detection time plus this.
pub const STATUS_POLL: Duration = Duration::from_millis(20);

/// Options of [`import`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportOptions {
    /// The layout/codec tag frames must carry; frames of any other are refused and counted.
    pub layout: Layout,
    /// [`Delivery::Block`] (the default): a full local channel holds zenoh's delivery back,
    /// which slows the exporters (congestion control `Block`). [`Delivery::Drop`]: a frame
    /// that finds the local channel full is dropped and counted
    /// ([`ImportStats::dropped`]).
    pub delivery: Delivery,
    /// How the importer's receive calls wait for a frame (default
    /// [`BRIDGE_WAIT`]: poll, yielding the CPU, then sleep). The frames come from zenoh's
    /// threads in this process, which need a core to read the socket and fill the local
    /// channel: a receive that spins takes it from them. [`import_into`] has no receiving
    /// end of its own and ignores it: set the wait of the receiver you read with.
    pub wait: WaitStrategy,
}

/// How the bridge's threads wait (the exporter's for frames, an import's for room in its
/// local channel), and the default of [`ImportOptions::wait`]: poll for
/// [`DEFAULT_SPIN`](shm_core::notify::DEFAULT_SPIN), yielding the CPU between polls, then
/// sleep. Each shares the cores with zenoh's threads, which need one to move the data it
/// waits for. For the importer's receive, measured against the channels' spinning default
/// on the 2-core reference VM (seven alternated sittings of `examples/bridge`): 64 KiB
/// frames 1.20× as many a second [0.96–1.48], 64 B frames 0.97× [0.87–1.09] (within the
/// spread).
///
/// ```
/// use shm_bridge::{import, Config, ImportOptions, BRIDGE_WAIT};
/// use shm_ipc::channel::Endpoint;
/// use shm_ipc::core::notify::WaitStrategy;
/// let session = Config::loopback_peer().open()?;
/// let importer = import(&session, "doc/wait", 1 << 16, ImportOptions::default())?;
/// assert_eq!(importer.local().wait_strategy(), BRIDGE_WAIT);
/// // A consumer with a core of its own may spin for the lowest latency.
/// let options = ImportOptions { wait: WaitStrategy::Spin, ..ImportOptions::default() };
/// let importer = import(&session, "doc/spin", 1 << 16, options)?;
/// assert_eq!(importer.local().wait_strategy(), WaitStrategy::Spin);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const BRIDGE_WAIT: WaitStrategy = WaitStrategy::YieldThenPark {
    spin: shm_core::notify::DEFAULT_SPIN,
};

impl Default for ImportOptions {
    fn default() -> ImportOptions {
        ImportOptions {
            layout: Layout::BYTES,
            delivery: Delivery::Block,
            wait: BRIDGE_WAIT,
        }
    }
}

/// Who is exporting on an importer's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteStatus {
    /// No exporter of this importer's layout has been seen yet.
    Waiting,
    /// This many exporters are alive.
    Alive {
        /// How many.
        exporters: usize,
    },
    /// Every exporter seen is gone; the last one went without ending its stream.
    Gone,
    /// Every exporter seen is gone; the last one ended its stream cleanly first.
    Closed,
}

/// Counters of an importer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportStats {
    /// Frames put into the local channel.
    pub delivered: u64,
    /// Frames dropped because the local channel was full ([`Delivery::Drop`] only).
    pub dropped: u64,
    /// Frames longer than the local channel can ever hold, dropped.
    pub oversized: u64,
    /// Packs (puts, each of one or more frames) refused whole for their header or their
    /// frame lengths (layout, version, garbage).
    pub refused: u64,
    /// Frames never received: gaps in a publisher's sequence numbers (dropped on the way
    /// in drop mode, sent before this importer subscribed, or lost when zenoh closed a
    /// congested link), and frames an exporter abandoned in its local channel when it was
    /// stopped (its final pack counts them).
    pub missed: u64,
    /// Frames with a sequence number already passed, or after their publisher's final
    /// pack, discarded.
    pub out_of_order: u64,
    /// Frames of a publisher that arrived after a receive had reported the stream over
    /// (and before that publisher came back), discarded: never delivered after the end.
    pub late: u64,
}

/// The local receiving end an [`Importer`] reads: its byte channel, or a typed view of it.
/// Implemented for [`Receiver<spsc::Spsc>`] and [`typed::Receiver`] over SPSC.
pub trait LocalReceiver {
    /// What a receive returns.
    type Item;
    /// Waits at most `timeout`; `Ok(None)` when nothing came.
    fn recv_for(&mut self, timeout: Duration) -> Result<Option<Self::Item>, ImportError>;
    /// `Ok(None)` when nothing is there now.
    fn try_take(&mut self) -> Result<Option<Self::Item>, ImportError>;
}

impl LocalReceiver for Receiver<spsc::Spsc> {
    type Item = Vec<u8>;

    fn recv_for(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>, ImportError> {
        timed(self.recv_timeout(timeout))
    }

    #[inline(always)]
    fn try_take(&mut self) -> Result<Option<Vec<u8>>, ImportError> {
        now(self.try_recv())
    }
}

impl<T, C: Codec<T>> LocalReceiver for typed::Receiver<T, spsc::Spsc, C> {
    type Item = T;

    fn recv_for(&mut self, timeout: Duration) -> Result<Option<T>, ImportError> {
        timed(self.recv_timeout(timeout))
    }

    #[inline(always)]
    fn try_take(&mut self) -> Result<Option<T>, ImportError> {
        now(self.try_recv())
    }
}

fn timed<T, E: LocalError>(
    result: Result<T, RecvTimeoutError<E>>,
) -> Result<Option<T>, ImportError> {
    match result {
        Ok(item) => Ok(Some(item)),
        Err(RecvTimeoutError::Timeout) => Ok(None),
        Err(RecvTimeoutError::Recv(e)) => Err(e.into_import_error()),
    }
}

#[inline(always)]
fn now<T, E: LocalError>(result: Result<T, TryRecvError<E>>) -> Result<Option<T>, ImportError> {
    match result {
        Ok(item) => Ok(Some(item)),
        Err(TryRecvError::Empty) => Ok(None),
        Err(TryRecvError::Recv(e)) => Err(e.into_import_error()),
    }
}

/// A local receiver's failure as the importer's error.
trait LocalError {
    fn into_import_error(self) -> ImportError;
}

impl LocalError for RecvError {
    fn into_import_error(self) -> ImportError {
        ImportError::Local(self.to_string())
    }
}

impl LocalError for typed::RecvError {
    fn into_import_error(self) -> ImportError {
        match self {
            typed::RecvError::Decode(e) => ImportError::Decode(e),
            typed::RecvError::Recv(e) => e.into_import_error(),
        }
    }
}

/// A local receiver fed from a zenoh key (see [`import`]).
///
/// Receives return every frame delivered, in each publisher's order; when the local
/// channel is empty they say why nothing comes: [`ImportError::RemoteGone`] or
/// [`ImportError::RemoteClosed`] while no exporter is alive (not final: once one comes
/// back, receiving resumes), [`ImportError::Refused`] once per publisher sending frames
/// this importer refuses.
pub struct Importer<R = Receiver<spsc::Spsc>> {
    // Dropped first: a callback blocked on a full local channel then returns, and the
    // subscribers below can be undeclared.
    rx: R,
    feed: Feed,
}

impl<R> std::fmt::Debug for Importer<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Importer")
            .field("feed", &self.feed)
            .finish_non_exhaustive()
    }
}

/// Subscribes to `key` (a key expression: `"plant/*/temperature"` fans in every matching
/// exporter) and returns an [`Importer`] whose local channel holds `capacity` bytes (a
/// power of two, at least 16; frames longer than about a quarter of it cannot be held).
///
/// ```no_run
/// use shm_bridge::{import, Config, ImportError, ImportOptions};
/// use std::time::Duration;
/// let session = Config::loopback_peer().listen("tcp/127.0.0.1:7447")?.open()?;
/// let mut importer = import(&session, "demo/frames", 1 << 16, ImportOptions::default())?;
/// match importer.recv_timeout(Duration::from_secs(5)) {
///     Ok(frame) => println!("{} bytes", frame.len()),
///     Err(ImportError::RemoteGone) => println!("the exporter went away"),
///     Err(other) => println!("{other}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn import(
    session: &Session,
    key: &str,
    capacity: usize,
    options: ImportOptions,
) -> Result<Importer, BridgeError> {
    let (tx, mut rx) = spsc::channel(capacity)?;
    // The channel is private to this process: releasing consumed frames per eighth of it
    // saves a store on a line zenoh's thread reads per frame, and costs nothing on a crash.
    rx.set_release_batch(capacity / 8);
    rx.set_wait_strategy(options.wait);
    let feed = import_into(session, key, tx, options)?;
    Ok(Importer { rx, feed })
}

/// [`import`] for a typed channel: frames are decoded as `T` with codec `C`, and only
/// exporters of `T` through `C` are accepted — [`ImportOptions::layout`], if left at
/// [`Layout::BYTES`], becomes [`Layout::of::<T, C>()`](Layout::of), the type fingerprint an
/// exporter of a typed local channel puts on its packs. An exporter of another type is
/// refused ([`ImportError::Refused`] with [`HeaderError::Layout`](crate::HeaderError)),
/// never misread.
///
/// ```no_run
/// use shm_bridge::{export, import_typed, Config, ExportOptions, ImportOptions};
/// use shm_ipc::channel::codec::Bincode;
/// use std::time::Duration;
/// let endpoint = shm_bridge::free_loopback_endpoint()?;
/// let there = Config::loopback_peer().listen(&endpoint)?.open()?;
/// let here = Config::loopback_peer().connect(&endpoint)?.open()?;
/// let mut importer = import_typed::<String, Bincode>(&there, "doc/text", 1 << 16, ImportOptions::default())?;
/// let (mut tx, rx) = shm_ipc::channel::typed::channel::<String>(1 << 16)?;
/// let _exporter = export(&here, rx.into(), "doc/text", ExportOptions::default())?;
/// tx.send("typed, across hosts".to_string())?;
/// assert_eq!(importer.recv_timeout(Duration::from_secs(10))?, "typed, across hosts");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn import_typed<T, C: Codec<T>>(
    session: &Session,
    key: &str,
    capacity: usize,
    options: ImportOptions,
) -> Result<Importer<typed::Receiver<T, spsc::Spsc, C>>, BridgeError> {
    let options = ImportOptions {
        layout: match options.layout {
            Layout::BYTES => Layout::of::<T, C>(),
            chosen => chosen,
        },
        ..options
    };
    import(session, key, capacity, options)?.typed()
}

impl Importer {
    /// Decodes frames as `T` with codec `C`. The importer checks the layout it was made
    /// with: prefer [`import_typed`], which makes it `T`'s type fingerprint.
    pub fn typed<T, C: Codec<T>>(
        self,
    ) -> Result<Importer<typed::Receiver<T, spsc::Spsc, C>>, BridgeError> {
        let rx = typed::Receiver::try_from(self.rx).map_err(ChannelError::from)?;
        Ok(Importer {
            rx,
            feed: self.feed,
        })
    }
}

impl<R> Importer<R> {
    /// Who is exporting now.
    pub fn status(&self) -> RemoteStatus {
        self.feed.status()
    }

    /// Waits until at least one exporter is alive; `false` if none came within `timeout`.
    pub fn wait_for_exporter(&self, timeout: Duration) -> bool {
        self.feed.wait_for_exporter(timeout)
    }

    /// The importer's counters.
    pub fn stats(&self) -> ImportStats {
        self.feed.stats()
    }
}

impl<R: LocalReceiver> Importer<R> {
    /// Waits for the next frame, or for the reason none comes (see [`Importer`]); only a
    /// `Waiting` or `Alive` status keeps it waiting.
    #[inline(always)]
    pub fn recv(&mut self) -> Result<R::Item, ImportError> {
        if let Some(ready) = self.ready()? {
            return Ok(ready);
        }
        self.recv_until(None)
    }

    /// [`recv`](Importer::recv), waiting at most `timeout` ([`ImportError::Timeout`]).
    #[inline(always)]
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<R::Item, ImportError> {
        // A frame at hand needs no clock (a clock read costs as much as a small frame).
        if let Some(ready) = self.ready()? {
            return Ok(ready);
        }
        self.recv_until(Some(Instant::now() + timeout))
    }

    /// A frame already in the local channel, unless a refusal is to be reported first.
    ///
    /// The receive calls' hot path, inlined into each of them down to the ring (as
    /// shm-channel's receive path is): a frame returned through a call that is not inlined
    /// comes back as a multi-word `Result` written to the stack in 8-byte stores and read
    /// back in 16-byte loads, which the store buffer cannot forward (measured: half of
    /// each such layer's time on a 64 B stream).
    #[inline(always)]
    fn ready(&mut self) -> Result<Option<R::Item>, ImportError> {
        if let Some(refusal) = self.feed.shared.take_refusal() {
            return Err(refusal);
        }
        self.rx.try_take()
    }

    /// The next frame if one is there now ([`ImportError::Timeout`] if not), or why none
    /// can come.
    #[inline(always)]
    pub fn try_recv(&mut self) -> Result<R::Item, ImportError> {
        if let Some(ready) = self.ready()? {
            return Ok(ready);
        }
        self.recv_until(Some(Instant::now()))
    }

    #[inline(never)]
    fn recv_until(&mut self, deadline: Option<Instant>) -> Result<R::Item, ImportError> {
        loop {
            if let Some(item) = self.ready()? {
                return Ok(item);
            }
            let rx = &mut self.rx;
            match self.feed.shared.decide(|| rx.try_take())? {
                Decision::Item(item) => return Ok(item),
                Decision::Over(over) => return Err(over),
                Decision::NotOver | Decision::Busy => {}
            }
            let slice = match deadline {
                None => STATUS_POLL,
                Some(at) => match at.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left.min(STATUS_POLL),
                    _ => return Err(ImportError::Timeout),
                },
            };
            if let Some(item) = self.rx.recv_for(slice)? {
                return Ok(item);
            }
        }
    }

    /// The local receiving end, e.g. to look at its stats.
    pub fn local(&self) -> &R {
        &self.rx
    }
}
