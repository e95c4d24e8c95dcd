//! The MPSC channel in one process, over heap regions (hostile values included); the
//! multi-process tests are in `mpsc_across_fork.rs`.
#![cfg(not(loom))]

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use shm_channel::mpsc::{self, Builder, Receiver, Sender, MAX_SENDERS};
use shm_channel::RecvError;
use shm_channel::{
    RecvIntoError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use shm_core::liveness::ProcessIdentity;
use shm_core::{HeapRegion, SharedMemory};

/// Offsets of the control block (see `mpsc/layout.rs`): what a hostile peer would poke.
const TAIL: usize = 128;
const HEAD: usize = 256;
const SLOTS: usize = 640;
const DATA: usize = 640 + 64 * 128;
/// A generous deadline for every blocking call: never reached unless something hangs.
const PATIENCE: Duration = Duration::from_secs(20);

fn heap_channel(capacity: usize) -> (Sender, Receiver, Arc<HeapRegion>) {
    let heap = Arc::new(HeapRegion::new(DATA + capacity).unwrap());
    let (tx, rx) = Builder::new(capacity).create_in(heap.clone()).unwrap();
    (tx, rx, heap)
}

fn poke(region: &HeapRegion, offset: usize, value: u64) {
    region
        .atomic_u64(offset)
        .unwrap()
        .store(value, Ordering::SeqCst);
}

fn peek(region: &HeapRegion, offset: usize) -> u64 {
    region.atomic_u64(offset).unwrap().load(Ordering::SeqCst)
}

/// An identity that names no live process: ours with another start time.
fn dead_identity() -> u64 {
    ProcessIdentity::current().unwrap().to_raw() + (1 << 22)
}

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

#[test]
fn messages_from_clones_arrive_intact() {
    let (mut tx, mut rx, _) = heap_channel(256);
    let mut tx2 = tx.try_clone().unwrap();
    assert_ne!(tx.slot(), tx2.slot());
    for round in 0..40u8 {
        let msg: Vec<u8> = (0..round).collect();
        tx.send(&msg).unwrap();
        tx2.send(&[round]).unwrap();
        assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), msg);
        assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), [round]);
    }
}

#[test]
fn try_recv_on_empty_is_empty_and_try_send_on_full_is_full() {
    let (mut tx, mut rx, _) = heap_channel(64);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    let mut sent = 0;
    while tx.try_send(&[7; 8]).is_ok() {
        sent += 1;
    }
    assert_eq!(sent, 4);
    assert!(matches!(tx.try_send(&[7; 8]), Err(TrySendError::Full(()))));
    assert_eq!(rx.try_recv().unwrap(), [7; 8]);
    tx.try_send(&[8; 8]).unwrap();
}

#[test]
fn message_larger_than_the_ring_is_refused_and_largest_fits_after_wrap() {
    let (mut tx, mut rx, _) = heap_channel(64);
    assert_eq!(tx.max_message_len(), 56);
    assert!(matches!(
        tx.send(&[0; 57]),
        Err(SendError::TooLarge((), 56))
    ));
    tx.send(&[1; 20]).unwrap();
    assert_eq!(rx.recv().unwrap(), [1; 20]);
    // Needs a pad to the ring end (claimed and committed at once), then the whole ring.
    assert!(matches!(tx.try_send(&[2; 56]), Err(TrySendError::Full(()))));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty)); // skips the padding
    tx.try_send(&[2; 56]).unwrap();
    assert_eq!(rx.recv().unwrap(), [2; 56]);
}

#[test]
fn write_grant_commits_only_what_was_written_and_drop_commits_nothing() {
    let (mut tx, mut rx, _) = heap_channel(256);
    let mut grant = tx.reserve(100).unwrap();
    assert_eq!(grant.len(), 100);
    grant.write_at(0, b"abc").unwrap();
    assert!(grant.write_at(98, b"xyz").is_err());
    grant.commit(3);
    {
        let mut dropped = tx.reserve(40).unwrap();
        dropped.write_at(0, b"discarded").unwrap();
    }
    tx.send(b"kept").unwrap();
    assert_eq!(rx.recv().unwrap(), b"abc");
    assert_eq!(rx.recv().unwrap(), b"kept");
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(rx.abandoned_frames(), 0);
}

#[test]
fn recv_into_a_short_buffer_keeps_the_message() {
    let (mut tx, mut rx, _) = heap_channel(256);
    tx.send(b"0123456789").unwrap();
    let mut small = [0u8; 4];
    assert_eq!(
        rx.recv_into(&mut small),
        Err(RecvIntoError::BufferTooSmall { needed: 10 })
    );
    let mut big = [0u8; 16];
    assert_eq!(rx.recv_into(&mut big).unwrap(), 10);
}

