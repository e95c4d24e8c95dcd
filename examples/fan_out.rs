//! Fan-out: one process streams 64-byte messages to 2 reader processes, through one
//! broadcast shared-memory channel (back-pressure, every reader sees every message) and,
//! for comparison in the same run, through two pipes (the sender writes each message to
//! both).
//!
//! ```text
//! cargo run --release --example fan_out [messages-per-run] [repetitions]
//! ```
//!
//! The two transports are run alternately (A B A B …); the median and min–max of the
//! rates (messages per second delivered to *each* reader, from the start of sending until
//! both readers have checked the last one) are printed, with the ratio of the medians.
//! Every message carries its sequence number; each reader checks that none is lost,
//! duplicated or reordered.

use std::time::Instant;

use shm_channel::broadcast::{self, Policy};
use shm_fork::{fork, fork_with, Child};

const MSG: usize = 64;
const READERS: usize = 2;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let total: u64 = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let reps: usize = args.next().map_or(Ok(5), |a| a.parse())?;
    println!(
        "fan-out of {total} messages of {MSG} B to {READERS} reader processes, {reps} runs each"
    );
    let (mut shm, mut pipe) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        shm.push(run_shm(total)?);
        pipe.push(run_pipe(total)?);
    }
    let (s, p) = (summary(&mut shm), summary(&mut pipe));
    println!("M msg/s per reader | shm broadcast median [min-max] | 2 pipes median [min-max] | shm/pipes");
    println!(
        "                   | {:>7.2} [{:.2}-{:.2}] | {:>7.2} [{:.2}-{:.2}] | {:.1}x",
        s.0,
        s.1,
        s.2,
        p.0,
        p.1,
        p.2,
        s.0 / p.0
    );
    Ok(())
}

/// Median, min and max, in M msg/s.
fn summary(rates: &mut [f64]) -> (f64, f64, f64) {
    rates.sort_by(f64::total_cmp);
    (rates[rates.len() / 2], rates[0], rates[rates.len() - 1])
}

fn message(seq: u64) -> [u8; MSG] {
    let mut m = [0u8; MSG];
    m[..8].copy_from_slice(&seq.to_le_bytes());
    m
}

fn seq_of(m: &[u8]) -> u64 {
    u64::from_le_bytes(m[..8].try_into().unwrap())
}

fn run_shm(total: u64) -> Result<f64, Box<dyn std::error::Error>> {
    let (mut tx, first) = broadcast::channel(1 << 20, Policy::BackPressure)?;
    let mut receivers = vec![first];
    while receivers.len() < READERS {
        receivers.push(tx.subscribe()?);
    }
    let children: Vec<Child> = receivers
        .into_iter()
        .map(|rx| {
            fork_with(rx, move |mut rx| {
                let mut next = 0u64;
                while let Ok(m) = rx.recv() {
                    assert_eq!(seq_of(&m), next, "lost or reordered");
                    next += 1;
                }
                i32::from(next != total)
            })
        })
        .collect::<Result<_, _>>()?;
    let start = Instant::now();
    for seq in 0..total {
        tx.send(&message(seq))?;
    }
    drop(tx);
    for mut child in children {
        assert!(child.wait()?.success());
    }
    Ok(total as f64 / start.elapsed().as_secs_f64() / 1e6)
}

fn run_pipe(total: u64) -> Result<f64, Box<dyn std::error::Error>> {
    let mut write_fds = Vec::new();
    let mut children = Vec::new();
    for _ in 0..READERS {
        let mut fds = [0i32; 2];
        // SAFETY: `fds` has room for the two descriptors `pipe` writes.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        let (read_fd, write_fd) = (fds[0], fds[1]);
        let earlier = write_fds.clone();
        children.push(fork(move || {
            // SAFETY: the child's copies of the write ends (its own and the earlier
            // readers'), closed once so that each reader sees end-of-file.
            unsafe { libc::close(write_fd) };
            for fd in earlier {
                // SAFETY: as above.
                unsafe { libc::close(fd) };
            }
            let mut buf = vec![0u8; 1 << 16];
            let (mut filled, mut next) = (0usize, 0u64);
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
                    assert_eq!(seq_of(m), next, "lost or reordered");
                    next += 1;
                }
                buf.copy_within(whole..filled, 0);
                filled -= whole;
            }
            i32::from(next != total)
        })?);
        // SAFETY: the parent does not read; the child holds its own copy.
        unsafe { libc::close(read_fd) };
        write_fds.push(write_fd);
    }
    let start = Instant::now();
    for seq in 0..total {
        let m = message(seq);
        for &fd in &write_fds {
            // SAFETY: `m` is valid for `MSG` bytes; `fd` is our open write end.
            let n = unsafe { libc::write(fd, m.as_ptr().cast(), MSG) };
            assert_eq!(n, MSG as isize);
        }
    }
    for fd in write_fds {
        // SAFETY: closing our own descriptor once.
        unsafe { libc::close(fd) };
    }
    for mut child in children {
        assert!(child.wait()?.success());
    }
    Ok(total as f64 / start.elapsed().as_secs_f64() / 1e6)
}
