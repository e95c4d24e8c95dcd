//! The calls every byte endpoint shares, written once over the flavor and run for each flavor
//! they apply to, over heap regions (runs under Miri too): `try_*` on an empty or full
//! ring, a message larger than the ring, write grants committed in part or dropped,
//! `recv_into` a short buffer, disconnection both ways, timeouts. What is a flavor's own is
//! in `spsc.rs`, `mpsc.rs`, `broadcast.rs`.
#![cfg(not(loom))]

use std::sync::Arc;
use std::time::Duration;

use shm_channel::broadcast::{Broadcast, Policy};
use shm_channel::mpsc::Mpsc;
use shm_channel::spsc::Spsc;
use shm_channel::Endpoint as _;
use shm_channel::{
    Builder, Flavor, Receiver, RecvError, RecvIntoError, RecvTimeoutError, SendError,
    SendTimeoutError, Sender, TryRecvError, TrySendError,
};
use shm_core::HeapRegion;

/// A channel of `capacity` over a heap region.
fn heap<F: Flavor>(builder: Builder<F>) -> (Sender<F>, Receiver<F>) {
    let region = HeapRegion::new(builder.region_len().unwrap()).unwrap();
    builder.create_in(Arc::new(region)).unwrap()
}

/// A 64-byte ring holds `per_ring` 8-byte messages; a full ring refuses the next until one
/// is read.
fn try_calls_on_empty_and_full<F: Flavor>(
    (mut tx, mut rx): (Sender<F>, Receiver<F>),
    per_ring: usize,
) {
    assert!(
        matches!(rx.try_recv(), Err(TryRecvError::Empty)),
        "{}",
        F::NAME
    );
    let mut sent = 0;
    while tx.try_send(&[7; 8]).is_ok() {
        sent += 1;
    }
    assert_eq!(sent, per_ring, "{}", F::NAME);
    assert!(matches!(tx.try_send(&[7; 8]), Err(TrySendError::Full(()))));
    assert_eq!(rx.try_recv().unwrap(), [7; 8]);
    tx.try_send(&[8; 8]).unwrap();
}

#[test]
fn try_recv_on_empty_is_empty_and_try_send_on_full_is_full() {
    // 64 bytes / (8 header + 8 payload); broadcast: a 16-byte header.
    try_calls_on_empty_and_full(heap::<Spsc>(Builder::new(64)), 4);
    try_calls_on_empty_and_full(heap::<Mpsc>(Builder::new(64)), 4);
    try_calls_on_empty_and_full(heap(Builder::<Broadcast>::new(64)), 2);
}

/// A message larger than the ring is refused at once; the largest fits, even after a wrap:
/// the sender publishes a padding frame to the end of the ring, and once the receiver has
/// skipped it, the message fits.
fn too_large_and_largest_after_a_wrap<F: Flavor>((mut tx, mut rx): (Sender<F>, Receiver<F>)) {
    assert_eq!(tx.max_message_len(), 56);
    assert!(matches!(
        tx.send(&[0; 57]),
        Err(SendError::TooLarge((), 56))
    ));
    assert!(matches!(tx.reserve(1000), Err(SendError::TooLarge((), 56))));
    tx.send(&[1; 20]).unwrap();
    assert_eq!(rx.recv().unwrap(), [1; 20]);
    assert!(matches!(tx.try_send(&[2; 56]), Err(TrySendError::Full(()))));
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty))); // skips the padding
    tx.try_send(&[2; 56]).unwrap();
    assert_eq!(rx.recv().unwrap(), [2; 56]);
}

#[test]
fn message_larger_than_the_ring_is_refused_and_the_largest_fits_after_a_wrap() {
    too_large_and_largest_after_a_wrap(heap::<Spsc>(Builder::new(64)));
    too_large_and_largest_after_a_wrap(heap::<Mpsc>(Builder::new(64)));
}

/// A grant commits only what was written; one dropped without a commit publishes nothing
/// (MPSC: a skip frame between two messages).
fn grants_commit_what_was_written<F: Flavor>((mut tx, mut rx): (Sender<F>, Receiver<F>)) {
    let mut grant = tx.reserve(100).unwrap();
    assert_eq!(grant.len(), 100);
    grant.write_at(0, b"abc").unwrap();
    assert!(grant.write_at(98, b"xyz").is_err());
    grant.commit(3).unwrap();
    {
        let mut dropped = tx.reserve(10).unwrap();
        dropped.write_at(0, b"discarded!").unwrap();
    }
    tx.send(b"kept").unwrap();
    assert_eq!(rx.recv().unwrap(), b"abc");
    assert_eq!(rx.recv().unwrap(), b"kept");
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    drop(tx.reserve(10).unwrap());
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    tx.send(b"kept").unwrap();
    assert_eq!(rx.recv().unwrap(), b"kept");
}

