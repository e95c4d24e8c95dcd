//! The hot send path, end to end: a stream of 64-byte messages through `spsc::channel`
//! from this process (CPU 0) to a forked child (CPU 1), `send` and `recv_into` in plain
//! loops, one rate (M msg/s) per line. No harness around the loops, so a change of a few
//! nanoseconds per send shows.
//!
//! `cargo bench --bench send_path -- [messages] [repetitions]` (default 20 000 000 × 5).
//! To compare two builds, run their binaries alternately (A B A B …) and compare medians:
//! absolute rates swing run to run on shared machines, ratios within one sitting do not.

use std::time::Instant;

use shm_ipc::channel::spsc;
use shm_ipc::fork::fork_with;

const MSG: usize = 64;
const RING: usize = 1 << 16;

/// Pins the calling thread (and the processes it forks from now on) to `cpu`.
fn pin(cpu: usize) {
    // SAFETY: `set` is a zeroed `cpu_set_t` the CPU_* macros and the call only read and
    // write within its size; pid 0 is the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let messages: u64 = args.next().map_or(Ok(20_000_000), |a| a.parse())?;
    let reps: u32 = args.next().map_or(Ok(5), |a| a.parse())?;
    for _ in 0..reps {
        let (mut tx, rx) = spsc::channel(RING)?;
        pin(1);
        let mut child = fork_with(rx, move |mut rx| {
            let mut buf = [0u8; MSG];
            let mut got = 0u64;
            while let Ok(n) = rx.recv_into(&mut buf) {
                got += (n == MSG) as u64;
            }
            i32::from(got != messages)
        })?;
        pin(0);
        let msg = [7u8; MSG];
        let start = Instant::now();
        for _ in 0..messages {
            tx.send(&msg)?;
        }
        drop(tx);
        let status = child.wait()?;
        let elapsed = start.elapsed();
        if !status.success() {
            return Err(format!("the child did not get every message: {status}").into());
        }
        println!("{:.2}", messages as f64 / elapsed.as_secs_f64() / 1e6);
    }
    Ok(())
}
