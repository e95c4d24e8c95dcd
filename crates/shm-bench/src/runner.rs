//! A whole run: the busy check, then `reps` repetitions, each measuring the memcpy floor,
//! the harness overhead, then every scenario with the transports alternated (A B C A B C
//! … for each pattern and size; the round-trip and ring floors are transports, so they
//! are alternated with the rest), then the summaries.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::Config;
use crate::error::BenchError;
use crate::floors;
use crate::machine::{self, Machine};
use crate::overhead;
use crate::payload::Payload;
use crate::report::{fmt_size, Report, RunInfo};
use crate::scenario::run_scenario;
use crate::summary::{self, Key, Measurements};

/// Checks what the CLI cannot: non-empty lists, sizes within the template.
pub(crate) fn validate(config: &Config) -> Result<(), BenchError> {
    if config.transports.is_empty() {
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

/// The scenarios of a repetition, in the order they run: for each pattern, each size with
/// the byte transports that carry it, then the transports of typed values at their own
/// sizes.
fn scenarios(config: &Config) -> Vec<Key> {
    let mut keys = Vec::new();
    for &pattern in &config.patterns {
        let bytes = config.sizes.iter().flat_map(|&size| {
            let byte_transports = config.transports.iter();
            byte_transports
                .filter(|t| t.message_size().is_none())
                .map(move |&t| (size, t))
        });
        let typed = (config.transports.iter()).filter_map(|&t| Some((t.message_size()?, t)));
        keys.extend(
            bytes
                .chain(typed)
                .filter(|(size, t)| t.supports(pattern, *size))
                .map(|(size, transport)| Key {
                    pattern,
                    size,
                    transport,
                }),
        );
    }
    keys
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
    let keys = scenarios(config);
    let largest = keys.iter().map(|k| k.size).max().unwrap_or(1);
    let payload = Payload::new(if config.overhead_check {
        largest.max(overhead::STREAM_SIZE)
    } else {
        largest
    });

    let steps = u64::from(config.reps) * (keys.len() as u64 + 1 + u64::from(config.overhead_check));
    let bar = progress_bar(config.progress, steps);

    let mut runs = Measurements {
        figures: Vec::new(),
        memcpy: Vec::new(),
        messages: vec![0; keys.len()],
        notes: vec![Vec::new(); keys.len()],
        keys,
    };
    let mut overhead_samples = Vec::new();
    for rep in 0..config.reps {
        let of_reps = format!("rep {}/{}", rep + 1, config.reps);
        bar.set_message(format!("{of_reps} floors"));
        runs.memcpy
            .push(floors::measure(config.cpus, &config.floor_budget)?.memcpy_bytes_per_s);
        bar.inc(1);
        if config.overhead_check {
            bar.set_message(format!("{of_reps} harness overhead"));
            overhead_samples.push(overhead::measure(config.cpus, &config.budget, &payload)?);
            bar.inc(1);
        }
        let mut row = Vec::with_capacity(runs.keys.len());
        for (k, key) in runs.keys.iter().enumerate() {
            bar.set_message(format!(
                "{of_reps} {} {} {}",
                key.name(),
                key.pattern,
                fmt_size(key.size)
            ));
            let sample = run_scenario(
                key.transport,
                key.pattern,
                key.size,
                &config.budget,
                config.cpus,
                config.verify,
                &payload,
            )?;
            runs.messages[k] += sample.msgs;
            for n in &sample.notes {
                if !runs.notes[k].contains(n) {
                    runs.notes[k].push(n.clone());
                }
                if !warnings.contains(n) {
                    warnings.push(n.clone());
                }
            }
            row.push(sample.figures(key.size));
            bar.inc(1);
        }
        runs.figures.push(row);
    }
    bar.finish_and_clear();

    let results = runs.rows();
    summary::warn_about_floors(&results, &mut warnings);
    Ok(Report {
        machine,
        floors: runs.floors(config.sizes.first().copied().unwrap_or(8)),
        overhead: summary::overhead(&overhead_samples),
        results,
        run: RunInfo {
            reps: config.reps,
            cpus: config.cpus,
            same_core: config.cpus.same_core(),
            sizes: config.sizes.clone(),
            transports: config
                .transports
                .iter()
                .filter(|t| t.message_size().is_none())
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
