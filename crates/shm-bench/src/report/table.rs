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

/// `x` with fewer decimals the larger it is: `places[0]` from `from[0]` up, `places[1]`
/// from `from[1]` up, else `places[2]`, between `before` and `after`; "-" when missing or
/// not finite.
fn decimal(x: Option<f64>, from: [f64; 2], places: [usize; 3], around: [&str; 2]) -> String {
    let Some(v) = x.filter(|v| v.is_finite()) else {
        return "-".into();
    };
    let places = if v >= from[0] {
        places[0]
    } else if v >= from[1] {
        places[1]
    } else {
        places[2]
    };
    format!("{}{v:.places$}{}", around[0], around[1])
}

/// A ratio: ×1234, ×1.23, ×0.0123.
fn ratio(x: Option<f64>) -> String {
    decimal(x, [100.0, 0.1], [0, 2, 4], ["×", ""])
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

/// A column of a section: its title, and its cell in a row.
type Column = (&'static str, fn(&ResultRow) -> String);

/// A section's headline figure: its title, its value in a row, its format (the row's
/// `min`/`max` are its range).
type Headline = (&'static str, fn(&ResultRow) -> f64, fn(f64) -> String);

/// The round trips' headline: the median round trip.
const ROUND_TRIP_HEADLINE: Headline = ("p50 RTT", |r| r.figures.p50_ns, fmt_ns);

/// The streams' headline: messages per second.
const STREAM_HEADLINE: Headline = ("msg/s", |r| r.figures.msgs_per_s, fmt_rate);

/// The columns after the headline, side by side: a round-trip section's, a stream
/// section's.
const COLUMNS: [[Column; 2]; 7] = [
    [
        ("p99", |r| fmt_ns(r.figures.p99_ns)),
        ("B/s", |r| {
            format!("{}B/s", spaced(fmt_rate(r.figures.bytes_per_s)))
        }),
    ],
    [
        ("p99.9", |r| fmt_ns(r.figures.p999_ns)),
        ("p50/msg", |r| fmt_ns(r.figures.p50_ns)),
    ],
    [
        ("RTT/s", |r| fmt_rate(r.figures.msgs_per_s)),
        ("p99/msg", |r| fmt_ns(r.figures.p99_ns)),
    ],
    [("vs pipe", |r| ratio(r.vs_pipe)); 2],
    [
        ("vs floor", |r| ratio(r.vs_floor)),
        ("vs floor", |r| percent(r.vs_floor)),
    ],
    [
        ("vs futex", |r| ratio(r.vs_futex)),
        ("vs ring floor", |r| ratio(r.vs_ring_floor)),
    ],
    [("wakes/msg", |r| wakes(r.figures.wakes_per_msg)); 2],
];

/// The cells of a section: the titles, then one line per row: the transport, the size,
/// the headline and its range, then column `kind` (0: round trips, 1: streams) of
/// [`COLUMNS`].
fn cells(rows: &[&ResultRow], headline: Headline, kind: usize) -> Vec<Vec<String>> {
    let (title, value, format) = headline;
    let columns = COLUMNS.map(|pair| pair[kind]);
    let lead = ["transport", "size", title, "[min – max]"];
    let titles = lead
        .into_iter()
        .chain(columns.iter().map(|(title, _)| *title))
        .map(String::from)
        .collect();
    let line = |r: &ResultRow| -> Vec<String> {
        let range = format!("[{} – {}]", format(r.min), format(r.max));
        [label(r), fmt_size(r.size), format(value(r)), range]
            .into_iter()
            .chain(columns.iter().map(|(_, cell)| cell(r)))
            .collect()
    };
    std::iter::once(titles)
        .chain(rows.iter().map(|r| line(r)))
        .collect()
}

/// `x` as a percentage (stream bytes/s as a share of memcpy bandwidth): 12%, 1.2%,
/// 0.012%.
fn percent(x: Option<f64>) -> String {
    decimal(x.map(|v| v * 100.0), [10.0, 0.1], [0, 1, 3], ["", "%"])
}

/// A rate followed by a unit: "1.20 M" stays, a bare "950" gets a space ("950 ").
fn spaced(rate: String) -> String {
    if rate.ends_with(|c: char| c.is_ascii_digit()) {
        rate + " "
    } else {
        rate
    }
}

/// The table's sections: the rows of one pattern each, under a line that says how they
/// were measured and what their ratios divide.
const SECTIONS: [(Pattern, &str); 4] = [
    (
        Pattern::PingPong,
        "ping-pong: parent sends, child echoes; vs pipe = pipe p50 / p50 (higher is better); vs floor = p50 / floor-cacheline p50, vs futex = p50 / floor-futex p50 (each repetition against its own floor)",
    ),
    (
        Pattern::Stream,
        "stream: child produces, parent consumes; vs pipe = msg/s ÷ pipe msg/s (higher is better); vs floor = B/s as a share of memcpy B/s; vs ring floor = msg/s ÷ floor-ring msg/s (the minimal ring, each repetition against its own)",
    ),
    (
        Pattern::TypedPingPong,
        "typed ping-pong: a struct sent, decoded, re-encoded and sent back; size = encoded size; vs pipe = pipe-bincode p50 / p50",
    ),
    (
        Pattern::TypedStream,
        "typed stream: structs built, encoded, decoded; size = encoded size; vs pipe = msg/s ÷ pipe-bincode msg/s; vs ring floor against floor-ring at the next size up",
    ),
];

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
        "wake handshake: {} (SHM_IPC_HANDSHAKE=seqcst forces the SeqCst fallback); waiting, 2 processes on {} cores: {} (batched once processes exceed two a core plus one)",
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

    for (pattern, legend) in SECTIONS {
        let rows: Vec<&ResultRow> = report
            .results
            .iter()
            .filter(|r| r.pattern == pattern)
            .collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n{legend}");
        let section = if pattern.is_round_trip() {
            cells(&rows, ROUND_TRIP_HEADLINE, 0)
        } else {
            cells(&rows, STREAM_HEADLINE, 1)
        };
        s.push_str(&columns(&section));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_and_percentages_keep_about_three_digits() {
        let r = |v| ratio(Some(v));
        assert_eq!(
            [r(1234.4), r(1.234), r(0.01234)],
            ["×1234", "×1.23", "×0.0123"]
        );
        let p = |v| percent(Some(v));
        assert_eq!(
            [p(0.123), p(0.0123), p(0.000123)],
            ["12%", "1.2%", "0.012%"]
        );
        assert_eq!(
            (ratio(None), percent(Some(f64::NAN))),
            ("-".into(), "-".into())
        );
    }
}
