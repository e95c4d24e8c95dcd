//! Bridges between real processes over zenoh on 127.0.0.1 (peer mode, explicit listen and
//! connect endpoints, no multicast scouting).
//!
//! This binary is its own exporter: started with `SHM_BRIDGE_ROLE=exporter` it connects to
//! the endpoint it is given, exports a local SPSC channel on a key, sends checked messages
//! (shm-testkit: sequence-numbered, checksummed), and holds until its stdin closes (then
//! ends its stream cleanly) or it is killed. Without the variable it runs the tests, each
//! with a deadline on every wait.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shm_bridge::{
    export, free_loopback_endpoint, import, Config, Delivery, ExportOptions, HeaderError,
    ImportError, ImportOptions, Importer, Layout, RemoteStatus, STATUS_POLL,
};
use shm_testkit::message::{message, tag, untag, Checker};

/// Content bytes of a checked message at most (plus its 12-byte prefix).
const MAX_LEN: usize = 200;
/// Local channel capacity on both sides.
const CAPACITY: usize = 1 << 16;
/// zenoh's default link lease: the documented remote-gone bound is this plus
/// [`STATUS_POLL`]; a killed process on a live host is seen much sooner.
const LEASE: Duration = Duration::from_secs(10);
/// Slack on top of the documented bound, for a loaded 2-core machine.
const SLACK: Duration = Duration::from_secs(5);
/// The longest any one message may take to arrive before a test fails.
const PER_MESSAGE: Duration = Duration::from_secs(30);

fn main() {
    if std::env::var_os("SHM_BRIDGE_ROLE").is_some() {
        exporter_role();
        return;
    }
    let tests: [(&str, fn()); 6] = [
        (
            "hundred_thousand_checked_messages_arrive_in_order_then_kill_and_restart",
            hundred_thousand_checked_messages_arrive_in_order_then_kill_and_restart,
        ),
        (
            "an_importer_that_connects_reconnects_to_a_restarted_listening_exporter",
            an_importer_that_connects_reconnects_to_a_restarted_listening_exporter,
        ),
        (
            "fan_in_from_three_exporter_processes_keeps_each_order",
            fan_in_from_three_exporter_processes_keeps_each_order,
        ),
        (
            "mismatched_layout_and_garbage_are_refused_and_counted",
            mismatched_layout_and_garbage_are_refused_and_counted,
        ),
        (
            "drop_mode_counts_what_a_full_local_channel_drops",
            drop_mode_counts_what_a_full_local_channel_drops,
        ),
        (
            "a_slow_consumer_slows_the_producer_and_loses_nothing",
            a_slow_consumer_slows_the_producer_and_loses_nothing,
        ),
    ];
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    for (name, test) in tests {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let start = Instant::now();
        test();
        println!(
            "test {name} ... ok ({:.1} s)",
            start.elapsed().as_secs_f64()
        );
    }
}

/// The child: export checked messages `tag(id, 0..count)` on `key`, then hold.
fn exporter_role() {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} unset"));
    let endpoint = var("SHM_BRIDGE_ENDPOINT");
    let key = var("SHM_BRIDGE_KEY");
    let id: u64 = var("SHM_BRIDGE_ID").parse().unwrap();
    let count: u64 = var("SHM_BRIDGE_COUNT").parse().unwrap();
    let layout = Layout::new(var("SHM_BRIDGE_LAYOUT").parse().unwrap());
    let config = match var("SHM_BRIDGE_SIDE").as_str() {
        "listen" => Config::loopback_peer().listen(&endpoint),
        _ => Config::loopback_peer().connect(&endpoint),
    };
    let session = config.unwrap().open().unwrap();
    let (mut tx, rx) = shm_channel::spsc::channel(CAPACITY).unwrap();
    let options = ExportOptions {
        layout,
        delivery: Delivery::Block,
    };
    let exporter = export(&session, rx, &key, options).unwrap();
    let mut buf = Vec::new();
    for seq in 0..count {
        message(tag(id, seq), MAX_LEN, &mut buf);
        tx.send(&buf).unwrap();
    }
    // Hold until the parent closes our stdin (or kills us), then end the stream cleanly.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    drop(tx);
    let report = exporter.join().unwrap();
    assert_eq!(report.forwarded, count);
}

