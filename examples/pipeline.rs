//! A three-stage pipeline over generated data, each stage in its own process, checked
//! against the same computation in one process; prints the throughput of both.
//!
//! ```text
//! cargo run --release --example pipeline [items]
//! ```

use std::time::Instant;

use shm_fork::Pipeline;

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
    println!(
        "one process:                           {:>8.3} s, {:>7.2} M items/s",
        local_time.as_secs_f64(),
        rate(local_time.as_secs_f64())
    );
    Ok(())
}
