//! Replays the checked-in fuzz corpus (`fuzz/corpus/<target>/`) through the same target
//! bodies as the cargo-fuzz binaries (`fuzz/logic/`, included here), so every interesting
//! input found by fuzzing stays a regression test on stable, without cargo-fuzz.
//!
//! The attach target and the hostile-peer script (one script over the flavor, run for SPSC,
//! MPSC and broadcast) run each input twice: on a heap region (as under the fuzzer) and on
//! a shared mapping between `PROT_NONE` guard pages, where any stray access is a SIGSEGV.

use std::path::{Path, PathBuf};

use shm_channel::broadcast::Broadcast;
use shm_channel::mpsc::Mpsc;
use shm_channel::spsc::Spsc;

#[path = "../../../fuzz/logic/mod.rs"]
mod logic;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

fn replay(target: &str, run: impl Fn(&[u8])) {
    let inputs = corpus(target);
    for (path, bytes) in &inputs {
        eprintln!("{target}: {}", path.display());
        run(bytes);
    }
    eprintln!("{target}: {} inputs replayed", inputs.len());
}

/// Replays `target`'s corpus through `run`, on a heap region (as under the fuzzer) and on
/// a guarded shared mapping.
fn replay_on_both(target: &str, run: fn(&[u8], logic::MakeMemory)) {
    replay(target, |data| {
        run(data, logic::heap_memory);
        run(data, logic::guarded_memory);
    });
}

#[test]
fn attach_corpus_replays_cleanly() {
    replay_on_both("attach", logic::attach);
}

#[test]
fn hostile_peer_corpus_replays_cleanly() {
    replay_on_both("hostile_peer", logic::script::<Spsc>);
}

#[test]
fn hostile_mpsc_corpus_replays_cleanly() {
    replay_on_both("hostile_mpsc", logic::script::<Mpsc>);
}

#[test]
fn hostile_broadcast_corpus_replays_cleanly() {
    replay_on_both("hostile_broadcast", logic::script::<Broadcast>);
}

#[test]
fn codec_corpus_replays_cleanly() {
    replay("codec", logic::codec);
}
