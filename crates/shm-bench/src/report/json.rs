//! `--json PATH`: the report as JSON.
//!
//! Schema (fields beyond these are extras):
//!
//! ```text
//! { "machine": {"cpu": str, "cores": int, "kernel": str},
//!   "floors": {"cacheline_rtt_ns": num, "futex_rtt_ns": num, "memcpy_bytes_per_s": num, "ranges": {..}},
//!   "results": [ {"transport": str, "pattern": "pingpong"|"stream", "size": int,
//!                 "p50_ns": num, "p99_ns": num, "p999_ns": num, "msgs_per_s": num,
//!                 "bytes_per_s": num, "wakes_per_msg": num, "reps": int,
//!                 "headline": str, "min": num, "max": num,
//!                 "vs_pipe": num|null, "vs_floor": num|null, "vs_futex": num|null,
//!                 "vs_ring_floor": num|null, "messages": int, "notes": [str]} ],
//!   "run": {"reps": int, "cpus": {"parent": int, "child": int}, ...} }
//! ```
//!
//! Non-finite numbers (which JSON cannot carry) are written as `null`.

use std::fs;
use std::path::Path;

use super::Report;
use crate::error::BenchError;

/// The report as a pretty-printed JSON string.
pub fn to_string(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("the report serialises")
}

/// Writes the report as JSON to `path`.
pub fn write(report: &Report, path: &Path) -> Result<(), BenchError> {
    fs::write(path, to_string(report) + "\n").map_err(|source| BenchError::Output {
        path: path.display().to_string(),
        source,
    })
}
