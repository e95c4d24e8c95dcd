//! The MPSC channel: in one process over heap regions (clones, slots and lanes, threads, a
//! sender that stops mid-frame, hostile values), and across forked producer processes
//! (everything delivered in order, a producer killed mid-frame, slots of killed senders
//! reclaimed). The calls every
//! flavor shares are in `endpoint_calls.rs`; a hostile peer in `hostile_mpsc.rs`, random
//! kills in `faults_mpsc.rs`.
#![cfg(not(loom))]

use shm_channel::Builder;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use shm_channel::mpsc::{self, Mpsc, MAX_SENDERS};
use shm_channel::{CallError, Endpoint, RecvError, RecvTimeoutError, SendError, TryRecvError};
use shm_channel::{Receiver, Sender};
use shm_core::liveness::ProcessIdentity;
use shm_core::{HeapRegion, Region, SharedMemory};
use shm_testkit::layout::mpsc::{region_len, slot, DATA, LANES, SLOT_HEAD, SLOT_OWNER, SLOT_TAIL};
use shm_testkit::{fork_child, fork_lock, TestChild};

mod support;
use support::assert_ends;
use support::faults::fork_owner;
use support::poke;

/// A generous deadline for every blocking call: never reached unless something hangs.
const PATIENCE: Duration = Duration::from_secs(20);

fn heap_channel(capacity: usize) -> (Sender<Mpsc>, Receiver<Mpsc>, Arc<HeapRegion>) {
    support::heap_channel(Builder::<Mpsc>::new(capacity))
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

/// Receives until an error, checking each producer's messages arrive in order (the first
/// 16 bytes of each: producer and sequence number); the error that ended it.
fn receive_in_order(rx: &mut Receiver<Mpsc>, next: &mut HashMap<u64, u64>) -> RecvTimeoutError {
    loop {
        match rx.recv_timeout(PATIENCE) {
            Ok(m) => {
                let (producer, seq) = parse(&m[..16]);
                assert!(m[16..].iter().all(|&b| b == 0xEE), "producer {producer}");
                let expected = next.entry(producer).or_insert(0);
                assert_eq!(seq, *expected, "producer {producer}");
                *expected += 1;
            }
            Err(e) => return e,
        }
    }
}

/// Forks one child per producer number, each streaming `count` messages through a clone
/// of `tx`.
fn fork_producers(
    lock: &MutexGuard<'static, ()>,
    tx: &Sender<Mpsc>,
    producers: std::ops::Range<u64>,
    count: u64,
) -> Vec<TestChild> {
    producers
        .map(|producer| {
            fork_owner(lock, tx.try_clone().unwrap(), move |mut tx| {
                for seq in 0..count {
                    if tx.send_timeout(&message(producer, seq), PATIENCE).is_err() {
                        return 1;
                    }
                }
                0
            })
        })
        .collect()
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
        // One message per lane: in either order.
        let mut got = [
            rx.recv_timeout(PATIENCE).unwrap(),
            rx.recv_timeout(PATIENCE).unwrap(),
        ];
        got.sort_by_key(|m| m != &msg);
        assert_eq!(got, [msg, vec![round]]);
    }
}

/// A grant dropped without a commit gives its room back at once: the lane is as it was
/// (the grant calls themselves: `endpoint_calls.rs`).
#[test]
fn a_dropped_grant_gives_its_room_back_at_once() {
    let (mut tx, mut rx, _) = heap_channel(64);
    drop(tx.reserve(40).unwrap());
    // The whole lane is still there for the largest message.
    tx.try_send(&[3; 56]).unwrap();
    assert_eq!(rx.recv().unwrap(), [3; 56]);
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
    let mut got = [rx.recv().unwrap(), rx.recv().unwrap()];
    got.sort();
    assert_eq!(got, [b"a".to_vec(), b"b".to_vec()]);
    assert_ends(&mut rx, RecvError::Disconnected);
}

#[test]
fn sender_slots_are_limited_and_reused() {
    for (senders, slots) in [
        (None, mpsc::DEFAULT_MAX_SENDERS),
        (Some(3), 4),
        (Some(MAX_SENDERS), MAX_SENDERS),
    ] {
        let mut builder = Builder::<Mpsc>::new(256);
        if let Some(senders) = senders {
            builder = builder.max_senders(senders);
        }
        let (tx, _rx, _) = support::heap_channel(builder);
        let clones: Vec<Sender<Mpsc>> = (1..slots).map(|_| tx.try_clone().unwrap()).collect();
        assert!(
            matches!(tx.try_clone(), Err(shm_channel::ChannelError::NoFreeSlot { max, .. }) if max == slots),
            "{slots} slots"
        );
        drop(clones);
        assert!(tx.try_clone().is_ok());
    }
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
        let mut next = HashMap::new();
        let end = receive_in_order(&mut rx, &mut next);
        assert_eq!(end, RecvTimeoutError::Recv(RecvError::Disconnected));
        assert_eq!(next, (0..4).map(|p| (p, per_sender)).collect());
    });
}

