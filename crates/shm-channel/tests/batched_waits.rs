//! `WaitStrategy::Batched`, the waiting of processes that outnumber their cores: a waiter
//! sleeps at once and asks to be woken in batches — a receiver once a quarter of its ring
//! is filled, a sender once a quarter is free — so its peer makes a wake-up per batch, not
//! per message; and a message sent just before its sender goes idle still arrives (the
//! sleeper looks again every `latency`). Written once over the flavor.
#![cfg(not(loom))]

use std::time::Duration;

use shm_channel::broadcast::{Broadcast, Policy};
use shm_channel::mpsc::Mpsc;
use shm_channel::spsc::Spsc;
use shm_channel::{Builder, Endpoint, Flavor, Receiver, Sender};
use shm_core::notify::WaitStrategy;

const BATCHED: WaitStrategy = WaitStrategy::Batched {
    latency: Duration::from_millis(2),
};
const PATIENCE: Duration = Duration::from_secs(20);
const MESSAGES: u64 = 20_000;
const CAPACITY: usize = 1 << 16;

/// Streams `MESSAGES` numbered 64-byte messages from a thread to a receiver; checks they
/// arrive in order; returns the wake-up syscalls of the sender and of the receiver.
fn stream<F: Flavor>((mut tx, mut rx): (Sender<F>, Receiver<F>)) -> (u64, u64) {
    let sender = std::thread::spawn(move || {
        for i in 0..MESSAGES {
            let mut msg = [0u8; 64];
            msg[..8].copy_from_slice(&i.to_le_bytes());
            tx.send_timeout(&msg, PATIENCE).unwrap();
        }
        tx.flush();
        tx.stats().wake_syscalls
    });
    for i in 0..MESSAGES {
        let msg = rx.recv_timeout(PATIENCE).unwrap();
        assert_eq!(msg[..8], i.to_le_bytes(), "{}", F::NAME);
    }
    (sender.join().unwrap(), rx.stats().wake_syscalls)
}

/// Frames of 72 ring bytes, a wake-up per quarter of the ring at most, plus the few a
/// flush or a full ring forces: far fewer than one per message.
fn assert_batched<F: Flavor>(wakes: u64, who: &str) {
    let batches = MESSAGES * 72 / (CAPACITY as u64 / 4);
    assert!(
        wakes <= 4 * batches + 16,
        "{}: the {who} made {wakes} wake-ups for {MESSAGES} messages ({batches} batches)",
        F::NAME
    );
}

fn batched_receiver<F: Flavor>(builder: Builder<F>) {
    let (tx, mut rx) = builder.create().unwrap();
    rx.set_wait_strategy(BATCHED);
    let (sender_wakes, _) = stream((tx, rx));
    assert_batched::<F>(sender_wakes, "sender");
}

fn batched_sender<F: Flavor>(builder: Builder<F>) {
    let (mut tx, rx) = builder.create().unwrap();
    tx.set_wait_strategy(BATCHED);
    let (_, receiver_wakes) = stream((tx, rx));
    assert_batched::<F>(receiver_wakes, "receiver");
}

#[test]
fn a_batched_receiver_is_woken_per_batch_in_every_flavor() {
    batched_receiver(Builder::<Spsc>::new(CAPACITY));
    batched_receiver(Builder::<Mpsc>::new(CAPACITY));
    batched_receiver::<Broadcast>(Builder::<Broadcast>::new(CAPACITY).policy(Policy::BackPressure));
}

#[test]
fn a_batched_sender_is_woken_per_batch_in_every_flavor() {
    batched_sender(Builder::<Spsc>::new(CAPACITY));
    batched_sender(Builder::<Mpsc>::new(CAPACITY));
    batched_sender::<Broadcast>(Builder::<Broadcast>::new(CAPACITY).policy(Policy::BackPressure));
}

fn lone_message_arrives<F: Flavor>(builder: Builder<F>) {
    let (mut tx, mut rx) = builder.create().unwrap();
    rx.set_wait_strategy(BATCHED);
    let receiver = std::thread::spawn(move || rx.recv_timeout(PATIENCE));
    std::thread::sleep(Duration::from_millis(20));
    // One message, far below the receiver's mark, and the sender goes idle.
    tx.send(b"alone").unwrap();
    assert_eq!(receiver.join().unwrap().unwrap(), b"alone", "{}", F::NAME);
    drop(tx);
}

#[test]
fn a_message_below_the_mark_still_arrives_in_every_flavor() {
    lone_message_arrives(Builder::<Spsc>::new(CAPACITY));
    lone_message_arrives(Builder::<Mpsc>::new(CAPACITY));
    lone_message_arrives::<Broadcast>(Builder::<Broadcast>::new(CAPACITY));
}
