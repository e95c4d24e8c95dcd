//! Typed senders encode in one pass into a frame reserved by a guess, and fall back to sizing
//! the value first when it does not fit the guess or the ring has no room for the guess:
//! every value arrives whole either way, in every flavor, and a non-blocking send is never
//! refused for want of room the exact frame would have had.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use shm_channel::broadcast::Policy;
use shm_channel::codec::{Bincode, Codec, Postcard};
use shm_channel::SendError;
use shm_channel::{typed, Flavor, TrySendError};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Record {
    id: u64,
    name: String,
    values: Vec<u32>,
}

/// A frame that does not decode is consumed and reported by `recv_into`, which leaves its
/// value valid, and the next value is received into it whole; for both serde codecs.
fn a_bad_frame_leaves_the_value_valid<C: Codec<Record>>() {
    let (mut bytes_tx, rx) = shm_channel::spsc::channel(4096).unwrap();
    let mut rx = typed::Receiver::<Record, _, C>::try_from(rx).unwrap();
    // A record whose name announces far more bytes than the frame holds.
    bytes_tx.send(&[1, 0xfb, 0xff, 0xff, 0xff, 0x7f]).unwrap();
    let mut tx = typed::Sender::<Record, _, C>::try_from(bytes_tx).unwrap();
    tx.send(record(5)).unwrap();
    let mut value = record(700);
    let bad = rx.recv_into(&mut value);
    assert!(matches!(bad, Err(typed::RecvError::Decode(_))), "{bad:?}");
    // Still a valid value: cloned and compared like any other.
    assert_eq!(value.clone(), value);
    rx.recv_into(&mut value).unwrap();
    assert_eq!(value, record(5));
}

#[test]
fn receiving_in_place_survives_a_frame_that_does_not_decode() {
    a_bad_frame_leaves_the_value_valid::<Bincode>();
    a_bad_frame_leaves_the_value_valid::<Postcard>();
}

fn record(i: usize) -> Record {
    Record {
        id: i as u64,
        // Lengths from 0 to ~2 KiB, growing and shrinking, so some values overflow the
        // guess made from the one before and take the sized path.
        name: "x".repeat((i * 37) % 700),
        values: (0..(i * 13) % 400).map(|v| v as u32).collect(),
    }
}

fn round_trip<C: Codec<Record>, F: Flavor>(
    (mut tx, mut rx): (typed::Sender<Record, F, C>, typed::Receiver<Record, F, C>),
) {
    // Every other value is received into one reused value (in place), shrinking and
    // growing its string and vector.
    let mut reused = record(0);
    for i in 0..300 {
        let value = record(i);
        tx.send_timeout(value.clone(), Duration::from_secs(10))
            .unwrap();
        if i % 2 == 0 {
            let got = rx.recv_timeout(Duration::from_secs(10));
            assert_eq!(got.ok(), Some(value), "value {i}");
        } else {
            rx.recv_into(&mut reused).unwrap();
            assert_eq!(reused, value, "value {i}, received in place");
        }
    }
}

#[test]
fn values_of_every_size_arrive_whole_with_both_serde_codecs_in_every_flavor() {
    let spsc = || shm_channel::spsc::channel(1 << 14).unwrap();
    let mpsc = || shm_channel::mpsc::channel(1 << 14).unwrap();
    let broadcast = || shm_channel::broadcast::channel(1 << 14, Policy::BackPressure).unwrap();
    round_trip(typed::pair::<Record, _, Bincode>(spsc()).unwrap());
    round_trip(typed::pair::<Record, _, Postcard>(spsc()).unwrap());
    round_trip(typed::pair::<Record, _, Bincode>(mpsc()).unwrap());
    round_trip(typed::pair::<Record, _, Postcard>(mpsc()).unwrap());
    round_trip(typed::pair::<Record, _, Bincode>(broadcast()).unwrap());
    round_trip(typed::pair::<Record, _, Postcard>(broadcast()).unwrap());
}

#[test]
fn try_send_is_not_refused_for_room_only_the_guess_lacks() {
    // A 256-byte ring; the guess for a 40-byte value after a 60-byte one is 120 bytes.
    let (mut tx, mut rx) = typed::channel::<Vec<u8>>(256).unwrap();
    tx.try_send(vec![1; 60]).unwrap();
    assert_eq!(rx.try_recv().unwrap(), vec![1; 60]);
    // Fill the ring until only a small frame fits.
    let mut sent = Vec::new();
    loop {
        match tx.try_send(vec![2; 40]) {
            Ok(()) => sent.push(vec![2u8; 40]),
            Err(TrySendError::Full(_)) => break,
            Err(other) => panic!("{other:?}"),
        }
        assert!(
            sent.len() < 10,
            "a 256-byte ring took more than 10 frames of 48 bytes"
        );
    }
    // Free exactly one frame: now the ring has room for an exact 40-byte frame (48 ring
    // bytes), but not for the guess.
    assert_eq!(rx.try_recv().unwrap(), sent.remove(0));
    tx.try_send(vec![3; 40]).unwrap();
    for expected in sent {
        assert_eq!(rx.try_recv().unwrap(), expected);
    }
    assert_eq!(rx.try_recv().unwrap(), vec![3; 40]);
}

#[test]
fn a_value_larger_than_a_quarter_of_the_ring_takes_the_sized_path() {
    let (mut tx, mut rx) = typed::channel::<Vec<u8>>(4096).unwrap();
    for len in [10, 3000, 5, 2000, 1500] {
        tx.try_send(vec![7; len]).unwrap();
        assert_eq!(rx.try_recv().unwrap().len(), len);
    }
    // Too large for the ring at all: refused with the value handed back.
    match tx.try_send(vec![8; 5000]) {
        Err(TrySendError::Send(typed::SendError::Send(SendError::TooLarge(value, max)))) => {
            assert_eq!(value.len(), 5000);
            assert!(max < 4096);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn broadcast_overwrite_delivers_typed_values_whole() {
    let (mut tx, mut rx) = typed::pair::<Record, _, Postcard>(
        shm_channel::broadcast::channel(1 << 14, Policy::Overwrite).unwrap(),
    )
    .unwrap();
    for i in 0..100 {
        tx.send(record(i)).unwrap();
        assert_eq!(rx.try_recv().ok(), Some(record(i)));
    }
}
