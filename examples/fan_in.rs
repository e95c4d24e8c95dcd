//! Fan-in: N forked producers stream 64-byte messages into one consumer, through one MPSC
//! shared-memory channel and, in the same run, through pipes.
//!
//! ```text
//! cargo run --release --example fan_in [messages-per-run (default 4 M)] [repetitions (default 5)]
//! ```
//!
//! For each producer count (1, 2, 4) three transports run alternately (A B C A B C …):
//!
//! - **shm**: one MPSC channel, a lane per producer (1 MiB of lanes in all); each producer
//!   sends runs of 1024 messages (64 KiB) with `Sender::send_all` (one publication per
//!   run), the consumer releases in batches of an eighth of a lane; every process waits as
//!   `WaitStrategy::for_processes` says for `producers + 1` processes.
//! - **shm bulk**: the same channel carrying `bulk` frames of 1024 messages (64 KiB) each (the
//!   producers batch as a `BufWriter` does; `drain_into` on the consumer).
//! - **buffered pipes** (the best pipe variant, which shm is compared with): one pipe per
//!   producer, written through a 64 KiB `BufWriter`; the consumer `poll`s them and reads
//!   64 KiB at a time.
//! - **one pipe, one `write` per message** (the reference of earlier versions): writes of at
//!   most `PIPE_BUF` bytes are atomic, so messages never interleave.
//!
//! Every message carries its producer and sequence number; the consumer checks that each
//! producer's messages arrive in order and that none is lost. Printed: M msg/s, median and
//! min–max over the repetitions, and the ratio of each shm variant to buffered pipes.

use shm_channel::{Builder, Receiver, Sender};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::time::Instant;

use shm_channel::bulk;
use shm_channel::codec::Plain;
use shm_channel::mpsc::Mpsc;
use shm_channel::Endpoint as _;
use shm_core::notify::{Handshake, WaitStrategy};
use shm_fork::{fork, fork_with, Child};

#[path = "support/mod.rs"]
mod support;

const MSG: usize = 64;
/// Messages per `send_all` run or bulk frame: 64 KiB, as much as a pipe's `BufWriter` holds.
const RUN: usize = 1024;

type Failure = Box<dyn std::error::Error>;

fn main() -> Result<(), shm_ipc::MainError> {
    let mut args = std::env::args().skip(1);
    let total: u64 = args.next().map_or(Ok(4_000_000), |a| a.parse())?;
    let reps: usize = args.next().map_or(Ok(5), |a| a.parse())?;
    println!(
        "fan-in of {total} messages of {MSG} B per run, {reps} runs each, alternated, on {} cores",
        shm_core::notify::available_cores()
    );
    support::header("producers", "M msg/s");
    let mut reference = Vec::new();
    for producers in [1u64, 2, 4] {
        let per = total / producers;
        let rates = support::alternate(
            reps,
            &mut [
                &mut || run_shm(producers, per),
                &mut || run_buffered_pipes(producers, per),
                &mut || run_shm_bulk(producers, per),
                &mut || run_one_pipe(producers, per),
            ],
        )?;
        support::row(
            &format!("{producers}, a frame per message"),
            &rates[0],
            &rates[1],
        );
        support::row(
            &format!("{producers}, bulk: {RUN} per frame"),
            &rates[2],
            &rates[1],
        );
        reference.push((producers, rates));
    }
    for (producers, rates) in reference {
        let (p, lo, hi) = support::summary(&rates[3]);
        println!(
            "reference, {producers} producer(s), one pipe, one write per message: \
             {p:.2} [{lo:.2}-{hi:.2}] M msg/s; shm against it: {:.1}x",
            support::summary(&rates[0]).0 / p
        );
    }
    Ok(())
}

fn message(producer: u64, seq: u64) -> [u8; MSG] {
    let mut m = [0u8; MSG];
    m[..8].copy_from_slice(&producer.to_le_bytes());
    m[8..16].copy_from_slice(&seq.to_le_bytes());
    m
}

