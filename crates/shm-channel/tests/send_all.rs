//! `Sender::send_all` (runs of messages, one claim per run where the ring allows it) and
//! the bulk channels over every flavor; the MPSC receiver's batched releases.
#![cfg(not(loom))]

use std::time::Duration;

use shm_channel::codec::{Bincode, Plain};
use shm_channel::Endpoint as _;
use shm_channel::{broadcast, bulk, mpsc, spsc, Flavor, SendError};

/// Messages of different lengths (0 to 40 bytes), each starting with its index.
fn messages(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let mut m = vec![i as u8; i % 41];
            if let Some(first) = m.first_mut() {
                *first = i as u8;
            }
            m
        })
        .collect()
}

/// Sends 1000 messages as runs of 50 through a 512-byte ring (so runs wait for room and
/// get split), from another thread; `recv` must get them all, in order.
fn runs_arrive_whole_and_in_order<F: Flavor>(
    mut tx: shm_channel::Sender<F>,
    mut recv: impl FnMut() -> Option<Vec<u8>>,
) {
    let msgs = messages(1000);
    std::thread::scope(|s| {
        let sent = &msgs;
        s.spawn(move || {
            for run in sent.chunks(50) {
                let refs: Vec<&[u8]> = run.iter().map(Vec::as_slice).collect();
                tx.send_all(&refs).unwrap();
            }
        });
        for (i, expected) in msgs.iter().enumerate() {
            assert_eq!(recv().as_ref(), Some(expected), "message {i}");
        }
    });
}

const PATIENCE: Duration = Duration::from_secs(20);

#[test]
fn spsc_send_all_delivers_every_message_in_order() {
    let (tx, mut rx) = spsc::channel(512).unwrap();
    runs_arrive_whole_and_in_order(tx, || rx.recv_timeout(PATIENCE).ok());
}

#[test]
fn mpsc_send_all_delivers_every_message_in_order() {
    let (tx, mut rx) = mpsc::channel(512).unwrap();
    rx.set_release_batch(128);
    runs_arrive_whole_and_in_order(tx, || rx.recv_timeout(PATIENCE).ok());
}

#[test]
fn broadcast_send_all_delivers_every_message_in_order() {
    let (tx, mut rx) = broadcast::channel(512, broadcast::Policy::BackPressure).unwrap();
    runs_arrive_whole_and_in_order(tx, || rx.recv_timeout(PATIENCE).ok());
}

#[test]
fn mpsc_runs_of_two_senders_interleave_only_between_messages() {
    let (tx, mut rx) = mpsc::channel(1024).unwrap();
    let senders = [tx.try_clone().unwrap(), tx];
    std::thread::scope(|s| {
        for (p, mut tx) in senders.into_iter().enumerate() {
            s.spawn(move || {
                for first in (0..2000u32).step_by(20) {
                    let run: Vec<[u8; 8]> = (first..first + 20)
                        .map(|seq| {
                            let mut m = [0u8; 8];
                            m[..4].copy_from_slice(&(p as u32).to_le_bytes());
                            m[4..].copy_from_slice(&seq.to_le_bytes());
                            m
                        })
                        .collect();
                    let refs: Vec<&[u8]> = run.iter().map(|m| m.as_slice()).collect();
                    tx.send_all(&refs).unwrap();
                }
            });
        }
        let mut next = [0u32; 2];
        for _ in 0..4000 {
            let m = rx.recv_timeout(PATIENCE).unwrap();
            let p = u32::from_le_bytes(m[..4].try_into().unwrap()) as usize;
            let seq = u32::from_le_bytes(m[4..8].try_into().unwrap());
            assert_eq!(seq, next[p], "sender {p}");
            next[p] += 1;
        }
        assert_eq!(next, [2000, 2000]);
    });
}

/// `send_all` with a message too large for the ring sends nothing.
fn too_large_sends_nothing<F: Flavor>(mut tx: shm_channel::Sender<F>) {
    let big = vec![0u8; tx.max_message_len() + 1];
    let err = tx.send_all(&[b"small".as_slice(), &big]).unwrap_err();
    assert!(matches!(err, SendError::TooLarge(0, _)), "{err:?}");
}

#[test]
fn send_all_with_a_too_large_message_sends_nothing_in_every_flavor() {
    let (tx, mut rx) = spsc::channel(256).unwrap();
    too_large_sends_nothing(tx);
    assert!(rx.try_recv().is_err());
    let (tx, mut rx) = mpsc::channel(256).unwrap();
    too_large_sends_nothing(tx);
    assert!(rx.try_recv().is_err());
    let (tx, mut rx) = broadcast::channel(256, broadcast::Policy::BackPressure).unwrap();
    too_large_sends_nothing(tx);
    assert!(rx.try_recv().is_err());
}

