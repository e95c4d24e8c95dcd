//! The request/response loop on small typed rings: a client sends `n`, a server answers
//! with `n + 1`, a million times, for rings of 16 to 64 bytes and messages of several
//! shapes. A typed sender must never lose usable room on its way to a frame (a guessed
//! frame given up after padding to the ring's end did, and such a loop stalled), so the
//! loop must never stall; and the property test checks the room itself: a typed ring of
//! capacity C holds ⌊C / frame⌋ frames at every moment.

use std::fmt::Debug;
use std::time::Duration;

use proptest::prelude::*;
use shm_channel::codec::{Bincode, Codec, Postcard};
use shm_channel::{typed, TrySendError};

/// A call that waits this long has stalled.
const STALL: Duration = Duration::from_secs(20);

/// Runs `rounds` round trips over typed SPSC rings of `capacity` bytes between two threads:
/// the client sends `make(i)`, the server answers `next(request)`.
fn request_response<T, C>(capacity: usize, rounds: u64, make: fn(u64) -> T, next: fn(T) -> T)
where
    T: Send + PartialEq + Debug + 'static,
    C: Codec<T> + 'static,
{
    let (mut request_tx, mut request_rx) =
        typed::pair::<T, _, C>(shm_channel::spsc::channel(capacity).unwrap()).unwrap();
    let (mut reply_tx, mut reply_rx) =
        typed::pair::<T, _, C>(shm_channel::spsc::channel(capacity).unwrap()).unwrap();
    let server = std::thread::spawn(move || {
        for _ in 0..rounds {
            let request = request_rx.recv_timeout(STALL).expect("the server stalled");
            reply_tx
                .send_timeout(next(request), STALL)
                .expect("the server's reply stalled");
        }
    });
    for i in 0..rounds {
        if let Err(err) = request_tx.send_timeout(make(i), STALL) {
            panic!("capacity {capacity}: the request of round {i} stalled: {err}");
        }
        match reply_rx.recv_timeout(STALL) {
            Ok(reply) => assert_eq!(reply, next(make(i)), "round {i}"),
            Err(err) => panic!("capacity {capacity}: the reply of round {i} stalled: {err}"),
        }
    }
    server.join().unwrap();
}

/// Round trips per ring capacity and message type: a million for each type, spread over
/// the capacities.
const ROUNDS: u64 = 1_000_000 / 3;

#[test]
fn unit_requests_never_stall() {
    for capacity in [16, 32, 64] {
        request_response::<(), Bincode>(capacity, ROUNDS, |_| (), |()| ());
    }
}

#[test]
fn i32_requests_never_stall() {
    for capacity in [16, 32, 64] {
        request_response::<i32, Postcard>(capacity, ROUNDS, |i| i as i32, |n| n.wrapping_add(1));
    }
}

#[test]
fn string_requests_never_stall() {
    // Strings of 1 to 7 digits: frames of 16 and 24 bytes, so some do not fit a 16-byte
    // ring's... and the guess from the last one is often wrong.
    for capacity in [32, 64] {
        request_response::<String, Bincode>(
            capacity,
            ROUNDS,
            |i| (i % 10_000_000).to_string(),
            |s| format!("{}", s.parse::<u64>().unwrap() + 1),
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A stream of values of one size, sent and received in random runs: whenever the
    /// sender fills the ring, it holds ⌊C / frame⌋ frames, never fewer (room lost on the
    /// way to a frame) nor more.
    #[test]
    fn a_typed_ring_holds_as_many_frames_as_fit_at_every_moment(
        log2_capacity in 4u32..10,
        len in 0usize..100,
        runs in proptest::collection::vec((0usize..40, 0usize..40), 1..30),
    ) {
        let capacity = 1usize << log2_capacity;
        let value = vec![1u8; len];
        let encoded = postcard::to_allocvec(&value).unwrap().len();
        let frame = 8 + encoded.next_multiple_of(8);
        prop_assume!(frame <= capacity);
        let bytes = shm_channel::spsc::channel(capacity).unwrap();
        let (mut tx, mut rx) = typed::pair::<Vec<u8>, _, Postcard>(bytes).unwrap();
        let mut held = 0;
        for (sends, receives) in runs {
            for _ in 0..sends {
                match tx.try_send(value.clone()) {
                    Ok(()) => held += 1,
                    Err(TrySendError::Full(_)) => {
                        prop_assert_eq!(held, capacity / frame, "frames of {} in {}", frame, capacity);
                        break;
                    }
                    Err(TrySendError::Send(err)) => prop_assert!(false, "{}", err),
                }
                prop_assert!(held <= capacity / frame, "{} frames of {} in {}", held, frame, capacity);
            }
            for _ in 0..receives.min(held) {
                prop_assert_eq!(rx.try_recv().unwrap(), value.clone());
                held -= 1;
            }
        }
    }
}
