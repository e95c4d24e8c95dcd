//! Broadcast: in one process over heap regions (hostile values included), and to forked
//! reader processes with both policies (a reader killed mid-stream, a lagging reader). The
//! calls every flavor shares are in `endpoint_calls.rs`; a hostile peer in
//! `hostile_broadcast.rs`, random kills in `faults_broadcast.rs`.
#![cfg(not(loom))]

use shm_channel::Builder;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use shm_channel::broadcast::{self, Broadcast, Policy};
use shm_channel::{Receiver, Sender};
use shm_channel::{RecvTimeoutError, TryRecvError};
use shm_channel::{SendError, SendTimeoutError, TrySendError};
use shm_core::liveness::ProcessIdentity;
use shm_core::{HeapRegion, Region, SharedMemory};
use shm_testkit::layout::broadcast::{DATA, READERS, TAIL};
use shm_testkit::{fork_lock, TestChild};

mod support;
use support::faults::fork_owner;
use support::poke;

const PATIENCE: Duration = Duration::from_secs(20);

fn heap_channel(
    capacity: usize,
    policy: Policy,
) -> (Sender<Broadcast>, Receiver<Broadcast>, Arc<HeapRegion>) {
    support::heap_channel(Builder::<Broadcast>::new(capacity).policy(policy))
}

fn seq_of(m: &[u8]) -> u64 {
    u64::from_le_bytes(m[..8].try_into().unwrap())
}

#[test]
fn every_receiver_sees_every_message_with_both_policies() {
    for policy in [Policy::BackPressure, Policy::Overwrite] {
        let (mut tx, mut rx1, _) = heap_channel(1024, policy);
        let mut rx2 = tx.subscribe().unwrap();
        for i in 0..200u64 {
            let mut m = i.to_le_bytes().to_vec();
            m.resize(8 + (i as usize % 40), i as u8);
            tx.send_timeout(&m, PATIENCE).unwrap();
            assert_eq!(rx1.recv_timeout(PATIENCE).unwrap(), m, "{policy:?}");
            assert_eq!(rx2.recv_timeout(PATIENCE).unwrap(), m, "{policy:?}");
        }
        drop(tx);
        assert_eq!(
            rx1.recv_timeout(PATIENCE),
            Err(RecvTimeoutError::Recv(broadcast::RecvError::Recv(
                shm_channel::RecvError::Disconnected
            )))
        );
    }
}

