//! Fuzz target `hostile_mpsc`: see `fuzz/logic/script.rs` and `mpsc.rs` (shared with `crates/shm-channel/tests/corpus.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../logic/mod.rs"]
mod logic;

fuzz_target!(|data: &[u8]| logic::script::<shm_channel::mpsc::Mpsc>(data, logic::heap_memory));
