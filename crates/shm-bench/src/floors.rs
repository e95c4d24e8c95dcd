//! The machine's floors, measured in the same run as the transports:
//!
//! - **cache-line round trip**: two processes bounce a counter through two words on
//!   separate 128-byte lines of a `MAP_SHARED` mapping, busy spinning. No SPSC ring can
//!   make a round trip faster than this.
//! - **shared-futex round trip**: the same bounce, but each side sleeps in `FUTEX_WAIT`
//!   (shared, no `FUTEX_PRIVATE_FLAG`) and is woken by `FUTEX_WAKE`: the cost of a
//!   transport that parks its waiter.
//! - **memcpy bandwidth**: one core copying a 1 MiB buffer into another.

use std::hint::{black_box, spin_loop};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::unistd::{getpid, Pid};
use serde::Serialize;

use crate::affinity::AffinityGuard;
use crate::child::{self, EXIT_OK, EXIT_STALLED};
use crate::config::{Budget, CpuPair};
use crate::error::BenchError;
use crate::shm::{futex_wait, futex_wake, SharedMap, LINE};

/// The floors measured in one repetition.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct FloorSample {
    /// Cache-line ping-pong round trip, ns.
    pub cacheline_rtt_ns: f64,
    /// Shared-futex WAIT/WAKE round trip, ns.
    pub futex_rtt_ns: f64,
    /// One-core memcpy of 1 MiB buffers, bytes per second.
    pub memcpy_bytes_per_s: f64,
}

/// How long a side waits without seeing its peer move before it gives up. Generous:
/// a descheduled peer on a loaded 2-core VM can stall for a good fraction of a second.
const STALL: Duration = Duration::from_secs(10);

/// The value that tells the child to stop.
const STOP: u64 = u64::MAX;
/// The futex floor's stop value.
const STOP32: u32 = u32::MAX;

/// How long one `FUTEX_WAIT` sleeps at most before the waiter re-checks its peer.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// Measures all three floors once.
pub fn measure(cpus: CpuPair, budget: &Budget) -> Result<FloorSample, BenchError> {
    Ok(FloorSample {
        cacheline_rtt_ns: cacheline_rtt(cpus, budget)?,
        futex_rtt_ns: futex_rtt(cpus, budget)?,
        memcpy_bytes_per_s: memcpy_bandwidth(cpus.parent, budget)?,
    })
}

/// Spins (or, on a shared core, yields) until `word` differs from `last`; `None` if it
/// did not within [`STALL`] or the parent `parent` (if given) is gone.
fn spin_until_changed(
    word: &AtomicU64,
    last: u64,
    yield_cpu: bool,
    parent: Option<Pid>,
) -> Option<u64> {
    let mut spins = 0u32;
    let mut since: Option<Instant> = None;
    loop {
        // Acquire pairs with the peer's Release store of this word (SYNC: bounce). The
        // word is the only datum exchanged, so Relaxed would be enough; Acquire/Release
        // mirror what a ring's index publication costs (free on x86).
        let v = word.load(Ordering::Acquire);
        if v != last {
            return Some(v);
        }
        if yield_cpu {
            // Both processes share one CPU: spinning would only burn our time slice.
            std::thread::yield_now();
        } else {
            spin_loop();
        }
        spins = spins.wrapping_add(1);
        if spins % 4096 == 0 {
            let t = *since.get_or_insert_with(Instant::now);
            if t.elapsed() > STALL || parent.is_some_and(child::parent_gone) {
                return None;
            }
        }
    }
}

/// Cache-line ping-pong round trip between the parent and a child, in ns.
pub fn cacheline_rtt(cpus: CpuPair, budget: &Budget) -> Result<f64, BenchError> {
    let map = SharedMap::new(4096).map_err(|source| BenchError::Sys {
        what: "mmap (cache-line floor)",
        source,
    })?;
    // Ping and pong on separate 128-byte lines, so each line has one writer.
    let ping = map.u64_at(0);
    let pong = map.u64_at(LINE);
    let same = cpus.same_core();
    let _pin = AffinityGuard::pin(cpus.parent)?;
    let parent = getpid();
    let proc = child::spawn("cache-line floor", cpus.child, (), |()| {
        let mut last = 0;
        loop {
            match spin_until_changed(ping, last, same, Some(parent)) {
                None => return EXIT_STALLED,
                Some(STOP) => return EXIT_OK,
                Some(v) => {
                    // Release pairs with the parent's Acquire load of `pong` (SYNC: bounce).
                    pong.store(v, Ordering::Release);
                    last = v;
                }
            }
        }
    })?;

    let mut i = 0u64;
    let mut bounce = |n: u64| -> Result<(), BenchError> {
        for _ in 0..n {
            i += 1;
            // Release pairs with the child's Acquire load of `ping` (SYNC: bounce).
            ping.store(i, Ordering::Release);
            let mut seen = i - 1;
            while seen != i {
                seen = spin_until_changed(pong, seen, same, None).ok_or(BenchError::Stalled {
                    what: "cache-line floor".into(),
                    secs: STALL.as_secs(),
                })?;
            }
        }
        Ok(())
    };
    let result = (|| {
        let warm = Instant::now();
        while warm.elapsed() < budget.warmup_time.max(Duration::from_millis(1)) {
            bounce(64)?;
        }
        let start = Instant::now();
        let mut n = 0u64;
        // Check the clock every 256 round trips so that reading it does not add to the
        // ~100 ns being measured.
        loop {
            bounce(256)?;
            n += 256;
            if start.elapsed() >= budget.measure_time.min(Duration::from_millis(200)) {
                break;
            }
        }
        Ok(start.elapsed().as_nanos() as f64 / n as f64)
    })();
    ping.store(STOP, Ordering::SeqCst);
    proc.wait()?;
    result
}