#[test]
fn receiver_disconnects_after_every_sender_is_dropped() {
    let (mut tx, mut rx, _) = heap_channel(256);
    let mut tx2 = tx.try_clone().unwrap();
    tx.send(b"a").unwrap();
    drop(tx);
    assert_eq!(rx.sender_count(), 1);
    tx2.send(b"b").unwrap();
    drop(tx2);
    assert_eq!(rx.recv().unwrap(), b"a");
    assert_eq!(rx.recv().unwrap(), b"b");
    assert_eq!(
        rx.recv_timeout(PATIENCE),
        Err(RecvTimeoutError::Recv(RecvError::Disconnected))
    );
}

#[test]
fn dropped_receiver_disconnects_every_sender() {
    let (mut tx, rx, _) = heap_channel(256);
    let mut tx2 = tx.try_clone().unwrap();
    drop(rx);
    assert!(matches!(tx.send(b"x"), Err(SendError::Disconnected(()))));
    assert!(matches!(
        tx2.try_send(b"x"),
        Err(TrySendError::Send(SendError::Disconnected(())))
    ));
}

#[test]
fn timeouts_expire() {
    let (mut tx, mut rx, _) = heap_channel(64);
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(30)),
        Err(RecvTimeoutError::Timeout)
    );
    tx.send(&[0; 56]).unwrap();
    assert!(matches!(
        tx.send_timeout(&[0; 8], Duration::from_millis(30)),
        Err(SendTimeoutError::Timeout(()))
    ));
}

#[test]
fn sender_slots_are_limited_and_reused() {
    let (tx, _rx, _) = heap_channel(256);
    let clones: Vec<Sender> = (1..MAX_SENDERS).map(|_| tx.try_clone().unwrap()).collect();
    assert!(tx.try_clone().is_err());
    drop(clones);
    assert!(tx.try_clone().is_ok());
}

#[test]
fn four_threads_with_wrap_around_keep_per_sender_order() {
    // A small ring and varying sizes: frames pad at the ring end under concurrent claims.
    let (tx, mut rx, _) = heap_channel(512);
    let per_sender = 20_000u64;
    std::thread::scope(|s| {
        for producer in 0..4u64 {
            let mut tx = tx.try_clone().unwrap();
            s.spawn(move || {
                for seq in 0..per_sender {
                    let mut m = message(producer, seq).to_vec();
                    m.resize(16 + (seq as usize * 7 + producer as usize) % 90, 0xEE);
                    tx.send_timeout(&m, PATIENCE).unwrap();
                }
            });
        }
        drop(tx);
        let mut next = [0u64; 4];
        loop {
            match rx.recv_timeout(PATIENCE) {
                Ok(m) => {
                    let (producer, seq) = parse(&m[..16]);
                    assert_eq!(seq, next[producer as usize], "producer {producer}");
                    assert!(m[16..].iter().all(|&b| b == 0xEE));
                    next[producer as usize] += 1;
                }
                Err(RecvTimeoutError::Recv(RecvError::Disconnected)) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(next, [per_sender; 4]);
    });
}

#[test]
fn claimed_frame_of_dead_sender_is_skipped_and_counted() {
    let (mut tx, mut rx, heap) = heap_channel(256);
    let mut dying = tx.try_clone().unwrap();
    tx.send(b"before").unwrap();
    let mut grant = dying.reserve(40).unwrap();
    grant.write_at(0, b"half of a frame").unwrap();
    std::mem::forget(grant); // the process "dies" here: no commit, no drop
    tx.send(b"after").unwrap();
    assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), b"before");
    // Blocked behind the claim while its owner is alive.
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(30)),
        Err(RecvTimeoutError::Timeout)
    );
    poke(&heap, SLOTS + dying.slot() * 128, dead_identity());
    assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), b"after");
    assert_eq!(rx.abandoned_frames(), 1);
    drop(dying); // not owned here any more: no effect
    drop(tx);
    assert_eq!(
        rx.recv_timeout(PATIENCE),
        Err(RecvTimeoutError::Recv(RecvError::PeerDied))
    );
    assert_eq!(rx.dead_senders(), 1);
}

#[test]
fn claim_without_header_of_dead_sender_is_skipped_by_its_intent() {
    // A producer killed between its claim (CAS of the tail) and its header store.
    let (mut tx, mut rx, heap) = heap_channel(256);
    let dying = tx.try_clone().unwrap();
    let slot = SLOTS + dying.slot() * 128;
    let tail = peek(&heap, TAIL);
    poke(&heap, slot + 8, tail);
    poke(&heap, slot + 16, tail + 32);
    poke(&heap, TAIL, tail + 32);
    tx.send(b"after").unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(30)),
        Err(RecvTimeoutError::Timeout)
    );
    poke(&heap, slot, dead_identity());
    assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), b"after");
    assert_eq!(rx.abandoned_frames(), 1);
    drop(dying);
    tx.send(b"more").unwrap();
    assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), b"more");
}

