//! Bridges between real processes over zenoh on 127.0.0.1: order, kill and restart, fan-in,
//! refused layouts and garbage, drop mode, back-pressure. (How a stream ends is tested in
//! `clean_end.rs`, the lease bound in `lease.rs`.)

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::{
    connected_session, finish, importer, listening_session, listening_session_with,
    receive_checked, receive_in_order, time_until, Spec, CAPACITY, MAX_LEN, PER_MESSAGE,
};
use shm_bridge::zenoh::Session;
use shm_bridge::{
    export, free_loopback_endpoint, import, import_typed, Config, Delivery, ExportOptions,
    HeaderError, ImportError, ImportOptions, Layout, RemoteStatus,
};
use shm_channel::codec::Bincode;
use shm_channel::typed;
use shm_testkit::message::{message, tag, untag, Checker};

fn main() {
    common::main(&[
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
            "frames_longer_than_a_zenoh_batch_arrive_whole_and_in_order",
            frames_longer_than_a_zenoh_batch_arrive_whole_and_in_order,
        ),
        (
            "mismatched_layout_old_version_and_garbage_packs_are_refused_and_counted",
            mismatched_layout_old_version_and_garbage_packs_are_refused_and_counted,
        ),
        (
            "a_typed_exporter_of_another_type_is_refused_by_its_fingerprint",
            a_typed_exporter_of_another_type_is_refused_by_its_fingerprint,
        ),
        (
            "drop_mode_counts_what_a_full_local_channel_drops",
            drop_mode_counts_what_a_full_local_channel_drops,
        ),
        (
            "a_slow_consumer_slows_the_producer_and_loses_nothing",
            a_slow_consumer_slows_the_producer_and_loses_nothing,
        ),
        (
            "a_slow_consumer_slows_the_producer_when_tuned_for_throughput",
            a_slow_consumer_slows_the_producer_when_tuned_for_throughput,
        ),
    ]);
}

fn hundred_thousand_checked_messages_arrive_in_order_then_kill_and_restart() {
    let (session, endpoint) = listening_session();
    let key = "test/hundred-thousand";
    let mut importer = importer(&session, key);
    let mut first = Spec::new(&endpoint, key, 1, 100_000).spawn();
    receive_in_order(&mut importer, 1, 0, 100_000);
    assert_eq!(importer.status(), RemoteStatus::Alive { exporters: 1 });

    first.kill().unwrap(); // SIGKILL
    let took = time_until(&mut importer, &ImportError::RemoteGone);
    println!("  remote gone seen {took:?} after SIGKILL");
    first.wait().unwrap();

    // Until an exporter is back, receives keep saying RemoteGone; then they resume.
    assert_eq!(importer.try_recv(), Err(ImportError::RemoteGone));
    let second = Spec::new(&endpoint, key, 2, 1_000).spawn();
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
    let mut importer = importer(&session, key);
    let listening = |id| Spec {
        listens: true,
        ..Spec::new(&endpoint, key, id, 1_000)
    };
    let mut first = listening(1).spawn();
    receive_in_order(&mut importer, 1, 0, 1_000);
    first.kill().unwrap();
    time_until(&mut importer, &ImportError::RemoteGone);
    first.wait().unwrap();
    let second = listening(2).spawn();
    assert!(importer.wait_for_exporter(PER_MESSAGE), "did not reconnect");
    receive_in_order(&mut importer, 2, 0, 1_000);
    finish(second);
    time_until(&mut importer, &ImportError::RemoteClosed);
}