/// Waits (sleeping in `FUTEX_WAIT`) until `word` differs from `last`; `None` on stall or
/// when `parent` (if given) is gone.
fn futex_until_changed(
    word: &AtomicU32,
    last: u32,
    parent: Option<Pid>,
) -> Result<Option<u32>, BenchError> {
    let mut since: Option<Instant> = None;
    loop {
        // Acquire pairs with the peer's Release store (SYNC: futex bounce); as in the
        // cache-line floor the word is the only datum exchanged.
        let v = word.load(Ordering::Acquire);
        if v != last {
            return Ok(Some(v));
        }
        futex_wait(word, v, WAIT_SLICE).map_err(|source| BenchError::Sys {
            what: "futex wait",
            source,
        })?;
        let t = *since.get_or_insert_with(Instant::now);
        if t.elapsed() > STALL || parent.is_some_and(child::parent_gone) {
            return Ok(None);
        }
    }
}

/// Shared-futex WAIT/WAKE round trip between the parent and a child, in ns. Every
/// message is followed by a `FUTEX_WAKE` and every wait ends in `FUTEX_WAIT`, so this is
/// the round trip of two processes that sleep while waiting.
pub fn futex_rtt(cpus: CpuPair, budget: &Budget) -> Result<f64, BenchError> {
    let map = SharedMap::new(4096).map_err(|source| BenchError::Sys {
        what: "mmap (futex floor)",
        source,
    })?;
    let ping = map.u32_at(2 * LINE);
    let pong = map.u32_at(3 * LINE);
    let _pin = AffinityGuard::pin(cpus.parent)?;
    let parent = getpid();
    let proc = child::spawn("futex floor", cpus.child, (), |()| {
        let mut last = 0;
        loop {
            match futex_until_changed(ping, last, Some(parent)) {
                Err(_) | Ok(None) => return EXIT_STALLED,
                Ok(Some(STOP32)) => return EXIT_OK,
                Ok(Some(v)) => {
                    // Release pairs with the parent's Acquire load (SYNC: futex bounce).
                    pong.store(v, Ordering::Release);
                    if futex_wake(pong, 1).is_err() {
                        return EXIT_STALLED;
                    }
                    last = v;
                }
            }
        }
    })?;

    let mut i = 0u32;
    let mut bounce = || -> Result<(), BenchError> {
        i += 1;
        // Release pairs with the child's Acquire load (SYNC: futex bounce).
        ping.store(i, Ordering::Release);
        futex_wake(ping, 1).map_err(|source| BenchError::Sys {
            what: "futex wake",
            source,
        })?;
        let mut seen = i - 1;
        while seen != i {
            seen = futex_until_changed(pong, seen, None)?.ok_or(BenchError::Stalled {
                what: "futex floor".into(),
                secs: STALL.as_secs(),
            })?;
        }
        Ok(())
    };
    let result = (|| {
        let warm = Instant::now();
        let mut w = 0;
        while w < 3 || warm.elapsed() < budget.warmup_time {
            bounce()?;
            w += 1;
        }
        let start = Instant::now();
        let mut n = 0u64;
        while n < 10 || start.elapsed() < budget.measure_time {
            bounce()?;
            n += 1;
        }
        Ok(start.elapsed().as_nanos() as f64 / n as f64)
    })();
    ping.store(STOP32, Ordering::SeqCst);
    let _ = futex_wake(ping, 1);
    proc.wait()?;
    result
}

/// Size of the memcpy floor's buffers.
pub const MEMCPY_BYTES: usize = 1 << 20;

/// One-core memcpy bandwidth (1 MiB source into 1 MiB destination) on `cpu`, bytes/s.
pub fn memcpy_bandwidth(cpu: usize, budget: &Budget) -> Result<f64, BenchError> {
    let _pin = AffinityGuard::pin(cpu)?;
    let src: Vec<u8> = (0..MEMCPY_BYTES).map(|i| i as u8).collect();
    let mut dst = vec![0u8; MEMCPY_BYTES];
    let mut copy = |n: u32| {
        for _ in 0..n {
            dst.copy_from_slice(black_box(&src));
            black_box(&mut dst);
        }
    };
    let warm = Instant::now();
    while warm.elapsed() < budget.warmup_time.max(Duration::from_millis(2)) {
        copy(4);
    }
    let start = Instant::now();
    let mut n = 0u64;
    while n < 16 || start.elapsed() < budget.measure_time.min(Duration::from_millis(100)) {
        copy(8);
        n += 8;
    }
    Ok((n * MEMCPY_BYTES as u64) as f64 / start.elapsed().as_secs_f64())
}
