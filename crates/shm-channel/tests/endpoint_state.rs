//! What an endpoint says about its channel, the same for every flavor: how full the ring is
//! (`len`, `is_empty`, `is_full`), whether the channel is closed (`Receiver::close`,
//! `is_closed`), and the messages there now (`try_iter`).
#![cfg(not(loom))]

use shm_channel::broadcast::{self, Policy};
use shm_channel::{
    mpsc, spsc, Endpoint, Flavor, Receiver, RecvError, SendError, Sender, TryRecvError,
};

/// Fills a fresh 256-byte channel with 8-byte messages: `len` grows by a frame each, the
/// ring ends full, and draining empties it again from both ends' point of view.
fn len_follows_the_ring<F: Flavor>((mut tx, mut rx): (Sender<F>, Receiver<F>), frame: usize) {
    assert!(
        tx.is_empty() && rx.is_empty() && !tx.is_full(),
        "{}",
        F::NAME
    );
    let mut sent = 0;
    while tx.try_send(&[7; 8]).is_ok() {
        sent += 1;
        assert_eq!(
            (tx.len(), rx.len()),
            (sent * frame, sent * frame),
            "{}",
            F::NAME
        );
    }
    assert!(tx.is_full() && rx.is_full(), "{}", F::NAME);
    for _ in 0..sent {
        assert_eq!(rx.try_recv().unwrap(), [7; 8]);
    }
    assert!(rx.is_empty(), "{}", F::NAME);
}

#[test]
fn len_and_is_full_follow_the_ring_in_every_flavor() {
    len_follows_the_ring(spsc::channel(256).unwrap(), 16);
    len_follows_the_ring(mpsc::channel(256).unwrap(), 16);
    // Broadcast frames have a 16-byte header.
    len_follows_the_ring(broadcast::channel(256, Policy::BackPressure).unwrap(), 32);
}

/// `close` refuses further sends, delivers what the ring holds, then `Disconnected`.
fn close_drains_then_disconnects<F: Flavor<RecvError = RecvError>>(
    (mut tx, mut rx): (Sender<F>, Receiver<F>),
) {
    tx.send(b"one").unwrap();
    tx.send(b"two").unwrap();
    assert!(!tx.is_closed() && !rx.is_closed(), "{}", F::NAME);
    rx.close();
    assert!(tx.is_closed() && rx.is_closed(), "{}", F::NAME);
    assert!(
        matches!(tx.send(b"late"), Err(SendError::Disconnected(()))),
        "{}",
        F::NAME
    );
    assert_eq!(rx.recv().unwrap(), b"one");
    assert_eq!(rx.try_recv().unwrap(), b"two");
    assert_eq!(rx.recv(), Err(RecvError::Disconnected), "{}", F::NAME);
    rx.close(); // twice is fine
    assert_eq!(
        rx.try_recv(),
        Err(TryRecvError::Recv(RecvError::Disconnected))
    );
}

#[test]
fn close_drains_then_disconnects_in_spsc_and_mpsc() {
    close_drains_then_disconnects(spsc::channel(1024).unwrap());
    close_drains_then_disconnects(mpsc::channel(1024).unwrap());
}

#[test]
fn closed_broadcast_receiver_stops_holding_the_sender_back() {
    let (mut tx, mut slow) = broadcast::channel(256, Policy::BackPressure).unwrap();
    let mut other = tx.subscribe().unwrap();
    tx.send(b"kept").unwrap();
    slow.close();
    assert!(slow.is_closed() && !other.is_closed());
    // Without `slow` holding it back, the sender fills the ring for `other` alone.
    let mut sent = 1;
    while tx.try_send(&[sent as u8; 8]).is_ok() {
        sent += 1;
    }
    assert_eq!(other.try_recv().unwrap(), b"kept");
    for i in 1..sent {
        assert_eq!(other.try_recv().unwrap(), [i as u8; 8]);
    }
    // The sender lapped `slow`: it reads the rest or is told what it missed, then ends.
    let mut got = 0;
    loop {
        match slow.try_recv() {
            Ok(_) | Err(TryRecvError::Recv(broadcast::RecvError::Lagged(_))) => got += 1,
            Err(TryRecvError::Recv(broadcast::RecvError::Recv(
                shm_channel::RecvError::Disconnected,
            ))) => break,
            Err(other) => panic!("{other:?}"),
        }
        assert!(got <= sent, "a closed receiver never ends");
    }
    drop(tx);
    assert!(other.is_closed());
}

#[test]
fn dropping_the_senders_closes_the_receiver() {
    let (tx, rx) = mpsc::channel(1024).unwrap();
    let tx2 = tx.try_clone().unwrap();
    drop(tx);
    assert!(!rx.is_closed());
    drop(tx2);
    assert!(rx.is_closed());
}

/// `try_iter` takes what is there and stops at the first receive that would wait.
fn try_iter_takes_what_is_there<F: Flavor>((mut tx, mut rx): (Sender<F>, Receiver<F>)) {
    assert_eq!(rx.try_iter().count(), 0, "{}", F::NAME);
    for i in 0..5u8 {
        tx.send(&[i]).unwrap();
    }
    let got: Vec<Vec<u8>> = rx.try_iter().collect();
    assert_eq!(
        got,
        (0..5u8).map(|i| vec![i]).collect::<Vec<_>>(),
        "{}",
        F::NAME
    );
    tx.send(b"next").unwrap();
    assert_eq!(rx.try_iter().next(), Some(b"next".to_vec()));
}

#[test]
fn try_iter_takes_what_is_there_in_every_flavor() {
    try_iter_takes_what_is_there(spsc::channel(1024).unwrap());
    try_iter_takes_what_is_there(mpsc::channel(1024).unwrap());
    try_iter_takes_what_is_there(broadcast::channel(1024, Policy::BackPressure).unwrap());
}
