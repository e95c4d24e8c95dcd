//! The bodies of the fuzz targets, shared by the cargo-fuzz binaries (`fuzz/fuzz_targets/`)
//! and by `crates/shm-channel/tests/corpus.rs`, which replays the checked-in corpus as an
//! ordinary test. Both include this module with `#[path]`, so the logic exists once.
//!
//! | target | module | what |
//! |---|---|---|
//! | `attach` | [`attach`] | attaching to arbitrary header bytes (SPSC) |
//! | `hostile_peer` | [`script`] over [`spsc`] | a script of operations and hostile writes, SPSC |
//! | `hostile_mpsc` | [`script`] over [`mpsc`] | the same script, MPSC (several senders) |
//! | `hostile_broadcast` | [`script`] over [`broadcast`] | the same script, broadcast (several receivers) |
//! | `codec` | [`codec`] | codec input |
//!
//! Offsets, the garbage values and the message contents come from `shm-testkit`.
//!
//! Every target must end in `Ok` or a clean `Err` for any input: a panic, a hang or an
//! out-of-bounds access (AddressSanitizer under cargo-fuzz, guard pages in the replay) is a
//! finding. Hangs are ruled out by construction — only `try_*` and `*_timeout` calls with
//! tiny timeouts — and each call is checked against a generous bound.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shm_channel::{
    RecvError, RecvIntoError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};
use shm_core::{HeapRegion, SharedMemory};
use shm_testkit::garbage::{frame_extras, values};
use shm_testkit::layout::Word;
use shm_testkit::Words;

mod attach;
mod broadcast;
mod codec;
mod mpsc;
mod script;
mod spsc;

// Each fuzz binary calls one of these; the corpus test calls them all.
#[allow(unused_imports)]
pub use {attach::attach, codec::codec, script::run as script, script::Scripted};

/// Longest any single call may take, though every call here has a deadline of at most a
/// millisecond: far beyond any scheduling delay, so only a real hang trips it.
const CALL_BOUND: Duration = Duration::from_secs(10);

/// The memory a target runs on: `len` usable bytes, zeroed.
pub type MakeMemory = fn(usize) -> Arc<dyn SharedMemory>;

/// A private heap buffer (AddressSanitizer sees any access past its end).
pub fn heap_memory(len: usize) -> Arc<dyn SharedMemory> {
    Arc::new(HeapRegion::new(len).expect("heap region"))
}

/// A shared mapping between `PROT_NONE` guard pages (a stray access faults at once).
pub fn guarded_memory(len: usize) -> Arc<dyn SharedMemory> {
    Arc::new(
        shm_core::Region::options(len)
            .guard_pages(true)
            .anonymous()
            .expect("guarded region"),
    )
}

/// Runs `f`, panicking if it outlives [`CALL_BOUND`] (a call that ignores its deadline).
fn timed<R>(what: &str, f: impl FnOnce() -> R) -> R {
    let start = Instant::now();
    let result = f();
    let took = start.elapsed();
    assert!(took < CALL_BOUND, "{what} took {took:?}");
    result
}

/// A cursor over the fuzz input; reads past the end give zeros.
pub struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }
}

/// A channel's memory, as the kit's [`Words`].
#[derive(Clone, Copy)]
struct Mem<'a>(&'a dyn SharedMemory);

impl Words for Mem<'_> {
    fn word64(&self, offset: usize) -> Option<&AtomicU64> {
        self.0.atomic_u64(offset).ok()
    }

    fn word32(&self, offset: usize) -> Option<&AtomicU32> {
        self.0.atomic_u32(offset).ok()
    }
}

fn load_u64(memory: &dyn SharedMemory, offset: usize) -> u64 {
    Mem(memory).load_u64(offset)
}

fn poke_u64(memory: &dyn SharedMemory, offset: usize, value: u64) {
    Mem(memory).store(Word::u64("fuzzed word", offset & !7), value);
}

fn poke_u32(memory: &dyn SharedMemory, offset: usize, value: u32) {
    Mem(memory).store(Word::u32("fuzzed word", offset & !3), u64::from(value));
}

