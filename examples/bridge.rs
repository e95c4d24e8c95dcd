//! The same frames between two processes of this host three ways: bridged over zenoh on
//! 127.0.0.1 (`shm-bridge`), over plain TCP on loopback (length-prefixed frames), and
//! through a local shared-memory channel; messages/s and round trip at 64 B and 64 KiB,
//! alternated run by run, with ratios.
//!
//! ```text
//! cargo run --release --example bridge [-- --reps N] [-- --long]
//! ```
//!
//! The zenoh sessions use [`Config::tuned_for_throughput`] (a deeper zenoh queue, larger
//! socket buffers); `--zenoh-defaults` runs them on zenoh's defaults instead, to compare.
//! For profiling one path (`perf record -e cpu-clock -g`): `--only zenoh|tcp|shm` measures
//! only that transport, `--size 64|65536` only that size, `--no-rtt` no round trips.
//!
//! The parent spawns itself three times in a child mode (`--child shm|tcp|zenoh ...`); each
//! child echoes what it is asked to echo and counts the rest. Streaming: the parent sends
//! `n` frames and waits for the child's count. Round trip: one frame there and back, the
//! median of the trips of a run. Each figure is the median of the runs, with min–max; a
//! ratio is taken run by run, then its median and min–max. The zenoh path is the whole
//! bridge: local ring → exporter thread (frames packed into puts of up to 64,000 bytes) →
//! zenoh → importer callback → local ring → the application, and back the same way.

use shm_channel::{Builder, Receiver, Sender};
use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use shm_bridge::{export, free_loopback_endpoint, import, Config, ExportOptions, ImportOptions};
use shm_channel::spsc;

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

/// What the first byte of a frame asks of the child.
const ECHO: u8 = 0;
const COUNT: u8 = 1;
const LAST: u8 = 2;
const QUIT: u8 = 3;

/// Every channel's capacity: room for several 64 KiB frames.
const CAPACITY: usize = 1 << 20;
/// Frame sizes measured.
const SIZES: [usize; 2] = [64, 64 << 10];
/// The keys of the zenoh legs.
const PING: &str = "shm-ipc/example/bridge/ping";
const PONG: &str = "shm-ipc/example/bridge/pong";

/// One way of carrying frames to the child and back.
trait Link {
    fn send(&mut self, frame: &[u8]) -> Result<()>;
    /// Makes everything sent so far leave (TCP's buffered writer; a no-op elsewhere).
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
    fn recv(&mut self) -> Result<Vec<u8>>;
}

struct Shm {
    tx: Sender<spsc::Spsc>,
    rx: Receiver<spsc::Spsc>,
}

impl Link for Shm {
    fn send(&mut self, frame: &[u8]) -> Result<()> {
        Ok(self.tx.send(frame)?)
    }
    fn recv(&mut self) -> Result<Vec<u8>> {
        Ok(self.rx.recv()?)
    }
}

/// Plain TCP, each frame behind its length (u32 LE).
struct Tcp {
    tx: BufWriter<TcpStream>,
    rx: BufReader<TcpStream>,
}

impl Tcp {
    fn new(stream: TcpStream) -> Result<Tcp> {
        stream.set_nodelay(true)?;
        Ok(Tcp {
            tx: BufWriter::with_capacity(1 << 16, stream.try_clone()?),
            rx: BufReader::with_capacity(1 << 16, stream),
        })
    }
}

impl Link for Tcp {
    fn send(&mut self, frame: &[u8]) -> Result<()> {
        self.tx
            .write_all(&u32::try_from(frame.len())?.to_le_bytes())?;
        Ok(self.tx.write_all(frame)?)
    }
    fn flush(&mut self) -> Result<()> {
        Ok(self.tx.flush()?)
    }
    fn recv(&mut self) -> Result<Vec<u8>> {
        let mut len = [0u8; 4];
        self.rx.read_exact(&mut len)?;
        let mut frame = vec![0u8; u32::from_le_bytes(len) as usize];
        self.rx.read_exact(&mut frame)?;
        Ok(frame)
    }
}

/// The bridge: a local channel exported on one key, another key imported.
struct Zenoh {
    tx: Sender<spsc::Spsc>,
    importer: shm_bridge::Importer,
    _exporter: shm_bridge::Exporter,
    _session: shm_bridge::zenoh::Session,
}

impl Zenoh {
    fn new(config: Config, tuned: bool, out: &str, inbound: &str) -> Result<Zenoh> {
        let config = if tuned {
            config.tuned_for_throughput()
        } else {
            config
        };
        let session = config.open()?;
        let importer = import(&session, inbound, CAPACITY, ImportOptions::default())?;
        let (tx, rx) = spsc::channel(CAPACITY)?;
        let exporter = export(&session, rx, out, ExportOptions::default())?;
        Ok(Zenoh {
            tx,
            importer,
            _exporter: exporter,
            _session: session,
        })
    }
}

