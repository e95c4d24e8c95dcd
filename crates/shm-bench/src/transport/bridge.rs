//! The bridge (feature `bridge`): `zenoh-bridge`, shm-bridge over zenoh on 127.0.0.1, and
//! `tcp`, plain loopback TCP carrying the same frames, so that the bridge shows next to
//! the local channel, the pipes and a socket that crosses the same network stack.
//!
//! **`zenoh-bridge`.** The harness's parent must stay single-threaded (it forks every
//! benchmark child, and shm-fork refuses to fork a process with threads), and zenoh runs
//! threads. So the parent's side of the bridge lives in a helper process, forked at
//! [`Transport::connect`] before any thread exists: the parent writes into a local ring
//! that the helper exports (`export`) and reads a local ring that the helper's subscription
//! fills (`import_into`). The benchmark child runs its own zenoh session (it may start
//! threads: nothing forks it afterwards), started on its first call: an importer and an
//! exporter of its own, as a user's process would. Each direction is the whole bridge —
//! local ring, exporter thread, zenoh over TCP, the importer's callback, local ring — with
//! nothing added on the way: the helper's subscription writes straight into the ring the
//! parent reads. Both sessions use `Config::tuned_for_throughput`, as `examples/bridge.rs`
//! does.
//!
//! Ending: the parent dropping its endpoint ends the helper's exported stream (the child
//! then sees its importer end: `Disconnected`); the helper also ends, dropping the ring the
//! parent reads (`Disconnected` there), when the child's stream ends or its exporter goes.

use shm_channel::{Receiver, Sender};
use std::mem::ManuallyDrop;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::Duration;

use shm_bridge::{
    export, free_loopback_endpoint, import, import_into, Config, ExportOptions, Exporter,
    ImportError, ImportOptions, Importer, RemoteStatus,
};
use shm_channel::spsc;
use shm_fork::{ChildOptions, OnDrop};

use super::buffered::{Buffered, ByteLink};
use super::fd::FdLink;
use super::ring::{recv_err, ring_capacity, send_err};
use super::{check_exact, Pair, Side, Transport, TransportError};

/// Plain loopback TCP (`TCP_NODELAY`), default buffers.
#[derive(Debug)]
pub struct Tcp;

/// `tcp`.
pub static TCP: Tcp = Tcp;

impl Transport for Tcp {
    fn name(&self) -> &'static str {
        "tcp"
    }

    fn connect(&self, max_msg: usize) -> Result<Pair, TransportError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let near = TcpStream::connect(listener.local_addr()?)?;
        let (far, _) = listener.accept()?;
        let end = |stream: TcpStream| -> Result<Buffered<FdLink>, TransportError> {
            stream.set_nodelay(true)?;
            let rx: OwnedFd = stream.try_clone()?.into();
            Ok(Buffered::new(
                FdLink {
                    rx,
                    tx: stream.into(),
                },
                max_msg,
            ))
        };
        Ok(Pair::new(end(near)?, end(far)?))
    }
}

/// shm-bridge over zenoh between two processes of this host.
#[derive(Debug)]
pub struct ZenohBridge;

/// `zenoh-bridge`.
pub static ZENOH_BRIDGE: ZenohBridge = ZenohBridge;

/// The keys of the two directions.
const DOWN: &str = "shm-bench/bridge/down";
const UP: &str = "shm-bench/bridge/up";

/// How long the child waits for its first message or for the helper to be seen, and the
/// helper for the child, before they give up (the harness's watchdog bounds the rest).
const PATIENCE: Duration = Duration::from_secs(60);

impl Transport for ZenohBridge {
    fn name(&self) -> &'static str {
        "zenoh-bridge"
    }

    fn connect(&self, max_msg: usize) -> Result<Pair, TransportError> {
        let capacity = ring_capacity(max_msg);
        let failed = |e: shm_channel::ChannelError| TransportError::Failed(e.to_string());
        let (down_tx, down_rx) = spsc::channel(capacity).map_err(failed)?; // parent -> helper
        let (up_tx, up_rx) = spsc::channel(capacity).map_err(failed)?; // helper -> parent
        let endpoint = free_loopback_endpoint()?;
        let listen = endpoint.clone();
        let helper = ChildOptions::new()
            .on_drop(OnDrop::Kill)
            .kill_on_parent_death(true)
            .fork_with((down_rx, up_tx), move |(down_rx, up_tx)| {
                helper(&listen, down_rx, up_tx)
            })
            .map_err(|e| TransportError::Failed(format!("bridge helper: {e}")))?;
        let parent = ParentLink {
            tx: down_tx,
            rx: up_rx,
            _helper: Helper {
                child: ManuallyDrop::new(helper),
                forked_by: std::process::id(),
            },
        };
        let child = ChildLink {
            endpoint,
            capacity,
            live: None,
        };
        Ok(Pair::new(
            Buffered::new(parent, max_msg),
            Buffered::new(child, max_msg),
        ))
    }
}

