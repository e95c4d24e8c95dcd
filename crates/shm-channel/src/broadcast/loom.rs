//! loom models of the broadcast cursors at a tiny capacity (two frames): a sender and one
//! or two receivers under back-pressure. The control words (tail, oldest, owners, cursors)
//! and the fences are loom's; the frames are plain memory to loom (std atomics and byte
//! copies it does not track). So these models check the index protocol — publication,
//! back-pressure, join — but not `Policy::Overwrite`: its seqlock-style detection of a
//! frame overwritten during the copy needs loom to see the frame words, and a model of it
//! fails spuriously (a reader sees the newest bytes but a stale `oldest`). Overwrite is
//! covered by the multi-process tests (`tests/broadcast.rs`).
//!
//! `scripts/loom` runs them (`LOOM_MAX_PREEMPTIONS=2`).

use std::sync::Arc;

use ::loom::thread;
use shm_core::HeapRegion;

use super::layout::region_len_for;
use super::Policy;
use crate::broadcast::{self, Broadcast};
use crate::TryRecvError;
use crate::TrySendError;
use crate::{Builder, Receiver, Sender};

/// 64 bytes: two frames of an 8-byte message.
const CAPACITY: usize = 64;

fn channel(policy: Policy) -> (Sender<Broadcast>, Receiver<Broadcast>) {
    let heap = Arc::new(HeapRegion::new(region_len_for(CAPACITY).unwrap()).unwrap());
    Builder::<Broadcast>::new(CAPACITY)
        .policy(policy)
        .create_in(heap)
        .unwrap()
}

/// Sends `0..count`, yielding while the ring is full (back-pressure).
fn send_all(tx: &mut Sender<Broadcast>, count: u64) {
    for i in 0..count {
        loop {
            match tx.try_send(&i.to_le_bytes()) {
                Ok(()) => break,
                Err(TrySendError::Full(())) => thread::yield_now(),
                Err(other) => panic!("{other:?}"),
            }
        }
    }
}

/// Reads until `Disconnected`: every message in order, and `Lagged` counts exactly the
/// messages skipped; returns the messages received and the messages reported missed.
fn read_all(rx: &mut Receiver<Broadcast>, count: u64) -> (u64, u64) {
    let (mut next, mut received, mut missed) = (0u64, 0u64, 0u64);
    loop {
        match rx.try_recv() {
            Ok(m) => {
                let seq = u64::from_le_bytes(m[..8].try_into().unwrap());
                assert_eq!(seq, next, "lost, reordered or miscounted");
                next += 1;
                received += 1;
            }
            Err(TryRecvError::Recv(broadcast::RecvError::Lagged(n))) => {
                next += n;
                missed += n;
            }
            Err(TryRecvError::Empty) => thread::yield_now(),
            Err(TryRecvError::Recv(broadcast::RecvError::Recv(crate::RecvError::Disconnected))) => {
                break
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(next, count, "received + missed != sent");
    (received, missed)
}

#[test]
fn loom_broadcast_back_pressure_one_reader_never_lags() {
    ::loom::model(|| {
        let (mut tx, mut rx) = channel(Policy::BackPressure);
        let reader = thread::spawn(move || read_all(&mut rx, 3));
        send_all(&mut tx, 3);
        drop(tx);
        assert_eq!(reader.join().unwrap(), (3, 0));
    });
}

#[test]
fn loom_broadcast_subscribe_while_sending_holds_back_and_keeps_the_other_cursor() {
    ::loom::model(|| {
        let (mut tx, mut rx1) = channel(Policy::BackPressure);
        send_all(&mut tx, 2); // the ring is full: rx1 has read nothing
        let tx = Arc::new(::loom::sync::Mutex::new(tx));
        let joiner = {
            let tx = tx.clone();
            thread::spawn(move || {
                let rx2 = tx.lock().unwrap().subscribe().unwrap();
                drop(rx2);
            })
        };
        let first = loop {
            match rx1.try_recv() {
                Ok(m) => break m,
                Err(TryRecvError::Empty) => thread::yield_now(),
                Err(other) => panic!("{other:?}"),
            }
        };
        assert_eq!(first, 0u64.to_le_bytes());
        joiner.join().unwrap();
        // Still one unread message: exactly one more fits.
        let mut tx = Arc::try_unwrap(tx).ok().unwrap().into_inner().unwrap();
        tx.try_send(&2u64.to_le_bytes()).unwrap();
        assert!(matches!(tx.try_send(&[0; 8]), Err(TrySendError::Full(()))));
        assert_eq!(rx1.try_recv().unwrap(), 1u64.to_le_bytes());
    });
}