/// An exporter process that connects to `endpoint` (see [`exporter_role`]).
fn spawn_exporter(endpoint: &str, key: &str, id: u64, count: u64, layout: u32) -> Child {
    spawn_exporter_on("connect", endpoint, key, id, count, layout)
}

/// An exporter process that connects to (`side` = `"connect"`) or listens on (`"listen"`)
/// `endpoint`.
fn spawn_exporter_on(
    side: &str,
    endpoint: &str,
    key: &str,
    id: u64,
    count: u64,
    layout: u32,
) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .env("SHM_BRIDGE_ROLE", "exporter")
        .env("SHM_BRIDGE_SIDE", side)
        .env("SHM_BRIDGE_ENDPOINT", endpoint)
        .env("SHM_BRIDGE_KEY", key)
        .env("SHM_BRIDGE_ID", id.to_string())
        .env("SHM_BRIDGE_COUNT", count.to_string())
        .env("SHM_BRIDGE_LAYOUT", layout.to_string())
        .stdin(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Closes the exporter's stdin (it ends its stream cleanly) and checks that it exits 0.
fn finish(mut child: Child) {
    drop(child.stdin.take());
    let deadline = Instant::now() + PER_MESSAGE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exporter failed: {status}");
            return;
        }
        assert!(Instant::now() < deadline, "exporter did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An importer listening on a fresh loopback endpoint: (its session, the endpoint).
fn listening_session() -> (shm_bridge::zenoh::Session, String) {
    let endpoint = free_loopback_endpoint().unwrap();
    let session = Config::loopback_peer()
        .listen(&endpoint)
        .unwrap()
        .open()
        .unwrap();
    (session, endpoint)
}

/// A session that connects to `endpoint`.
fn connected_session(endpoint: &str) -> shm_bridge::zenoh::Session {
    Config::loopback_peer()
        .connect(endpoint)
        .unwrap()
        .open()
        .unwrap()
}

/// Receives `count` checked messages of producer `id`, in order from `first`.
fn receive_in_order(importer: &mut Importer, id: u64, first: u64, count: u64) {
    receive_checked(importer, id, first, count, MAX_LEN);
}

/// [`receive_in_order`] for messages of up to `max_len` content bytes.
fn receive_checked(importer: &mut Importer, id: u64, first: u64, count: u64, max_len: usize) {
    let mut checker = Checker::new(max_len);
    for expected in first..first + count {
        let frame = importer
            .recv_timeout(PER_MESSAGE)
            .unwrap_or_else(|e| panic!("message {expected}: {e}"));
        let seq = checker.check(&frame).unwrap();
        assert_eq!(untag(seq), (id, expected), "out of order");
    }
}

/// Waits for the importer's "gone" error and returns how long it took.
fn time_until(importer: &mut Importer, want: &ImportError) -> Duration {
    let start = Instant::now();
    let got = importer.recv_timeout(LEASE + STATUS_POLL + SLACK);
    assert_eq!(got.as_ref().err(), Some(want), "got {got:?}");
    start.elapsed()
}

fn hundred_thousand_checked_messages_arrive_in_order_then_kill_and_restart() {
    let (session, endpoint) = listening_session();
    let key = "test/hundred-thousand";
    let mut importer = import(&session, key, CAPACITY, ImportOptions::default()).unwrap();
    let mut first = spawn_exporter(&endpoint, key, 1, 100_000, 0);
    receive_in_order(&mut importer, 1, 0, 100_000);
    assert_eq!(importer.status(), RemoteStatus::Alive { exporters: 1 });

    first.kill().unwrap(); // SIGKILL
    let took = time_until(&mut importer, &ImportError::RemoteGone);
    println!("  remote gone seen {took:?} after SIGKILL");
    first.wait().unwrap();

    // Until an exporter is back, receives keep saying RemoteGone; then they resume.
    assert_eq!(importer.try_recv(), Err(ImportError::RemoteGone));
    let second = spawn_exporter(&endpoint, key, 2, 1_000, 0);
    assert!(
        importer.wait_for_exporter(PER_MESSAGE),
        "no exporter came back"
    );
    receive_in_order(&mut importer, 2, 0, 1_000);
    finish(second);
    time_until(&mut importer, &ImportError::RemoteClosed);

    let stats = importer.stats();
    assert_eq!(stats.delivered, 101_000);
    assert_eq!(
        (
            stats.missed,
            stats.refused,
            stats.dropped,
            stats.out_of_order
        ),
        (0, 0, 0, 0)
    );
}

fn an_importer_that_connects_reconnects_to_a_restarted_listening_exporter() {
    // The other topology: the exporter listens, the importer connects and must redial
    // (zenoh's connect retry) when the exporter comes back on the same endpoint.
    let endpoint = free_loopback_endpoint().unwrap();
    let session = connected_session(&endpoint);
    let key = "test/reconnect";
    let mut importer = import(&session, key, CAPACITY, ImportOptions::default()).unwrap();
    let mut first = spawn_exporter_on("listen", &endpoint, key, 1, 1_000, 0);
    receive_in_order(&mut importer, 1, 0, 1_000);
    first.kill().unwrap();
    time_until(&mut importer, &ImportError::RemoteGone);
    first.wait().unwrap();
    let second = spawn_exporter_on("listen", &endpoint, key, 2, 1_000, 0);
    assert!(importer.wait_for_exporter(PER_MESSAGE), "did not reconnect");
    receive_in_order(&mut importer, 2, 0, 1_000);
    finish(second);
    time_until(&mut importer, &ImportError::RemoteClosed);
}

fn fan_in_from_three_exporter_processes_keeps_each_order() {
    let (session, endpoint) = listening_session();
    let key = "test/fan-in";
    let per_exporter = 20_000;
    let mut importer = import(&session, key, CAPACITY, ImportOptions::default()).unwrap();
    let children: Vec<Child> = (1..=3)
        .map(|id| spawn_exporter(&endpoint, key, id, per_exporter, 0))
        .collect();
    let mut next = [0u64; 4];
    let mut checker = Checker::new(MAX_LEN);
    for _ in 0..3 * per_exporter {
        let frame = importer.recv_timeout(PER_MESSAGE).unwrap();
        let (id, seq) = untag(checker.check(&frame).unwrap());
        assert!((1..=3).contains(&id), "producer {id}");
        assert_eq!(seq, next[id as usize], "producer {id} out of order");
        next[id as usize] += 1;
    }
    assert_eq!(next[1..], [per_exporter; 3]);
    for child in children {
        finish(child);
    }
    time_until(&mut importer, &ImportError::RemoteClosed);
    assert_eq!(importer.stats().missed, 0);
}

fn mismatched_layout_and_garbage_are_refused_and_counted() {
    let (session, endpoint) = listening_session();
    let key = "test/mismatch";
    let options = ImportOptions {
        layout: Layout::named("test/v1"),
        ..ImportOptions::default()
    };
    let mut importer = import(&session, key, CAPACITY, options).unwrap();
    let child = spawn_exporter(&endpoint, key, 1, 100, Layout::named("test/v2").tag());
    match importer.recv_timeout(PER_MESSAGE) {
        Err(ImportError::Refused {
            reason: HeaderError::Layout { expected, found },
            ..
        }) => {
            assert_eq!(expected, Layout::named("test/v1").tag());
            assert_eq!(found, Layout::named("test/v2").tag());
        }
        other => panic!("expected a layout refusal, got {other:?}"),
    }
    // Its frames are counted as refused as they come; none is delivered.
    let deadline = Instant::now() + PER_MESSAGE;
    while importer.stats().refused < 100 {
        assert!(Instant::now() < deadline, "{:?}", importer.stats());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(importer.status(), RemoteStatus::Waiting);
    assert_eq!(importer.try_recv(), Err(ImportError::Timeout));

    // Garbage put straight on the key by a plain zenoh peer.
    use shm_bridge::zenoh::Wait;
    let raw = connected_session(&endpoint);
    let deadline = Instant::now() + PER_MESSAGE;
    let refusal = loop {
        raw.put(key, b"not a bridge frame".to_vec()).wait().unwrap();
        match importer.recv_timeout(Duration::from_millis(200)) {
            Err(ImportError::Timeout) => assert!(Instant::now() < deadline, "no refusal"),
            other => break other,
        }
    };
    assert!(
        matches!(
            refusal,
            Err(ImportError::Refused {
                publisher: 0,
                reason: HeaderError::Truncated { .. } | HeaderError::BadMagic { .. }
            })
        ),
        "{refusal:?}"
    );
    assert!(importer.stats().refused > 100);
    assert_eq!(importer.stats().delivered, 0);
    finish(child);
}

fn drop_mode_counts_what_a_full_local_channel_drops() {
    let (there, endpoint) = listening_session();
    let here = connected_session(&endpoint);
    let key = "test/drop";
    let count = 20_000;
    let import_options = ImportOptions {
        delivery: Delivery::Drop,
        ..ImportOptions::default()
    };
    // A small local channel nobody reads while the messages come: most must be dropped.
    let mut importer = import(&there, key, 4096, import_options).unwrap();
    let (mut tx, rx) = shm_channel::spsc::channel(CAPACITY).unwrap();
    let export_options = ExportOptions {
        delivery: Delivery::Drop,
        ..ExportOptions::default()
    };
    let exporter = export(&here, rx, key, export_options).unwrap();
    assert!(importer.wait_for_exporter(PER_MESSAGE));
    let mut buf = Vec::new();
    for seq in 0..count {
        message(tag(1, seq), MAX_LEN, &mut buf);
        tx.send(&buf).unwrap();
    }
    drop(tx);
    assert_eq!(exporter.join().unwrap().forwarded, count);
    // The end-of-stream frame (never dropped) says how many were sent: every one is
    // accounted for as delivered, dropped or missed.
    let deadline = Instant::now() + PER_MESSAGE;
    loop {
        let s = importer.stats();
        if s.delivered + s.dropped + s.missed == count {
            break;
        }
        assert!(Instant::now() < deadline, "unaccounted: {s:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = importer.stats();
    assert!(stats.dropped > 0, "{stats:?}");
    // What was delivered is intact and in order.
    let mut checker = Checker::new(MAX_LEN);
    let mut last = None;
    for _ in 0..stats.delivered {
        let frame = importer.recv_timeout(PER_MESSAGE).unwrap();
        let (_, seq) = untag(checker.check(&frame).unwrap());
        assert!(last < Some(seq));
        last = Some(seq);
    }
}

fn a_slow_consumer_slows_the_producer_and_loses_nothing() {
    let (there, endpoint) = listening_session();
    let here = connected_session(&endpoint);
    let key = "test/back-pressure";
    // 50,000 messages of 1 KiB on average: 50 MB, more than the local rings, zenoh's queues
    // and loopback TCP's buffers (a few MB at most) hold together.
    let (count, max_len) = (50_000u64, 2048);
    let mut importer = import(&there, key, 1 << 14, ImportOptions::default()).unwrap();
    let (mut tx, rx) = shm_channel::spsc::channel(1 << 14).unwrap();
    let _exporter = export(&here, rx, key, ExportOptions::default()).unwrap();
    // The producer on its own thread; the consumer does not read for a while.
    let producer = std::thread::spawn(move || {
        let mut buf = Vec::new();
        for seq in 0..count {
            message(tag(1, seq), max_len, &mut buf);
            tx.send(&buf).unwrap();
        }
        tx
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !producer.is_finished(),
        "no buffer on the way holds 50 MB, so the producer must be waiting"
    );
    receive_checked(&mut importer, 1, 0, count, max_len);
    drop(producer.join().unwrap());
    let stats = importer.stats();
    assert_eq!(
        (stats.delivered, stats.dropped, stats.missed),
        (count, 0, 0)
    );
}
