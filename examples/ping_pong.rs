//! Parent and child play ping-pong through a pair of shared-memory channels, then through a
//! pair of pipes, alternating (shm, pipe, shm, pipe, ...), and print the round-trip times.
//!
//! ```text
//! cargo run --release --example ping_pong [round_trips_per_run]
//! ```
//!
//! Each run sends an 8-byte counter to the child, which sends it back incremented. Figures
//! are the median (and min–max) over the runs of one invocation: absolute numbers swing
//! between machines and runs, the ratio is what to read.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::{Duration, Instant};

use shm_channel::typed;

/// Alternated runs of each transport (docs/benchmarks.md: at least 5, median and min–max).
const RUNS: usize = 5;

fn main() -> Result<(), shm_ipc::MainError> {
    let round_trips: u64 = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => 20_000,
    };
    let mut shm = Vec::new();
    let mut pipe = Vec::new();
    for _ in 0..RUNS {
        shm.push(shm_run(round_trips)?);
        pipe.push(pipe_run(round_trips)?);
    }
    let shm = summary(&mut shm, round_trips);
    let pipe = summary(&mut pipe, round_trips);
    println!("{round_trips} round trips of 8 bytes per run, {RUNS} runs each, alternated");
    println!(
        "shared memory: {:>9.2} µs per round trip (min {:.2}, max {:.2})",
        shm.0, shm.1, shm.2
    );
    println!(
        "pipe pair:     {:>9.2} µs per round trip (min {:.2}, max {:.2})",
        pipe.0, pipe.1, pipe.2
    );
    println!("pipe / shared memory: {:.1}x", pipe.0 / shm.0);
    Ok(())
}

/// Median, min and max of the runs, in µs per round trip.
fn summary(runs: &mut [Duration], round_trips: u64) -> (f64, f64, f64) {
    runs.sort();
    let per_trip = |d: Duration| d.as_secs_f64() * 1e6 / round_trips as f64;
    (
        per_trip(runs[runs.len() / 2]),
        per_trip(runs[0]),
        per_trip(runs[runs.len() - 1]),
    )
}

fn shm_run(round_trips: u64) -> Result<Duration, Box<dyn std::error::Error>> {
    let (mut ping, child_ping) = typed::channel::<u64>(1 << 12)?;
    let (child_pong, mut pong) = typed::channel::<u64>(1 << 12)?;
    let mut child = shm_fork::fork_with((child_ping, child_pong), |(mut ping, mut pong)| {
        while let Ok(n) = ping.recv() {
            if pong.send(n + 1).is_err() {
                return 1;
            }
        }
        0
    })?;
    let start = Instant::now();
    for n in 0..round_trips {
        ping.send(n)?;
        let back = pong.recv()?;
        assert_eq!(back, n + 1, "the child answers each ping with ping + 1");
    }
    let elapsed = start.elapsed();
    drop(ping);
    let status = child.wait()?;
    assert!(status.success(), "shm child {status}");
    Ok(elapsed)
}

/// Two pipes: parent → child and child → parent.
fn pipe_pair() -> std::io::Result<((File, File), (File, File))> {
    let open = || -> std::io::Result<(File, File)> {
        let mut fds = [0; 2];
        // SAFETY: `fds` is a valid array of two ints for the kernel to fill in.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned these two fds to us; each gets one owner.
        Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
    };
    Ok((open()?, open()?))
}

fn pipe_run(round_trips: u64) -> Result<Duration, Box<dyn std::error::Error>> {
    let ((mut down_read, mut down_write), (mut up_read, mut up_write)) = pipe_pair()?;
    // The child inherits every fd; it must close the parent's ends, or it would never see
    // the parent close them (it ends with `_exit`, which runs no destructor).
    let parent_ends = [down_write.as_raw_fd(), up_read.as_raw_fd()];
    let mut child = shm_fork::fork(move || {
        for fd in parent_ends {
            // SAFETY: these fds are open in this child and nothing here uses them.
            unsafe { libc::close(fd) };
        }
        let mut buf = [0u8; 8];
        while down_read.read_exact(&mut buf).is_ok() {
            let n = u64::from_le_bytes(buf) + 1;
            if up_write.write_all(&n.to_le_bytes()).is_err() {
                return 1;
            }
        }
        0
    })?;
    // The closure, holding the child's ends, was moved into `fork` and dropped in the
    // parent: the parent now holds only its own ends.
    let start = Instant::now();
    let mut buf = [0u8; 8];
    for n in 0..round_trips {
        down_write.write_all(&n.to_le_bytes())?;
        up_read.read_exact(&mut buf)?;
        assert_eq!(u64::from_le_bytes(buf), n + 1);
    }
    let elapsed = start.elapsed();
    drop(down_write);
    let status = child.wait()?;
    assert!(status.success(), "pipe child {status}");
    Ok(elapsed)
}