/// A commit longer than the grant is the caller's mistake: `commit` and `commit_deferred`
/// say so and publish nothing (never clamp).
fn commit_longer_than_the_grant_is_refused<F: Flavor>((mut tx, mut rx): (Sender<F>, Receiver<F>)) {
    let grant = tx.reserve(16).unwrap();
    let err = grant.commit(17).unwrap_err();
    assert_eq!((err.len, err.grant_len), (17, 16));
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    let grant = tx.reserve(16).unwrap();
    assert!(grant.commit_deferred(100).is_err());
    tx.flush();
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    tx.reserve(16).unwrap().commit(16).unwrap();
    assert_eq!(rx.recv().unwrap().len(), 16);
}

#[test]
fn a_commit_longer_than_the_grant_is_an_error_not_clamped() {
    commit_longer_than_the_grant_is_refused(heap::<Spsc>(Builder::new(256)));
    commit_longer_than_the_grant_is_refused(heap::<Mpsc>(Builder::new(256)));
    commit_longer_than_the_grant_is_refused(heap(Builder::<Broadcast>::new(256)));
}

#[test]
fn write_grants_commit_only_what_was_written_and_a_dropped_grant_publishes_nothing() {
    grants_commit_what_was_written(heap::<Spsc>(Builder::new(256)));
    grants_commit_what_was_written(heap::<Mpsc>(Builder::new(256)));
    grants_commit_what_was_written(heap(Builder::<Broadcast>::new(256)));
}

/// A buffer too small for the message keeps it in the ring.
fn short_buffer_keeps_the_message<F: Flavor>((mut tx, mut rx): (Sender<F>, Receiver<F>)) {
    tx.send(b"0123456789").unwrap();
    let mut small = [0u8; 4];
    assert!(matches!(
        rx.recv_into(&mut small),
        Err(RecvIntoError::BufferTooSmall { needed: 10 })
    ));
    let mut big = [0u8; 16];
    assert_eq!(rx.recv_into(&mut big).unwrap(), 10);
    assert_eq!(&big[..10], b"0123456789");
}

#[test]
fn recv_into_a_short_buffer_keeps_the_message() {
    short_buffer_keeps_the_message(heap::<Spsc>(Builder::new(256)));
    short_buffer_keeps_the_message(heap::<Mpsc>(Builder::new(256)));
    short_buffer_keeps_the_message(heap(Builder::<Broadcast>::new(256)));
}

/// Every message sent before the (last) sender is dropped arrives, then `Disconnected`.
fn dropped_sender_delivers_everything<F: Flavor<RecvError = RecvError>>(
    (mut tx, mut rx): (Sender<F>, Receiver<F>),
) {
    for i in 0..5u8 {
        tx.send(&[i]).unwrap();
    }
    drop(tx);
    let got: Vec<Vec<u8>> = rx.iter().collect();
    assert_eq!(got, (0..5u8).map(|i| vec![i]).collect::<Vec<_>>());
    assert_eq!(rx.recv(), Err(RecvError::Disconnected));
    assert_eq!(
        rx.try_recv(),
        Err(TryRecvError::Recv(RecvError::Disconnected))
    );
}

#[test]
fn dropped_sender_delivers_everything_then_disconnects() {
    dropped_sender_delivers_everything(heap::<Spsc>(Builder::new(256)));
    dropped_sender_delivers_everything(heap::<Mpsc>(Builder::new(256)));
}

/// A dropped receiver disconnects every sender, blocking or not.
fn dropped_receiver_disconnects<F: Flavor>(mut senders: Vec<Sender<F>>, rx: Receiver<F>) {
    drop(rx);
    for tx in &mut senders {
        assert!(matches!(tx.send(b"lost"), Err(SendError::Disconnected(()))));
        assert!(matches!(
            tx.try_send(b"lost"),
            Err(TrySendError::Send(SendError::Disconnected(())))
        ));
    }
}

#[test]
fn dropped_receiver_disconnects_every_sender() {
    let (tx, rx) = heap::<Spsc>(Builder::new(256));
    dropped_receiver_disconnects(vec![tx], rx);
    let (tx, rx) = heap::<Mpsc>(Builder::new(256));
    dropped_receiver_disconnects(vec![tx.try_clone().unwrap(), tx], rx);
}

