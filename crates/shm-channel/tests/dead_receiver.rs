//! Sends notice a dead receiver within the liveness bound, on the blocking and the
//! non-blocking path, while the ring still has room: a sender that keeps finding room asks
//! the kernel about its receiver once per `RECEIVER_LOOK` (8 ms), pacing the question with
//! a private countdown and a clock read per stride of sends — no system call per send.
//! Before, a killed receiver's ring took sends until it was full (4,090 `u64`s into 64 KiB).
//!
//! The counts are asserted (a bound no timing can break: sends accepted after the death
//! stay far below what fills the ring; a sender 2 ms between sends is stopped within 5
//! sends); the time they stand for is printed, not asserted.

use std::time::{Duration, Instant};

use shm_channel::{mpsc, spsc, Builder, Endpoint, Flavor, Sender};
use shm_channel::{SendError, TrySendError};

mod support;
use support::adopted_by_idle_child;

/// A ring of 16 MiB: a million 8-byte messages (16 ring bytes each).
const CAPACITY: usize = 1 << 24;
/// Sends before the kill (a fifth of the ring), timed for the rate.
const BEFORE: u64 = 200_000;
/// What a message takes in the ring.
const FRAME: u64 = 16;

/// How a test sends: blocking or not.
#[derive(Debug, Clone, Copy)]
enum Call {
    Send,
    TrySend,
}

/// One send; `Err` with whether it was `PeerDied`.
fn send_one<F: Flavor>(tx: &mut Sender<F>, call: Call, n: u64) -> Result<(), bool> {
    let msg = n.to_le_bytes();
    match call {
        Call::Send => tx
            .send(&msg)
            .map_err(|e| matches!(e, SendError::PeerDied(()))),
        Call::TrySend => tx.try_send(&msg).map_err(|e| {
            assert!(!matches!(e, TrySendError::Full(())), "the ring filled");
            matches!(e, TrySendError::Send(SendError::PeerDied(())))
        }),
    }
}

/// Streams into a channel whose receiver is killed mid-stream; the sends accepted after the
/// death, which must end in `PeerDied` before the ring fills.
fn streaming_sender_notices<F: Flavor>(builder: Builder<F>, call: Call) {
    let (mut tx, rx) = builder.create().unwrap();
    let child = adopted_by_idle_child(rx);
    let start = Instant::now();
    for n in 0..BEFORE {
        send_one(&mut tx, call, n).unwrap();
    }
    let rate = BEFORE as f64 / start.elapsed().as_secs_f64();
    child.kill();
    child.wait();
    let mut after = 0u64;
    let died = loop {
        match send_one(&mut tx, call, BEFORE + after) {
            Ok(()) => after += 1,
            Err(died) => break died,
        }
        assert!(
            (BEFORE + after) * FRAME < tx.capacity() as u64,
            "{} {call:?}: the ring filled before PeerDied",
            F::NAME
        );
    };
    assert!(died, "{} {call:?}: ended by something else", F::NAME);
    println!(
        "{} {call:?}: {after} sends accepted after the receiver's death = {:.2} ms at the \
         rate before it ({:.2} M msg/s); the ring had room for {} more",
        F::NAME,
        after as f64 / rate * 1e3,
        rate / 1e6,
        tx.capacity() as u64 / FRAME - BEFORE - after
    );
}

#[test]
fn a_streaming_sender_notices_a_dead_receiver_before_the_ring_fills() {
    for call in [Call::Send, Call::TrySend] {
        streaming_sender_notices(Builder::<spsc::Spsc>::new(CAPACITY), call);
        streaming_sender_notices(Builder::<mpsc::Mpsc>::new(CAPACITY), call);
    }
}

/// A sender with 2 ms between sends: the lookout reads the clock at every send, and the
/// check (every 8 ms) falls due within 4 sends of the death (sleeping only widens the gaps,
/// so only fewer sends can land).
fn slow_sender_notices<F: Flavor>(builder: Builder<F>, call: Call) {
    let (mut tx, rx) = builder.create().unwrap();
    let child = adopted_by_idle_child(rx);
    for n in 0..5 {
        send_one(&mut tx, call, n).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill();
    child.wait();
    let mut after = 0;
    loop {
        match send_one(&mut tx, call, after) {
            Ok(()) => after += 1,
            Err(died) => {
                assert!(died, "{} {call:?}: ended by something else", F::NAME);
                break;
            }
        }
        assert!(
            after <= 5,
            "{} {call:?}: {after} sends into a dead ring",
            F::NAME
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    println!(
        "{} {call:?}, 2 ms apart: {after} sends accepted after the death",
        F::NAME
    );
}

#[test]
fn a_slow_sender_notices_a_dead_receiver_within_a_few_sends() {
    for call in [Call::Send, Call::TrySend] {
        slow_sender_notices(Builder::<spsc::Spsc>::new(4096), call);
        slow_sender_notices(Builder::<mpsc::Mpsc>::new(4096), call);
    }
}
