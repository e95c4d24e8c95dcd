//! A pool of worker processes counting primes in ranges, checked against the same count in
//! one process.
//!
//! ```text
//! cargo run --release --example worker_pool [workers] [limit]
//! ```

use std::time::Instant;

fn is_prime(n: u64) -> bool {
    n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
}

/// Primes in `start..end`.
fn count_primes((start, end): (u64, u64)) -> u64 {
    (start..end).filter(|&n| is_prime(n)).count() as u64
}

fn main() -> Result<(), shm_ipc::MainError> {
    let mut args = std::env::args().skip(1);
    let workers: usize = args.next().map_or(Ok(2), |a| a.parse())?;
    let limit: u64 = args.next().map_or(Ok(2_000_000), |a| a.parse())?;
    let chunk = 10_000;
    let ranges: Vec<(u64, u64)> = (0..limit)
        .step_by(chunk)
        .map(|start| (start, (start + chunk as u64).min(limit)))
        .collect();

    let start = Instant::now();
    let mut pool = shm_fork::spawn_pool(workers, count_primes)?;
    let counts = pool.map(ranges.iter().copied())?;
    let pooled: u64 = counts.iter().sum();
    let pooled_time = start.elapsed();
    for status in pool.shutdown()? {
        assert!(status.success(), "worker {status}");
    }

    // One call at a time, to show the request/response API.
    let mut worker = shm_fork::spawn_worker(count_primes)?;
    assert_eq!(worker.call((0, 100))?, 25);
    worker.shutdown()?;

    let start = Instant::now();
    let local: u64 = ranges.iter().copied().map(count_primes).sum();
    let local_time = start.elapsed();

    assert_eq!(pooled, local, "the pool must count what one process counts");
    println!("{pooled} primes below {limit}, in {} ranges", ranges.len());
    println!(
        "{workers} worker processes: {:.3} s",
        pooled_time.as_secs_f64()
    );
    println!("one process:        {:.3} s", local_time.as_secs_f64());
    Ok(())
}