/// Timed calls on an empty or a full ring time out.
fn timeouts<F: Flavor>((mut tx, mut rx): (Sender<F>, Receiver<F>)) {
    assert!(matches!(
        rx.recv_timeout(Duration::from_millis(20)),
        Err(RecvTimeoutError::Timeout)
    ));
    tx.send(&vec![0; tx.max_message_len()]).unwrap();
    let err = tx
        .send_timeout(&[0; 8], Duration::from_millis(20))
        .unwrap_err();
    assert!(matches!(err, SendTimeoutError::Timeout(())));
}

#[test]
fn timeouts_expire() {
    timeouts(heap::<Spsc>(Builder::new(64)));
    timeouts(heap::<Mpsc>(Builder::new(64)));
    timeouts(heap::<Broadcast>(
        Builder::new(64).policy(Policy::BackPressure),
    ));
}

/// Batched releases: what the receiver released waits in the batch while the ring still
/// holds messages, and is handed back when the receiver finds the ring empty, so that a
/// sender blocked on a full ring is always let go.
fn batched_releases<F: Flavor>((mut tx, mut rx): (Sender<F>, Receiver<F>)) {
    rx.set_release_batch(1 << 20); // at most half the ring
    let mut sent = 0u32;
    while tx.try_send(&sent.to_le_bytes()).is_ok() {
        sent += 1;
    }
    assert!(sent > 2, "{}", F::NAME);
    assert_eq!(rx.recv().unwrap(), 0u32.to_le_bytes(), "{}", F::NAME);
    assert!(
        matches!(tx.try_send(&[0; 4]), Err(TrySendError::Full(()))),
        "{}: the release waits in the batch",
        F::NAME
    );
    for i in 1..sent {
        assert_eq!(rx.recv().unwrap(), i.to_le_bytes(), "{}", F::NAME);
    }
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    let mut refilled = 0u32;
    while tx.try_send(&refilled.to_le_bytes()).is_ok() {
        refilled += 1;
    }
    assert_eq!(
        refilled,
        sent,
        "{}: found empty, the receiver handed every release back",
        F::NAME
    );
    for i in 0..refilled {
        assert_eq!(rx.recv().unwrap(), i.to_le_bytes(), "{}", F::NAME);
    }
    // 300 messages: tens of laps of the ring, and quick under Miri.
    std::thread::scope(|s| {
        s.spawn(move || {
            for i in 0..300u32 {
                tx.send(&i.to_le_bytes()).unwrap();
            }
        });
        for i in 0..300u32 {
            assert_eq!(rx.recv().unwrap(), i.to_le_bytes(), "{}", F::NAME);
        }
    });
}

#[test]
fn batched_releases_wait_while_messages_are_queued_and_never_hold_back_a_blocked_sender() {
    batched_releases(heap::<Spsc>(Builder::new(256)));
    batched_releases(heap::<Mpsc>(Builder::new(256)));
    batched_releases(heap::<Broadcast>(
        Builder::new(256).policy(Policy::BackPressure),
    ));
}

/// A receiver that keeps up with its sender settles before it waits (lanes: see "Settling"
/// in `shared/lane`): the sender streams single messages, bursts and pauses, and everything
/// arrives, in order, whether the settles see a batch, one frame or nothing come.
fn a_receiver_that_keeps_up_gets_everything_in_order<F: Flavor>(
    (mut tx, mut rx): (Sender<F>, Receiver<F>),
) {
    let count: u32 = if cfg!(miri) { 300 } else { 20_000 };
    let sender = std::thread::spawn(move || {
        for i in 0..count {
            tx.send_timeout(&i.to_le_bytes(), Duration::from_secs(20))
                .unwrap();
            match i % 1000 {
                // A pause: the receiver's settles see nothing come.
                999 => std::thread::sleep(Duration::from_millis(1)),
                // Single messages, a few microseconds apart.
                0..=99 => std::thread::sleep(Duration::from_micros(5)),
                // Bursts.
                _ => {}
            }
        }
    });
    for i in 0..count {
        let got = rx.recv_timeout(Duration::from_secs(20)).ok();
        assert_eq!(got, Some(i.to_le_bytes().to_vec()), "message {i}");
    }
    sender.join().unwrap();
}

#[test]
fn a_receiver_that_keeps_up_with_a_stream_of_bursts_and_pauses_gets_everything_in_order() {
    a_receiver_that_keeps_up_gets_everything_in_order(heap::<Spsc>(Builder::new(4096)));
    a_receiver_that_keeps_up_gets_everything_in_order(heap::<Mpsc>(Builder::new(4096)));
    a_receiver_that_keeps_up_gets_everything_in_order(heap::<Broadcast>(
        Builder::new(4096).policy(Policy::BackPressure),
    ));
}