/// The helper process: the parent's side of the bridge. Returns its exit code.
fn helper(endpoint: &str, down_rx: Receiver<spsc::Spsc>, up_tx: Sender<spsc::Spsc>) -> i32 {
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let session = Config::loopback_peer()
            .tuned_for_throughput()
            .listen(endpoint)?
            .open()?;
        let feed = import_into(&session, UP, up_tx, ImportOptions::default())?;
        let exporter = export(&session, down_rx, DOWN, ExportOptions::default())?;
        // Until the parent ends its stream (its endpoint dropped) or the child's stream
        // ends; dropping the feed then drops the ring the parent reads.
        let mut seen = false;
        while !exporter.is_finished() {
            match feed.status() {
                RemoteStatus::Alive { .. } => seen = true,
                RemoteStatus::Gone | RemoteStatus::Closed if seen => break,
                _ => {}
            }
            std::thread::sleep(shm_bridge::STATUS_POLL);
        }
        drop(feed);
        exporter.stop()?;
        Ok(())
    };
    match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("shm-bench: bridge helper: {e}");
            crate::child::EXIT_TRANSPORT
        }
    }
}

/// The parent's side: local rings to and from the helper.
struct ParentLink {
    tx: Sender<spsc::Spsc>,
    rx: Receiver<spsc::Spsc>,
    /// Killed and reaped when the endpoint is dropped (after the rings above: its
    /// exported stream has ended by then).
    _helper: Helper,
}

/// The helper process, killed and reaped on drop by the process that forked it only (the
/// benchmark child drops its copy of the parent's endpoint too).
struct Helper {
    child: ManuallyDrop<shm_fork::Child>,
    forked_by: u32,
}

impl Drop for Helper {
    fn drop(&mut self) {
        if std::process::id() == self.forked_by {
            // SAFETY: `child` is taken once, here, and never used again.
            unsafe { ManuallyDrop::drop(&mut self.child) };
        }
    }
}

/// The parent's rings stay with the parent: nothing crosses the fork.
impl Side for ParentLink {}

impl ByteLink for ParentLink {
    fn write_msg(&mut self, msg: &[u8]) -> Result<(), TransportError> {
        self.tx.send(msg).map_err(send_err)
    }

    fn read_msg(&mut self, buf: &mut Vec<u8>) -> Result<(), TransportError> {
        let got = self.rx.recv_into(buf).map_err(|e| match e {
            shm_channel::RecvIntoError::Recv(e) => recv_err(e),
            other => TransportError::Failed(other.to_string()),
        })?;
        check_exact(buf.len(), got)
    }
}

/// The child's side: its own zenoh session, started on first use.
struct ChildLink {
    endpoint: String,
    capacity: usize,
    live: Option<Live>,
}

/// The child's running bridge. Field order is drop order: the sender first (the stream to
/// the parent ends), then the exporter (it puts its end and waits for the helper to
/// confirm), then the importer.
struct Live {
    tx: Sender<spsc::Spsc>,
    _exporter: Exporter,
    importer: Importer,
    _session: shm_bridge::zenoh::Session,
}

/// The child's bridge, started on first use.
fn live<'a>(
    live: &'a mut Option<Live>,
    endpoint: &str,
    capacity: usize,
) -> Result<&'a mut Live, TransportError> {
    if live.is_none() {
        *live = Some(start(endpoint, capacity).map_err(|e| TransportError::Failed(e.to_string()))?);
    }
    live.as_mut()
        .ok_or_else(|| TransportError::Failed("bridge not started".into()))
}

/// Opens the child's session (connecting to the helper), its importer and its exporter.
fn start(endpoint: &str, capacity: usize) -> Result<Live, Box<dyn std::error::Error>> {
    let session = Config::loopback_peer()
        .tuned_for_throughput()
        .connect(endpoint)?
        .open()?;
    let importer = import(&session, DOWN, capacity, ImportOptions::default())?;
    let (tx, rx) = spsc::channel(capacity)?;
    let exporter = export(&session, rx, UP, ExportOptions::default())?;
    if !importer.wait_for_exporter(PATIENCE) {
        return Err("the bridge helper was not seen".into());
    }
    Ok(Live {
        tx,
        _exporter: exporter,
        importer,
        _session: session,
    })
}

/// The child's session starts in the child: nothing crosses the fork.
impl Side for ChildLink {}

impl ByteLink for ChildLink {
    fn write_msg(&mut self, msg: &[u8]) -> Result<(), TransportError> {
        let live = live(&mut self.live, &self.endpoint, self.capacity)?;
        // A full ring waits in slices: the parent's end shows only as the end of the
        // stream it exports (its helper gone, nothing consumes ours any more).
        loop {
            match live.tx.send_timeout(msg, shm_bridge::STATUS_POLL) {
                Ok(()) => return Ok(()),
                Err(shm_channel::SendTimeoutError::Timeout(())) => {
                    if matches!(
                        live.importer.status(),
                        RemoteStatus::Gone | RemoteStatus::Closed
                    ) {
                        return Err(TransportError::Disconnected);
                    }
                }
                Err(shm_channel::SendTimeoutError::Send(error)) => return Err(send_err(error)),
            }
        }
    }

    fn read_msg(&mut self, buf: &mut Vec<u8>) -> Result<(), TransportError> {
        let live = live(&mut self.live, &self.endpoint, self.capacity)?;
        let frame = match live.importer.recv_timeout(PATIENCE) {
            Ok(frame) => frame,
            Err(ImportError::RemoteClosed | ImportError::RemoteGone) => {
                return Err(TransportError::Disconnected)
            }
            Err(e) => return Err(TransportError::Failed(e.to_string())),
        };
        check_exact(buf.len(), frame.len())?;
        // The importer hands out a fresh buffer per message: keep it rather than copy.
        *buf = frame;
        Ok(())
    }
}
