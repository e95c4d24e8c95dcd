//! A sender process stopped, then SIGKILLed, between reserving a run of frames and
//! committing them: what it published is delivered, what it did not is never seen, and the
//! other senders' frames flow all the while (each sender has its lane).
//!
//! It forks behind the test kit's fork lock.

use std::cell::RefCell;
use std::time::Duration;

use shm_core::liveness::ProcessIdentity;
use shm_testkit::{fork_child, fork_lock, hang, ControlPage};

use crate::Endpoint;
use crate::RecvError;
use crate::{mpsc, RecvTimeoutError};

const PATIENCE: Duration = Duration::from_secs(20);

#[test]
fn sender_stopped_then_killed_inside_a_run_holds_up_nobody_and_loses_only_its_unpublished_frames() {
    let lock = fork_lock();
    let (tx, mut rx) = mpsc::channel(1 << 12).unwrap();
    let mut other = tx.try_clone().unwrap();
    let up = ControlPage::new();
    let cell = RefCell::new(Some(tx));
    let mut victim = fork_child(&lock, || {
        let mut tx = cell.borrow_mut().take().unwrap();
        if tx.adopt().is_err() {
            return 90;
        }
        if tx.send(b"before").is_err() {
            return 1;
        }
        if tx.send(b"first").is_err() {
            return 2;
        }
        // The next frame is reserved and half-written; then the process stops until it is
        // killed.
        let Ok(mut grant) = tx.reserve(6) else {
            return 3;
        };
        if grant.write_at(0, b"sec").is_err() {
            return 4;
        }
        up.set(0, 1);
        hang()
    });
    let identity = ProcessIdentity::of_pid(victim.pid()).unwrap();
    cell.borrow().as_ref().unwrap().hand_over(identity).unwrap();
    drop(cell);
    assert!(
        up.wait_for(0, 1, PATIENCE),
        "the victim never reserved its run"
    );
    // A live sender's frame, sent while the victim holds the rest of its run: it flows at
    // once, in its own lane.
    other.send(b"after").unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(rx.recv_timeout(PATIENCE).unwrap());
    }
    let victims: Vec<_> = got.iter().filter(|m| *m != b"after").collect();
    assert_eq!(victims, [b"before".as_slice(), b"first"], "{got:?}");
    assert!(got.iter().any(|m| m == b"after"), "{got:?}");
    // The victim is alive and holds the rest of its run: nothing more is there.
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(50)),
        Err(RecvTimeoutError::Timeout)
    );
    victim.kill();
    assert_eq!(victim.wait_timeout(PATIENCE), Some(128 + 9));
    // Dead: its unpublished frames are never seen.
    other.send(b"later").unwrap();
    assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), b"later");
    drop(other);
    assert_eq!(
        rx.recv_timeout(PATIENCE),
        Err(RecvTimeoutError::Recv(RecvError::PeerDied))
    );
    assert_eq!(rx.dead_senders(), 1);
}