/// A value from the kit's garbage set (and its extras, and our own identity: a live owner)
/// for the word that holds `here` now.
fn special(pick: u8, here: u64, capacity: usize) -> u64 {
    let mut set = values(capacity);
    set.extend(frame_extras(capacity));
    match set.get(usize::from(pick) % (set.len() + 1)) {
        Some(garbage) => garbage.apply(here),
        None => shm_core::liveness::ProcessIdentity::current().map_or(1, |me| me.to_raw()),
    }
}

/// Writes an interesting value (see [`special`]) into `word`.
fn poke_special(memory: &dyn SharedMemory, word: Word, pick: u8, capacity: usize) {
    let mem = Mem(memory);
    let value = special(pick, mem.load(word), capacity);
    mem.store(word, value);
}

/// Largest payload of a ring of `capacity` bytes with 8-byte frame headers.
fn max_payload(capacity: usize) -> usize {
    capacity - 8
}

/// A failed call's outcome, whichever call made it (each has its own error type).
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// `Full`, `Empty` or `Timeout`: nothing happened in time.
    NotNow,
    Disconnected,
    TooLarge,
    /// `recv_into`'s buffer was too small for a message of this length.
    TooSmall(usize),
    /// A broadcast receiver missed this many messages.
    Lagged(u64),
    /// Anything else, by its `Debug` form.
    Other(String),
}

/// The [`Failure`] an error stands for.
pub trait Classify: std::fmt::Debug {
    fn classify(&self) -> Failure;
}

impl Classify for SendError<()> {
    fn classify(&self) -> Failure {
        match self {
            SendError::Disconnected(()) => Failure::Disconnected,
            SendError::TooLarge((), _) => Failure::TooLarge,
            other => Failure::Other(format!("{other:?}")),
        }
    }
}

impl Classify for RecvError {
    fn classify(&self) -> Failure {
        match self {
            RecvError::Disconnected => Failure::Disconnected,
            other => Failure::Other(format!("{other:?}")),
        }
    }
}

impl Classify for shm_channel::broadcast::RecvError {
    fn classify(&self) -> Failure {
        match self {
            Self::Lagged(n) => Failure::Lagged(*n),
            Self::Recv(e) => e.classify(),
        }
    }
}

/// A non-blocking or timed call: "not now", or what the blocking call says.
impl<E: Classify> Classify for TrySendError<(), E> {
    fn classify(&self) -> Failure {
        match self {
            TrySendError::Full(()) => Failure::NotNow,
            TrySendError::Send(e) => e.classify(),
        }
    }
}

impl<E: Classify> Classify for SendTimeoutError<(), E> {
    fn classify(&self) -> Failure {
        match self {
            SendTimeoutError::Timeout(()) => Failure::NotNow,
            SendTimeoutError::Send(e) => e.classify(),
        }
    }
}

impl<E: Classify> Classify for TryRecvError<E> {
    fn classify(&self) -> Failure {
        match self {
            TryRecvError::Empty => Failure::NotNow,
            TryRecvError::Recv(e) => e.classify(),
        }
    }
}

impl<E: Classify> Classify for RecvTimeoutError<E> {
    fn classify(&self) -> Failure {
        match self {
            RecvTimeoutError::Timeout => Failure::NotNow,
            RecvTimeoutError::Recv(e) => e.classify(),
        }
    }
}

impl<E: Classify> Classify for RecvIntoError<E> {
    fn classify(&self) -> Failure {
        match self {
            RecvIntoError::BufferTooSmall { needed } => Failure::TooSmall(*needed),
            RecvIntoError::Recv(e) => e.classify(),
        }
    }
}

/// Checks what a receive returned on a ring of `capacity`: a message no longer than the
/// ring can hold, or an error.
fn check_received<E>(result: &Result<Vec<u8>, E>, capacity: usize) {
    if let Ok(msg) = result {
        assert!(msg.len() <= max_payload(capacity), "{} bytes", msg.len());
    }
}

/// The contents of the `n`-th message a script makes, of `len` bytes.
fn contents(n: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (n.wrapping_mul(31).wrapping_add(i as u64)) as u8)
        .collect()
}
