//! Fuzz target `hostile_broadcast`: see `fuzz/logic/script.rs` and `broadcast.rs` (shared with `crates/shm-channel/tests/corpus.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../logic/mod.rs"]
mod logic;

fuzz_target!(
    |data: &[u8]| logic::script::<shm_channel::broadcast::Broadcast>(data, logic::heap_memory)
);
