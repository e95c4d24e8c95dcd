//! Fuzz target `hostile_broadcast`: see `fuzz/logic/broadcast_script.rs` (shared with `crates/shm-channel/tests/corpus.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../logic/mod.rs"]
mod logic;

fuzz_target!(|data: &[u8]| logic::broadcast(data, logic::heap_memory));
