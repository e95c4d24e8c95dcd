//! A whole run: the busy check, then `reps` repetitions, each measuring the floors and
//! then every scenario with the transports alternated (A B C A B C … for each pattern and
//! size), then the summaries.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::{Config, Pattern};
use crate::error::BenchError;
use crate::floors::{self, FloorSample};
use crate::machine::{self, Machine};
use crate::overhead::{self, OverheadSample};
use crate::pattern::{run_scenario, Figures};
use crate::payload::Payload;
use crate::report::{fmt_size, FloorRanges, Floors, Overhead, Report, ResultRow, RunInfo};
use crate::stats::{median, Summary};
use crate::transport::{is_floor, CACHELINE_FLOOR, FUTEX_FLOOR, REFERENCE};
use crate::typed::TYPED_REFERENCE;

/// One scenario's key: pattern, size and transport index (into `Config::transports`, or
/// into `Config::typed` for a typed pattern).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    pattern: Pattern,
    size: usize,
    transport: usize,
}

impl Key {
    fn name(&self, config: &Config) -> &'static str {
        if self.pattern.is_typed() {
            config.typed[self.transport].name()
        } else {
            config.transports[self.transport].name()
        }
    }
}

/// Checks what the CLI cannot: non-empty lists, sizes within the template.
pub fn validate(config: &Config) -> Result<(), BenchError> {
    if config.transports.is_empty() && config.typed.is_empty() {
        return Err(BenchError::Config("no transport selected".into()));
    }
    if config.patterns.is_empty() {
        return Err(BenchError::Config("no pattern selected".into()));
    }
    if config.sizes.is_empty() || config.sizes.contains(&0) {
        return Err(BenchError::Config("sizes must be non-empty and > 0".into()));
    }
    if config.reps == 0 {
        return Err(BenchError::Config("reps must be at least 1".into()));
    }
    Ok(())
}

/// Runs the benchmark described by `config` and returns its report.
pub fn run(config: &Config) -> Result<Report, BenchError> {
    validate(config)?;
    let began = Instant::now();
    let mut warnings = if config.busy_check {
        machine::busy_check()
    } else {
        Vec::new()
    };
    let machine = Machine::detect();
    let max_size = config.sizes.iter().copied().max().unwrap_or(1);
    let max_size = if config.overhead_check {
        max_size.max(overhead::STREAM_SIZE)
    } else {
        max_size
    };
    let payload = Payload::new(max_size);

    let keys: Vec<Key> = config
        .patterns
        .iter()
        .flat_map(|&pattern| -> Vec<Key> {
            if pattern.is_typed() {
                return (0..config.typed.len())
                    .map(|transport| Key {
                        pattern,
                        size: config.typed[transport].encoded_size(),
                        transport,
                    })
                    .collect();
            }
            config
                .sizes
                .iter()
                .flat_map(move |&size| {
                    (0..config.transports.len())
                        .filter(move |&t| config.transports[t].supports(pattern, size))
                        .map(move |transport| Key {
                            pattern,
                            size,
                            transport,
                        })
                })
                .collect()
        })
        .collect();

    let steps = u64::from(config.reps) * (keys.len() as u64 + 1 + u64::from(config.overhead_check));
    let bar = progress_bar(config.progress, steps);

    let mut floor_samples: Vec<FloorSample> = Vec::new();
    let mut overhead_samples: Vec<OverheadSample> = Vec::new();
    // figures[rep][key index]
    let mut figures: Vec<Vec<Figures>> = Vec::new();
    let mut messages = vec![0u64; keys.len()];
    let mut notes: Vec<Vec<String>> = vec![Vec::new(); keys.len()];

    for rep in 0..config.reps {
        bar.set_message(format!("rep {}/{} floors", rep + 1, config.reps));
        floor_samples.push(floors::measure(config.cpus, &config.floor_budget)?);
        bar.inc(1);
        if config.overhead_check {
            bar.set_message(format!("rep {}/{} harness overhead", rep + 1, config.reps));
            overhead_samples.push(overhead::measure(config.cpus, &config.budget, &payload)?);
            bar.inc(1);
        }
        let mut row = Vec::with_capacity(keys.len());
        for (k, key) in keys.iter().enumerate() {
            bar.set_message(format!(
                "rep {}/{} {} {} {}",
                rep + 1,
                config.reps,
                key.name(config),
                key.pattern,
                fmt_size(key.size)
            ));
            let sample = if key.pattern.is_typed() {
                config.typed[key.transport].run(
                    key.pattern,
                    &config.budget,
                    config.cpus,
                    config.verify,
                )?
            } else {
                run_scenario(
                    config.transports[key.transport],
                    key.pattern,
                    key.size,
                    &config.budget,
                    config.cpus,
                    config.verify,
                    &payload,
                )?
            };
            messages[k] += sample.msgs;
            for n in &sample.notes {
                if !notes[k].contains(n) {
                    notes[k].push(n.clone());
                }
                if !warnings.contains(n) {
                    warnings.push(n.clone());
                }
            }
            row.push(sample.figures(key.size));
            bar.inc(1);
        }
        figures.push(row);
    }
    bar.finish_and_clear();

    let floors = summarise_floors(config, &keys, &figures, &floor_samples);
    let results: Vec<ResultRow> = keys
        .iter()
        .enumerate()
        .map(|(k, key)| {
            summarise_row(
                config,
                &keys,
                k,
                *key,
                &figures,
                &floor_samples,
                messages[k],
                notes[k].clone(),
            )
        })
        .collect();
    warn_about_floors(&results, &mut warnings);

    Ok(Report {
        machine,
        floors,
        overhead: summarise_overhead(&overhead_samples),
        results,
        run: RunInfo {
            reps: config.reps,
            cpus: config.cpus,
            same_core: config.same_core(),
            sizes: config.sizes.clone(),
            transports: config
                .transports
                .iter()
                .map(|t| t.name().to_string())
                .collect(),
            verify: config.verify,
            duration_s: began.elapsed().as_secs_f64(),
            warnings,
            version: env!("CARGO_PKG_VERSION"),
        },
    })
}

