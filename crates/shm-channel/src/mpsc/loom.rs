//! loom models of the MPSC channel: senders in lanes of their own, read in turn; a sender
//! that stops between reserving and committing holds nobody up; a sender taking over a slot
//! continues after what its lane holds. The lane algorithm itself is modelled in
//! `spsc/loom.rs` (an SPSC channel is one lane).
//!
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p shm-channel --release --lib loom`

use std::sync::Arc;

use loom::thread;
use shm_core::HeapRegion;

use super::layout::region_len_for;
use crate::mpsc::Mpsc;
use crate::{Builder, Receiver, Sender};
use crate::{TryRecvError, TrySendError};

/// A channel of two lanes of `capacity` bytes on the heap.
fn channel(capacity: usize) -> (Sender<Mpsc>, Receiver<Mpsc>) {
    let builder = Builder::<Mpsc>::new(capacity).max_senders(2);
    let heap = Arc::new(HeapRegion::new(builder.region_len().unwrap()).unwrap());
    assert!(builder.region_len() <= region_len_for(capacity));
    builder.create_in(heap).unwrap()
}

/// A channel of two lanes of `capacity` bytes on the heap, with a sender and its clone.
fn two_senders(capacity: usize) -> (Sender<Mpsc>, Sender<Mpsc>, Receiver<Mpsc>) {
    let (tx, rx) = channel(capacity);
    let tx2 = tx.try_clone().unwrap();
    (tx, tx2, rx)
}

/// Sends `msg`, yielding while the lane is full.
fn send(tx: &mut Sender<Mpsc>, msg: &[u8]) {
    loop {
        match tx.try_send(msg) {
            Ok(()) => return,
            Err(TrySendError::Full(())) => thread::yield_now(),
            Err(other) => panic!("{other}"),
        }
    }
}

/// Receives `count` messages, yielding while the channel is empty.
fn recv(rx: &mut Receiver<Mpsc>, count: usize) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    while got.len() < count {
        match rx.try_recv() {
            Ok(msg) => got.push(msg),
            Err(TryRecvError::Empty) => thread::yield_now(),
            Err(other) => panic!("{other}"),
        }
    }
    got
}

#[test]
fn loom_two_senders_in_their_lanes_arrive_whole_and_in_order_each() {
    loom::model(|| {
        let (mut tx, mut tx2, mut rx) = two_senders(32);
        let first = thread::spawn(move || {
            send(&mut tx, &[1; 8]);
            send(&mut tx, &[2; 8]);
        });
        let second = thread::spawn(move || send(&mut tx2, &[3; 8]));
        let got = recv(&mut rx, 3);
        let ones: Vec<_> = got.iter().filter(|m| m[0] != 3).collect();
        assert_eq!(ones, [&vec![1; 8], &vec![2; 8]]);
        assert!(got.contains(&vec![3; 8]));
        first.join().unwrap();
        second.join().unwrap();
    });
}

#[test]
fn loom_a_sender_between_reserve_and_commit_holds_nobody_up() {
    loom::model(|| {
        let (mut tx, mut tx2, mut rx) = two_senders(32);
        let stalled = thread::spawn(move || {
            // Reserves and writes, then gives up without committing.
            let mut grant = tx.reserve(4).unwrap();
            grant.write_at(0, b"half").unwrap();
            thread::yield_now();
            drop(grant);
        });
        let other = thread::spawn(move || send(&mut tx2, b"flows"));
        // Whatever the stalled sender does meanwhile, the other's message comes, and
        // nothing else does.
        assert_eq!(recv(&mut rx, 1), [b"flows".to_vec()]);
        stalled.join().unwrap();
        other.join().unwrap();
        // Both senders are gone: the half-written frame never comes.
        assert!(matches!(
            rx.try_recv(),
            Err(TryRecvError::Recv(crate::RecvError::Disconnected))
        ));
    });
}

#[test]
fn loom_a_sender_taking_over_a_slot_continues_after_its_lane() {
    loom::model(|| {
        let (mut tx, mut rx) = channel(32);
        send(&mut tx, &[1; 8]);
        // The sender leaves its slot with a frame in the lane; a new sender takes the slot
        // (the only free one besides the clone's) while the receiver reads.
        let mut tx2 = tx.try_clone().unwrap();
        drop(tx);
        let producer = thread::spawn(move || {
            let mut tx3 = tx2.try_clone().unwrap();
            send(&mut tx3, &[2; 8]);
            send(&mut tx2, &[3; 8]);
        });
        let got = recv(&mut rx, 3);
        let lane0: Vec<_> = got.iter().filter(|m| m[0] != 3).collect();
        assert_eq!(lane0, [&vec![1; 8], &vec![2; 8]]);
        producer.join().unwrap();
    });
}
