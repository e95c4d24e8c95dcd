//! Garbage anywhere: random words of a channel's memory (header, indices, slots, frame
//! headers, payloads) overwritten with values of the kit's set, between operations, in a
//! forked victim on a guarded mapping.

use std::time::Instant;

use shm_core::SharedMemory;
use shm_testkit::garbage::values;
use shm_testkit::layout::Word;
use shm_testkit::{fork_child, fork_lock, ControlPage, Rng, Words};

use super::{BOUND, CAP};
use crate::support::Mem;

/// Writes garbage into `count` random 8-aligned words of the first `len` bytes of
/// `memory`, biased towards the control block, where most of the interesting words are.
pub fn scatter(memory: &dyn SharedMemory, len: usize, count: usize, rng: &mut Rng) {
    let values = values(CAP);
    for _ in 0..count {
        let r = rng.next_u64();
        let span = if r % 2 == 0 { 1024.min(len) } else { len };
        let offset = ((r >> 8) as usize % span) & !7;
        let garbage = *rng.pick(&values);
        Mem(memory).poke(Word::u64("random word", offset), garbage);
    }
}

/// Runs `f`, panicking if it outlives [`BOUND`] (a call that ignored its deadline).
pub fn bounded<R>(what: &str, f: impl FnOnce() -> R) -> R {
    let start = Instant::now();
    let result = f();
    assert!(start.elapsed() < BOUND, "{what} took {:?}", start.elapsed());
    result
}

/// Runs `victim` in a forked child; its exit status must be 0 (not a panic, not SIGSEGV).
pub fn in_child(victim: impl FnOnce() -> u64) {
    let control = ControlPage::new();
    let lock = fork_lock();
    let child = fork_child(&lock, || {
        let results = victim();
        control.set(8, results);
        0
    });
    let status = child.wait();
    assert_eq!(
        status, 0,
        "victim exited with {status} (139 = SIGSEGV, 101 = panic)"
    );
    eprintln!("{} typed errors from garbage", control.get(8));
}
