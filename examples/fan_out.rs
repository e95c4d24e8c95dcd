//! Fan-out: one process streams 64-byte messages to 2 reader processes, through one
//! broadcast shared-memory channel (back-pressure, every reader sees every message) and,
//! in the same run, through two pipes (the sender writes each message to both).
//!
//! ```text
//! cargo run --release --example fan_out [messages-per-run (default 4 M)] [repetitions (default 5)]
//! ```
//!
//! Transports, run alternately (A B C … A B C …):
//!
//! - **shm, a frame per message**: `Sender::send_all` in runs of 1024 messages (64 KiB,
//!   one wake check per run); readers `recv_into` message by message, storing their
//!   cursor once per eighth of the ring (`set_release_batch`).
//! - **shm bulk**: the same channel carrying `bulk` frames of 1024 messages (64 KiB);
//!   readers `drain_into`.
//! - **buffered pipes** (the best pipe variant, which shm is compared with): each pipe
//!   written through a 64 KiB `BufWriter`, read 64 KiB at a time.
//! - **pipes, one `write` per message** (the reference of earlier versions).
//!
//! Printed: messages per second delivered to *each* reader (from the start of sending
//! until both readers have checked the last one), median and min–max over the
//! repetitions, and the ratio of each shm variant to buffered pipes. Every message carries
//! its sequence number; each reader checks that none is lost, duplicated or reordered.
//! Every process waits as `WaitStrategy::for_processes` says for 3 processes.

use shm_channel::Builder;
use std::io::Write;
use std::time::Instant;

use shm_channel::broadcast::{Broadcast, Policy};
use shm_channel::bulk;
use shm_channel::codec::Plain;
use shm_channel::Endpoint as _;
use shm_core::notify::{Handshake, WaitStrategy};
use shm_fork::{fork, fork_with, Child};

#[path = "support/mod.rs"]
mod support;

const MSG: usize = 64;
const READERS: usize = 2;
/// Messages per `send_all` run or bulk frame: 64 KiB, as much as a pipe's `BufWriter` holds.
const RUN: usize = 1024;

type Failure = Box<dyn std::error::Error>;

fn main() -> Result<(), shm_ipc::MainError> {
    let mut args = std::env::args().skip(1);
    let total: u64 = args.next().map_or(Ok(4_000_000), |a| a.parse())?;
    let reps: usize = args.next().map_or(Ok(5), |a| a.parse())?;
    println!(
        "fan-out of {total} messages of {MSG} B to {READERS} reader processes, {reps} runs each, \
         alternated, on {} cores",
        shm_core::notify::available_cores()
    );
    let rates = support::alternate(
        reps,
        &mut [
            &mut || run_shm(total, false),
            &mut || run_pipes(total, true),
            &mut || run_shm(total, true),
            &mut || run_pipes(total, false),
        ],
    )?;
    support::header("M msg/s per reader", "M msg/s");
    support::row("shm, a frame per message", &rates[0], &rates[1]);
    support::row(&format!("shm bulk, {RUN} per frame"), &rates[2], &rates[1]);
    let (p, lo, hi) = support::summary(&rates[3]);
    println!(
        "reference: pipes, one write per message: {p:.2} [{lo:.2}-{hi:.2}] M msg/s; \
         shm (a frame per message) against it: {:.1}x",
        support::summary(&rates[0]).0 / p
    );
    Ok(())
}

fn message(seq: u64) -> [u8; MSG] {
    let mut m = [0u8; MSG];
    m[..8].copy_from_slice(&seq.to_le_bytes());
    m
}

fn seq_of(m: &[u8]) -> u64 {
    u64::from_le_bytes(m[..8].try_into().unwrap())
}

/// Checks the next message a reader got.
fn check(next: &mut u64, m: &[u8]) {
    assert_eq!(seq_of(m), *next, "lost or reordered");
    *next += 1;
}

/// The next run of messages from `seq` on: `RUN` of them, or what is left of `total`.
fn fill(run: &mut Vec<[u8; MSG]>, seq: u64, total: u64) {
    run.clear();
    run.extend((seq..total.min(seq + RUN as u64)).map(message));
}