/// Checks one message against the per-producer sequence numbers seen so far.
fn check(next: &mut [u64], m: &[u8]) {
    let producer = u64::from_le_bytes(m[..8].try_into().unwrap()) as usize;
    let seq = u64::from_le_bytes(m[8..16].try_into().unwrap());
    assert_eq!(seq, next[producer], "producer {producer} out of order");
    next[producer] += 1;
}

/// Waits for every child; all must have succeeded.
fn reap(children: Vec<Child>) -> Result<(), Failure> {
    for mut child in children {
        assert!(child.wait()?.success());
    }
    Ok(())
}

/// The MPSC channel of the shm variants: a lane per producer, 1 MiB of lanes in all, the
/// wake handshake and every process's waiting as `Handshake::for_processes` and
/// `WaitStrategy::for_processes` say, releases batched by an eighth of a lane.
fn channel(producers: u64) -> Result<(Sender<Mpsc>, Receiver<Mpsc>), Failure> {
    let lanes = (producers as usize).next_power_of_two();
    let capacity = (1 << 20) / lanes;
    let processes = producers as usize + 1;
    let (mut tx, mut rx) = Builder::<Mpsc>::new(capacity)
        .max_senders(lanes)
        .handshake(Handshake::for_processes(processes))
        .create()?;
    let wait = WaitStrategy::for_processes(processes);
    tx.set_wait_strategy(wait);
    rx.set_wait_strategy(wait);
    rx.set_release_batch(capacity / 8);
    Ok((tx, rx))
}

/// The sender of producer `p` of `producers`: a clone, the last one the channel's own (so
/// that the channel needs a lane per producer and no more).
fn sender_for(tx: &mut Option<Sender<Mpsc>>, p: u64, producers: u64) -> Sender<Mpsc> {
    if p + 1 == producers {
        tx.take().expect("one sender per producer")
    } else {
        tx.as_ref()
            .expect("the last producer takes it")
            .try_clone()
            .unwrap()
    }
}

fn run_shm(producers: u64, per: u64) -> Result<f64, Failure> {
    let (tx, mut rx) = channel(producers)?;
    let mut tx = Some(tx);
    let start = Instant::now();
    let children: Vec<Child> = (0..producers)
        .map(|p| {
            fork_with(sender_for(&mut tx, p, producers), move |mut tx| {
                let mut run = vec![[0u8; MSG]; RUN];
                let mut seq = 0;
                while seq < per {
                    let n = RUN.min((per - seq) as usize);
                    for (i, m) in run[..n].iter_mut().enumerate() {
                        *m = message(p, seq + i as u64);
                    }
                    let msgs: Vec<&[u8]> = run[..n].iter().map(|m| m.as_slice()).collect();
                    tx.send_all(&msgs).unwrap();
                    seq += n as u64;
                }
                0
            })
        })
        .collect::<Result<_, _>>()?;
    let mut next = vec![0u64; producers as usize];
    let mut buf = [0u8; MSG];
    let mut received = 0;
    while let Ok(n) = rx.recv_into(&mut buf) {
        check(&mut next, &buf[..n]);
        received += 1;
    }
    let elapsed = start.elapsed();
    assert_eq!(received, producers * per);
    reap(children)?;
    Ok(received as f64 / elapsed.as_secs_f64() / 1e6)
}