#[test]
fn mpsc_batched_releases_hand_room_back_when_the_ring_is_found_empty() {
    // 64-byte frames in a 256-byte ring, releases batched up to half the ring (128 bytes).
    let (mut tx, mut rx) = mpsc::channel(256).unwrap();
    rx.set_release_batch(128);
    for round in 0..20u8 {
        // Two frames received: 128 bytes released, not more than the batch, not stored ...
        for _ in 0..2 {
            tx.try_send(&[round; 56]).unwrap();
        }
        for _ in 0..2 {
            assert_eq!(rx.try_recv().unwrap(), [round; 56]);
        }
        // ... until the receiver finds the ring empty: then the head is stored, and the
        // sender has the whole ring again (four frames fit only if it was).
        assert_eq!(rx.try_recv(), Err(shm_channel::TryRecvError::Empty));
        for _ in 0..4 {
            tx.try_send(&[round; 56]).unwrap();
        }
        for _ in 0..4 {
            assert_eq!(rx.try_recv().unwrap(), [round; 56]);
        }
        assert_eq!(rx.try_recv(), Err(shm_channel::TryRecvError::Empty));
    }
}

/// A bulk channel of `u64`s over byte endpoints of any flavor: a slice sent in several
/// frames arrives whole.
fn bulk_round_trip<F: Flavor>(tx: shm_channel::Sender<F>, rx: shm_channel::Receiver<F>) {
    let mut tx = bulk::Sender::<u64, F, Plain>::try_from(tx).unwrap();
    let mut rx = bulk::Receiver::<u64, F, Plain>::try_from(rx).unwrap();
    let items: Vec<u64> = (0..3000).map(|n| n * 31).collect();
    std::thread::scope(|s| {
        let sent = &items;
        s.spawn(move || tx.send(sent).unwrap());
        let mut got = Vec::new();
        while got.len() < items.len() {
            rx.drain_into(&mut got, usize::MAX).unwrap();
        }
        assert!(got == items);
    });
}

#[test]
fn bulk_slices_arrive_whole_over_every_flavor() {
    let (tx, rx) = spsc::channel(4096).unwrap();
    bulk_round_trip(tx, rx);
    let (tx, rx) = mpsc::channel(4096).unwrap();
    bulk_round_trip(tx, rx);
    let (tx, rx) = broadcast::channel(4096, broadcast::Policy::BackPressure).unwrap();
    bulk_round_trip(tx, rx);
}

/// A drain takes at most about a ring's worth of frames, however fast the sender refills
/// the ring: `drain_into(.., usize::MAX)` under a sender that never stops ends, and its
/// batch stays bounded.
fn drain_is_bounded_by_the_ring<F: Flavor>(
    tx: shm_channel::Sender<F>,
    rx: shm_channel::Receiver<F>,
) {
    const CAPACITY: usize = 4096;
    let mut tx = bulk::Sender::<u64, F, Plain>::try_from(tx).unwrap();
    let mut rx = bulk::Receiver::<u64, F, Plain>::try_from(rx).unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        // Frames of 8 items (64 bytes and a count), sent until the receiver is done (a
        // broadcast sender without receivers goes on sending: the flag stops it).
        let done = &done;
        // Relaxed, both sides: a stop flag; it publishes nothing the other side reads.
        s.spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) && tx.send(&[7u64; 8]).is_ok() {}
        });
        let mut got = Vec::new();
        for _ in 0..200 {
            got.clear();
            let n = rx.drain_into(&mut got, usize::MAX).unwrap();
            assert_eq!(n, got.len());
            // At most a ring's worth after the first frame, plus the frame that crossed it.
            assert!(n * 8 <= 2 * CAPACITY + 2 * 80, "one drain took {n} items");
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        drop(rx);
    });
}

#[test]
fn a_drain_is_bounded_by_the_ring_over_every_flavor() {
    let (tx, rx) = spsc::channel(4096).unwrap();
    drain_is_bounded_by_the_ring(tx, rx);
    let (tx, rx) = mpsc::channel(4096).unwrap();
    drain_is_bounded_by_the_ring(tx, rx);
    let (tx, rx) = broadcast::channel(4096, broadcast::Policy::BackPressure).unwrap();
    drain_is_bounded_by_the_ring(tx, rx);
}

#[test]
fn bulk_frame_that_does_not_decode_is_reported_after_the_items_before_it() {
    let (mut bytes_tx, rx) = spsc::channel(4096).unwrap();
    let mut rx = bulk::Receiver::<u64, _, Plain>::try_from(rx).unwrap();
    let mut good = Vec::new();
    good.extend_from_slice(&2u64.to_le_bytes());
    good.extend_from_slice(&[1; 16]);
    bytes_tx.send(&good).unwrap();
    // A count that does not match the bytes after it.
    bytes_tx.send(&[9, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3]).unwrap();
    let mut got = Vec::new();
    assert_eq!(rx.drain_into(&mut got, usize::MAX), Ok(2));
    assert!(matches!(
        rx.drain_into(&mut got, usize::MAX),
        Err(shm_channel::typed::RecvError::Decode(_))
    ));
    assert_eq!(got.len(), 2);
}

#[test]
fn bulk_item_too_large_for_a_frame_is_refused_with_the_count_sent() {
    let (tx, _rx) = spsc::channel(256).unwrap();
    let mut tx = bulk::Sender::<String, _, Bincode>::try_from(tx).unwrap();
    let items = ["ok".to_string(), "x".repeat(1000)];
    let err = tx.send(&items).unwrap_err();
    assert!(
        matches!(
            err,
            shm_channel::typed::SendError::Send(SendError::TooLarge(1, _))
        ),
        "{err:?}"
    );
}
