//! Fuzz target `codec`: see `fuzz/logic.rs` (shared with `crates/shm-channel/tests/corpus.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../logic.rs"]
mod logic;

fuzz_target!(|data: &[u8]| logic::codec(data));