#[test]
fn lagging_receiver_gets_lagged_with_the_right_count() {
    // 8-byte messages take 32 bytes: a 256-byte ring holds the last 8.
    let (mut tx, mut rx, _) = heap_channel(256, Policy::Overwrite);
    tx.send(&0u64.to_le_bytes()).unwrap();
    assert_eq!(seq_of(&rx.recv().unwrap()), 0);
    for i in 1..=20u64 {
        tx.send(&i.to_le_bytes()).unwrap();
    }
    assert_eq!(
        rx.try_recv(),
        Err(TryRecvError::Recv(broadcast::RecvError::Lagged(12)))
    );
    for i in 13..=20u64 {
        assert_eq!(seq_of(&rx.try_recv().unwrap()), i);
    }
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn back_pressure_waits_for_the_slowest_receiver() {
    let (mut tx, mut fast, _) = heap_channel(256, Policy::BackPressure);
    let mut slow = tx.subscribe().unwrap();
    for i in 0..8u64 {
        tx.try_send(&i.to_le_bytes()).unwrap();
    }
    assert!(matches!(tx.try_send(&[0; 8]), Err(TrySendError::Full(()))));
    for i in 0..8u64 {
        assert_eq!(seq_of(&fast.try_recv().unwrap()), i);
    }
    assert!(matches!(tx.try_send(&[0; 8]), Err(TrySendError::Full(()))));
    assert_eq!(seq_of(&slow.try_recv().unwrap()), 0);
    tx.try_send(&8u64.to_le_bytes()).unwrap();
    drop(slow); // leaving frees the sender
    for i in 9..20u64 {
        tx.try_send(&i.to_le_bytes())
            .unwrap_or_else(|e| panic!("{i}: {e}"));
        assert_eq!(seq_of(&fast.try_recv().unwrap()), i - 1);
    }
}

#[test]
fn late_receiver_starts_at_the_tail() {
    let (mut tx, mut rx, _) = heap_channel(256, Policy::BackPressure);
    tx.send(b"early").unwrap();
    let mut late = rx.try_clone().unwrap();
    tx.send(b"late").unwrap();
    assert_eq!(rx.recv().unwrap(), b"early");
    assert_eq!(late.recv().unwrap(), b"late");
    assert_eq!(late.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn dead_reader_is_dropped_from_back_pressure() {
    let (mut tx, mut rx, heap) = heap_channel(256, Policy::BackPressure);
    let stuck = tx.subscribe().unwrap();
    for i in 0..8u64 {
        tx.send(&i.to_le_bytes()).unwrap();
        rx.recv().unwrap();
    }
    assert!(matches!(
        tx.send_timeout(&[0; 8], Duration::from_millis(30)),
        Err(SendTimeoutError::Timeout(()))
    ));
    // The reader's process "dies": its slot names a process that no longer exists.
    let dead = ProcessIdentity::current().unwrap().to_raw() + (1 << 22);
    poke(&*heap, READERS + 128, dead);
    tx.send_timeout(&[1; 8], PATIENCE).unwrap();
    assert_eq!(rx.recv().unwrap(), [1; 8]);
    drop(stuck);
}

#[test]
fn garbage_tail_and_headers_are_corruption() {
    let (tx, mut rx, heap) = heap_channel(256, Policy::Overwrite);
    poke(&*heap, TAIL, 8);
    assert!(matches!(
        rx.try_recv(),
        Err(TryRecvError::Recv(broadcast::RecvError::Recv(
            shm_channel::RecvError::Corrupted(_)
        )))
    ));
    let (mut tx2, mut rx2, heap2) = heap_channel(256, Policy::Overwrite);
    tx2.send(b"hello").unwrap();
    poke(&*heap2, DATA + 8, u64::MAX);
    assert!(matches!(
        rx2.try_recv(),
        Err(TryRecvError::Recv(broadcast::RecvError::Recv(
            shm_channel::RecvError::Corrupted(_)
        )))
    ));
    // The sender validates the frames it overwrites.
    for _ in 0..7 {
        tx2.send(b"hello").unwrap();
    }
    assert!(matches!(tx2.send(b"x"), Err(SendError::Corrupted(..))));
    drop(tx);
}

/// What a test with reader processes starts from: the fork lock, a 4 KiB channel with
/// `policy`, and a shared page for the children to report on.
fn for_reader_processes(
    policy: Policy,
) -> (
    MutexGuard<'static, ()>,
    Sender<Broadcast>,
    Receiver<Broadcast>,
    Region,
) {
    let lock = fork_lock();
    let (tx, first) = broadcast::channel(4096, policy).unwrap();
    (lock, tx, first, Region::anonymous(4096).unwrap())
}

/// Forks a child that takes `receiver` and runs `body` with it.
fn fork_receiver(
    lock: &MutexGuard<'static, ()>,
    receiver: Receiver<Broadcast>,
    body: impl FnOnce(&mut Receiver<Broadcast>) -> i32,
) -> TestChild {
    fork_owner(lock, receiver, |mut rx| body(&mut rx))
}

/// A reader child: every message in order; 0 on success.
fn read_all(rx: &mut Receiver<Broadcast>, count: u64) -> i32 {
    for i in 0..count {
        match rx.recv_timeout(PATIENCE) {
            Ok(m) if seq_of(&m) == i => {}
            _ => return 1,
        }
    }
    match rx.recv_timeout(PATIENCE) {
        Err(RecvTimeoutError::Recv(broadcast::RecvError::Recv(
            shm_channel::RecvError::Disconnected,
        ))) => 0,
        _ => 2,
    }
}

#[test]
fn back_pressure_to_three_reader_processes_with_one_killed_mid_read() {
    const COUNT: u64 = 100_000;
    let (lock, mut tx, first, signal) = for_reader_processes(Policy::BackPressure);
    let word = signal.atomic_u64(0).unwrap();
    let readers: Vec<TestChild> = (0..2)
        .map(|_| {
            let rx = tx.subscribe().unwrap();
            fork_receiver(&lock, rx, |rx| read_all(rx, COUNT))
        })
        .collect();
    let mut victim = fork_receiver(&lock, first, |rx| {
        for _ in 0..10 {
            if rx.recv_timeout(PATIENCE).is_err() {
                return 1;
            }
        }
        word.store(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_secs(60));
        3
    });
    for i in 0..COUNT {
        if i == 100 {
            // The victim holds the sender back; kill it while it is stuck mid-stream.
            while word.load(Ordering::SeqCst) == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            victim.kill();
        }
        tx.send_timeout(&i.to_le_bytes(), PATIENCE)
            .unwrap_or_else(|e| panic!("message {i}: {e}"));
    }
    drop(tx);
    assert_eq!(victim.wait_timeout(PATIENCE), Some(128 + 9));
    for reader in readers {
        assert_eq!(reader.wait(), 0);
    }
}

/// Regression: a `Lagged(n)` must account exactly for the messages skipped. Every reader
/// joins before the first message, so from sequence 0 on, each message received is the
/// next one plus the messages reported missed since — including the `Lagged` reports that
/// come before a reader's first message (a reader forked late is lapped before it reads
/// anything; those reports used to be lost by this bookkeeping, and the first of them was
/// reported as 0 by the receiver, which did not know the sequence number it joined at).
#[test]
fn overwrite_to_three_reader_processes_accounts_for_every_message() {
    const COUNT: u64 = 200_000;
    let (lock, mut tx, first, results) = for_reader_processes(Policy::Overwrite);
    let mut receivers = vec![first, tx.subscribe().unwrap(), tx.subscribe().unwrap()];
    let children: Vec<TestChild> = (0..3usize)
        .map(|r| {
            let rx = receivers.remove(0);
            let results = &results;
            fork_receiver(&lock, rx, move |rx| {
                // Reader 0 is slowed down so that it lags.
                let (mut received, mut lagged, mut next) = (0u64, 0u64, 0u64);
                loop {
                    match rx.recv_timeout(PATIENCE) {
                        Ok(m) => {
                            let seq = seq_of(&m);
                            let missed = lagged_since(&mut lagged);
                            if seq != next + missed {
                                for (i, v) in [seq, next, missed].into_iter().enumerate() {
                                    results
                                        .atomic_u64(1024 + r * 24 + i * 8)
                                        .unwrap()
                                        .store(v, Ordering::SeqCst);
                                }
                                return 2; // missed messages misreported
                            }
                            next = seq + 1;
                            received += 1;
                            if r == 0 && received % 64 == 0 {
                                std::thread::sleep(Duration::from_micros(200));
                            }
                        }
                        Err(RecvTimeoutError::Recv(broadcast::RecvError::Lagged(n))) => lagged += n,
                        Err(RecvTimeoutError::Recv(broadcast::RecvError::Recv(
                            shm_channel::RecvError::Disconnected,
                        ))) => break,
                        Err(RecvTimeoutError::Recv(broadcast::RecvError::Recv(
                            shm_channel::RecvError::Corrupted(_),
                        ))) => return 4,
                        Err(_) => return 3,
                    }
                }
                results
                    .atomic_u64(r * 16)
                    .unwrap()
                    .store(received, Ordering::SeqCst);
                results
                    .atomic_u64(r * 16 + 8)
                    .unwrap()
                    .store(next + lagged, Ordering::SeqCst);
                0
            })
        })
        .collect();
    for i in 0..COUNT {
        tx.send(&i.to_le_bytes()).unwrap();
    }
    drop(tx);
    for child in children {
        let code = child.wait();
        let dbg: Vec<u64> = (0..9)
            .map(|i| {
                results
                    .atomic_u64(1024 + i * 8)
                    .unwrap()
                    .load(Ordering::SeqCst)
            })
            .collect();
        assert_eq!(code, 0, "(seq, expected, missed) per reader: {dbg:?}");
    }
    for r in 0..3 {
        let received = results.atomic_u64(r * 16).unwrap().load(Ordering::SeqCst);
        let end = results
            .atomic_u64(r * 16 + 8)
            .unwrap()
            .load(Ordering::SeqCst);
        assert_eq!(end, COUNT, "reader {r}: received + missed != sent");
        assert!(received > 0 && received <= COUNT, "reader {r}: {received}");
    }
}

/// Regression: `Receiver::join` (behind `subscribe` and `try_clone`) stored the current
/// tail into the cursor of every slot it tried before its compare-and-swap on the owner,
/// live receivers' slots included: under back-pressure the sender then overwrote messages
/// those receivers had not read.
#[test]
fn subscribing_does_not_move_other_receivers_cursors() {
    for clone in [false, true] {
        let (mut tx, mut rx1, _) = heap_channel(256, Policy::BackPressure);
        let mut sent = 0u8;
        // Fill the ring: rx1 has read nothing, so the sender must wait for it.
        loop {
            match tx.try_send(&[sent; 8]) {
                Ok(()) => sent += 1,
                Err(TrySendError::Full(())) => break,
                Err(other) => panic!("{other:?}"),
            }
        }
        let _rx2 = if clone {
            rx1.try_clone().unwrap()
        } else {
            tx.subscribe().unwrap()
        };
        // Still full for rx1: nothing was read.
        assert!(
            matches!(tx.try_send(&[0xee; 8]), Err(TrySendError::Full(()))),
            "after subscribe, the sender overwrote messages rx1 has not read"
        );
        for i in 0..sent {
            assert_eq!(rx1.try_recv().unwrap(), [i; 8], "message {i}");
        }
    }
}

/// A receiver that joins a channel whose ring has wrapped knows the sequence number it
/// starts at, so its first `Lagged` counts exactly.
#[test]
fn late_receiver_lagging_before_its_first_read_counts_exactly() {
    let (mut tx, _rx, _) = heap_channel(256, Policy::Overwrite);
    for i in 0..30u64 {
        tx.send(&i.to_le_bytes()).unwrap();
    }
    let mut late = tx.subscribe().unwrap();
    for i in 30..50u64 {
        tx.send(&i.to_le_bytes()).unwrap();
    }
    // 8 of the 20 messages sent since it joined are still in the ring.
    assert_eq!(
        late.try_recv(),
        Err(TryRecvError::Recv(broadcast::RecvError::Lagged(12)))
    );
    assert_eq!(seq_of(&late.try_recv().unwrap()), 42);
}

/// The messages reported missed since the last message, consumed.
fn lagged_since(lagged: &mut u64) -> u64 {
    std::mem::take(lagged)
}

#[test]
fn typed_broadcast_reaches_every_reader_with_each_codec() {
    use shm_channel::codec::{Plain, Postcard};
    use shm_channel::typed;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
    struct Quote {
        symbol: String,
        price: f64,
        sizes: Vec<u32>,
    }
    let quote = |i: u32| Quote {
        symbol: format!("S{i}"),
        price: f64::from(i) * 1.5,
        sizes: (0..i % 4).collect(),
    };

    let (mut tx, mut rx1) = typed::pair::<Quote, _, typed::DefaultCodec>(
        broadcast::channel(4096, Policy::BackPressure).unwrap(),
    )
    .unwrap();
    let mut rx2 = tx.subscribe().unwrap();
    for i in 0..50 {
        tx.send(quote(i)).unwrap();
        assert_eq!(rx1.recv().unwrap(), quote(i));
    }
    for i in 0..50 {
        assert_eq!(rx2.recv().unwrap(), quote(i));
    }

    let (mut tx, mut rx) =
        typed::pair::<Quote, _, Postcard>(broadcast::channel(4096, Policy::BackPressure).unwrap())
            .unwrap();
    tx.send(quote(7)).unwrap();
    assert_eq!(rx.recv().unwrap(), quote(7));

    let (mut tx, mut rx) =
        typed::pair::<[u64; 4], _, Plain>(broadcast::channel(4096, Policy::BackPressure).unwrap())
            .unwrap();
    tx.send([1, 2, 3, 4]).unwrap();
    assert_eq!(rx.recv().unwrap(), [1, 2, 3, 4]);
}

#[test]
fn typed_broadcast_reports_lag_then_continues() {
    use shm_channel::codec::Plain;
    use shm_channel::typed;

    // 256 bytes hold a handful of 8-byte values; the reader falls behind by far more.
    let (mut tx, mut rx) =
        typed::pair::<u64, _, Plain>(broadcast::channel(256, Policy::Overwrite).unwrap()).unwrap();
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    for i in 0..100u64 {
        tx.send(i).unwrap();
    }
    let lagged = match rx.recv_timeout(std::time::Duration::from_secs(5)) {
        Err(RecvTimeoutError::Recv(shm_channel::typed::RecvError::Recv(
            broadcast::RecvError::Lagged(n),
        ))) => n,
        other => panic!("expected Lagged, got {other:?}"),
    };
    assert!(lagged > 0);
    // Values are their own sequence numbers: after missing `lagged` of them, the reader
    // continues exactly at value `lagged`, then in order up to the last one sent.
    let mut expected = lagged;
    while let Ok(v) = rx.try_recv() {
        assert_eq!(v, expected);
        expected += 1;
    }
    assert_eq!(expected, 100, "every value after the lag was delivered");
}