impl Link for Zenoh {
    fn send(&mut self, frame: &[u8]) -> Result<()> {
        Ok(self.tx.send(frame)?)
    }
    fn recv(&mut self) -> Result<Vec<u8>> {
        // Not `Ok(….recv_timeout(…)?)`: that form made the compiler move the frame through
        // a stack temporary in word stores and a wider load, a store-forwarding stall that
        // cost ~40% of this call on a 64 B stream.
        self.importer
            .recv_timeout(Duration::from_secs(30))
            .map_err(Into::into)
    }
}

fn main() -> Result<(), shm_ipc::MainError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--child") {
        return Ok(child(&args[at + 1..])?);
    }
    let reps = match args.iter().position(|a| a == "--reps") {
        Some(at) => args.get(at + 1).ok_or("--reps N")?.parse()?,
        None => 5,
    };
    let scale = if args.iter().any(|a| a == "--long") {
        10
    } else {
        1
    };
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|at| args.get(at + 1))
    };
    let only = Only {
        transport: value("--only").cloned(),
        size: value("--size").map(|s| s.parse()).transpose()?,
        rtt: !args.iter().any(|a| a == "--no-rtt"),
        tuned: !args.iter().any(|a| a == "--zenoh-defaults"),
    };
    Ok(parent(reps, scale, &only)?)
}

/// What to measure (everything by default; the profiling flags narrow it).
struct Only {
    transport: Option<String>,
    size: Option<usize>,
    rtt: bool,
    /// [`Config::tuned_for_throughput`] (not `--zenoh-defaults`).
    tuned: bool,
}

impl Only {
    fn wants(&self, transport: &str, size: usize) -> bool {
        self.transport.as_deref().is_none_or(|t| t == transport)
            && self.size.is_none_or(|s| s == size)
    }
}

/// The child: connects its link, then serves frames until told to quit.
fn child(args: &[String]) -> Result<()> {
    let mut link: Box<dyn Link> = match args.first().map(String::as_str) {
        Some("shm") => Box::new(Shm {
            tx: shm_fork::exec::inherited("pong")?,
            rx: shm_fork::exec::inherited("ping")?,
        }),
        Some("tcp") => Box::new(Tcp::new(TcpStream::connect(
            args.get(1).ok_or("tcp address")?.as_str(),
        )?)?),
        Some("zenoh") => {
            let endpoint = args.get(1).ok_or("zenoh endpoint")?;
            Box::new(Zenoh::new(
                Config::loopback_peer().connect(endpoint)?,
                !args.iter().any(|a| a == "--zenoh-defaults"),
                PONG,
                PING,
            )?)
        }
        other => return Err(format!("unknown child mode {other:?}").into()),
    };
    let mut counted = 0u64;
    loop {
        let frame = link.recv()?;
        match frame.first().copied() {
            Some(ECHO) => {
                link.send(&frame)?;
                link.flush()?;
            }
            Some(COUNT) => counted += 1,
            Some(LAST) => {
                link.send(&(counted + 1).to_le_bytes())?;
                link.flush()?;
                counted = 0;
            }
            Some(QUIT) => return Ok(()),
            _ => return Err("empty or unknown frame".into()),
        }
    }
}

/// Runs of one transport at one size: messages/s and round-trip p50 (µs), one per run.
#[derive(Default)]
struct Runs {
    rate: Vec<f64>,
    rtt: Vec<f64>,
}

fn parent(reps: usize, scale: u64, only: &Only) -> Result<()> {
    let started = Instant::now();
    let (mut links, mut children) = start_children(only)?;
    let mut runs: Vec<[Runs; 3]> = SIZES.iter().map(|_| Default::default()).collect();
    for _ in 0..reps {
        for (size_index, &size) in SIZES.iter().enumerate() {
            let (stream_n, rtt_n) = if size <= 64 {
                (500_000 * scale, 2_000 * scale)
            } else {
                (5_000 * scale, 500 * scale)
            };
            // Alternated: zenoh, TCP, shm, then again next run.
            for ((link, runs), name) in links
                .iter_mut()
                .zip(runs[size_index].iter_mut())
                .zip(["zenoh", "tcp", "shm"])
            {
                if !only.wants(name, size) {
                    continue;
                }
                runs.rate.push(stream(link.as_mut(), size, stream_n)?);
                if only.rtt {
                    runs.rtt.push(round_trip(link.as_mut(), size, rtt_n)?);
                }
            }
        }
    }
    for link in &mut links {
        link.send(&[QUIT])?;
        link.flush()?;
    }
    drop(links);
    for child in &mut children {
        if !child.succeeded()? {
            return Err("a child failed".into());
        }
    }
    report(&runs, reps);
    println!("({:.1} s in all)", started.elapsed().as_secs_f64());
    Ok(())
}