fn run_shm_bulk(producers: u64, per: u64) -> Result<f64, Failure> {
    let (tx, rx) = channel(producers)?;
    let mut tx = Some(tx);
    let mut rx = bulk::Receiver::<[u8; MSG], Mpsc, Plain>::try_from(rx)?;
    let start = Instant::now();
    let children: Vec<Child> = (0..producers)
        .map(|p| {
            fork_with(sender_for(&mut tx, p, producers), move |tx| {
                let mut tx = bulk::Sender::<[u8; MSG], Mpsc, Plain>::try_from(tx)
                    .expect("the channel carries these batches");
                let mut run = Vec::with_capacity(RUN);
                let mut seq = 0;
                while seq < per {
                    run.clear();
                    run.extend((seq..per.min(seq + RUN as u64)).map(|s| message(p, s)));
                    tx.send(&run).unwrap();
                    seq += run.len() as u64;
                }
                0
            })
        })
        .collect::<Result<_, _>>()?;
    let mut next = vec![0u64; producers as usize];
    let mut batch = Vec::new();
    let mut received = 0;
    while rx.drain_into(&mut batch, RUN * 8).is_ok() {
        for m in &batch {
            check(&mut next, m);
        }
        received += batch.len() as u64;
        batch.clear();
    }
    let elapsed = start.elapsed();
    assert_eq!(received, producers * per);
    reap(children)?;
    Ok(received as f64 / elapsed.as_secs_f64() / 1e6)
}

/// One pipe per producer, 64 KiB buffers on both ends; the consumer polls them all.
fn run_buffered_pipes(producers: u64, per: u64) -> Result<f64, Failure> {
    let start = Instant::now();
    let mut inputs: Vec<File> = Vec::new();
    let mut children = Vec::new();
    for p in 0..producers {
        let (input, out) = support::pipe()?;
        // The read ends already open are the parent's: the child closes its copies.
        let earlier: Vec<i32> = inputs.iter().map(|f| f.as_raw_fd()).collect();
        children.push(fork(move || {
            for fd in earlier {
                // SAFETY: the child's copy of a read end it never uses, closed once.
                unsafe { libc::close(fd) };
            }
            let mut out = support::buffered(out);
            for seq in 0..per {
                out.write_all(&message(p, seq)).unwrap();
            }
            out.flush().unwrap();
            0
        })?);
        inputs.push(input);
    }
    let mut next = vec![0u64; producers as usize];
    let mut received = 0u64;
    let mut partial: Vec<Vec<u8>> = vec![Vec::new(); producers as usize];
    let mut open: Vec<usize> = (0..inputs.len()).collect();
    let mut block = vec![0u8; support::PIPE_BUFFER];
    while !open.is_empty() {
        let mut fds: Vec<libc::pollfd> = open
            .iter()
            .map(|&i| libc::pollfd {
                fd: inputs[i].as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if ready < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        let mut closed = Vec::new();
        for (k, fd) in fds.iter().enumerate() {
            if fd.revents == 0 {
                continue;
            }
            let i = open[k];
            let n = inputs[i].read(&mut block)?;
            if n == 0 {
                closed.push(i);
                continue;
            }
            let pending = &mut partial[i];
            pending.extend_from_slice(&block[..n]);
            let whole = pending.len() / MSG * MSG;
            for m in pending[..whole].chunks_exact(MSG) {
                check(&mut next, m);
                received += 1;
            }
            pending.drain(..whole);
        }
        open.retain(|i| !closed.contains(i));
    }
    let elapsed = start.elapsed();
    assert_eq!(received, producers * per);
    reap(children)?;
    Ok(received as f64 / elapsed.as_secs_f64() / 1e6)
}

/// One pipe shared by every producer, one `write` per message.
fn run_one_pipe(producers: u64, per: u64) -> Result<f64, Failure> {
    let (mut input, out) = support::pipe()?;
    let start = Instant::now();
    let children: Vec<Child> = (0..producers)
        .map(|p| {
            let mut out = out.try_clone()?;
            Ok(fork(move || {
                for seq in 0..per {
                    // One write of at most PIPE_BUF bytes is atomic: no interleaving.
                    out.write_all(&message(p, seq)).unwrap();
                }
                0
            })?)
        })
        .collect::<Result<_, Failure>>()?;
    drop(out);
    let mut next = vec![0u64; producers as usize];
    let mut received = 0u64;
    support::read_items::<[u8; MSG]>(&mut input, |msgs| {
        for m in msgs {
            check(&mut next, m);
            received += 1;
        }
    })?;
    let elapsed = start.elapsed();
    assert_eq!(received, producers * per);
    reap(children)?;
    Ok(received as f64 / elapsed.as_secs_f64() / 1e6)
}
