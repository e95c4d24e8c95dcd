//! What the bridge's process tests share: each test binary is also its own exporter (a
//! child role chosen by an environment variable), a small runner, sessions on 127.0.0.1
//! (peer mode, explicit listen and connect endpoints, no multicast scouting), and checked
//! receiving (shm-testkit: sequence-numbered, checksummed messages).

#![allow(dead_code)] // Each test binary uses its own part of this.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shm_bridge::zenoh::Session;
use shm_bridge::{
    export, free_loopback_endpoint, import, Config, Delivery, ExportOptions, ImportError,
    ImportOptions, Importer, Layout, STATUS_POLL,
};
use shm_testkit::message::{message, tag, untag, Checker};

/// Content bytes of a checked message at most (plus its 12-byte prefix).
pub const MAX_LEN: usize = 200;
/// Local channel capacity on both sides.
pub const CAPACITY: usize = 1 << 16;
/// zenoh's default link lease: the documented remote-gone bound is this plus
/// [`STATUS_POLL`]; a killed process on a live host is seen much sooner.
pub const LEASE: Duration = Duration::from_secs(10);
/// Slack on top of a documented bound, for a loaded 2-core machine (scheduling, a debug
/// build of zenoh): the tests check the contract, not the speed.
pub const SLACK: Duration = Duration::from_secs(5);
/// The longest any one message may take to arrive before a test fails.
pub const PER_MESSAGE: Duration = Duration::from_secs(30);

/// Runs the test binary: the exporter role if the environment asks for it, otherwise the
/// tests whose names contain a command-line filter (all without one), each printed with
/// its time, then the `N passed, 0 failed` line the CI reads (a failure panics).
pub fn main(tests: &[(&str, fn())]) {
    if std::env::var_os(ROLE).is_some() {
        exporter_role();
        return;
    }
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut passed = 0;
    for (name, test) in tests {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let start = Instant::now();
        test();
        passed += 1;
        println!(
            "test {name} ... ok ({:.1} s)",
            start.elapsed().as_secs_f64()
        );
    }
    println!("{passed} passed, 0 failed");
}

const ROLE: &str = "SHM_BRIDGE_ROLE";

/// How an exporter process ends, once it has sent its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Holds until its stdin closes (or it is killed), then ends its stream cleanly
    /// (drops its sender, `join`s) and returns from `main`.
    OnStdinClose,
    /// Drops its sender, `join`s and returns from `main` at once.
    JoinAndReturn,
    /// Drops its sender, `join`s, and stays alive this many milliseconds first.
    JoinAndLinger(u64),
    /// Calls `std::process::exit` right after its last send: no `join`, no drop.
    ExitWithoutJoin,
}

impl Ending {
    fn encode(self) -> String {
        match self {
            Ending::OnStdinClose => "stdin".into(),
            Ending::JoinAndReturn => "return".into(),
            Ending::JoinAndLinger(ms) => format!("linger-{ms}"),
            Ending::ExitWithoutJoin => "exit".into(),
        }
    }

    fn decode(text: &str) -> Ending {
        match text {
            "stdin" => Ending::OnStdinClose,
            "return" => Ending::JoinAndReturn,
            "exit" => Ending::ExitWithoutJoin,
            other => Ending::JoinAndLinger(
                other
                    .strip_prefix("linger-")
                    .and_then(|ms| ms.parse().ok())
                    .unwrap_or_else(|| panic!("unknown ending {other}")),
            ),
        }
    }
}

/// An exporter process: it connects to (or listens on) `endpoint`, exports a local SPSC
/// channel on `key`, sends checked messages `tag(id, 0..count)`, and ends as `ending` says.
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    pub endpoint: &'a str,
    pub key: &'a str,
    pub id: u64,
    pub count: u64,
    pub layout: u32,
    /// `true`: the exporter listens on `endpoint`; `false`: it connects to it.
    pub listens: bool,
    pub ending: Ending,
    /// zenoh's link lease for the exporter's session (zenoh's default when `None`).
    pub lease: Option<Duration>,
    /// The exporter's session is [`Config::tuned_for_throughput`].
    pub tuned: bool,
}

impl<'a> Spec<'a> {
    /// An exporter of `count` messages of producer `id`, connecting, default layout and
    /// lease, ending on stdin.
    pub fn new(endpoint: &'a str, key: &'a str, id: u64, count: u64) -> Spec<'a> {
        Spec {
            endpoint,
            key,
            id,
            count,
            layout: 0,
            listens: false,
            ending: Ending::OnStdinClose,
            lease: None,
            tuned: false,
        }
    }

    pub fn spawn(&self) -> Child {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .env(ROLE, "exporter")
            .env(
                "SHM_BRIDGE_SIDE",
                if self.listens { "listen" } else { "connect" },
            )
            .env("SHM_BRIDGE_ENDPOINT", self.endpoint)
            .env("SHM_BRIDGE_KEY", self.key)
            .env("SHM_BRIDGE_ID", self.id.to_string())
            .env("SHM_BRIDGE_COUNT", self.count.to_string())
            .env("SHM_BRIDGE_LAYOUT", self.layout.to_string())
            .env("SHM_BRIDGE_ENDING", self.ending.encode())
            .stdin(Stdio::piped());
        if let Some(lease) = self.lease {
            command.env("SHM_BRIDGE_LEASE_MS", lease.as_millis().to_string());
        }
        if self.tuned {
            command.env("SHM_BRIDGE_TUNED", "1");
        }
        command.spawn().unwrap()
    }
}

