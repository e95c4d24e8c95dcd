//! Regression (found by the fault-testing review): ring positions are `u64`s taken over
//! from shared memory when an endpoint attaches, so a hostile peer can start them anywhere
//! that passes the checks — e.g. head = tail = 2^64 − 8. Advancing them with `+=` then
//! overflowed (a panic with overflow checks on). All index arithmetic now wraps; the ring
//! keeps working across the wrap.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use shm_channel::spsc::Spsc;
use shm_channel::{Builder, Receiver, Sender};
use shm_core::{HeapRegion, SharedMemory};

use shm_testkit::layout::spsc::{DATA, HEAD, TAIL};

#[test]
fn attaching_at_positions_near_u64_max_does_not_panic() {
    let memory: Arc<dyn SharedMemory> = Arc::new(HeapRegion::new(DATA + 256).unwrap());
    let (tx, rx) = Builder::<Spsc>::new(256).create_in(memory.clone()).unwrap();
    drop((tx, rx)); // both owners released: anyone may attach
    let near_end = u64::MAX - 7;
    memory
        .atomic_u64(TAIL)
        .unwrap()
        .store(near_end, Ordering::SeqCst);
    memory
        .atomic_u64(HEAD)
        .unwrap()
        .store(near_end, Ordering::SeqCst);
    let mut tx = Sender::<Spsc>::attach(memory.clone()).unwrap();
    let mut rx = Receiver::<Spsc>::attach(memory.clone()).unwrap();
    let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for i in 0..4u8 {
            let _ = tx.try_send(&[i; 16]);
            let _ = rx.try_recv();
        }
    }));
    assert!(
        sent.is_ok(),
        "a hostile starting position made a send or receive panic"
    );
    // And the ring still carries messages intact across the wrap of the positions.
    for i in 0..20u8 {
        tx.try_send(&[i; 24]).unwrap();
        assert_eq!(rx.try_recv().unwrap(), [i; 24]);
    }
}
