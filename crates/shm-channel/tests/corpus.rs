//! Replays the checked-in fuzz corpus (`fuzz/corpus/<target>/`) through the same target
//! bodies as the cargo-fuzz binaries (`fuzz/logic/`, included here), so every interesting
//! input found by fuzzing stays a regression test on stable, without cargo-fuzz.
//!
//! The attach and hostile-peer targets (SPSC, MPSC, broadcast) run each input twice: on a heap region (as under
//! the fuzzer) and on a shared mapping between `PROT_NONE` guard pages, where any stray
//! access is a SIGSEGV.

use std::path::{Path, PathBuf};

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

#[test]
fn attach_corpus_replays_cleanly() {
    replay("attach", |data| {
        logic::attach(data, logic::heap_memory);
        logic::attach(data, logic::guarded_memory);
    });
}

#[test]
fn hostile_peer_corpus_replays_cleanly() {
    replay("hostile_peer", |data| {
        logic::script(data, logic::heap_memory);
        logic::script(data, logic::guarded_memory);
    });
}

#[test]
fn hostile_mpsc_corpus_replays_cleanly() {
    replay("hostile_mpsc", |data| {
        logic::mpsc(data, logic::heap_memory);
        logic::mpsc(data, logic::guarded_memory);
    });
}

#[test]
fn hostile_broadcast_corpus_replays_cleanly() {
    replay("hostile_broadcast", |data| {
        logic::broadcast(data, logic::heap_memory);
        logic::broadcast(data, logic::guarded_memory);
    });
}

#[test]
fn codec_corpus_replays_cleanly() {
    replay("codec", logic::codec);
}
