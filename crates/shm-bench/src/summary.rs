//! From the figures of every repetition to the report: each row's medians and range
//! across repetitions, and its ratios to its references (pipe, the floors), each
//! repetition against the reference measured in that repetition, then their median.

use crate::config::Pattern;
use crate::overhead::OverheadSample;
use crate::report::{fmt_size, FloorRanges, Floors, Overhead, ResultRow};
use crate::report::{Figures, Summary};
use crate::stats::median;
use crate::transport::{
    is_floor, Transport, CACHELINE_FLOOR, FUTEX_FLOOR, REFERENCE, RING_FLOOR, TYPED_REFERENCE,
};

/// One scenario of a run: pattern, message size, transport.
#[derive(Clone, Copy)]
pub(crate) struct Key {
    pub(crate) pattern: Pattern,
    pub(crate) size: usize,
    pub(crate) transport: &'static dyn Transport,
}

impl Key {
    pub(crate) fn name(&self) -> &'static str {
        self.transport.name()
    }
}

/// Everything a run measured: per repetition, the figures of every scenario and the
/// memcpy floor.
pub(crate) struct Measurements {
    /// The scenarios, in the order each repetition ran them.
    pub(crate) keys: Vec<Key>,
    /// `figures[rep][k]`: scenario `k` in repetition `rep`.
    pub(crate) figures: Vec<Vec<Figures>>,
    /// The memcpy floor of each repetition, bytes/s.
    pub(crate) memcpy: Vec<f64>,
    /// Messages measured per scenario over all repetitions.
    pub(crate) messages: Vec<u64>,
    /// Transport remarks per scenario.
    pub(crate) notes: Vec<Vec<String>>,
}

impl Measurements {
    /// One figure of scenario `k` in every repetition.
    fn column(&self, k: usize, f: fn(&Figures) -> f64) -> Vec<f64> {
        self.figures.iter().map(|rep| f(&rep[k])).collect()
    }

    /// The scenario of transport `name` in `pattern` that bounds messages of `size`
    /// bytes: its own at that size; else, at the smallest size above it that it ran (a
    /// floor of messages at least as large); else at its largest. `None` if it did not
    /// run.
    fn bound(&self, name: &str, pattern: Pattern, size: usize) -> Option<usize> {
        let runs = || {
            self.keys
                .iter()
                .enumerate()
                .filter(move |(_, k)| k.pattern == pattern && k.name() == name)
        };
        let above = runs()
            .filter(|(_, k)| k.size >= size)
            .min_by_key(|(_, k)| k.size);
        above
            .or_else(|| runs().max_by_key(|(_, k)| k.size))
            .map(|(i, _)| i)
    }

    /// The "vs pipe" reference of `key`: same pattern, `pipe` at the same size (typed
    /// patterns: `pipe-bincode`, whose size is its own).
    fn reference(&self, key: &Key) -> Option<usize> {
        self.keys.iter().position(|o| {
            o.pattern == key.pattern
                && if key.pattern.is_typed() {
                    o.name() == TYPED_REFERENCE
                } else {
                    o.size == key.size && o.name() == REFERENCE
                }
        })
    }

    /// The per-repetition p50 of the round-trip floor `name` that bounds `size`-byte
    /// messages.
    fn floor_p50(&self, name: &str, size: usize) -> Option<Vec<f64>> {
        self.bound(name, Pattern::PingPong, size)
            .map(|k| self.column(k, |f| f.p50_ns))
    }

    /// The floors: medians across repetitions, the round-trip floors at `size` bytes.
    pub(crate) fn floors(&self, size: usize) -> Floors {
        let summary = |v: Option<Vec<f64>>| {
            v.and_then(|v| Summary::of(&v)).unwrap_or(Summary {
                median: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
            })
        };
        let ranges = FloorRanges {
            cacheline_rtt_ns: summary(self.floor_p50(CACHELINE_FLOOR, size)),
            futex_rtt_ns: summary(self.floor_p50(FUTEX_FLOOR, size)),
            memcpy_bytes_per_s: summary(Some(self.memcpy.clone())),
        };
        Floors {
            cacheline_rtt_ns: ranges.cacheline_rtt_ns.median,
            futex_rtt_ns: ranges.futex_rtt_ns.median,
            memcpy_bytes_per_s: ranges.memcpy_bytes_per_s.median,
            ranges,
        }
    }

    /// One row per scenario.
    pub(crate) fn rows(&self) -> Vec<ResultRow> {
        (0..self.keys.len()).map(|k| self.row(k)).collect()
    }

