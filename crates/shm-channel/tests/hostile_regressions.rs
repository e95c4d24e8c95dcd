//! Regressions for the defects the hostile matrices and the fuzz targets `hostile_mpsc` and
//! `hostile_broadcast` found, now fixed in the shared ring code. Each is the smallest
//! in-process form of the failing case; the timed calls stand in for the calls without a
//! deadline of the forked matrices (which hung): `Timeout` here was the hang there.

use shm_channel::Builder;
use std::time::Duration;

use shm_channel::broadcast::{self, Policy};
use shm_channel::Endpoint;
use shm_channel::{mpsc, Flavor, SendTimeoutError, Sender};
use shm_channel::{RecvTimeoutError, TryRecvError};
use shm_testkit::layout::{broadcast as blay, mpsc as mlay};

mod support;
use support::{heap_channel, poke};

const LONG: Duration = Duration::from_secs(3);

/// A send that has to wait for room returns within [`LONG`], with anything but a timeout
/// (`what` says what kept it waiting if it does not).
fn blocked_send_returns<F: Flavor>(tx: &mut Sender<F>, what: &str) {
    let result = tx.send_timeout(&[7; 200], LONG);
    assert!(
        !matches!(result, Err(SendTimeoutError::Timeout(()))),
        "{what}: {result:?}"
    );
}

/// Found by the fuzz target `hostile_broadcast` (no hostile write involved): under
/// overwrite, a write grant dropped uncommitted after it announced an overwrite loses the
/// overwritten message without a `Lagged`, and the next message reads as corrupt for ever.
#[test]
fn broadcast_overwrite_grant_dropped_after_announcing_an_overwrite_loses_nothing_silently() {
    let (mut tx, mut rx) = Builder::<broadcast::Broadcast>::new(512)
        .policy(Policy::Overwrite)
        .create()
        .unwrap();
    tx.try_send(&[1; 400]).unwrap();
    drop(tx.try_reserve(403).unwrap()); // needs the 400-byte message's room; abandoned
    match rx.try_recv() {
        Ok(msg) => assert_eq!(msg, [1; 400]),
        Err(TryRecvError::Recv(broadcast::RecvError::Lagged(1))) => {}
        other => panic!("the first message vanished: {other:?}"),
    }
    tx.try_send(&[2; 214]).unwrap();
    assert_eq!(rx.try_recv().map(|m| m.len()), Ok(214));
}

/// Found by `hostile_mpsc.rs` (forked matrix, close-only): the receiver's owner word
/// overwritten with a value of pid bits 0; the receiver is then dropped (its drop skips the
/// close: not owned here); a sender blocked on the full ring waits for an attacher for
/// ever.
#[test]
fn mpsc_sender_blocked_on_a_full_ring_returns_when_the_receiver_goes_after_its_owner_word_was_zeroed(
) {
    let (mut tx, rx, memory) = heap_channel(Builder::<mpsc::Mpsc>::new(1024));
    while tx.try_send(&[5; 100]).is_ok() {}
    poke(&*memory, mlay::RECEIVER_OWNER, 0);
    drop(rx);
    blocked_send_returns(
        &mut tx,
        "the sender still waits for a receiver that is gone",
    );
}

/// Found by `hostile_broadcast.rs` (forked matrix, close-only): the same with the
/// broadcast sender's owner word: a receiver blocked on the empty ring waits for ever.
#[test]
fn broadcast_receiver_blocked_returns_when_the_sender_goes_after_its_owner_word_was_zeroed() {
    let (tx, mut rx, memory) = heap_channel(Builder::<broadcast::Broadcast>::new(1024));
    poke(&*memory, blay::SENDER_OWNER, 0);
    drop(tx);
    let result = rx.recv_timeout(LONG);
    assert!(
        !matches!(result, Err(RecvTimeoutError::Timeout)),
        "the receiver still waits for a sender that is gone: {result:?}"
    );
}

/// Found by `hostile_broadcast.rs` (forked matrix): a free reader slot whose owner word is
/// not 0 but has pid bits 0 (`1 << 63`) holds the back-pressure (`Writer::room` skips only
/// owner 0) and is never reaped (`reap_dead_readers` skips owners `from_raw` refuses): a
/// sender blocked on the full ring waits for ever, even with no receiver left.
#[test]
fn broadcast_reader_slot_owner_without_a_pid_does_not_hold_the_sender_back() {
    let (mut tx, rx, memory) =
        heap_channel(Builder::<broadcast::Broadcast>::new(1024).policy(Policy::BackPressure));
    poke(&*memory, blay::reader(7) + blay::READER_OWNER, 1 << 63);
    drop(rx);
    // With no receiver left (the poked slot names none) the ring never fills: bounded.
    for _ in 0..100 {
        if tx.try_send(&[5; 100]).is_err() {
            break;
        }
    }
    blocked_send_returns(
        &mut tx,
        "a reader slot that names no process holds the sender back",
    );
}

/// Found by the fuzz target `hostile_broadcast` (no hostile write involved): under
/// back-pressure, a sender that attaches in place of a dropped one overwrites a message no
/// receiver has read yet (its first room check believes the ring empty); the receiver gets
/// `Lagged(1)`, which back-pressure promises never to give.
#[test]
fn broadcast_reattached_sender_respects_the_back_pressure_of_unread_messages() {
    let (mut tx, mut rx) = broadcast::channel(1024, Policy::BackPressure).unwrap();
    let memory = tx.memory().clone();
    tx.try_send(&[1; 848]).unwrap();
    drop(tx);
    let mut tx = Sender::<broadcast::Broadcast>::attach(memory).unwrap();
    let _ = tx.try_send(&[2; 776]); // no room: Full
    assert_eq!(
        rx.try_recv().map(|m| m.len()),
        Ok(848),
        "an unread message was overwritten"
    );
}