/// A sender that stops between reserving and committing (its process dies there) holds
/// nobody up: its lane holds what it published, the others flow at once.
#[test]
fn a_sender_stopped_mid_frame_holds_nobody_up() {
    let (mut tx, mut rx, heap) = heap_channel(256);
    let mut dying = tx.try_clone().unwrap();
    dying.send(b"published").unwrap();
    let mut grant = dying.reserve(40).unwrap();
    grant.write_at(0, b"half of a frame").unwrap();
    std::mem::forget(grant); // the process "dies" here: no commit, no drop
    tx.send(b"after").unwrap();
    let mut got = [
        rx.recv_timeout(PATIENCE).unwrap(),
        rx.recv_timeout(PATIENCE).unwrap(),
    ];
    got.sort();
    assert_eq!(got, [b"after".to_vec(), b"published".to_vec()]);
    poke(&*heap, slot(dying.slot()) + SLOT_OWNER, dead_identity());
    drop(dying); // not owned here any more: no effect
    drop(tx);
    assert_ends(&mut rx, RecvError::PeerDied);
    assert_eq!(rx.dead_senders(), 1);
}

#[test]
fn try_recv_notices_a_dead_sender_after_a_slow_check_interval() {
    let (tx, mut rx, heap) = heap_channel(256);
    let mut dying = tx.try_clone().unwrap();
    std::mem::forget(dying.reserve(8).unwrap());
    poke(&*heap, slot(dying.slot()) + SLOT_OWNER, dead_identity());
    drop(tx);
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        match rx.try_recv() {
            Err(TryRecvError::Empty) => assert!(std::time::Instant::now() < deadline),
            Err(TryRecvError::Recv(RecvError::PeerDied)) => break,
            other => panic!("{other:?}"),
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(rx.dead_senders(), 1);
}

/// A lane's tail is read only by a sender taking the slot over: garbage there is refused
/// then, and misleads no receiver.
#[test]
fn garbage_lane_tail_is_corruption_for_the_next_sender_of_the_slot() {
    for bad in [3, u64::MAX - 7] {
        let (tx, mut rx, heap) = heap_channel(256);
        let mut other = tx.try_clone().unwrap();
        drop(tx); // slot 0 free again
        poke(&*heap, slot(0) + SLOT_TAIL, bad);
        other.send(b"fine").unwrap();
        assert_eq!(rx.recv().unwrap(), b"fine");
        assert!(
            other
                .try_clone()
                .is_err_and(|e| matches!(e, shm_channel::ChannelError::Corrupted(_))),
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
    poke(&*heap, slot(tx.slot()) + SLOT_HEAD, 5);
    assert!(tx
        .try_send(&[1; 8])
        .is_err_and(|e| e.corruption().is_some()));
}

#[test]
fn garbage_frame_headers_are_corruption() {
    // Words of the current lap (0) that no sender writes.
    for bad in [
        0xffff_ffff,                // no tag
        0xD1 << 32 | (1 << 31),     // data frame longer than the lane
        0xD1 << 32 | (70u64 << 40), // bits no header has
        0xAD << 32 | 8,             // pad that does not reach the lane's end
        0x42 << 32,                 // unknown tag
    ] {
        let (mut tx, mut rx, heap) = heap_channel(256);
        tx.send(b"hello").unwrap();
        poke(&*heap, DATA, bad);
        assert!(
            rx.try_recv().is_err_and(|e| e.corruption().is_some()),
            "header {bad:#x}"
        );
    }
}

#[test]
fn garbage_lane_count_is_refused_at_attach() {
    for bad in [0, 3, 128, 1 << 40] {
        let heap = Arc::new(HeapRegion::new(region_len(256)).unwrap());
        let (_tx, _rx) = Builder::<Mpsc>::new(256).create_in(heap.clone()).unwrap();
        poke(&*heap, LANES, bad);
        assert!(
            matches!(
                Sender::<Mpsc>::attach(heap.clone()),
                Err(shm_channel::ChannelError::Corrupted(_))
            ),
            "lanes {bad}"
        );
    }
}

#[test]
fn attach_validates_the_header_and_adds_a_sender() {
    let heap = Arc::new(HeapRegion::new(region_len(256)).unwrap());
    let (_tx, mut rx) = Builder::<Mpsc>::new(256).create_in(heap.clone()).unwrap();
    let mut attached = Sender::<Mpsc>::attach(heap.clone()).unwrap();
    attached.send(b"attached").unwrap();
    assert_eq!(rx.recv().unwrap(), b"attached");
    let spsc = Arc::new(HeapRegion::new(region_len(256)).unwrap());
    shm_channel::Builder::<shm_channel::spsc::Spsc>::new(256)
        .create_in(spsc.clone())
        .unwrap();
    assert!(Sender::<Mpsc>::attach(spsc).is_err());
}

#[test]
fn typed_mpsc_round_trips() {
    let (tx, mut rx) =
        shm_channel::typed::pair::<(u64, String), _, shm_channel::typed::DefaultCodec>(
            mpsc::channel(4096).unwrap(),
        )
        .unwrap();
    let mut tx2 = tx.try_clone().unwrap();
    let mut tx = tx;
    tx.send((1, "one".into())).unwrap();
    tx2.send((2, "two".into())).unwrap();
    let mut got = [rx.recv().unwrap(), rx.recv().unwrap()];
    got.sort();
    assert_eq!(got, [(1, "one".into()), (2, "two".into())]);
    let huge = "x".repeat(5000);
    match tx.send((3, huge)) {
        Err(shm_channel::typed::SendError::Send(SendError::TooLarge((3, s), _))) => {
            assert_eq!(s.len(), 5000)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn four_producer_processes_deliver_everything_in_order() {
    const PER_PRODUCER: u64 = 250_000;
    let lock = fork_lock();
    let (tx, mut rx) = mpsc::channel(1 << 16).unwrap();
    let children = fork_producers(&lock, &tx, 0..4, PER_PRODUCER);
    drop(tx);
    let mut next = HashMap::new();
    let end = receive_in_order(&mut rx, &mut next);
    assert_eq!(
        end,
        RecvTimeoutError::Recv(RecvError::Disconnected),
        "{next:?}"
    );
    assert_eq!(next, (0..4).map(|p| (p, PER_PRODUCER)).collect());
    for child in children {
        assert_eq!(child.wait(), 0);
    }
}

#[test]
fn producer_stopped_mid_frame_holds_up_no_other_and_its_death_ends_the_stream() {
    const PER_PRODUCER: u64 = 50_000;
    let lock = fork_lock();
    // Small lanes: the live producers fill theirs and wait for the receiver, never for the
    // stopped producer.
    let (tx, mut rx) = mpsc::channel(1 << 12).unwrap();
    let signal = Region::anonymous(4096).unwrap();
    let word = signal.atomic_u64(0).unwrap();
    let mut victim = fork_owner(&lock, tx.try_clone().unwrap(), |mut tx| {
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
    // The others start once the victim holds its half-written frame: they stream through
    // their own lanes while it is alive, and never wait for it.
    let children = fork_producers(&lock, &tx, 0..3, PER_PRODUCER);
    drop(tx);
    let mut next: HashMap<u64, u64> = HashMap::new();
    let total = 100 + 3 * PER_PRODUCER;
    for _ in 0..total {
        let m = rx
            .recv_timeout(PATIENCE)
            .expect("the live senders were held up");
        let (producer, seq) = parse(&m[..16]);
        let expected = next.entry(producer).or_insert(0);
        assert_eq!(seq, *expected, "producer {producer}");
        *expected += 1;
    }
    for child in children {
        assert_eq!(child.wait(), 0);
    }
    // Only the victim's half frame is left, and it never comes.
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(50)),
        Err(RecvTimeoutError::Timeout)
    );
    victim.kill();
    assert_eq!(victim.wait_timeout(PATIENCE), Some(128 + 9));
    let end = receive_in_order(&mut rx, &mut next);
    assert_eq!(end, RecvTimeoutError::Recv(RecvError::PeerDied), "{next:?}");
    for producer in 0..3 {
        assert_eq!(
            next.get(&producer),
            Some(&PER_PRODUCER),
            "producer {producer}"
        );
    }
    assert_eq!(next.get(&9), Some(&100));
    assert_eq!(rx.dead_senders(), 1);
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
            let Ok(_tx) = Sender::<Mpsc>::attach(child_memory) else {
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
