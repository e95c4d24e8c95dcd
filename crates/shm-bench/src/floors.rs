//! The machine's bandwidth floor, measured in every repetition: one core copying a
//! 1 MiB buffer into another (the most a copying transport can move).
//!
//! The round-trip floors (cache-line and shared-futex ping-pong) are transports
//! (`transport::floor`), so that the harness measures them exactly as the transports
//! they bound, alternated with them.

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::affinity::AffinityGuard;
use crate::config::{Budget, CpuPair};
use crate::error::BenchError;

/// The floors measured outside the transports in one repetition.
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct FloorSample {
    /// One-core memcpy of 1 MiB buffers, bytes per second.
    pub(crate) memcpy_bytes_per_s: f64,
}

/// Measures the bandwidth floor once, on the parent's CPU.
pub(crate) fn measure(cpus: CpuPair, budget: &Budget) -> Result<FloorSample, BenchError> {
    Ok(FloorSample {
        memcpy_bytes_per_s: memcpy_bandwidth(cpus.parent, budget)?,
    })
}

/// Size of the memcpy floor's buffers.
const MEMCPY_BYTES: usize = 1 << 20;

/// One-core memcpy bandwidth (1 MiB source into 1 MiB destination) on `cpu`, bytes/s.
fn memcpy_bandwidth(cpu: usize, budget: &Budget) -> Result<f64, BenchError> {
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
