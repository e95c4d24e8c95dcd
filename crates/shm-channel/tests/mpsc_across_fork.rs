//! The MPSC channel across forked producer processes: everything delivered in order, and
//! the fault tests (a producer killed mid-frame, slots of killed senders reclaimed).
#![cfg(not(loom))]

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use shm_channel::mpsc::{self, Sender, MAX_SENDERS};
use shm_channel::Endpoint;
use shm_channel::RecvError;
use shm_channel::RecvTimeoutError;
use shm_core::liveness::ProcessIdentity;
use shm_core::{Region, SharedMemory};
use shm_testkit::{fork_child, fork_lock};

/// A generous deadline for every blocking call: never reached unless something hangs.
const PATIENCE: Duration = Duration::from_secs(20);

fn message(producer: u64, seq: u64) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[..8].copy_from_slice(&producer.to_le_bytes());
    m[8..].copy_from_slice(&seq.to_le_bytes());
    m
}

fn parse(m: &[u8]) -> (u64, u64) {
    assert_eq!(m.len(), 16, "message of {} bytes", m.len());
    (
        u64::from_le_bytes(m[..8].try_into().unwrap()),
        u64::from_le_bytes(m[8..].try_into().unwrap()),
    )
}

/// Forks a child that takes `sender` (handed over by the parent right after the fork) and
/// runs `body` with it.
fn fork_sender(
    lock: &std::sync::MutexGuard<'static, ()>,
    sender: Sender,
    body: impl FnOnce(&mut Sender) -> i32,
) -> shm_testkit::TestChild {
    let cell = RefCell::new(Some(sender));
    let child = fork_child(lock, || {
        let mut tx = cell.borrow_mut().take().unwrap();
        if tx.adopt().is_err() {
            return 90;
        }
        body(&mut tx)
    });
    let identity = ProcessIdentity::of_pid(child.pid()).unwrap();
    cell.borrow().as_ref().unwrap().hand_over(identity).unwrap();
    drop(cell); // inert now: the child owns it
    child
}

#[test]
fn four_producer_processes_deliver_everything_in_order() {
    const PER_PRODUCER: u64 = 250_000;
    let lock = fork_lock();
    let (tx, mut rx) = mpsc::channel(1 << 16).unwrap();
    let children: Vec<_> = (0..4u64)
        .map(|producer| {
            fork_sender(&lock, tx.try_clone().unwrap(), move |tx| {
                for seq in 0..PER_PRODUCER {
                    if tx.send_timeout(&message(producer, seq), PATIENCE).is_err() {
                        return 1;
                    }
                }
                0
            })
        })
        .collect();
    drop(tx);
    let mut next = [0u64; 4];
    loop {
        match rx.recv_timeout(PATIENCE) {
            Ok(m) => {
                let (producer, seq) = parse(&m);
                assert!(producer < 4);
                assert_eq!(seq, next[producer as usize], "producer {producer}");
                next[producer as usize] += 1;
            }
            Err(RecvTimeoutError::Recv(RecvError::Disconnected)) => break,
            Err(e) => panic!("{e} after {next:?}"),
        }
    }
    assert_eq!(next, [PER_PRODUCER; 4]);
    for child in children {
        assert_eq!(child.wait(), 0);
    }
    assert_eq!(rx.abandoned_frames(), 0);
}

