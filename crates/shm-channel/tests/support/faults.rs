//! Fault-test helpers that need the channel's types: handing an endpoint to a forked
//! child, draining and recovering an SPSC channel after a producer's death.

use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use shm_channel::RecvError;
use shm_channel::{spsc, RecvTimeoutError};
use shm_channel::{Endpoint, Flavor, Receiver, Sender};
use shm_core::liveness::ProcessIdentity;
use shm_testkit::message::{message, verify};
use shm_testkit::{fork_child, ControlPage, TestChild};

/// Forks a child that adopts `endpoint` and runs `f` with it; the parent hands the endpoint
/// over and drops its copy (which, no longer owned here, closes nothing).
pub fn fork_owner<E: Endpoint>(
    lock: &MutexGuard<'static, ()>,
    endpoint: E,
    f: impl FnOnce(E) -> i32,
) -> TestChild {
    let mut slot = Some(endpoint);
    let child = fork_child(lock, || {
        let endpoint = slot.take().unwrap();
        endpoint.adopt().unwrap();
        f(endpoint)
    });
    let endpoint = slot.take().unwrap();
    endpoint
        .hand_over(ProcessIdentity::of_pid(child.pid()).unwrap())
        .unwrap();
    drop(endpoint);
    child
}

/// Sends the kit's checked messages `seqs` (at most `max` bytes each), each within
/// [`PATIENCE`]; `Err` names the first that failed.
pub fn send_checked<F: Flavor>(
    tx: &mut Sender<F>,
    seqs: std::ops::Range<u64>,
    max: usize,
) -> Result<(), u64> {
    let mut buf = Vec::new();
    for seq in seqs {
        message(seq, max, &mut buf);
        tx.send_timeout(&buf, PATIENCE).map_err(|_| seq)?;
    }
    Ok(())
}

/// Receives the kit's checked messages `seqs` in order, each within [`PATIENCE`]; false at
/// the first that is missing, corrupt or out of order.
pub fn recv_checked<F: Flavor>(
    rx: &mut Receiver<F>,
    seqs: std::ops::Range<u64>,
    max: usize,
) -> bool {
    seqs.into_iter().all(|seq| {
        rx.recv_timeout(PATIENCE)
            .is_ok_and(|msg| verify(&msg, max) == Ok(seq))
    })
}

/// A producer that publishes its progress: sends the checked messages `seqs` (blocking),
/// setting [`COUNT`] of `control` to the number sent after each, then calling `after`
/// with its sequence number (a pause, say). 1 if a send fails, else 0: an exit code.
pub fn send_counting<F: Flavor>(
    tx: &mut Sender<F>,
    seqs: impl Iterator<Item = u64>,
    max: usize,
    control: &ControlPage,
    mut after: impl FnMut(u64),
) -> i32 {
    let mut buf = Vec::new();
    for seq in seqs {
        message(seq, max, &mut buf);
        if tx.send(&buf).is_err() {
            return 1;
        }
        control.set(COUNT, seq + 1);
        after(seq);
    }
    0
}

/// Generous bound on every wait, so a bug fails the test instead of hanging it.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Words of the control page shared with children.
pub const STAGE: usize = 0;
/// A count the child publishes (messages committed, or the next sequence it expects).
pub const COUNT: usize = 8;
/// Checks failed in children that could not report through their exit code (killed).
pub const ERRORS: usize = 16;
/// Messages a consumer child received (for the totals).
pub const RECEIVED: usize = 24;

/// Waits until the word at `offset` of `control` is at least `value`; panics after
/// [`PATIENCE`].
pub fn wait_stage(control: &ControlPage, offset: usize, value: u64) {
    assert!(
        control.wait_for(offset, value, PATIENCE),
        "child never reached {value}"
    );
}

/// Receives until the sender is found dead: every message must be intact and in sequence
/// from `next`. Returns the next expected sequence number and how long `PeerDied` took to
/// come once the ring ran dry.
pub fn drain_until_peer_died(
    rx: &mut Receiver<spsc::Spsc>,
    mut next: u64,
    max_len: usize,
) -> (u64, Duration) {
    loop {
        let waited = Instant::now();
        match rx.recv_timeout(PATIENCE) {
            Ok(msg) => {
                let seq = verify(&msg, max_len).unwrap();
                assert_eq!(seq, next, "lost, duplicated or reordered");
                next += 1;
            }
            Err(RecvTimeoutError::Recv(RecvError::PeerDied)) => return (next, waited.elapsed()),
            Err(other) => panic!("expected PeerDied after message {next}, got {other:?}"),
        }
    }
}

/// A new process attaches as sender in place of the dead one, sends `count` messages from
/// `first`, and closes cleanly; the parent receives them all, then `Disconnected`.
pub fn recover_sender(
    lock: &std::sync::MutexGuard<'static, ()>,
    rx: &mut Receiver<spsc::Spsc>,
    first: u64,
    count: u64,
    max_len: usize,
) {
    let memory = Arc::clone(rx.memory());
    let control = ControlPage::new();
    let child = fork_child(lock, || {
        let Ok(mut tx) = Sender::<spsc::Spsc>::attach(memory) else {
            return 2;
        };
        control.set(STAGE, 1);
        let mut buf = Vec::new();
        for seq in first..first + count {
            message(seq, max_len, &mut buf);
            if tx.send(&buf).is_err() {
                return 3;
            }
        }
        0
    });
    // Until the new sender has attached, the owner slot still names the dead one, and a
    // receive would rightly report PeerDied again.
    wait_stage(&control, STAGE, 1);
    for seq in first..first + count {
        let msg = rx.recv_timeout(PATIENCE).unwrap();
        assert_eq!(verify(&msg, max_len).unwrap(), seq);
    }
    assert_eq!(
        rx.recv_timeout(PATIENCE),
        Err(RecvTimeoutError::Recv(RecvError::Disconnected))
    );
    assert_eq!(child.wait(), 0);
}
