//! Timed calls retried in a loop with short timeouts notice a dead peer. Each such wait may
//! end by its deadline while still spinning (a long spin budget, or an adaptive one that
//! grew), before the wait's own first slow check; so a wait that times out makes one, paced
//! as non-blocking calls' are. Written once over the flavor; the receiving side in every
//! flavor, the sending side (a full ring) where a full ring waits for its receiver.
#![cfg(not(loom))]

use std::time::Duration;

use shm_channel::broadcast::Broadcast;
use shm_channel::mpsc::Mpsc;
use shm_channel::spsc::Spsc;
use shm_channel::{Builder, CallError, Flavor, RecvTimeoutError, SendError, SendTimeoutError};
use shm_core::notify::WaitStrategy;
use shm_testkit::{fork_lock, TestChild};

mod support;
use support::faults::fork_owner;

/// Longer than every timeout below: no wait gets to park, or to its own slow check.
const LONG_SPIN: WaitStrategy = WaitStrategy::SpinThenPark {
    spin: Duration::from_secs(60),
};

/// The short timeout of each call.
const SHORT: Duration = Duration::from_millis(1);

/// Calls before the test gives up: far more than the 10 ms liveness bound needs.
const CALLS: usize = 20_000;

/// A child that owns an endpoint and does nothing with it until it is killed.
fn idle_owner<E: shm_channel::Endpoint>(endpoint: E) -> TestChild {
    let lock = fork_lock();
    fork_owner(&lock, endpoint, |_endpoint| loop {
        std::thread::sleep(Duration::from_secs(1));
    })
}

fn receiver_sees_its_sender_die<F: Flavor>(builder: Builder<F>) {
    let (tx, mut rx) = builder.wait_strategy(LONG_SPIN).create().unwrap();
    let child = idle_owner(tx);
    child.kill();
    child.wait();
    for _ in 0..CALLS {
        match rx.recv_timeout(SHORT) {
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Recv(err)) => {
                assert!(err.is_fatal(), "{}: {err}", F::NAME);
                assert!(err.to_string().contains("died"), "{}: {err}", F::NAME);
                return;
            }
            Ok(msg) => panic!("{}: a message from nobody: {msg:?}", F::NAME),
        }
    }
    panic!(
        "{}: {CALLS} timed receives never noticed the dead sender",
        F::NAME
    );
}

fn sender_sees_its_receiver_die<F: Flavor>(builder: Builder<F>) {
    let (mut tx, rx) = builder.wait_strategy(LONG_SPIN).create().unwrap();
    let child = idle_owner(rx);
    while tx.try_send(&[1; 8]).is_ok() {}
    child.kill();
    child.wait();
    for _ in 0..CALLS {
        match tx.send_timeout(&[2; 8], SHORT) {
            Err(SendTimeoutError::Timeout(())) => {}
            Err(SendTimeoutError::Send(SendError::PeerDied(()))) => return,
            other => panic!("{}: {other:?}", F::NAME),
        }
    }
    panic!(
        "{}: {CALLS} timed sends never noticed the dead receiver",
        F::NAME
    );
}

#[test]
fn timed_receives_in_a_loop_notice_a_dead_sender_in_every_flavor() {
    receiver_sees_its_sender_die(Builder::<Spsc>::new(256));
    receiver_sees_its_sender_die(Builder::<Mpsc>::new(256));
    receiver_sees_its_sender_die::<Broadcast>(Builder::<Broadcast>::new(256));
}

#[test]
fn timed_sends_in_a_loop_notice_a_dead_receiver() {
    sender_sees_its_receiver_die(Builder::<Spsc>::new(256));
    sender_sees_its_receiver_die(Builder::<Mpsc>::new(256));
}
