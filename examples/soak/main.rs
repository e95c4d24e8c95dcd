//! Soak: sequence-numbered, checksummed messages of random sizes through an SPSC byte
//! channel between two forked processes, while a supervisor kills (SIGKILL) the producer or
//! the consumer now and then and starts a new process that attaches in its place.
//!
//! ```text
//! cargo run --release --example soak -- --messages 100000000 --restarts 20 [--max-len 56]
//! ```
//!
//! Resume protocol, so that "nothing committed is lost or duplicated" can be checked:
//!
//! - The consumer verifies each message (sequence number, checksum, exact bytes) while it
//!   still holds the read grant, records `next = seq + 1` in a control word shared with the
//!   supervisor, and only then releases the frame. A consumer killed between the two leaves
//!   `next` one past a message still in the ring: its successor receives that message once
//!   more and recognises it (`seq == next - 1`) as a redelivery, not a duplicate.
//! - A producer that dies leaves complete, published frames (delivered) and at most one
//!   uncommitted frame (never delivered). The consumer drains the ring until `PeerDied` —
//!   which the channel reports only once every published frame was delivered — and
//!   acknowledges; the supervisor then starts the new producer from the consumer's `next`.
//! - Every other message must arrive exactly once, in order: a sequence number above `next`
//!   is counted as lost, one below as duplicated, a bad checksum or content as corrupted.

use std::time::Duration;

use nix::unistd::{fork, ForkResult, Pid};

mod mpsc_soak;
mod spsc_soak;

/// How long the supervisor waits for a child to come up or to acknowledge, before the run
/// is reported as stuck.
const PATIENCE: Duration = Duration::from_secs(60);

/// The command line.
pub(crate) struct Options {
    pub(crate) messages: u64,
    pub(crate) restarts: u64,
    pub(crate) max_len: usize,
    pub(crate) capacity: usize,
    /// `--producers P`: 0 for the SPSC channel, else P concurrent MPSC producers.
    pub(crate) producers: u64,
}

fn parse() -> Result<Options, String> {
    let mut options = Options {
        messages: 10_000_000,
        restarts: 10,
        max_len: 56,
        capacity: 1 << 16,
        producers: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number: u64 = value.parse().map_err(|e| format!("{flag} {value}: {e}"))?;
        match flag.as_str() {
            "--messages" => options.messages = number,
            "--restarts" => options.restarts = number,
            "--max-len" => options.max_len = number as usize,
            "--capacity" => options.capacity = number as usize,
            "--producers" => options.producers = number,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(options)
}

/// Forks a child running `f`, which `_exit`s with its result.
pub(crate) fn spawn(f: impl FnOnce() -> i32) -> Pid {
    // SAFETY: the supervisor is single-threaded (no lock can be held by another thread at
    // the fork), and the child only runs `f` then `_exit`s without returning.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let code = f();
            // SAFETY: ends the child without running the parent's destructors again.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => child,
    }
}

fn main() {
    let options = match parse() {
        Ok(options) => options,
        Err(err) => {
            eprintln!(
                "soak: {err}\nusage: soak --messages N --restarts K [--max-len B] [--capacity C] \
                 [--producers P (MPSC)]"
            );
            std::process::exit(2);
        }
    };
    std::process::exit(if options.producers > 0 {
        mpsc_soak::run(&options)
    } else {
        spsc_soak::run(&options)
    });
}
