//! In-place access to a 1 MiB read grant: a checksum (the wrapping sum of its
//! little-endian `u64` words) computed where the message lies, three ways, alternated in
//! one run (A B C A B C …), each repetition timing every way over the same grant:
//!
//! - `raw`: the unsafe loop over the raw pointer of the grant's volatile slice
//!   (`ptr_guard().as_ptr()`; unaligned `u64` reads);
//! - `volatile words`: `as_volatile_slice()` and vm-memory's `VolatileArrayRef<u64>`,
//!   one volatile load per word — no `unsafe`;
//! - `chunked copy`: `as_volatile_slice()`, copied 4 KiB at a time into a private buffer
//!   (`VolatileSlice::copy_to`), summed there — no `unsafe`.
//!
//! Two settings: `warm`, the same grant checksummed again and again (in this core's
//! cache: the access method is all that differs), and `fresh`, each message written by a
//! forked child on CPU 1 and checksummed on CPU 0 as it arrives (the ways in rotation,
//! message by message: what a worker handed frames by another process sees).
//!
//! `cargo bench --bench grant_checksum -- [repetitions]` (default 9): prints GB/s of each
//! way per repetition, then the medians and min–max of each way's ratio to `raw`.

use std::hint::black_box;
use std::time::Instant;

use shm_ipc::channel::spsc::{self, Spsc};
use shm_ipc::channel::vm_memory::VolatileMemory;
use shm_ipc::channel::ReadGrant;
use shm_ipc::fork::fork_with;

const MESSAGE: usize = 1 << 20;
/// Passes over the grant per timing.
const PASSES: u32 = 50;
const CHUNK: usize = 4096;

fn raw(grant: &ReadGrant<'_, Spsc>) -> u64 {
    let bytes = grant.as_volatile_slice();
    let guard = bytes.ptr_guard();
    let ptr = guard.as_ptr();
    let mut sum = 0u64;
    for i in 0..grant.len() / 8 {
        // SAFETY: `i * 8 + 8 <= len`: inside the grant's readable bytes; an unaligned read
        // of plain bytes, no reference formed (the loop a user of the raw pointer writes).
        sum = sum.wrapping_add(u64::from_le(unsafe {
            ptr.add(i * 8).cast::<u64>().read_unaligned()
        }));
    }
    sum
}

fn volatile_words(grant: &ReadGrant<'_, Spsc>) -> u64 {
    let bytes = grant.as_volatile_slice();
    let words = bytes.get_array_ref::<u64>(0, bytes.len() / 8).unwrap();
    (0..words.len()).fold(0u64, |sum, i| sum.wrapping_add(u64::from_le(words.load(i))))
}

fn chunked_copy(grant: &ReadGrant<'_, Spsc>) -> u64 {
    let bytes = grant.as_volatile_slice();
    let mut chunk = [0u8; CHUNK];
    let mut sum = 0u64;
    for at in (0..bytes.len()).step_by(CHUNK) {
        let n = bytes.offset(at).unwrap().copy_to(&mut chunk[..]);
        for word in chunk[..n].chunks_exact(8) {
            sum = sum.wrapping_add(u64::from_le_bytes(word.try_into().unwrap()));
        }
    }
    sum
}

type Way = fn(&ReadGrant<'_, Spsc>) -> u64;
const WAYS: [(&str, Way); 3] = [
    ("raw", raw),
    ("volatile words", volatile_words),
    ("chunked copy", chunked_copy),
];

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

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

/// One repetition over the same grant: GB/s of each way.
fn warm(grant: &ReadGrant<'_, Spsc>, expected: u64) -> Result<Vec<f64>, String> {
    let mut rates = Vec::new();
    for (name, checksum) in WAYS {
        let start = Instant::now();
        for _ in 0..PASSES {
            let sum = checksum(black_box(grant));
            if sum != expected {
                return Err(format!("{name}: checksum {sum:#x}, expected {expected:#x}"));
            }
        }
        rates.push((MESSAGE as f64 * PASSES as f64) / start.elapsed().as_secs_f64() / 1e9);
    }
    Ok(rates)
}

/// One repetition over messages a child on CPU 1 writes: GB/s of each way.
fn fresh(message: &[u8], expected: u64) -> Result<Vec<f64>, shm_ipc::MainError> {
    let per_way = PASSES as usize;
    let (tx, mut rx) = spsc::channel(4 * MESSAGE)?;
    pin(1);
    let owned = message.to_vec();
    let mut child = fork_with(tx, move |mut tx| {
        match (0..per_way * WAYS.len()).try_for_each(|_| tx.send(&owned)) {
            Ok(()) => 0,
            Err(_) => 1,
        }
    })?;
    pin(0);
    let mut spent = vec![0f64; WAYS.len()];
    for k in 0..per_way * WAYS.len() {
        let grant = rx.read()?;
        let (name, checksum) = WAYS[k % WAYS.len()];
        let start = Instant::now();
        let sum = checksum(black_box(&grant));
        spent[k % WAYS.len()] += start.elapsed().as_secs_f64();
        if sum != expected {
            return Err(format!("{name}: checksum {sum:#x}, expected {expected:#x}").into());
        }
    }
    if !child.wait()?.success() {
        return Err("the writing child failed".into());
    }
    Ok(spent
        .iter()
        .map(|s| (MESSAGE * per_way) as f64 / s / 1e9)
        .collect())
}

fn report(setting: &str, rates: &[Vec<f64>]) {
    for (way, (name, _)) in WAYS.iter().enumerate().skip(1) {
        let ratios: Vec<f64> = rates.iter().map(|rep| rep[way] / rep[0]).collect();
        let (lo, hi) = ratios
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
        println!(
            "{setting}: {name} / raw: median {:.2} (min {lo:.2}, max {hi:.2}); raw median {:.1} GB/s",
            median(ratios.clone()),
            median(rates.iter().map(|rep| rep[0]).collect())
        );
    }
}

fn main() -> Result<(), shm_ipc::MainError> {
    let reps: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map_or(Ok(9), |a| a.parse())?;
    let message: Vec<u8> = (0..MESSAGE).map(|i| (i * 7 + i / 4096) as u8).collect();
    let (mut tx, mut rx) = spsc::channel(4 * MESSAGE)?;
    tx.send(&message)?;
    let expected = {
        let grant = rx.read()?;
        raw(&grant)
    };
    let (mut warm_rates, mut fresh_rates) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        tx.send(&message)?;
        let grant = rx.read()?;
        warm_rates.push(warm(&grant, expected)?);
        drop(grant);
        fresh_rates.push(fresh(&message, expected)?);
        let show = |rates: &[f64]| {
            WAYS.iter()
                .zip(rates)
                .map(|((name, _), r)| format!("{name} {r:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "warm: {}  |  fresh: {} (GB/s)",
            show(warm_rates.last().unwrap()),
            show(fresh_rates.last().unwrap())
        );
    }
    report("warm", &warm_rates);
    report("fresh", &fresh_rates);
    Ok(())
}
