//! `--csv PATH`: one line per result row.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use super::Report;
use crate::error::BenchError;

/// The CSV header.
pub const HEADER: &str = "transport,pattern,size,p50_ns,p99_ns,p999_ns,msgs_per_s,bytes_per_s,wakes_per_msg,reps,headline,min,max,vs_pipe,vs_floor,vs_futex,messages,vs_ring_floor";

fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        String::new()
    }
}

/// The results as CSV text (header first; empty cell for a missing figure).
pub fn to_string(report: &Report) -> String {
    let mut s = String::from(HEADER);
    s.push('\n');
    for r in &report.results {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.transport,
            r.pattern,
            r.size,
            num(r.figures.p50_ns),
            num(r.figures.p99_ns),
            num(r.figures.p999_ns),
            num(r.figures.msgs_per_s),
            num(r.figures.bytes_per_s),
            num(r.figures.wakes_per_msg),
            r.reps,
            r.headline,
            num(r.min),
            num(r.max),
            r.vs_pipe.map_or(String::new(), num),
            r.vs_floor.map_or(String::new(), num),
            r.vs_futex.map_or(String::new(), num),
            r.messages,
            r.vs_ring_floor.map_or(String::new(), num),
        );
    }
    s
}

/// Writes the results as CSV to `path`.
pub fn write(report: &Report, path: &Path) -> Result<(), BenchError> {
    fs::write(path, to_string(report)).map_err(|source| BenchError::Output {
        path: path.display().to_string(),
        source,
    })
}