fn progress_bar(enabled: bool, steps: u64) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    // `stderr()` draws nothing when stderr is not a terminal. No steady tick: indicatif's
    // ticker is a thread, and shm-fork refuses to fork a multi-threaded process (the bar
    // is drawn synchronously, from this thread, by `inc` and `set_message`).
    let bar = ProgressBar::with_draw_target(Some(steps), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed}<{eta}] {msg}")
    {
        bar.set_style(style);
    }
    bar
}

/// The per-repetition p50 of the floor transport `name` in the ping-pong scenario that
/// bounds messages of `size` bytes: the floor's own scenario of that size, else its
/// largest one (a floor carries only small messages). `None` if the floor did not run.
fn floor_column(
    config: &Config,
    keys: &[Key],
    figures: &[Vec<Figures>],
    name: &str,
    size: usize,
) -> Option<Vec<f64>> {
    let of_floor = |k: &&Key| k.pattern == Pattern::PingPong && k.name(config) == name;
    let same = keys.iter().position(|k| of_floor(&k) && k.size == size);
    let largest = || {
        keys.iter()
            .enumerate()
            .filter(|(_, k)| of_floor(k))
            .max_by_key(|(_, k)| k.size)
            .map(|(i, _)| i)
    };
    let k = same.or_else(largest)?;
    Some(figures.iter().map(|rep| rep[k].p50_ns).collect())
}

fn summarise_floors(
    config: &Config,
    keys: &[Key],
    figures: &[Vec<Figures>],
    samples: &[FloorSample],
) -> Floors {
    let summary = |v: Option<Vec<f64>>| {
        v.and_then(|v| Summary::of(&v)).unwrap_or(Summary {
            median: f64::NAN,
            min: f64::NAN,
            max: f64::NAN,
        })
    };
    let smallest = config.sizes.first().copied().unwrap_or(8);
    let ranges = FloorRanges {
        cacheline_rtt_ns: summary(floor_column(
            config,
            keys,
            figures,
            CACHELINE_FLOOR,
            smallest,
        )),
        futex_rtt_ns: summary(floor_column(config, keys, figures, FUTEX_FLOOR, smallest)),
        memcpy_bytes_per_s: summary(Some(samples.iter().map(|s| s.memcpy_bytes_per_s).collect())),
    };
    Floors {
        cacheline_rtt_ns: ranges.cacheline_rtt_ns.median,
        futex_rtt_ns: ranges.futex_rtt_ns.median,
        memcpy_bytes_per_s: ranges.memcpy_bytes_per_s.median,
        ranges,
    }
}