fn run_shm(total: u64, bulk_frames: bool) -> Result<f64, Failure> {
    // More processes than cores wait with the `SeqCst` handshake (`Handshake::for_processes`).
    let (mut tx, first) = Builder::<Broadcast>::new(1 << 20)
        .policy(Policy::BackPressure)
        .handshake(Handshake::for_processes(READERS + 1))
        .create()?;
    let wait = WaitStrategy::for_processes(READERS + 1);
    tx.set_wait_strategy(wait);
    let mut receivers = vec![first];
    while receivers.len() < READERS {
        receivers.push(tx.subscribe()?);
    }
    let children: Vec<Child> = receivers
        .into_iter()
        .map(|mut rx| {
            rx.set_wait_strategy(wait);
            // Store the cursor once per batch of an eighth of the ring, not per message.
            rx.set_release_batch(1 << 17);
            fork_with(rx, move |rx| {
                let mut next = 0u64;
                if bulk_frames {
                    let mut rx = bulk::Receiver::<[u8; MSG], Broadcast, Plain>::try_from(rx)
                        .expect("the channel carries these batches");
                    let mut batch = Vec::new();
                    while rx.drain_into(&mut batch, RUN * 8).is_ok() {
                        batch.iter().for_each(|m| check(&mut next, m));
                        batch.clear();
                    }
                } else {
                    let mut rx = rx;
                    let mut buf = [0u8; MSG];
                    while let Ok(n) = rx.recv_into(&mut buf) {
                        check(&mut next, &buf[..n]);
                    }
                }
                i32::from(next != total)
            })
        })
        .collect::<Result<_, _>>()?;
    let start = Instant::now();
    let mut run = Vec::with_capacity(RUN);
    let mut seq = 0;
    if bulk_frames {
        let mut tx = bulk::Sender::<[u8; MSG], Broadcast, Plain>::try_from(tx)?;
        while seq < total {
            fill(&mut run, seq, total);
            tx.send(&run)?;
            seq += run.len() as u64;
        }
    } else {
        while seq < total {
            fill(&mut run, seq, total);
            let msgs: Vec<&[u8]> = run.iter().map(|m| m.as_slice()).collect();
            tx.send_all(&msgs)?;
            seq += run.len() as u64;
        }
        drop(tx);
    }
    for mut child in children {
        assert!(child.wait()?.success());
    }
    Ok(total as f64 / start.elapsed().as_secs_f64() / 1e6)
}

/// Two pipes, both written by the sender: through 64 KiB buffers (`buffered`) or with one
/// `write` per message; the readers read 64 KiB at a time.
fn run_pipes(total: u64, buffered: bool) -> Result<f64, Failure> {
    let mut outs = Vec::new();
    let mut children = Vec::new();
    for _ in 0..READERS {
        let (mut input, out) = support::pipe()?;
        // The write ends (this pipe's and the earlier ones) are the parent's: a reader
        // must not hold them, or it (or the other reader) would never see end-of-file.
        let mut parents: Vec<i32> = outs.iter().map(std::os::fd::AsRawFd::as_raw_fd).collect();
        parents.push(std::os::fd::AsRawFd::as_raw_fd(&out));
        children.push(fork(move || {
            for fd in parents {
                // SAFETY: the child's copy of a write end it never uses, closed once.
                unsafe { libc::close(fd) };
            }
            let mut next = 0u64;
            support::read_items::<[u8; MSG]>(&mut input, |msgs| {
                msgs.iter().for_each(|m| check(&mut next, m))
            })
            .unwrap();
            i32::from(next != total)
        })?);
        outs.push(out);
    }
    let start = Instant::now();
    if buffered {
        let mut outs: Vec<_> = outs.into_iter().map(support::buffered).collect();
        for seq in 0..total {
            let m = message(seq);
            for out in &mut outs {
                out.write_all(&m)?;
            }
        }
        for out in &mut outs {
            out.flush()?;
        }
        // The write ends close: the readers see end-of-file.
        drop(outs);
    } else {
        for seq in 0..total {
            let m = message(seq);
            for out in &mut outs {
                out.write_all(&m)?;
            }
        }
        drop(outs);
    }
    for mut child in children {
        assert!(child.wait()?.success());
    }
    Ok(total as f64 / start.elapsed().as_secs_f64() / 1e6)
}
