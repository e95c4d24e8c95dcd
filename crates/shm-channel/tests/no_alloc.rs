//! No heap allocation per message on the steady-state path: byte frames, grants, batches
//! and plain-data messages. A counting global allocator counts the allocations made by the
//! test's own thread while the loops run.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use shm_channel::codec::Plain;
use shm_channel::{spsc, typed};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; it only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = COUNTING.try_with(|on| {
            if on.get() {
                ALLOCATIONS.with(|n| n.set(n.get() + 1));
            }
        });
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = COUNTING.try_with(|on| {
            if on.get() {
                ALLOCATIONS.with(|n| n.set(n.get() + 1));
            }
        });
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations made by this thread while `f` runs.
fn allocations_during(f: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|on| on.set(true));
    f();
    COUNTING.with(|on| on.set(false));
    ALLOCATIONS.with(|n| n.get())
}

#[test]
fn steady_state_paths_do_not_allocate() {
    let (mut tx, mut rx) = spsc::channel(1 << 12).unwrap();
    let (mut ptx, mut prx) =
        typed::pair::<[u64; 4], _, Plain>(spsc::channel(1 << 12).unwrap()).unwrap();
    let msg = [5u8; 100];
    let mut buf = [0u8; 128];
    // Warm-up: identities, pidfds and anything lazily initialised are set up here —
    // among them the pidfd of a sender's first liveness look, 8 ms after its first send.
    let warm = std::time::Instant::now();
    while warm.elapsed() < std::time::Duration::from_millis(30) {
        tx.send(&msg).unwrap();
        rx.recv_into(&mut buf).unwrap();
        ptx.send([0; 4]).unwrap();
        prx.recv().unwrap();
    }
    assert!(rx.try_recv().is_err());

    let count = allocations_during(|| {
        for i in 0..10_000u64 {
            tx.send(&msg).unwrap();
            assert_eq!(rx.recv_into(&mut buf).unwrap(), 100);

            let mut grant = tx.reserve(64).unwrap();
            grant.write_at(0, &i.to_le_bytes()).unwrap();
            grant.commit(8).unwrap();
            let frame = rx.read().unwrap();
            let mut word = [0u8; 8];
            frame.read_at(0, &mut word).unwrap();
            assert_eq!(u64::from_le_bytes(word), i);
            drop(frame);

            tx.send_deferred(&msg[..10]).unwrap();
            tx.send_deferred(&msg[..20]).unwrap();
            tx.flush();
            assert_eq!(rx.recv_into(&mut buf).unwrap(), 10);
            assert_eq!(rx.recv_into(&mut buf).unwrap(), 20);

            ptx.send([i; 4]).unwrap();
            assert_eq!(prx.recv().unwrap(), [i; 4]);
        }
    });
    assert_eq!(count, 0, "allocations on the steady-state path");
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
struct Order {
    seq: u64,
    symbol: String,
    fills: Vec<u32>,
}

fn order(seq: u64) -> Order {
    Order {
        seq,
        symbol: format!("EURUSD-{}", seq % 10),
        fills: vec![10, 20, 30, (seq % 50) as u32],
    }
}

/// A serde value with a `String` and a `Vec`, received into one reused value: after the
/// first, nothing is allocated on the receiving side (the values sent are built before the
/// count starts; the sender's own encoding allocates nothing either).
fn serde_receive_in_place_does_not_allocate<C: shm_channel::codec::Codec<Order>>() {
    let (mut tx, mut rx) = typed::pair::<Order, _, C>(spsc::channel(1 << 12).unwrap()).unwrap();
    let mut got = order(0);
    // Warm-up with the longest encoding sent below: buffers sized once.
    let warm = std::time::Instant::now();
    while warm.elapsed() < std::time::Duration::from_millis(30) {
        tx.send(order(9_999)).unwrap();
        rx.recv_into(&mut got).unwrap();
    }
    let mut to_send: Vec<Order> = (0..10_000).map(order).rev().collect();
    let count = allocations_during(|| {
        for seq in 0..10_000u64 {
            let value = to_send.pop().unwrap();
            tx.send(value).unwrap();
            rx.recv_into(&mut got).unwrap();
            assert_eq!(got.seq, seq);
            assert_eq!(got.fills[3], (seq % 50) as u32);
        }
    });
    assert_eq!(got, order(9_999));
    assert_eq!(count, 0, "allocations receiving {} in place", C::NAME);
}

#[test]
fn serde_values_received_in_place_do_not_allocate() {
    serde_receive_in_place_does_not_allocate::<shm_channel::codec::Bincode>();
    serde_receive_in_place_does_not_allocate::<shm_channel::codec::Postcard>();
}

#[test]
fn counting_allocator_counts() {
    // The harness itself is checked: a Vec allocation is seen.
    let count = allocations_during(|| {
        std::hint::black_box(vec![1u8; 10]);
    });
    assert_eq!(count, 1);
}