/// The child: see [`Spec`].
fn exporter_role() {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} unset"));
    let endpoint = var("SHM_BRIDGE_ENDPOINT");
    let key = var("SHM_BRIDGE_KEY");
    let id: u64 = var("SHM_BRIDGE_ID").parse().unwrap();
    let count: u64 = var("SHM_BRIDGE_COUNT").parse().unwrap();
    let layout = Layout::new(var("SHM_BRIDGE_LAYOUT").parse().unwrap());
    let ending = Ending::decode(&var("SHM_BRIDGE_ENDING"));
    let mut config = match var("SHM_BRIDGE_SIDE").as_str() {
        "listen" => Config::loopback_peer().listen(&endpoint),
        _ => Config::loopback_peer().connect(&endpoint),
    }
    .unwrap();
    if std::env::var_os("SHM_BRIDGE_TUNED").is_some() {
        config = config.tuned_for_throughput();
    }
    if let Ok(ms) = std::env::var("SHM_BRIDGE_LEASE_MS") {
        config = config
            .lease(Duration::from_millis(ms.parse().unwrap()))
            .unwrap();
    }
    let session = config.open().unwrap();
    let (mut tx, rx) = shm_channel::spsc::channel(CAPACITY).unwrap();
    let options = ExportOptions {
        layout,
        delivery: Delivery::Block,
        ..ExportOptions::default()
    };
    let exporter = export(&session, rx, &key, options).unwrap();
    let mut buf = Vec::new();
    for seq in 0..count {
        message(tag(id, seq), MAX_LEN, &mut buf);
        // Bounded: an exporter whose test died must not hold its output pipe for ever.
        tx.send_timeout(&buf, PER_MESSAGE)
            .unwrap_or_else(|e| panic!("message {seq}: {e}"));
    }
    match ending {
        Ending::ExitWithoutJoin => {
            // The exporter (and the session) stay alive: only the exit handler runs.
            std::mem::forget(exporter);
            std::mem::forget(tx);
            std::process::exit(0);
        }
        Ending::OnStdinClose => {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
        }
        Ending::JoinAndReturn | Ending::JoinAndLinger(_) => {}
    }
    drop(tx);
    let report = exporter.join().unwrap();
    assert_eq!(report.forwarded, count);
    if layout == Layout::BYTES {
        // Every importer of this layout answers (the tests have one, and it reads).
        assert!(report.all_confirmed, "{report:?}");
    }
    if let Ending::JoinAndLinger(ms) = ending {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

/// Closes the exporter's stdin (it ends its stream cleanly) and checks that it exits 0.
pub fn finish(mut child: Child) {
    drop(child.stdin.take());
    exits_cleanly(&mut child);
}

/// Waits for the exporter to exit (at most [`PER_MESSAGE`]) and checks it exited 0.
pub fn exits_cleanly(child: &mut Child) {
    let deadline = Instant::now() + PER_MESSAGE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exporter failed: {status}");
            return;
        }
        assert!(Instant::now() < deadline, "exporter did not exit");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A session listening on a fresh loopback endpoint: (the session, the endpoint).
pub fn listening_session() -> (Session, String) {
    listening_session_with(Config::loopback_peer())
}

/// [`listening_session`] from `config`.
pub fn listening_session_with(config: Config) -> (Session, String) {
    let endpoint = free_loopback_endpoint().unwrap();
    let session = config.listen(&endpoint).unwrap().open().unwrap();
    (session, endpoint)
}

/// A session that connects to `endpoint`.
pub fn connected_session(endpoint: &str) -> Session {
    Config::loopback_peer()
        .connect(endpoint)
        .unwrap()
        .open()
        .unwrap()
}

/// An importer of the default options on `key`.
pub fn importer(session: &Session, key: &str) -> Importer {
    import(session, key, CAPACITY, ImportOptions::default()).unwrap()
}

/// Receives `count` checked messages of producer `id`, in order from `first`.
pub fn receive_in_order(importer: &mut Importer, id: u64, first: u64, count: u64) {
    receive_checked(importer, id, first, count, MAX_LEN);
}

/// [`receive_in_order`] for messages of up to `max_len` content bytes.
pub fn receive_checked(importer: &mut Importer, id: u64, first: u64, count: u64, max_len: usize) {
    let mut checker = Checker::new(max_len);
    for expected in first..first + count {
        let frame = importer
            .recv_timeout(PER_MESSAGE)
            .unwrap_or_else(|e| panic!("message {expected}: {e}"));
        let seq = checker.check(&frame).unwrap();
        assert_eq!(untag(seq), (id, expected), "out of order");
    }
}

/// Receives every checked message of producer `id` that comes, in order and intact (gaps
/// allowed), until `end` (`RemoteGone` or `RemoteClosed`); how many came.
pub fn receive_until(importer: &mut Importer, id: u64, end: &ImportError) -> u64 {
    let mut checker = Checker::new(MAX_LEN);
    let (mut received, mut last) = (0, None);
    loop {
        match importer.recv_timeout(LEASE + STATUS_POLL + SLACK) {
            Ok(frame) => {
                let (from, seq) = untag(checker.check(&frame).unwrap());
                assert_eq!(from, id, "a frame of another exporter");
                assert!(last < Some(seq), "{seq} after {last:?}");
                last = Some(seq);
                received += 1;
            }
            Err(error) => {
                assert_eq!(&error, end, "after {received} messages");
                return received;
            }
        }
    }
}

/// Waits for the importer's "gone" error and returns how long it took.
pub fn time_until(importer: &mut Importer, want: &ImportError) -> Duration {
    let start = Instant::now();
    let got = importer.recv_timeout(LEASE + STATUS_POLL + SLACK);
    assert_eq!(got.as_ref().err(), Some(want), "got {got:?}");
    start.elapsed()
}