#[test]
fn try_recv_notices_a_dead_claimer_after_a_slow_check_interval() {
    let (mut tx, mut rx, heap) = heap_channel(256);
    let mut dying = tx.try_clone().unwrap();
    std::mem::forget(dying.reserve(8).unwrap());
    tx.send(b"after").unwrap();
    poke(&heap, SLOTS + dying.slot() * 128, dead_identity());
    let deadline = std::time::Instant::now() + PATIENCE;
    let got = loop {
        match rx.try_recv() {
            Ok(m) => break m,
            Err(TryRecvError::Empty) => assert!(std::time::Instant::now() < deadline),
            Err(e) => panic!("{e}"),
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    assert_eq!(got, b"after");
    assert_eq!(rx.abandoned_frames(), 1);
}

#[test]
fn garbage_tail_is_corruption() {
    for bad in [3, 4096 * 4, u64::MAX - 7] {
        let (mut tx, mut rx, heap) = heap_channel(256);
        poke(&heap, TAIL, bad);
        assert!(
            matches!(
                rx.try_recv(),
                Err(TryRecvError::Recv(RecvError::Corrupted(_)))
            ),
            "tail {bad:#x}"
        );
        assert!(
            matches!(
                tx.try_send(b"x"),
                Err(TrySendError::Send(SendError::Corrupted(..)))
            ),
            "tail {bad:#x}"
        );
    }
}

#[test]
fn garbage_head_is_corruption_for_senders() {
    let (mut tx, _rx, heap) = heap_channel(64);
    for _ in 0..4 {
        tx.send(&[1; 8]).unwrap();
    }
    poke(&heap, HEAD, 5);
    assert!(matches!(
        tx.try_send(&[1; 8]),
        Err(TrySendError::Send(SendError::Corrupted(..)))
    ));
}

#[test]
fn garbage_frame_headers_are_corruption() {
    for bad in [
        u64::MAX,
        0xD1 << 32 | (1 << 31),     // data frame longer than the ring
        0xD1 << 32 | (70u64 << 40), // slot out of range
        0xAD << 32 | 8,             // pad that does not reach the ring end
        0x42 << 32,                 // unknown tag
    ] {
        let (mut tx, mut rx, heap) = heap_channel(256);
        tx.send(b"hello").unwrap();
        poke(&heap, DATA, bad);
        assert!(
            matches!(
                rx.try_recv(),
                Err(TryRecvError::Recv(RecvError::Corrupted(_)))
            ),
            "header {bad:#x}"
        );
    }
}

#[test]
fn garbage_intent_of_dead_claimer_is_corruption() {
    let (tx, mut rx, heap) = heap_channel(256);
    let dying = tx.try_clone().unwrap();
    let slot = SLOTS + dying.slot() * 128;
    poke(&heap, slot + 8, 0);
    poke(&heap, slot + 16, 4096); // beyond the claimed bytes
    poke(&heap, TAIL, 32);
    poke(&heap, slot, dead_identity());
    assert!(matches!(
        rx.recv_timeout(PATIENCE),
        Err(RecvTimeoutError::Recv(RecvError::Corrupted(_)))
    ));
}

#[test]
fn attach_validates_the_header_and_adds_a_sender() {
    let heap = Arc::new(HeapRegion::new(DATA + 256).unwrap());
    let (_tx, mut rx) = Builder::new(256).create_in(heap.clone()).unwrap();
    let mut attached = Sender::attach(heap.clone()).unwrap();
    attached.send(b"attached").unwrap();
    assert_eq!(rx.recv().unwrap(), b"attached");
    let spsc = Arc::new(HeapRegion::new(DATA + 256).unwrap());
    shm_channel::spsc::Builder::new(256)
        .create_in(spsc.clone())
        .unwrap();
    assert!(Sender::attach(spsc).is_err());
}

#[test]
fn typed_mpsc_round_trips() {
    let (tx, mut rx) = mpsc::typed::channel::<(u64, String)>(4096).unwrap();
    let mut tx2 = tx.try_clone().unwrap();
    let mut tx = tx;
    tx.send((1, "one".into())).unwrap();
    tx2.send((2, "two".into())).unwrap();
    assert_eq!(rx.recv().unwrap(), (1, "one".into()));
    assert_eq!(rx.recv().unwrap(), (2, "two".into()));
    let huge = "x".repeat(5000);
    match tx.send((3, huge)) {
        Err(shm_channel::typed::SendError::Send(SendError::TooLarge((3, s), _))) => {
            assert_eq!(s.len(), 5000)
        }
        other => panic!("{other:?}"),
    }
}
