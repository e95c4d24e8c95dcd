//! Fuzz target `hostile_mpsc`: see `fuzz/logic/mpsc_script.rs` (shared with `crates/shm-channel/tests/corpus.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../logic/mod.rs"]
mod logic;

fuzz_target!(|data: &[u8]| logic::mpsc(data, logic::heap_memory));
