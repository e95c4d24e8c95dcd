//! The terminal table.

use std::fmt::Write as _;

use super::{fmt_ns, fmt_rate, fmt_size, Report, ResultRow};
use crate::config::Pattern;

/// Lays out rows as columns: the first left-aligned, the others right-aligned.
fn columns(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            let pad = widths[c].saturating_sub(cell.chars().count());
            if c == 0 {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str("  ");
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn ratio(x: Option<f64>) -> String {
    match x {
        Some(v) if v.is_finite() => {
            if v >= 100.0 {
                format!("×{v:.0}")
            } else if v >= 0.1 {
                format!("×{v:.2}")
            } else {
                format!("×{v:.4}")
            }
        }
        _ => "-".into(),
    }
}

/// The row's transport, starred when its figures are nominal (see the footnote).
fn label(r: &ResultRow) -> String {
    if r.nominal {
        format!("{}*", r.transport)
    } else {
        r.transport.clone()
    }
}

fn wakes(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else {
        format!("{x:.3}")
    }
}

fn pingpong_rows(rows: &[&ResultRow]) -> Vec<Vec<String>> {
    let mut out = vec![[
        "transport",
        "size",
        "p50 RTT",
        "[min – max]",
        "p99",
        "p99.9",
        "RTT/s",
        "vs pipe",
        "vs floor",
        "vs futex",
        "wakes/msg",
    ]
    .map(String::from)
    .to_vec()];
    for r in rows {
        out.push(vec![
            label(r),
            fmt_size(r.size),
            fmt_ns(r.p50_ns),
            format!("[{} – {}]", fmt_ns(r.min), fmt_ns(r.max)),
            fmt_ns(r.p99_ns),
            fmt_ns(r.p999_ns),
            fmt_rate(r.msgs_per_s),
            ratio(r.vs_pipe),
            ratio(r.vs_floor),
            ratio(r.vs_futex),
            wakes(r.wakes_per_msg),
        ]);
    }
    out
}

fn stream_rows(rows: &[&ResultRow]) -> Vec<Vec<String>> {
    let mut out = vec![[
        "transport",
        "size",
        "msg/s",
        "[min – max]",
        "B/s",
        "p50/msg",
        "p99/msg",
        "vs pipe",
        "vs floor",
        "wakes/msg",
    ]
    .map(String::from)
    .to_vec()];
    for r in rows {
        out.push(vec![
            label(r),
            fmt_size(r.size),
            fmt_rate(r.msgs_per_s),
            format!("[{} – {}]", fmt_rate(r.min), fmt_rate(r.max)),
            format!("{}B/s", spaced(fmt_rate(r.bytes_per_s))),
            fmt_ns(r.p50_ns),
            fmt_ns(r.p99_ns),
            ratio(r.vs_pipe),
            percent(r.vs_floor),
            wakes(r.wakes_per_msg),
        ]);
    }
    out
}

/// `x` as a percentage (stream bytes/s as a share of memcpy bandwidth).
fn percent(x: Option<f64>) -> String {
    match x {
        Some(v) if v.is_finite() => {
            let p = v * 100.0;
            if p >= 10.0 {
                format!("{p:.0}%")
            } else if p >= 0.1 {
                format!("{p:.1}%")
            } else {
                format!("{p:.3}%")
            }
        }
        _ => "-".into(),
    }
}

/// A rate followed by a unit: "1.20 M" stays, a bare "950" gets a space ("950 ").
fn spaced(rate: String) -> String {
    if rate.ends_with(|c: char| c.is_ascii_digit()) {
        rate + " "
    } else {
        rate
    }
}

/// Renders the report as a plain-text table (figures are medians across repetitions).
pub fn render(report: &Report) -> String {
    let mut s = String::new();
    let m = &report.machine;
    let run = &report.run;
    let _ = writeln!(
        s,
        "shm-bench {} — {}, {} cores, Linux {}",
        run.version, m.cpu, m.cores, m.kernel
    );
    let _ = writeln!(
        s,
        "parent on CPU {}, child on CPU {}{}; {} reps, transports alternated; median [min – max] across reps{}",
        run.cpus.parent,
        run.cpus.child,
        if run.same_core { " (same core)" } else { "" },
        run.reps,
        if run.verify { "; every byte verified" } else { "" },
    );
    let _ = writeln!(
        s,
        "wake handshake: {} (SHM_IPC_HANDSHAKE=seqcst forces the SeqCst fallback); waiting, 2 processes on {} cores: {} (yield-then-park once processes outnumber cores)",
        m.handshake, m.affinity_cores, m.wait_rule,
    );
    let f = &report.floors;
    let rg = &f.ranges;
    let _ = writeln!(
        s,
        "\nfloors (measured in every repetition, next to the transports): cache-line RTT {} [{} – {}] | shared-futex RTT {} [{} – {}] | memcpy 1 MiB {}B/s [{}B/s – {}B/s]",
        fmt_ns(f.cacheline_rtt_ns),
        fmt_ns(rg.cacheline_rtt_ns.min),
        fmt_ns(rg.cacheline_rtt_ns.max),
        fmt_ns(f.futex_rtt_ns),
        fmt_ns(rg.futex_rtt_ns.min),
        fmt_ns(rg.futex_rtt_ns.max),
        spaced(fmt_rate(f.memcpy_bytes_per_s)),
        spaced(fmt_rate(rg.memcpy_bytes_per_s.min)),
        spaced(fmt_rate(rg.memcpy_bytes_per_s.max)),
    );

    if let Some(o) = &report.overhead {
        let _ = writeln!(
            s,
            "harness overhead (shm-spin, harness vs a minimal loop over the same endpoints, means): 8 B RTT {} vs {} ×{:.2} [{:.2} – {:.2}] | 64 B stream {}msg/s vs {}msg/s ×{:.2} [{:.2} – {:.2}]",
            fmt_ns(o.harness_rtt_ns.median),
            fmt_ns(o.minimal_rtt_ns.median),
            o.rtt_ratio.median,
            o.rtt_ratio.min,
            o.rtt_ratio.max,
            spaced(fmt_rate(o.harness_stream_msgs_per_s.median)),
            spaced(fmt_rate(o.minimal_stream_msgs_per_s.median)),
            o.stream_ratio.median,
            o.stream_ratio.min,
            o.stream_ratio.max,
        );
    }

    let pp: Vec<&ResultRow> = report
        .results
        .iter()
        .filter(|r| r.pattern == Pattern::PingPong)
        .collect();
    if !pp.is_empty() {
        let _ = writeln!(
            s,
            "\nping-pong: parent sends, child echoes; vs pipe = pipe p50 / p50 (higher is better); vs floor = p50 / floor-cacheline p50, vs futex = p50 / floor-futex p50 (each repetition against its own floor)"
        );
        s.push_str(&columns(&pingpong_rows(&pp)));
    }
    let st: Vec<&ResultRow> = report
        .results
        .iter()
        .filter(|r| r.pattern == Pattern::Stream)
        .collect();
    if !st.is_empty() {
        let _ = writeln!(
            s,
            "\nstream: child produces, parent consumes; vs pipe = msg/s ÷ pipe msg/s (higher is better); vs floor = B/s as a share of memcpy B/s"
        );
        s.push_str(&columns(&stream_rows(&st)));
    }
    let tp: Vec<&ResultRow> = report
        .results
        .iter()
        .filter(|r| r.pattern == Pattern::TypedPingPong)
        .collect();
    if !tp.is_empty() {
        let _ = writeln!(
            s,
            "\ntyped ping-pong: a struct sent, decoded, re-encoded and sent back; size = encoded size; vs pipe = pipe-bincode p50 / p50"
        );
        s.push_str(&columns(&pingpong_rows(&tp)));
    }
    let ts: Vec<&ResultRow> = report
        .results
        .iter()
        .filter(|r| r.pattern == Pattern::TypedStream)
        .collect();
    if !ts.is_empty() {
        let _ = writeln!(
            s,
            "\ntyped stream: structs built, encoded, decoded; size = encoded size; vs pipe = msg/s ÷ pipe-bincode msg/s"
        );
        s.push_str(&columns(&stream_rows(&ts)));
    }
    if report.results.iter().any(|r| r.nominal) {
        let _ = writeln!(
            s,
            "* nominal: only the two sequence stamps of each message are written and read (the ring's own cost, not a user's)"
        );
    }
    for w in &run.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    s
}
