//! What the channel's integration tests share beyond `shm-testkit` (which cannot name this
//! crate's types): channels over heap regions, the kit's word access over a
//! `SharedMemory`, endpoint hand-over to forked children, and the hostile-peer harness. Each test binary includes the parts it
//! uses (`mod support;`); not every binary uses every helper.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::Arc;

use shm_channel::{Builder, Flavor, Receiver, RecvTimeoutError, Sender};
use shm_core::{HeapRegion, SharedMemory};
use shm_testkit::layout::Word;
use shm_testkit::Words;

pub mod faults;
pub mod handshake;
pub mod hostile;
pub mod select;

/// A channel's memory, as the kit's [`Words`].
#[derive(Clone, Copy)]
pub struct Mem<'a>(pub &'a dyn SharedMemory);

impl Words for Mem<'_> {
    fn word64(&self, offset: usize) -> Option<&AtomicU64> {
        self.0.atomic_u64(offset).ok()
    }

    fn word32(&self, offset: usize) -> Option<&AtomicU32> {
        self.0.atomic_u32(offset).ok()
    }
}

/// A channel made by `builder` over a heap region of its length (runs under Miri), and the
/// region, for a test to poke.
pub fn heap_channel<F: Flavor>(builder: Builder<F>) -> (Sender<F>, Receiver<F>, Arc<HeapRegion>) {
    let heap = Arc::new(HeapRegion::new(builder.region_len().unwrap()).unwrap());
    let (tx, rx) = builder.create_in(heap.clone()).unwrap();
    (tx, rx, heap)
}

/// Writes the u64 at `offset` of `memory`, as a hostile peer would.
pub fn poke(memory: &dyn SharedMemory, offset: usize, value: u64) {
    Mem(memory).store(Word::u64("poked word", offset), value);
}

/// The u64 at `offset` of `memory`.
pub fn peek(memory: &dyn SharedMemory, offset: usize) -> u64 {
    Mem(memory).load_u64(offset)
}

/// Asserts that the next receive, within a generous 20 s, ends the stream with `end`
/// (`Disconnected`, `PeerDied`, ...).
pub fn assert_ends<F: Flavor>(rx: &mut Receiver<F>, end: F::RecvError) {
    let next = rx.recv_timeout(std::time::Duration::from_secs(20));
    assert_eq!(next, Err(RecvTimeoutError::Recv(end)), "{}", F::NAME);
}

/// Hands `rx` to a forked child that adopts it and never reads (a receiver to kill), and
/// returns once the child owns it. Forks behind the test fork lock.
pub fn adopted_by_idle_child<F: Flavor>(rx: Receiver<F>) -> shm_testkit::TestChild {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};
    let page = shm_core::Region::anonymous(4096).unwrap();
    let ready: &AtomicU32 = page.atomic_u32(0).unwrap();
    let lock = shm_testkit::fork_lock();
    let child = shm_testkit::fork_child(&lock, || {
        if shm_channel::Endpoint::adopt(&rx).is_err() {
            return 1;
        }
        ready.store(1, Ordering::SeqCst);
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let identity = shm_core::liveness::ProcessIdentity::of_pid(child.pid()).unwrap();
    shm_channel::Endpoint::hand_over(&rx, identity).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ready.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the child never adopted the receiver"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(rx);
    child
}
