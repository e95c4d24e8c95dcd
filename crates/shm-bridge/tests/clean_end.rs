//! How a bridged stream ends, between real processes over zenoh on 127.0.0.1: an exporter
//! process that ends its stream and exits at once, or lingers, loses nothing and is seen as
//! `RemoteClosed` after its last frame, and never a frame after that (20 times each); one
//! that exits without `join` is seen as `RemoteGone`, with what it left unsent counted.
//! And in one process: a stream that ends right after its importer subscribed is confirmed
//! by that importer, closed when `join` returns (50 times).

mod common;

use std::process::Child;

use common::{
    exits_cleanly, importer, listening_session, listening_session_with, receive_in_order,
    receive_until, Ending, Spec,
};
use shm_bridge::{
    export, import_into, Config, ExportOptions, ImportError, ImportOptions, ImportStats, Importer,
    RemoteStatus,
};
use shm_ipc::channel::spsc;

/// Messages per exporter process.
const COUNT: u64 = 200_000;
/// Exporter processes per way of ending.
const REPEAT: u64 = 20;

fn main() {
    common::main(&[
        (
            "an_exporter_that_joins_and_exits_at_once_loses_nothing_20_times",
            an_exporter_that_joins_and_exits_at_once_loses_nothing_20_times,
        ),
        (
            "an_exporter_that_joins_and_lingers_loses_nothing_20_times",
            an_exporter_that_joins_and_lingers_loses_nothing_20_times,
        ),
        (
            "tuned_for_throughput_an_exporter_that_joins_and_exits_loses_nothing_20_times",
            tuned_for_throughput_an_exporter_that_joins_and_exits_loses_nothing_20_times,
        ),
        (
            "an_exporter_that_exits_without_join_is_gone_and_its_loss_counted",
            an_exporter_that_exits_without_join_is_gone_and_its_loss_counted,
        ),
        (
            "a_stream_that_ends_at_once_is_confirmed_and_closed_when_join_returns_50_times",
            a_stream_that_ends_at_once_is_confirmed_and_closed_when_join_returns_50_times,
        ),
    ]);
}

fn an_exporter_that_joins_and_exits_at_once_loses_nothing_20_times() {
    clean_ends("test/clean-end/exit", Ending::JoinAndReturn, false);
}

/// Deeper zenoh queues and larger socket buffers (what the benchmarks use) hold more on
/// the way at the end of a stream: still all of it arrives before `RemoteClosed`.
fn tuned_for_throughput_an_exporter_that_joins_and_exits_loses_nothing_20_times() {
    clean_ends("test/clean-end/tuned", Ending::JoinAndReturn, true);
}

fn an_exporter_that_joins_and_lingers_loses_nothing_20_times() {
    // Each lingers while the next runs: its token's withdrawal, seconds after its end
    // pack, must change nothing.
    clean_ends("test/clean-end/linger", Ending::JoinAndLinger(2_000), false);
}

/// [`REPEAT`] exporter processes one after the other on one importer, each sending
/// [`COUNT`] checked messages and ending as `ending` says: every message arrives, in
/// order, then `RemoteClosed`, and nothing after it. `tuned`: both sessions
/// [`Config::tuned_for_throughput`].
fn clean_ends(key: &str, ending: Ending, tuned: bool) {
    let config = Config::loopback_peer();
    let (session, endpoint) = listening_session_with(if tuned {
        config.tuned_for_throughput()
    } else {
        config
    });
    let mut importer = importer(&session, key);
    let mut lingering: Vec<Child> = Vec::new();
    for id in 1..=REPEAT {
        let mut child = Spec {
            ending,
            tuned,
            ..Spec::new(&endpoint, key, id, COUNT)
        }
        .spawn();
        // Until the new exporter is seen, the last one's end stands (200,000 messages are
        // more than the buffers on the way hold: it cannot be over before it is seen).
        assert!(importer.wait_for_exporter(common::PER_MESSAGE));
        receive_in_order(&mut importer, id, 0, COUNT);
        let end = importer.recv_timeout(common::PER_MESSAGE);
        assert_eq!(end, Err(ImportError::RemoteClosed), "exporter {id}");
        if ending == Ending::JoinAndReturn {
            // Gone now, token withdrawn: still closed, and no frame came after the end.
            exits_cleanly(&mut child);
        } else {
            lingering.push(child);
        }
        assert_eq!(importer.try_recv(), Err(ImportError::RemoteClosed));
        assert_eq!(
            importer.stats(),
            ImportStats {
                delivered: id * COUNT,
                ..ImportStats::default()
            },
            "exporter {id}"
        );
    }
    for mut child in lingering {
        exits_cleanly(&mut child);
    }
    assert_eq!(importer.try_recv(), Err(ImportError::RemoteClosed));
    assert_eq!(importer.stats().late + importer.stats().out_of_order, 0);
}

fn an_exporter_that_exits_without_join_is_gone_and_its_loss_counted() {
    let key = "test/clean-end/no-join";
    let (session, endpoint) = listening_session();
    let mut importer = importer(&session, key);
    for id in 1..=3 {
        let before = importer.stats();
        let mut child = Spec {
            ending: Ending::ExitWithoutJoin,
            ..Spec::new(&endpoint, key, id, COUNT)
        }
        .spawn();
        assert!(importer.wait_for_exporter(common::PER_MESSAGE));
        // The exit handler stopped the exporter: what it had read arrives, what it left
        // in its local channel is counted as missed, and the stream is not "closed".
        let received = receive_until(&mut importer, id, &ImportError::RemoteGone);
        exits_cleanly(&mut child);
        assert_accounted(&importer, &before, received);
        assert_eq!(importer.try_recv(), Err(ImportError::RemoteGone));
    }
}

/// Every message of the last exporter is accounted for: delivered (and received) or missed,
/// and nothing came late or out of order.
fn assert_accounted(importer: &Importer, before: &ImportStats, received: u64) {
    let now = importer.stats();
    let delivered = now.delivered - before.delivered;
    let missed = now.missed - before.missed;
    assert_eq!(delivered, received, "{now:?}");
    assert_eq!(delivered + missed, COUNT, "{now:?}");
    assert_eq!((now.late, now.out_of_order, now.refused), (0, 0, 0));
}

/// An exporter that starts right after its importer subscribed and ends at once: `join`
/// returns only after that importer confirmed the final pack, so the stream is closed
/// then, not still alive (the importer's confirmation queryable must be known to the
/// exporter by the time its subscriber is: it is declared first).
fn a_stream_that_ends_at_once_is_confirmed_and_closed_when_join_returns_50_times() {
    let (there, endpoint) = listening_session();
    let here = Config::loopback_peer()
        .connect(&endpoint)
        .unwrap()
        .open()
        .unwrap();
    for round in 0..50 {
        let key = format!("test/clean-end/at-once/{round}");
        let (into, mut rx) = spsc::channel(1 << 12).unwrap();
        let feed = import_into(&there, &key, into, ImportOptions::default()).unwrap();
        let (mut tx, out) = spsc::channel(1 << 12).unwrap();
        let exporter = export(&here, out, &key, ExportOptions::default()).unwrap();
        tx.send(b"the only frame").unwrap();
        drop(tx);
        let report = exporter.join().unwrap();
        assert_eq!(
            (report.confirmed_by, report.all_confirmed),
            (1, true),
            "round {round}: {report:?}"
        );
        assert_eq!(feed.status(), RemoteStatus::Closed, "round {round}");
        assert_eq!(
            rx.recv_timeout(common::PER_MESSAGE).unwrap(),
            b"the only frame"
        );
    }
}
