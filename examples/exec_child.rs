//! A parent that starts *its own binary again* (a fresh program: `exec`, not `fork`) and
//! streams bytes to it through shared memory, then checks the child got every byte.
//!
//! ```text
//! cargo run --release --example exec_child [mebibytes]
//! ```
//!
//! The parent creates two channels in memfds (a byte stream down, a message channel up),
//! passes the child's ends with `shm_fork::exec::Command::pass`, and spawns. The child,
//! started with `--child`, takes them by name with `shm_fork::exec::inherited`, reads the
//! stream to its end, and sends back how many bytes it read and their checksum.

use shm_channel::{Builder, Sender};
use std::io::{Read, Write};

use shm_channel::spsc;
use shm_channel::stream::{self, StreamReader};
use shm_fork::exec::{inherited, Command};

/// The child mode's argument.
const CHILD: &str = "--child";

fn main() -> Result<(), shm_ipc::MainError> {
    let mut args = std::env::args().skip(1);
    match args.next() {
        Some(arg) if arg == CHILD => child()?,
        arg => parent(arg.map(|a| a.parse()).transpose()?.unwrap_or(64))?,
    }
    Ok(())
}

/// FNV-1a, 64 bits.
fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    hash
}

const FNV_SEED: u64 = 0xcbf2_9ce4_8422_2325;

fn parent(mebibytes: u64) -> Result<(), Box<dyn std::error::Error>> {
    let (mut bytes, child_bytes) = stream::pipe_memfd(1 << 20)?;
    let (child_report, mut report) = Builder::<spsc::Spsc>::new(4096).create_memfd()?;

    let mut command = Command::new(std::env::current_exe()?);
    command.arg(CHILD);
    command.pass("bytes", child_bytes)?;
    command.pass("report", child_report)?;
    let mut child = command.spawn()?;

    // 64 KiB of a changing pattern per write.
    let mut block = vec![0u8; 1 << 16];
    let mut hash = FNV_SEED;
    let total = mebibytes << 20;
    let started = std::time::Instant::now();
    for i in 0..total / block.len() as u64 {
        for (j, b) in block.iter_mut().enumerate() {
            *b = (i as usize).wrapping_mul(31).wrapping_add(j) as u8;
        }
        hash = fnv(hash, &block);
        bytes.write_all(&block)?;
    }
    drop(bytes); // end of stream
    let answer = report.recv()?;
    let elapsed = started.elapsed();
    let status = child.wait()?;

    let (got, got_hash) = decode(&answer).ok_or("the child's report is malformed")?;
    if got != total || got_hash != hash || !status.success() {
        return Err(format!(
            "child {} ({status}) read {got} bytes, hash {got_hash:#x}; sent {total}, hash {hash:#x}",
            child.pid()
        )
        .into());
    }
    println!(
        "exec_child: streamed {mebibytes} MiB to child {} (a fresh exec of this program) in {:.1} ms; it read every byte, checksum {hash:#018x} equal, {status}",
        child.pid(),
        elapsed.as_secs_f64() * 1e3
    );
    Ok(())
}

fn child() -> Result<(), Box<dyn std::error::Error>> {
    let mut bytes: StreamReader = inherited("bytes")?;
    let mut report: Sender<spsc::Spsc> = inherited("report")?;
    let mut buf = vec![0u8; 1 << 16];
    let (mut total, mut hash) = (0u64, FNV_SEED);
    loop {
        let n = bytes.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        hash = fnv(hash, &buf[..n]);
    }
    let mut answer = total.to_le_bytes().to_vec();
    answer.extend_from_slice(&hash.to_le_bytes());
    report.send(&answer)?;
    Ok(())
}

fn decode(answer: &[u8]) -> Option<(u64, u64)> {
    let total = u64::from_le_bytes(answer.get(..8)?.try_into().ok()?);
    let hash = u64::from_le_bytes(answer.get(8..16)?.try_into().ok()?);
    Some((total, hash))
}
