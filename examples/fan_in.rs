//! Fan-in: N forked producers stream 64-byte messages into one consumer, through one MPSC
//! shared-memory channel and, for comparison in the same run, through one pipe.
//!
//! ```text
//! cargo run --release --example fan_in [messages-per-run] [repetitions]
//! ```
//!
//! For each producer count (1, 2, 4) the two transports are run alternately (A B A B …)
//! and the median and min–max of the rates are printed, with the ratio of the medians.
//! Every message carries its producer and sequence number; the consumer checks that each
//! producer's messages arrive in order and that none is lost.

use std::time::Instant;

use shm_channel::mpsc;
use shm_fork::{fork, fork_with, Child};

const MSG: usize = 64;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let total: u64 = args.next().map_or(Ok(2_000_000), |a| a.parse())?;
    let reps: usize = args.next().map_or(Ok(5), |a| a.parse())?;
    println!("fan-in of {total} messages of {MSG} B per run, {reps} runs each (M msg/s)");
    println!("producers | shm mpsc median [min-max] | pipe median [min-max] | shm/pipe");
    for producers in [1u64, 2, 4] {
        let (mut shm, mut pipe) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            shm.push(run_shm(producers, total / producers)?);
            pipe.push(run_pipe(producers, total / producers)?);
        }
        let (s, p) = (summary(&mut shm), summary(&mut pipe));
        println!(
            "{producers:>9} | {:>7.2} [{:.2}-{:.2}] | {:>7.2} [{:.2}-{:.2}] | {:.1}x",
            s.0,
            s.1,
            s.2,
            p.0,
            p.1,
            p.2,
            s.0 / p.0
        );
    }
    Ok(())
}

/// Median, min and max, in M msg/s.
fn summary(rates: &mut [f64]) -> (f64, f64, f64) {
    rates.sort_by(f64::total_cmp);
    (rates[rates.len() / 2], rates[0], rates[rates.len() - 1])
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

fn run_shm(producers: u64, per: u64) -> Result<f64, Box<dyn std::error::Error>> {
    let (tx, mut rx) = mpsc::channel(1 << 20)?;
    let start = Instant::now();
    let children: Vec<Child> = (0..producers)
        .map(|p| {
            fork_with(tx.try_clone().unwrap(), move |mut tx| {
                for seq in 0..per {
                    tx.send(&message(p, seq)).unwrap();
                }
                0
            })
        })
        .collect::<Result<_, _>>()?;
    drop(tx);
    let mut next = vec![0u64; producers as usize];
    let mut buf = [0u8; MSG];
    let mut received = 0;
    while let Ok(n) = rx.recv_into(&mut buf) {
        check(&mut next, &buf[..n]);
        received += 1;
    }
    let elapsed = start.elapsed();
    assert_eq!(received, producers * per);
    for mut child in children {
        assert!(child.wait()?.success());
    }
    Ok(received as f64 / elapsed.as_secs_f64() / 1e6)
}

fn run_pipe(producers: u64, per: u64) -> Result<f64, Box<dyn std::error::Error>> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors `pipe` writes.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    let (read_fd, write_fd) = (fds[0], fds[1]);
    let start = Instant::now();
    let children: Vec<Child> = (0..producers)
        .map(|p| {
            fork(move || {
                for seq in 0..per {
                    let m = message(p, seq);
                    // One write of at most PIPE_BUF bytes is atomic: messages never interleave.
                    // SAFETY: `m` is valid for `MSG` bytes; `write_fd` is our open pipe end.
                    let n = unsafe { libc::write(write_fd, m.as_ptr().cast(), MSG) };
                    assert_eq!(n, MSG as isize);
                }
                0
            })
        })
        .collect::<Result<_, _>>()?;
    // SAFETY: the children hold their own copies; the parent's write end is not used.
    unsafe { libc::close(write_fd) };
    let mut next = vec![0u64; producers as usize];
    let mut buf = vec![0u8; 1 << 16];
    let (mut filled, mut received) = (0usize, 0u64);
    loop {
        // SAFETY: `buf[filled..]` is valid for writes of `buf.len() - filled` bytes.
        let n = unsafe {
            libc::read(
                read_fd,
                buf[filled..].as_mut_ptr().cast(),
                buf.len() - filled,
            )
        };
        if n <= 0 {
            break;
        }
        filled += n as usize;
        let whole = filled / MSG * MSG;
        for m in buf[..whole].chunks_exact(MSG) {
            check(&mut next, m);
            received += 1;
        }
        buf.copy_within(whole..filled, 0);
        filled -= whole;
    }
    let elapsed = start.elapsed();
    // SAFETY: closing our own descriptor once.
    unsafe { libc::close(read_fd) };
    assert_eq!(received, producers * per);
    for mut child in children {
        assert!(child.wait()?.success());
    }
    Ok(received as f64 / elapsed.as_secs_f64() / 1e6)
}