    fn row(&self, k: usize) -> ResultRow {
        let key = self.keys[k];
        let pingpong = key.pattern.is_round_trip();
        let headline = if pingpong {
            self.column(k, |f| f.p50_ns)
        } else {
            self.column(k, |f| f.msgs_per_s)
        };
        let range = Summary::of(&headline).expect("at least one repetition");
        let vs_pipe = self.reference(&key).map(|r| {
            let ratios: Vec<f64> = self
                .figures
                .iter()
                .map(|rep| {
                    if pingpong {
                        rep[r].p50_ns / rep[k].p50_ns
                    } else {
                        rep[k].msgs_per_s / rep[r].msgs_per_s
                    }
                })
                .collect();
            median(&ratios)
        });
        let (vs_floor, vs_futex, vs_ring_floor) = if pingpong {
            let p50 = self.column(k, |f| f.p50_ns);
            let against = |name| {
                self.floor_p50(name, key.size)
                    .and_then(|floor| per_rep_ratio(&p50, &floor))
            };
            (against(CACHELINE_FLOOR), against(FUTEX_FLOOR), None)
        } else {
            let bytes = self.column(k, |f| f.bytes_per_s);
            let rate = |k| self.column(k, |f| f.msgs_per_s);
            let ring = (self.bound(RING_FLOOR, Pattern::Stream, key.size))
                .and_then(|floor| per_rep_ratio(&rate(k), &rate(floor)));
            (per_rep_ratio(&bytes, &self.memcpy), None, ring)
        };
        let medians = |f: fn(&Figures) -> f64| median(&self.column(k, f));
        ResultRow {
            transport: key.name().to_string(),
            pattern: key.pattern,
            size: key.size,
            figures: Figures {
                p50_ns: medians(|f| f.p50_ns),
                p99_ns: medians(|f| f.p99_ns),
                p999_ns: medians(|f| f.p999_ns),
                msgs_per_s: medians(|f| f.msgs_per_s),
                bytes_per_s: medians(|f| f.bytes_per_s),
                wakes_per_msg: medians(|f| f.wakes_per_msg),
            },
            reps: self.figures.len() as u32,
            headline: if pingpong { "p50_ns" } else { "msgs_per_s" },
            min: range.min,
            per_rep: headline,
            max: range.max,
            vs_pipe,
            vs_floor,
            vs_futex,
            vs_ring_floor,
            nominal: key.transport.nominal(),
            messages: self.messages[k],
            notes: self.notes[k].clone(),
        }
    }
}

/// The median over repetitions of `figure / floor`, each repetition against its own
/// floor.
fn per_rep_ratio(figure: &[f64], floor: &[f64]) -> Option<f64> {
    let ratios: Vec<f64> = figure
        .iter()
        .zip(floor)
        .map(|(f, fl)| f / fl)
        .filter(|r| r.is_finite())
        .collect();
    (!ratios.is_empty()).then(|| median(&ratios))
}

/// The harness-overhead check across repetitions; `None` if it did not run.
pub(crate) fn overhead(samples: &[OverheadSample]) -> Option<Overhead> {
    let of =
        |f: fn(&OverheadSample) -> f64| Summary::of(&samples.iter().map(f).collect::<Vec<_>>());
    Some(Overhead {
        harness_rtt_ns: of(|s| s.harness_rtt_ns)?,
        minimal_rtt_ns: of(|s| s.minimal_rtt_ns)?,
        rtt_ratio: of(|s| s.harness_rtt_ns / s.minimal_rtt_ns)?,
        harness_stream_msgs_per_s: of(|s| s.harness_stream_msgs_per_s)?,
        minimal_stream_msgs_per_s: of(|s| s.minimal_stream_msgs_per_s)?,
        stream_ratio: of(|s| s.minimal_stream_msgs_per_s / s.harness_stream_msgs_per_s)?,
    })
}

/// Says when the cache-line floor tells the reader nothing about a figure it bounds:
/// when it came out above that figure, or varied more across repetitions than the figure
/// did (on a 2-core VM the cross-core line transfer itself moves with where the vCPUs
/// land). The figures it bounds tightly are the round trips within [`TIGHT`] of it (the
/// spinning rings); a pipe's ratio to it is not a bound worth a warning.
pub(crate) fn warn_about_floors(results: &[ResultRow], warnings: &mut Vec<String>) {
    /// A round trip within this factor of the floor is bounded by it.
    const TIGHT: f64 = 10.0;
    let spread = |r: &ResultRow| r.max / r.min;
    let floors = results
        .iter()
        .filter(|r| r.transport == CACHELINE_FLOOR && r.pattern == Pattern::PingPong);
    for f in floors {
        let bounded = results.iter().filter(|r| {
            r.pattern == Pattern::PingPong
                && r.size == f.size
                && !is_floor(&r.transport)
                && r.figures.p50_ns < TIGHT * f.figures.p50_ns
        });
        let names = |pick: &dyn Fn(&ResultRow) -> bool| -> Vec<&str> {
            bounded
                .clone()
                .filter(|r| pick(r))
                .map(|r| r.transport.as_str())
                .collect()
        };
        let below = names(&|r| r.figures.p50_ns < f.figures.p50_ns);
        let steadier = names(&|r| spread(r) < spread(f));
        let at = fmt_size(f.size);
        if !below.is_empty() {
            warnings.push(format!(
                "{CACHELINE_FLOOR} {at}: the floor came out above {}; ratios to it mean nothing in this run",
                below.join(", ")
            ));
        }
        if !steadier.is_empty() {
            warnings.push(format!(
                "{CACHELINE_FLOOR} {at}: the floor varied ×{:.2} across repetitions, more than {}; take their vs-floor ratios as uncertain",
                spread(f),
                steadier.join(", ")
            ));
        }
    }
}