/// The harness-overhead check across repetitions; `None` if it did not run.
fn summarise_overhead(samples: &[OverheadSample]) -> Option<Overhead> {
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

/// Says when the cache-line floor tells the reader nothing about a figure it bounds:
/// when it came out above that figure, or varied more across repetitions than the figure
/// did (on a 2-core VM the cross-core line transfer itself moves with where the vCPUs
/// land). The figures it bounds tightly are the round trips within [`TIGHT`] of it (the
/// spinning rings); a pipe's ratio to it is not a bound worth a warning.
fn warn_about_floors(results: &[ResultRow], warnings: &mut Vec<String>) {
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
                && r.p50_ns < TIGHT * f.p50_ns
        });
        let names = |pick: &dyn Fn(&ResultRow) -> bool| -> Vec<&str> {
            bounded
                .clone()
                .filter(|r| pick(r))
                .map(|r| r.transport.as_str())
                .collect()
        };
        let below = names(&|r| r.p50_ns < f.p50_ns);
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

#[allow(clippy::too_many_arguments)]
fn summarise_row(
    config: &Config,
    keys: &[Key],
    k: usize,
    key: Key,
    figures: &[Vec<Figures>],
    floors: &[FloorSample],
    messages: u64,
    notes: Vec<String>,
) -> ResultRow {
    let col = |f: fn(&Figures) -> f64| -> Vec<f64> { figures.iter().map(|r| f(&r[k])).collect() };
    let pingpong = key.pattern.is_round_trip();
    let headline = if pingpong {
        col(|f| f.p50_ns)
    } else {
        col(|f| f.msgs_per_s)
    };
    let range = Summary::of(&headline).expect("at least one repetition");

    // The reference scenario: same pattern and size, transport "pipe" (typed: same
    // pattern, "pipe-bincode", whose size is its own encoded size).
    let reference = keys.iter().position(|o| {
        o.pattern == key.pattern
            && if key.pattern.is_typed() {
                o.name(config) == TYPED_REFERENCE
            } else {
                o.size == key.size && o.name(config) == REFERENCE
            }
    });
    let vs_pipe = reference.map(|r| {
        let ratios: Vec<f64> = figures
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
    // Each repetition against its own floors (measured in that repetition).
    let (vs_floor, vs_futex) = if pingpong {
        let p50 = col(|f| f.p50_ns);
        let against = |name| {
            floor_column(config, keys, figures, name, key.size)
                .and_then(|fl| per_rep_ratio(&p50, &fl))
        };
        (against(CACHELINE_FLOOR), against(FUTEX_FLOOR))
    } else {
        let memcpy: Vec<f64> = floors.iter().map(|f| f.memcpy_bytes_per_s).collect();
        (per_rep_ratio(&col(|f| f.bytes_per_s), &memcpy), None)
    };

    ResultRow {
        transport: key.name(config).to_string(),
        pattern: key.pattern,
        size: key.size,
        p50_ns: median(&col(|f| f.p50_ns)),
        p99_ns: median(&col(|f| f.p99_ns)),
        p999_ns: median(&col(|f| f.p999_ns)),
        msgs_per_s: median(&col(|f| f.msgs_per_s)),
        bytes_per_s: median(&col(|f| f.bytes_per_s)),
        wakes_per_msg: median(&col(|f| f.wakes_per_msg)),
        reps: figures.len() as u32,
        headline: if pingpong { "p50_ns" } else { "msgs_per_s" },
        min: range.min,
        per_rep: headline.clone(),
        max: range.max,
        vs_pipe,
        vs_floor,
        vs_futex,
        nominal: !key.pattern.is_typed() && config.transports[key.transport].nominal(),
        messages,
        notes,
    }
}