/// Spawns the three children: links in the order zenoh, TCP, shm.
#[allow(clippy::type_complexity)]
fn start_children(only: &Only) -> Result<(Vec<Box<dyn Link>>, Vec<Box<dyn Wait>>)> {
    let exe = std::env::current_exe()?;

    let endpoint = free_loopback_endpoint()?;
    let zenoh = Zenoh::new(
        Config::loopback_peer().listen(&endpoint)?,
        only.tuned,
        PING,
        PONG,
    )?;
    let mut zenoh_child = Command::new(&exe);
    zenoh_child.args(["--child", "zenoh", &endpoint]);
    if !only.tuned {
        zenoh_child.arg("--zenoh-defaults");
    }
    let zenoh_child = zenoh_child.spawn()?;
    if !zenoh.importer.wait_for_exporter(Duration::from_secs(30)) {
        return Err("the zenoh child did not come up".into());
    }

    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let address = listener.local_addr()?.to_string();
    let tcp_child = Command::new(&exe)
        .args(["--child", "tcp", &address])
        .spawn()?;
    let tcp = Tcp::new(listener.accept()?.0)?;

    let (tx, child_ping) = Builder::<spsc::Spsc>::new(CAPACITY).create_memfd()?;
    let (child_pong, rx) = Builder::<spsc::Spsc>::new(CAPACITY).create_memfd()?;
    let mut command = shm_fork::exec::Command::new(&exe);
    command.args(["--child", "shm"]);
    command.pass("ping", child_ping)?;
    command.pass("pong", child_pong)?;
    let shm_child = command.spawn()?;

    let mut links: Vec<Box<dyn Link>> =
        vec![Box::new(zenoh), Box::new(tcp), Box::new(Shm { tx, rx })];
    // Warm up every path (connections, allocations, page faults).
    for link in &mut links {
        round_trip(link.as_mut(), only.size.unwrap_or(64 << 10), 10)?;
    }
    let children: Vec<Box<dyn Wait>> = vec![
        Box::new(zenoh_child),
        Box::new(tcp_child),
        Box::new(shm_child),
    ];
    Ok((links, children))
}

/// A child process of either kind, waited for at the end.
trait Wait {
    /// Whether it exited with code 0.
    fn succeeded(&mut self) -> Result<bool>;
}

impl Wait for std::process::Child {
    fn succeeded(&mut self) -> Result<bool> {
        Ok(self.wait()?.success())
    }
}

impl Wait for shm_fork::Child {
    fn succeeded(&mut self) -> Result<bool> {
        Ok(self.wait()?.success())
    }
}

/// Streams `n` frames of `size` bytes; messages per second until the child's count is
/// back.
fn stream(link: &mut dyn Link, size: usize, n: u64) -> Result<f64> {
    let mut frame = vec![0x5a; size];
    frame[0] = COUNT;
    let start = Instant::now();
    for _ in 1..n {
        link.send(&frame)?;
    }
    frame[0] = LAST;
    link.send(&frame)?;
    link.flush()?;
    let reply = link.recv()?;
    let elapsed = start.elapsed();
    let counted = u64::from_le_bytes(reply.as_slice().try_into()?);
    if counted != n {
        return Err(format!("the child counted {counted} of {n} frames").into());
    }
    Ok(n as f64 / elapsed.as_secs_f64())
}

/// `n` round trips of `size` bytes; the median trip in µs.
fn round_trip(link: &mut dyn Link, size: usize, n: u64) -> Result<f64> {
    let mut frame = vec![0xa5; size];
    frame[0] = ECHO;
    let mut trips = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let start = Instant::now();
        link.send(&frame)?;
        link.flush()?;
        let back = link.recv()?;
        trips.push(start.elapsed().as_secs_f64() * 1e6);
        if back != frame {
            return Err("the echo differs".into());
        }
    }
    Ok(median(&mut trips).0)
}

/// Median, min and max (NaN for a figure not measured).
fn median(values: &mut [f64]) -> (f64, f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    values.sort_by(f64::total_cmp);
    (
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
    )
}

fn report(runs: &[[Runs; 3]], reps: usize) {
    const NAMES: [&str; 3] = ["zenoh bridge", "plain TCP", "shm channel"];
    println!(
        "two processes on this host, {reps} runs alternated (zenoh, TCP, shm), median (min–max)"
    );
    for (size, runs) in SIZES.iter().zip(runs) {
        println!("\n{size} B frames");
        for (name, run) in NAMES.iter().zip(runs) {
            let rate = median(&mut run.rate.clone());
            let rtt = median(&mut run.rtt.clone());
            println!(
                "  {name:<13} {:>12.0} msg/s ({:.0}–{:.0})   round trip {:>9.1} µs ({:.1}–{:.1})",
                rate.0, rate.1, rate.2, rtt.0, rtt.1, rtt.2
            );
        }
        let ratio = |a: &[f64], b: &[f64]| {
            let mut r: Vec<f64> = a.iter().zip(b).map(|(a, b)| a / b).collect();
            median(&mut r)
        };
        let [zenoh, tcp, shm] = runs;
        for (what, r) in [
            ("msg/s, zenoh / TCP", ratio(&zenoh.rate, &tcp.rate)),
            ("msg/s, shm / zenoh", ratio(&shm.rate, &zenoh.rate)),
            ("round trip, zenoh / TCP", ratio(&zenoh.rtt, &tcp.rtt)),
            ("round trip, zenoh / shm", ratio(&zenoh.rtt, &shm.rtt)),
        ] {
            println!("  {what:<24} {:>8.2}x ({:.2}–{:.2})", r.0, r.1, r.2);
        }
    }
}
