//! The command line (clap). Bad arguments are rejected by clap with a clear message and
//! exit code 2.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::affinity::allowed_cpus;
use crate::config::{Budget, Config, CpuPair, Pattern};
use crate::transport::{self, TRANSPORTS};

/// Message sizes of a default run: 8 B, 64 B, 512 B, 4 KiB, 64 KiB, 1 MiB.
const DEFAULT_SIZES: [usize; 6] = [8, 64, 512, 4 << 10, 64 << 10, 1 << 20];
/// Message sizes of a `--quick` run.
const QUICK_SIZES: [usize; 4] = [8, 64, 4 << 10, 1 << 20];
/// The largest message size accepted (the payload template is this big at most).
const MAX_SIZE: usize = 64 << 20;

/// shm-bench: shared-memory transports against pipes, unix sockets and the machine's
/// floors, between two processes pinned to two CPUs.
#[derive(Parser, Debug, Clone)]
#[command(name = "shm-bench", version, about, long_about = None)]
pub struct Cli {
    /// Quick run (< 30 s on 2 cores): fewer sizes, shorter measurements, still all reps.
    #[arg(long)]
    quick: bool,

    /// Repetitions; in each, every transport runs once per scenario (A B A B …).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    reps: u32,

    /// Message sizes, comma-separated; suffixes k/KiB and m/MiB (e.g. 8,64,4k,1m).
    #[arg(long, value_delimiter = ',', value_parser = parse_size)]
    sizes: Vec<usize>,

    /// Transports to run, comma-separated (default: all); the typed patterns run the
    /// typed ones (shm-typed-bincode, shm-typed-postcard, shm-typed-plain, pipe-bincode).
    #[arg(long, value_delimiter = ',', value_parser = parse_transport)]
    transports: Vec<String>,

    /// Patterns to run, comma-separated (default: all).
    #[arg(long, value_delimiter = ',', value_enum)]
    patterns: Vec<Pattern>,

    /// The parent's and the child's CPU, e.g. "0,1".
    #[arg(long, default_value = "0,1", value_parser = parse_cpus)]
    cpus: CpuList,

    /// Pin parent and child to the same CPU (the first of --cpus).
    #[arg(long)]
    same_core: bool,

    /// Check every byte of every message (slower; the default checks two words each).
    #[arg(long)]
    verify: bool,

    /// Measurement time of each scenario in ms (overrides the default or --quick value).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    time_ms: Option<u64>,

    /// Skip the busy-machine check at start.
    #[arg(long)]
    no_busy_check: bool,

    /// Skip the harness-overhead check (the `shm-spin` 8 B round trip and 64 B stream
    /// through the harness and through a minimal loop, in every repetition).
    #[arg(long)]
    no_overhead_check: bool,

    /// Write the report as JSON to this path.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// Write the results as CSV to this path.
    #[arg(long, value_name = "PATH")]
    pub csv: Option<PathBuf>,

    /// Write latency and throughput plots (SVG) to this path.
    #[arg(long, value_name = "PATH.svg")]
    pub plot: Option<PathBuf>,
}

/// Two CPUs given with `--cpus`, both in this process's affinity mask.
#[derive(Clone, Debug, PartialEq, Eq)]
struct CpuList(Vec<usize>);

/// Parses a message size: a positive integer with an optional `k`/`KiB`/`m`/`MiB`.
fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let (digits, mult) = if let Some(d) = lower
        .strip_suffix("kib")
        .or_else(|| lower.strip_suffix('k'))
    {
        (d, 1usize << 10)
    } else if let Some(d) = lower
        .strip_suffix("mib")
        .or_else(|| lower.strip_suffix('m'))
    {
        (d, 1 << 20)
    } else if let Some(d) = lower.strip_suffix('b') {
        (d, 1)
    } else {
        (lower.as_str(), 1)
    };
    let n: usize = digits
        .trim()
        .parse()
        .map_err(|_| format!("`{t}` is not a size (e.g. 64, 4k, 1MiB)"))?;
    let bytes = n
        .checked_mul(mult)
        .ok_or_else(|| format!("size `{t}` is too large"))?;
    if bytes == 0 {
        return Err("message size must be at least 1 byte".into());
    }
    if bytes > MAX_SIZE {
        return Err(format!(
            "size `{t}` exceeds the maximum of {} MiB",
            MAX_SIZE >> 20
        ));
    }
    Ok(bytes)
}

/// Checks a transport name against [`TRANSPORTS`].
fn parse_transport(s: &str) -> Result<String, String> {
    let name = s.trim();
    if transport::by_name(name).is_some() {
        Ok(name.to_string())
    } else {
        Err(format!(
            "unknown transport `{name}`; known: {}",
            transport::names().join(", ")
        ))
    }
}

/// Parses `--cpus`: two distinct CPU numbers, both available to this process.
fn parse_cpus(s: &str) -> Result<CpuList, String> {
    let cpus: Vec<usize> = s
        .split(',')
        .map(|c| {
            c.trim()
                .parse::<usize>()
                .map_err(|_| format!("`{c}` is not a CPU number"))
        })
        .collect::<Result<_, _>>()?;
    if cpus.len() != 2 {
        return Err("give two CPUs, e.g. 0,1 (use --same-core to share one)".into());
    }
    if cpus[0] == cpus[1] {
        return Err("the two CPUs must differ (use --same-core to share one)".into());
    }
    let allowed = allowed_cpus();
    for &c in &cpus {
        if !allowed.contains(&c) {
            return Err(format!(
                "CPU {c} is not available to this process (available: {allowed:?})"
            ));
        }
    }
    Ok(CpuList(cpus))
}

impl Cli {
    /// The run this command line asks for.
    pub fn into_config(self) -> Config {
        // The registry's order (the alternation order), without duplicates.
        let transports = TRANSPORTS
            .iter()
            .copied()
            .filter(|t| self.transports.is_empty() || self.transports.iter().any(|n| n == t.name()))
            .collect();
        let patterns = if self.patterns.is_empty() {
            Pattern::ALL.to_vec()
        } else {
            // The canonical order, without duplicates.
            Pattern::ALL
                .into_iter()
                .filter(|p| self.patterns.contains(p))
                .collect()
        };
        let sizes = if !self.sizes.is_empty() {
            let mut s = self.sizes.clone();
            s.sort_unstable();
            s.dedup();
            s
        } else if self.quick {
            QUICK_SIZES.to_vec()
        } else {
            DEFAULT_SIZES.to_vec()
        };
        let mut budget = if self.quick {
            Budget::QUICK
        } else {
            Budget::DEFAULT
        };
        if let Some(ms) = self.time_ms {
            budget.measure_time = Duration::from_millis(ms);
        }
        let floor_budget = Budget {
            measure_time: if self.quick {
                Duration::from_millis(40)
            } else {
                Duration::from_millis(150)
            },
            ..budget
        };
        let cpus = if self.same_core {
            CpuPair {
                parent: self.cpus.0[0],
                child: self.cpus.0[0],
            }
        } else {
            CpuPair {
                parent: self.cpus.0[0],
                child: self.cpus.0[1],
            }
        };
        Config {
            transports,
            patterns,
            sizes,
            reps: self.reps,
            cpus,
            budget,
            floor_budget,
            verify: self.verify,
            progress: true,
            busy_check: !self.no_busy_check,
            overhead_check: !self.no_overhead_check,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("64"), Ok(64));
        assert!(parse_size("0").is_err());
    }
}