fn fan_in_from_three_exporter_processes_keeps_each_order() {
    let (session, endpoint) = listening_session();
    let key = "test/fan-in";
    let per_exporter = 20_000;
    let mut importer = importer(&session, key);
    let children: Vec<Child> = (1..=3)
        .map(|id| Spec::new(&endpoint, key, id, per_exporter).spawn())
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

/// The exporter of a typed local channel puts the channel's type fingerprint on its packs
/// (the one typed ends record in shared memory); an importer of another type refuses them,
/// naming both fingerprints' tags; an importer of the same type decodes them.
fn a_typed_exporter_of_another_type_is_refused_by_its_fingerprint() {
    let (there, endpoint) = listening_session();
    let here = connected_session(&endpoint);
    let key = "test/typed";
    let mut wrong =
        import_typed::<u64, Bincode>(&there, key, CAPACITY, ImportOptions::default()).unwrap();
    let mut right =
        import_typed::<String, Bincode>(&there, key, CAPACITY, ImportOptions::default()).unwrap();
    let (mut tx, rx) = typed::channel::<String>(CAPACITY).unwrap();
    let _exporter = export(
        &here,
        shm_channel::Receiver::from(rx),
        key,
        ExportOptions::default(),
    )
    .unwrap();
    tx.send("typed".to_string()).unwrap();
    match wrong.recv_timeout(PER_MESSAGE) {
        Err(ImportError::Refused {
            reason: HeaderError::Layout { expected, found },
            ..
        }) => {
            assert_eq!(expected, Layout::of::<u64, Bincode>().tag());
            assert_eq!(found, Layout::of::<String, Bincode>().tag());
        }
        other => panic!("expected a refusal by fingerprint, got {other:?}"),
    }
    assert_eq!(right.recv_timeout(PER_MESSAGE).unwrap(), "typed");
    assert_eq!(wrong.stats().delivered, 0);
}

/// Frames of up to 300 KiB, most longer than a zenoh batch (fragmented on the way, handed
/// to the importer in pieces and copied from them into its local channel), the others
/// packed whole, alternating at random: every one arrives intact and in order, nothing is
/// refused or missed, and the stream ends closed.
fn frames_longer_than_a_zenoh_batch_arrive_whole_and_in_order() {
    const LARGE: usize = 300 << 10;
    const COUNT: u64 = 300;
    let (there, endpoint) = listening_session();
    let here = connected_session(&endpoint);
    let key = "test/large";
    let mut importer = import(&there, key, 1 << 20, ImportOptions::default()).unwrap();
    let (mut tx, rx) = shm_channel::spsc::channel(1 << 20).unwrap();
    let exporter = export(&here, rx, key, ExportOptions::default()).unwrap();
    assert!(importer.wait_for_exporter(PER_MESSAGE), "no exporter seen");
    let sender = std::thread::spawn(move || {
        let mut buf = Vec::new();
        for seq in 0..COUNT {
            message(tag(1, seq), LARGE, &mut buf);
            tx.send_timeout(&buf, PER_MESSAGE).unwrap();
        }
    });
    receive_checked(&mut importer, 1, 0, COUNT, LARGE);
    sender.join().unwrap();
    let report = exporter.join().unwrap();
    assert_eq!(report.forwarded, COUNT);
    assert_eq!(
        importer.recv_timeout(PER_MESSAGE),
        Err(ImportError::RemoteClosed)
    );
    let stats = importer.stats();
    assert_eq!(
        (
            stats.delivered,
            stats.refused,
            stats.missed,
            stats.oversized
        ),
        (COUNT, 0, 0, 0),
        "{stats:?}"
    );
}

fn mismatched_layout_old_version_and_garbage_packs_are_refused_and_counted() {
    let (session, endpoint) = listening_session();
    let key = "test/mismatch";
    let options = ImportOptions {
        layout: Layout::named("test/v1"),
        ..ImportOptions::default()
    };
    let mut importer = import(&session, key, CAPACITY, options).unwrap();
    let child = Spec {
        layout: Layout::named("test/v2").tag(),
        ..Spec::new(&endpoint, key, 1, 100)
    }
    .spawn();
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
    // Its packs are counted as refused as they come (its token is refused as soon as it is
    // seen, so the first refusal may come before any pack); none is delivered.
    let deadline = Instant::now() + PER_MESSAGE;
    while importer.stats().refused == 0 {
        assert!(Instant::now() < deadline, "{:?}", importer.stats());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(importer.status(), RemoteStatus::Waiting);
    assert_eq!(importer.try_recv(), Err(ImportError::Timeout));

    // Garbage, a pack of the old wire format (version 1: one frame per put) and a pack
    // whose second frame runs past its end, put straight on the key by a plain zenoh peer.
    let raw = connected_session(&endpoint);
    let mut old = b"SHMB\x01\x00\x00\x00".to_vec();
    old.extend(Layout::named("test/v1").tag().to_le_bytes());
    old.extend(3u32.to_le_bytes());
    old.extend(7u64.to_le_bytes());
    old.extend(0u64.to_le_bytes());
    old.extend(b"old");
    let mut torn = old.clone();
    torn[4] = shm_bridge::header::FORMAT_VERSION;
    torn[12..16].copy_from_slice(&2u32.to_le_bytes()); // two frames
    torn.truncate(32);
    torn.extend(1u32.to_le_bytes());
    torn.extend(b"a"); // a whole first frame...
    torn.extend(9u32.to_le_bytes());
    torn.extend(b"b"); // ...and a second one of 9 bytes with 1 there
    let refusals = [
        (b"not a bridge frame".to_vec(), 0, "garbage"),
        (old, 7, "version"),
        (torn, 7, "length"),
    ];
    for (bytes, publisher, what) in refusals {
        let reason = refusal(&mut importer, &raw, key, &bytes);
        assert_eq!(reason.0, publisher, "{what}: {reason:?}");
        let expected = match what {
            "garbage" => matches!(reason.1, HeaderError::Truncated { .. }),
            "version" => reason.1 == HeaderError::Version { found: 1 },
            _ => matches!(reason.1, HeaderError::Length { announced: 9, .. }),
        };
        assert!(expected, "{what}: {reason:?}");
        if what == "version" {
            assert!(reason.1.to_string().contains("upgrade the older peer"));
        }
    }
    // Nothing of any of them was delivered, not even the torn pack's whole first frame.
    assert_eq!(importer.stats().delivered, 0);
    assert_eq!(importer.try_recv(), Err(ImportError::Timeout));
    finish(child);
}

/// Puts `bytes` on `key` until the importer reports a refusal: (publisher, reason).
fn refusal(
    importer: &mut shm_bridge::Importer,
    raw: &shm_bridge::zenoh::Session,
    key: &str,
    bytes: &[u8],
) -> (u64, HeaderError) {
    use shm_bridge::zenoh::Wait;
    let deadline = Instant::now() + PER_MESSAGE;
    let refused_before = importer.stats().refused;
    loop {
        raw.put(key, bytes.to_vec()).wait().unwrap();
        match importer.recv_timeout(Duration::from_millis(200)) {
            Err(ImportError::Timeout) => assert!(Instant::now() < deadline, "no refusal"),
            Err(ImportError::Refused { publisher, reason }) => {
                assert!(importer.stats().refused > refused_before);
                return (publisher, reason);
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
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
    slow_consumer_slows_producer(&there, &here);
}

/// The same with the settings the benchmarks use: deeper zenoh queues and fixed 4 MiB
/// socket buffers hold more on the way, and still not 50 MB.
fn a_slow_consumer_slows_the_producer_when_tuned_for_throughput() {
    let (there, endpoint) = listening_session_with(Config::loopback_peer().tuned_for_throughput());
    let here = Config::loopback_peer()
        .tuned_for_throughput()
        .connect(&endpoint)
        .unwrap()
        .open()
        .unwrap();
    slow_consumer_slows_producer(&there, &here);
}

fn slow_consumer_slows_producer(there: &Session, here: &Session) {
    let key = "test/back-pressure";
    // 50,000 messages of 1 KiB on average: 50 MB, more than the local rings, zenoh's queues
    // (16 batches of 64 KB at most) and loopback TCP's buffers (a few MB; 2 x 8 MB with
    // 4 MiB asked for) hold together.
    let (count, max_len) = (50_000u64, 2048);
    let mut importer = import(there, key, 1 << 14, ImportOptions::default()).unwrap();
    let (mut tx, rx) = shm_channel::spsc::channel(1 << 14).unwrap();
    let _exporter = export(here, rx, key, ExportOptions::default()).unwrap();
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
