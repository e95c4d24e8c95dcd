//! The lease half of the remote-gone bound, between real processes over zenoh on
//! 127.0.0.1: an exporter process frozen with `SIGSTOP` (its host side silent, its
//! connection still open) is reported `RemoteGone` within the configured lease plus
//! [`STATUS_POLL`] (the documented bound) plus the tests' slack; thawed, it reconnects and
//! its stream ends cleanly.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{finish, importer, listening_session_with, time_until, Spec, SLACK};
use shm_bridge::{Config, ImportError, RemoteStatus, STATUS_POLL};

/// The lease both sessions are configured with (zenoh's default is 10 s).
const TEST_LEASE: Duration = Duration::from_secs(2);

fn main() {
    common::main(&[(
        "a_frozen_exporter_is_gone_within_the_lease_and_resumes_when_thawed",
        a_frozen_exporter_is_gone_within_the_lease_and_resumes_when_thawed,
    )]);
}

fn a_frozen_exporter_is_gone_within_the_lease_and_resumes_when_thawed() {
    let key = "test/lease";
    let config = Config::loopback_peer().lease(TEST_LEASE).unwrap();
    let (session, endpoint) = listening_session_with(config);
    let mut importer = importer(&session, key);
    let child = Spec {
        lease: Some(TEST_LEASE),
        ..Spec::new(&endpoint, key, 1, 1_000)
    }
    .spawn();
    common::receive_in_order(&mut importer, 1, 0, 1_000);
    assert_eq!(importer.status(), RemoteStatus::Alive { exporters: 1 });

    signal("STOP", child.id());
    let took = time_until(&mut importer, &ImportError::RemoteGone);
    println!("  remote gone seen {took:?} after SIGSTOP (lease {TEST_LEASE:?})");
    assert!(
        took <= TEST_LEASE + STATUS_POLL + SLACK,
        "RemoteGone after {took:?}: past the lease + {STATUS_POLL:?} + slack"
    );

    signal("CONT", child.id());
    assert!(
        importer.wait_for_exporter(common::PER_MESSAGE),
        "the thawed exporter did not come back"
    );
    finish(child);
    time_until(&mut importer, &ImportError::RemoteClosed);
    let stats = importer.stats();
    assert_eq!((stats.delivered, stats.missed, stats.late), (1_000, 0, 0));
}

/// Sends `SIG<name>` to process `pid` (with kill(1): no unsafe code in tests).
fn signal(name: &str, pid: u32) {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}