#[test]
fn producer_killed_mid_frame_does_not_wedge_the_ring() {
    const PER_PRODUCER: u64 = 50_000;
    let lock = fork_lock();
    // A small ring: the live producers fill it and block behind the dead claim.
    let (tx, mut rx) = mpsc::channel(1 << 12).unwrap();
    let signal = Region::anonymous(4096).unwrap();
    let word = signal.atomic_u64(0).unwrap();
    let mut victim = fork_sender(&lock, tx.try_clone().unwrap(), |tx| {
        for seq in 0..100 {
            if tx.send_timeout(&message(9, seq), PATIENCE).is_err() {
                return 1;
            }
        }
        let Ok(mut grant) = tx.reserve_timeout(16, PATIENCE) else {
            return 2;
        };
        let _ = grant.write_at(0, &9u64.to_le_bytes());
        // Half a frame written: tell the parent, then wait to be killed.
        word.store(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_secs(60));
        3
    });
    let deadline = std::time::Instant::now() + PATIENCE;
    while word.load(Ordering::SeqCst) == 0 {
        assert!(std::time::Instant::now() < deadline, "victim never claimed");
        std::thread::sleep(Duration::from_millis(1));
    }
    // The others start once the victim holds its claim: their frames queue up behind it
    // and they block on the full ring until the receiver gets past the dead claim.
    let children: Vec<_> = (0..3u64)
        .map(|producer| {
            fork_sender(&lock, tx.try_clone().unwrap(), move |tx| {
                for seq in 0..PER_PRODUCER {
                    if tx.send_timeout(&message(producer, seq), PATIENCE).is_err() {
                        return 1;
                    }
                }
                0
            })
        })
        .collect();
    drop(tx);
    let mut next: HashMap<u64, u64> = HashMap::new();
    // Everything before the claim arrives; then the receiver waits for the live claimer.
    for seq in 0..100 {
        assert_eq!(rx.recv_timeout(PATIENCE).map(|m| parse(&m)), Ok((9, seq)));
    }
    next.insert(9, 100);
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(50)),
        Err(RecvTimeoutError::Timeout)
    );
    victim.kill();
    assert_eq!(victim.wait_timeout(PATIENCE), Some(128 + 9));
    let end = loop {
        match rx.recv_timeout(PATIENCE) {
            Ok(m) => {
                let (producer, seq) = parse(&m);
                let expected = next.entry(producer).or_insert(0);
                assert_eq!(seq, *expected, "producer {producer}");
                *expected += 1;
            }
            Err(e) => break e,
        }
    };
    assert_eq!(end, RecvTimeoutError::Recv(RecvError::PeerDied), "{next:?}");
    for producer in 0..3 {
        assert_eq!(
            next.get(&producer),
            Some(&PER_PRODUCER),
            "producer {producer}"
        );
    }
    assert_eq!(next.get(&9), Some(&100));
    assert_eq!(rx.abandoned_frames(), 1);
    assert_eq!(rx.dead_senders(), 1);
    for child in children {
        assert_eq!(child.wait(), 0);
    }
}

/// Regression: the slots of SIGKILLed senders were reclaimed only by the receiver, on a
/// slow check that found the ring empty, and `claim_free_slot` took only free slots. While
/// the ring never ran empty (a consumer slower than its producers), after 63 crashed
/// producers next to one live one, `Sender::attach` failed with "every sender slot of the
/// channel is taken". Now a new sender takes over a dead sender's slot once the receiver
/// has passed everything that sender claimed.
#[test]
fn slots_of_killed_senders_are_reclaimed_while_the_ring_stays_busy() {
    let (tx, mut rx) = mpsc::channel(1 << 12).unwrap();
    let memory = Arc::clone(tx.memory());
    let stop = Region::anonymous(4096).unwrap();
    let lock = fork_lock();
    let mut slot = Some(tx);
    // A live sender that keeps the ring full.
    let mut streamer = fork_child(&lock, || {
        let mut tx = slot.take().unwrap();
        tx.adopt().unwrap();
        while stop.atomic_u64(0).unwrap().load(Ordering::SeqCst) == 0 {
            let _ = tx.send_timeout(&[7; 200], Duration::from_millis(100));
        }
        0
    });
    slot.take()
        .unwrap()
        .hand_over(ProcessIdentity::of_pid(streamer.pid()).unwrap())
        .unwrap();
    let mut failure = None;
    for k in 0..2 * MAX_SENDERS {
        let up = Region::anonymous(4096).unwrap();
        let child_memory = Arc::clone(&memory);
        let mut victim = fork_child(&lock, || {
            let Ok(_tx) = mpsc::Sender::attach(child_memory) else {
                return 2;
            };
            up.atomic_u64(0).unwrap().store(1, Ordering::SeqCst);
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        let deadline = std::time::Instant::now() + PATIENCE;
        while up.atomic_u64(0).unwrap().load(Ordering::SeqCst) == 0 {
            if let Some(code) = victim.wait_timeout(Duration::from_millis(1)) {
                failure = Some(format!(
                    "sender {k} could not attach (exit {code}): {} senders counted, {} dead reaped",
                    rx.sender_count(),
                    rx.dead_senders()
                ));
                break;
            }
            assert!(std::time::Instant::now() < deadline, "sender {k} hangs");
        }
        if failure.is_some() {
            break;
        }
        victim.kill();
        assert_eq!(victim.wait_timeout(PATIENCE), Some(128 + 9));
        // The consumer keeps up slowly: a few messages per crash, but the streamer refills
        // the ring each time, so it never waits (no slow check reaps anything).
        for _ in 0..3 {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(_) => std::thread::sleep(Duration::from_millis(5)),
                Err(RecvTimeoutError::Timeout) => {}
                Err(other) => panic!("{other:?}"),
            }
        }
    }
    stop.atomic_u64(0).unwrap().store(1, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + PATIENCE;
    while rx.recv_timeout(Duration::from_millis(200)).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the streamer does not stop"
        );
    }
    assert_eq!(streamer.wait_timeout(PATIENCE), Some(0));
    if let Some(failure) = failure {
        panic!("{failure}");
    }
}
