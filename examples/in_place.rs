//! 1 MiB frames written and read in place, without `unsafe`: a forked producer renders each
//! frame straight into the ring through its write grant's `VolatileSlice` (rust-vmm's
//! `vm-memory`), and the consumer checksums each where it lies, through its read grant's —
//! no copy of the frame on either side, no raw pointer in this program.
//!
//! `cargo run --release --example in_place [frames]` (default 2,000).

use std::time::Instant;

use shm_ipc::channel::spsc;
use shm_ipc::channel::vm_memory::{Bytes, VolatileMemory};
use shm_ipc::fork::fork_with;

const FRAME: usize = 1 << 20;
/// Rows of a frame: each row is rendered from its number.
const ROW: usize = 4096;

/// Row `row` of frame `frame`, as 512 words.
fn row_words(frame: u64, row: usize) -> [u64; ROW / 8] {
    let mut words = [0u64; ROW / 8];
    for (i, word) in words.iter_mut().enumerate() {
        *word = frame.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (row * ROW / 8 + i) as u64;
    }
    words
}

/// The checksum a frame must have: the wrapping sum of its words.
fn expected(frame: u64) -> u64 {
    (0..FRAME / ROW)
        .flat_map(|row| row_words(frame, row))
        .fold(0u64, u64::wrapping_add)
}

fn main() -> Result<(), shm_ipc::MainError> {
    let frames: u64 = std::env::args().nth(1).map_or(Ok(2_000), |a| a.parse())?;
    let (tx, mut rx) = spsc::channel(4 * FRAME)?;
    let mut producer = fork_with(tx, move |mut tx| {
        for frame in 0..frames {
            let Ok(mut grant) = tx.reserve(FRAME) else {
                return 1;
            };
            let pixels = grant.as_volatile_slice();
            for row in 0..FRAME / ROW {
                let words = row_words(frame, row);
                // Written in place: one bulk copy of the row, bounds-checked.
                let at = pixels.offset(row * ROW).expect("inside the frame");
                at.copy_from(&words[..]);
            }
            if grant.commit(FRAME).is_err() {
                return 1;
            }
        }
        0
    })?;
    let start = Instant::now();
    let mut checked = 0u64;
    for frame in 0..frames {
        let grant = rx.read()?;
        let pixels = grant.as_volatile_slice();
        // Read in place: one volatile load per word, each bounds-checked by vm-memory.
        let words = pixels.get_array_ref::<u64>(0, pixels.len() / 8)?;
        let sum = (0..words.len()).fold(0u64, |sum, i| sum.wrapping_add(words.load(i)));
        if frame % 97 == 0 && sum != expected(frame) {
            return Err(format!(
                "frame {frame}: checksum {sum:#x}, expected {:#x}",
                expected(frame)
            )
            .into());
        }
        // A word read back through the `Bytes` trait, as any value at an offset would be.
        let first: u64 = pixels.read_obj(0)?;
        if first != row_words(frame, 0)[0] {
            return Err(format!("frame {frame}: first word {first:#x}").into());
        }
        checked += 1;
    }
    let took = start.elapsed();
    if !producer.wait()?.success() {
        return Err("the producer failed".into());
    }
    println!(
        "in_place: {checked} frames of 1 MiB written and checksummed in place, no unsafe: \
         {:.2} GB/s ({:.0} µs per frame)",
        (checked as f64 * FRAME as f64) / took.as_secs_f64() / 1e9,
        took.as_secs_f64() * 1e6 / checked as f64
    );
    Ok(())
}
