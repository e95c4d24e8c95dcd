//! A three-stage pipeline over generated data, each stage in its own process, checked
//! against the same computation in one process; prints the throughput of both, and of the
//! same process pipeline connected by pipes (one `write` per item, as the channels send one
//! message per item; and buffered, 64 KiB per `write`).
//!
//! ```text
//! cargo run --release --example pipeline [items]
//! ```

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use shm_fork::Pipeline;

/// The pipeline's output: each kept item with its label.
type Labels = Vec<(u32, u8)>;

/// Stage 1: a cheap hash (splitmix64's finaliser) of the item.
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Stage 2: keep one item in four, as its top 32 bits.
fn select(n: u64) -> Option<u32> {
    (n % 4 == 0).then_some((n >> 32) as u32)
}

/// Stage 3: a label for the kept items.
fn label(n: Option<u32>) -> Option<(u32, u8)> {
    n.map(|n| (n, (n.count_ones() % 8) as u8))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let items: u64 = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => 2_000_000,
    };

    let start = Instant::now();
    let mut piped = Vec::new();
    Pipeline::source(move || 0..items)
        .stage("mix", mix)
        .stage("select", select)
        .stage("label", label)
        .run(|item| piped.extend(item))?;
    let piped_time = start.elapsed();

    let pipes_unbuffered = pipe_pipeline(items, false)?;
    let pipes_buffered = pipe_pipeline(items, true)?;

    let start = Instant::now();
    let local: Vec<(u32, u8)> = (0..items).map(mix).map(select).filter_map(label).collect();
    let local_time = start.elapsed();

    assert_eq!(
        piped, local,
        "the pipeline must compute what one process computes"
    );
    let rate = |secs: f64| items as f64 / secs / 1e6;
    println!("{items} items, {} kept; results identical", local.len());
    println!(
        "pipeline (source + 3 stage processes): {:>8.3} s, {:>7.2} M items/s",
        piped_time.as_secs_f64(),
        rate(piped_time.as_secs_f64())
    );
    for (name, (time, out)) in [
        ("pipes, one write per item:           ", &pipes_unbuffered),
        ("pipes, buffered 64 KiB:              ", &pipes_buffered),
    ] {
        assert_eq!(out, &local, "the pipe pipeline must compute the same");
        println!(
            "{name}  {:>8.3} s, {:>7.2} M items/s",
            time.as_secs_f64(),
            rate(time.as_secs_f64())
        );
    }
    println!(
        "shm pipeline / unbuffered pipes: {:.1}x",
        pipes_unbuffered.0.as_secs_f64() / piped_time.as_secs_f64()
    );
    println!(
        "one process:                           {:>8.3} s, {:>7.2} M items/s",
        local_time.as_secs_f64(),
        rate(local_time.as_secs_f64())
    );
    Ok(())
}

/// The same pipeline with the stages connected by pipes: fixed-size little-endian records
/// (8, 5 and 6 bytes), each process forked with `shm_fork::fork`. Each pipe is created just
/// before the stage that writes it, and its write end moves into that stage's closure (the
/// parent's copy closes when `fork` returns), so no other process holds it and the reader
/// sees end-of-file when the writer finishes.
fn pipe_pipeline(
    items: u64,
    buffered: bool,
) -> Result<(Duration, Labels), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let mut children = Vec::new();
    let (input, out) = pipe()?;
    children.push(shm_fork::fork(move || {
        let mut out = writer(out, buffered);
        for n in 0..items {
            out.write_all(&n.to_le_bytes()).unwrap();
        }
        out.flush().unwrap();
        0
    })?);
    let (next, out) = pipe()?;
    children.push(shm_fork::fork(move || {
        let (mut input, mut out) = (reader(input, buffered), writer(out, buffered));
        let mut buf = [0u8; 8];
        while input.read_exact(&mut buf).is_ok() {
            out.write_all(&mix(u64::from_le_bytes(buf)).to_le_bytes())
                .unwrap();
        }
        out.flush().unwrap();
        0
    })?);
    let input = next;
    let (next, out) = pipe()?;
    children.push(shm_fork::fork(move || {
        let (mut input, mut out) = (reader(input, buffered), writer(out, buffered));
        let mut buf = [0u8; 8];
        while input.read_exact(&mut buf).is_ok() {
            let mut rec = [0u8; 5];
            if let Some(v) = select(u64::from_le_bytes(buf)) {
                rec[0] = 1;
                rec[1..].copy_from_slice(&v.to_le_bytes());
            }
            out.write_all(&rec).unwrap();
        }
        out.flush().unwrap();
        0
    })?);
    let input = next;
    let (next, out) = pipe()?;
    children.push(shm_fork::fork(move || {
        let (mut input, mut out) = (reader(input, buffered), writer(out, buffered));
        let mut rec = [0u8; 5];
        while input.read_exact(&mut rec).is_ok() {
            let v = (rec[0] == 1).then(|| u32::from_le_bytes([rec[1], rec[2], rec[3], rec[4]]));
            let mut rec6 = [0u8; 6];
            if let Some((n, l)) = label(v) {
                rec6[0] = 1;
                rec6[1..5].copy_from_slice(&n.to_le_bytes());
                rec6[5] = l;
            }
            out.write_all(&rec6).unwrap();
        }
        out.flush().unwrap();
        0
    })?);
    let mut input = reader(next, true);
    let mut results = Vec::new();
    let mut rec = [0u8; 6];
    while input.read_exact(&mut rec).is_ok() {
        if rec[0] == 1 {
            results.push((u32::from_le_bytes([rec[1], rec[2], rec[3], rec[4]]), rec[5]));
        }
    }
    let elapsed = start.elapsed();
    for mut child in children {
        let status = child.wait()?;
        assert!(status.success(), "pipe stage {status}");
    }
    Ok((elapsed, results))
}

fn pipe() -> std::io::Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for `pipe2` to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned both descriptors to us; each is owned once.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((File::from(r), File::from(w)))
}

fn writer(file: File, buffered: bool) -> Box<dyn Write> {
    if buffered {
        Box::new(BufWriter::with_capacity(1 << 16, file))
    } else {
        Box::new(file)
    }
}

fn reader(file: File, buffered: bool) -> Box<dyn Read> {
    if buffered {
        Box::new(BufReader::with_capacity(1 << 16, file))
    } else {
        Box::new(file)
    }
}
