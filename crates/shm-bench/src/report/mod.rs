//! The results of a run and their renderings (terminal table, JSON, CSV, SVG plot).

pub mod csv;
pub mod json;
pub mod plot;
pub mod table;

use serde::Serialize;

use crate::config::{CpuPair, Pattern};
pub use crate::machine::Machine;
pub use crate::stats::Summary;

/// A whole run: the JSON document written by `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The machine.
    pub machine: Machine,
    /// The floors (median across repetitions).
    pub floors: Floors,
    /// The harness's own cost, `null` when the check was skipped (`--no-overhead-check`).
    pub overhead: Option<Overhead>,
    /// One row per transport, pattern and size.
    pub results: Vec<ResultRow>,
    /// How the run was made.
    pub run: RunInfo,
}

/// The floors: medians across repetitions, with their spread in `ranges`.
#[derive(Clone, Debug, Serialize)]
pub struct Floors {
    /// Cache-line ping-pong round trip between two processes, ns.
    pub cacheline_rtt_ns: f64,
    /// Shared-futex WAIT/WAKE round trip, ns.
    pub futex_rtt_ns: f64,
    /// One-core memcpy bandwidth (1 MiB buffers), bytes/s.
    pub memcpy_bytes_per_s: f64,
    /// Median and min–max of each floor across repetitions.
    pub ranges: FloorRanges,
}

/// The harness-overhead check: the `shm-spin` 8 B round trip and 64 B stream through
/// the harness and through a minimal loop over the same endpoints (means; median and
/// min–max across repetitions). A ratio of ×1.00 means the harness adds nothing.
#[derive(Clone, Debug, Serialize)]
pub struct Overhead {
    /// Harness: mean round trip, ns.
    pub harness_rtt_ns: Summary,
    /// Minimal loop: mean round trip, ns.
    pub minimal_rtt_ns: Summary,
    /// Harness round trip ÷ minimal round trip, per repetition.
    pub rtt_ratio: Summary,
    /// Harness: stream messages per second.
    pub harness_stream_msgs_per_s: Summary,
    /// Minimal loop: stream messages per second.
    pub minimal_stream_msgs_per_s: Summary,
    /// Minimal rate ÷ harness rate, per repetition.
    pub stream_ratio: Summary,
}

/// Spread of the floors across repetitions.
#[derive(Clone, Debug, Serialize)]
pub struct FloorRanges {
    /// Cache-line round trip, ns.
    pub cacheline_rtt_ns: Summary,
    /// Futex round trip, ns.
    pub futex_rtt_ns: Summary,
    /// memcpy, bytes/s.
    pub memcpy_bytes_per_s: Summary,
}

/// The headline figures of one measurement of a scenario, or (in a [`ResultRow`]) the
/// median of each across repetitions.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Figures {
    /// Ping-pong: median round trip, ns. Stream: median per-message interval, ns.
    pub p50_ns: f64,
    /// 99th percentile of the same.
    pub p99_ns: f64,
    /// 99.9th percentile of the same.
    pub p999_ns: f64,
    /// Messages per second (round trips per second for ping-pong).
    pub msgs_per_s: f64,
    /// Payload bytes per second in one direction.
    pub bytes_per_s: f64,
    /// Wake-up syscalls per message, both sides (0 for pipes and sockets).
    pub wakes_per_msg: f64,
}

/// The figures of one transport, pattern and size, across repetitions.
///
/// Each figure is the median across repetitions of that figure in each repetition.
/// `min`/`max` are the range of the headline figure (`headline`): p50 for ping-pong,
/// msgs/s for streaming.
#[derive(Clone, Debug, Serialize)]
pub struct ResultRow {
    /// Transport name.
    pub transport: String,
    /// `pingpong`, `stream`, `typed-pingpong` or `typed-stream`.
    pub pattern: Pattern,
    /// Message size in bytes.
    pub size: usize,
    /// The medians of the figures across repetitions.
    #[serde(flatten)]
    pub figures: Figures,
    /// Repetitions measured.
    pub reps: u32,
    /// Which figure `min`/`max` describe: `p50_ns` or `msgs_per_s`.
    pub headline: &'static str,
    /// The headline figure of each repetition, in order: ratios between two rows of
    /// one run can be taken repetition by repetition from these.
    pub per_rep: Vec<f64>,
    /// Smallest headline figure across repetitions.
    pub min: f64,
    /// Largest headline figure across repetitions.
    pub max: f64,
    /// Speed-up over `pipe` (pipe p50 / this p50, or this msgs/s / pipe msgs/s),
    /// median of the per-repetition ratios; `null` when pipe was not measured.
    pub vs_pipe: Option<f64>,
    /// Ping-pong: this p50 / cache-line round trip. Stream: this bytes/s / memcpy
    /// bytes/s. Median of the per-repetition ratios.
    pub vs_floor: Option<f64>,
    /// Ping-pong: p50 ÷ the shared-futex floor's p50, each repetition against its own
    /// (median of the ratios); the bound for transports that park their waiter.
    pub vs_futex: Option<f64>,
    /// Stream: msgs/s ÷ the ring floor's (`floor-ring`, the minimal ring) msgs/s at the
    /// same size (a typed row: at the next size up the floor ran), each repetition against
    /// its own (median of the ratios); `null` for round trips or when the floor did not
    /// run.
    pub vs_ring_floor: Option<f64>,
    /// Nominal figures: the payload was not really written and read (the stamps-only
    /// ring); the table and the plot mark them.
    pub nominal: bool,
    /// Messages measured over all repetitions.
    pub messages: u64,
    /// Transport remarks.
    pub notes: Vec<String>,
}

/// How the run was made.
#[derive(Clone, Debug, Serialize)]
pub struct RunInfo {
    /// Repetitions.
    pub reps: u32,
    /// CPUs of parent and child.
    pub cpus: CpuPair,
    /// Whether parent and child shared one CPU.
    pub same_core: bool,
    /// Message sizes.
    pub sizes: Vec<usize>,
    /// Transports, in alternation order.
    pub transports: Vec<String>,
    /// Whether every byte was verified.
    pub verify: bool,
    /// Wall time of the run, seconds.
    pub duration_s: f64,
    /// Warnings (busy machine, refused settings).
    pub warnings: Vec<String>,
    /// The harness version.
    pub version: &'static str,
}

/// Formats a duration in ns with a unit (ns, µs, ms, s).
pub(crate) fn fmt_ns(ns: f64) -> String {
    if !ns.is_finite() {
        "-".into()
    } else if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// Formats a rate with an SI prefix (k, M, G).
pub(crate) fn fmt_rate(x: f64) -> String {
    if !x.is_finite() {
        "-".into()
    } else if x >= 1e9 {
        format!("{:.2} G", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// Formats a size in bytes (B, KiB, MiB).
pub(crate) fn fmt_size(b: usize) -> String {
    if b >= 1 << 20 && b % (1 << 20) == 0 {
        format!("{} MiB", b >> 20)
    } else if b >= 1 << 10 && b % (1 << 10) == 0 {
        format!("{} KiB", b >> 10)
    } else {
        format!("{b} B")
    }
}
