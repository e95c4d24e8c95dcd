//! A sender process SIGKILLed between the claim and the commits of a run of frames (one
//! CAS for several messages): the receiver skips what it claimed and did not commit; what
//! it committed, and the other senders' frames behind its claim, are delivered.
//!
//! A unit test (not in `tests/`) because it stops the dying sender at an exact point of
//! the ring protocol, through the crate's own `SendRing` calls; it forks behind the test
//! kit's fork lock.

use std::cell::RefCell;
use std::time::Duration;

use shm_core::liveness::ProcessIdentity;
use shm_testkit::{fork_child, fork_lock, hang, ControlPage};

use crate::shared::ring::SendRing;
use crate::Endpoint;
use crate::RecvError;
use crate::{mpsc, RecvTimeoutError};

const PATIENCE: Duration = Duration::from_secs(20);

#[test]
fn sender_killed_between_claim_and_commit_of_a_run_loses_only_its_uncommitted_frames() {
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
        let msgs: [&[u8]; 3] = [b"first", b"second", b"third"];
        let mut run = Vec::new();
        if tx
            .ring()
            .try_reserve_run(msgs.len(), &|i| msgs[i].len(), &mut run)
            .is_err()
            || run.len() != 3
        {
            return 2;
        }
        // The first frame of the run is written and committed, the second half-written;
        // then the process stops until it is killed.
        let first = tx.ring().payload_ptr(&run[0]);
        let second = tx.ring().payload_ptr(&run[1]);
        // SAFETY: each slot was reserved for its message's length; the sources are private.
        unsafe {
            std::ptr::copy_nonoverlapping(msgs[0].as_ptr(), first, msgs[0].len());
            std::ptr::copy_nonoverlapping(msgs[1].as_ptr(), second, 3);
        }
        tx.ring().commit(run[0], msgs[0].len());
        tx.ring().publish();
        up.set(0, 1);
        hang()
    });
    let identity = ProcessIdentity::of_pid(victim.pid()).unwrap();
    cell.borrow().as_ref().unwrap().hand_over(identity).unwrap();
    drop(cell);
    assert!(
        up.wait_for(0, 1, PATIENCE),
        "the victim never claimed its run"
    );
    // A live sender's frame, claimed behind the victim's run.
    other.send(b"after").unwrap();
    assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), b"before");
    assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), b"first");
    // The victim is alive and holds the rest of its run: the receiver waits for it.
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(50)),
        Err(RecvTimeoutError::Timeout)
    );
    victim.kill();
    assert_eq!(victim.wait_timeout(PATIENCE), Some(128 + 9));
    // Dead: its two uncommitted frames are skipped; the live sender's frame follows.
    assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), b"after");
    assert_eq!(rx.abandoned_frames(), 2);
    drop(other);
    assert_eq!(
        rx.recv_timeout(PATIENCE),
        Err(RecvTimeoutError::Recv(RecvError::PeerDied))
    );
}
