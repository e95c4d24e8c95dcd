//! One scenario: a transport, a pattern and a message size, measured once between this
//! process and a forked child.
//!
//! - **ping-pong**: the parent sends message `seq`, the child checks and echoes it, the
//!   parent checks the echo. Each round trip is timed in the parent and recorded (ns) in
//!   a histogram.
//! - **stream**: the child produces messages `0, 1, 2, …` as fast as the transport takes
//!   them; the parent consumes and checks them. The parent times batches of messages
//!   (64 KiB or 64 messages, whichever is fewer, at least one) and records the mean
//!   per-message interval of each batch, so the clock is not read per message.
//!
//! The child's loop ends when the parent closes its endpoint (EOF / `EPIPE`), so a child
//! never outlives a parent that stops or dies.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::affinity::AffinityGuard;
use crate::child::{self, Watchdog, EXIT_CORRUPT, EXIT_OK, EXIT_TRANSPORT};
use crate::config::{Budget, CpuPair, Pattern};
use crate::error::BenchError;
use crate::payload::{Checker, Payload};
use crate::shm::SharedMap;
use crate::transport::{Endpoint, Pair, Transport, TransportError};

// Layout of the child's report page (written by the child before `_exit`, read by the
// parent after `waitpid`).
pub(crate) const R_MSGS: usize = 0;
pub(crate) const R_VERIFIED: usize = 8;
pub(crate) const R_WAKES: usize = 16;
const R_FIRST_BAD: usize = 24;

/// The highest value the latency histograms track: 60 s in ns.
const HIST_MAX_NS: u64 = 60_000_000_000;

/// A new latency histogram (1 ns .. 60 s, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_NS, 3).expect("valid histogram bounds")
}

/// What one measurement of one scenario produced.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Messages measured (after the warm-up).
    pub msgs: u64,
    /// Messages the parent received in all, warm-up included.
    pub total_msgs: u64,
    /// Duration of the measured part.
    pub elapsed: Duration,
    /// Round-trip times (ping-pong) or per-message intervals (stream), in ns.
    pub hist: Histogram<u64>,
    /// Bytes the parent verified one by one (verify mode; warm-up included).
    pub verified_bytes: u64,
    /// Messages the child received (ping-pong) or sent (stream).
    pub child_msgs: u64,
    /// Bytes the child verified one by one (ping-pong in verify mode).
    pub child_verified_bytes: u64,
    /// Wake-up syscalls made by both endpoints.
    pub wakes: u64,
    /// Transport remarks.
    pub notes: Vec<String>,
}

/// The headline figures of one [`Sample`].
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Figures {
    /// Median (ns) of the histogram.
    pub p50_ns: f64,
    /// 99th percentile (ns).
    pub p99_ns: f64,
    /// 99.9th percentile (ns).
    pub p999_ns: f64,
    /// Messages per second (round trips per second for ping-pong).
    pub msgs_per_s: f64,
    /// Payload bytes per second in one direction.
    pub bytes_per_s: f64,
    /// Wake-up syscalls per message (both sides).
    pub wakes_per_msg: f64,
}

impl Sample {
    /// The figures of this sample for messages of `size` bytes.
    pub fn figures(&self, size: usize) -> Figures {
        let secs = self.elapsed.as_secs_f64().max(1e-12);
        let msgs_per_s = self.msgs as f64 / secs;
        Figures {
            p50_ns: self.hist.value_at_quantile(0.50) as f64,
            p99_ns: self.hist.value_at_quantile(0.99) as f64,
            p999_ns: self.hist.value_at_quantile(0.999) as f64,
            msgs_per_s,
            bytes_per_s: msgs_per_s * size as f64,
            wakes_per_msg: self.wakes as f64 / self.total_msgs.max(1) as f64,
        }
    }
}

/// Runs one scenario: connects `transport`, forks the child onto `cpus.child`, measures
/// on `cpus.parent` within `budget`, reaps the child.
///
/// With `verify`, every byte of every message is checked by its receiver and counted in
/// [`Sample::verified_bytes`] / [`Sample::child_verified_bytes`]; otherwise only the
/// sequence stamps (two words) of each message are checked.
pub fn run_scenario(
    transport: &dyn Transport,
    pattern: Pattern,
    size: usize,
    budget: &Budget,
    cpus: CpuPair,
    verify: bool,
    payload: &Payload,
) -> Result<Sample, BenchError> {
    if size == 0 || size > payload.max_len() {
        return Err(BenchError::Config(format!(
            "message size {size} outside 1..={}",
            payload.max_len()
        )));
    }
    if pattern.is_typed() {
        return Err(BenchError::Config(format!(
            "{pattern} runs typed transports (crate::typed), not byte transports"
        )));
    }
    let name = transport.name();
    let what = format!("{name} {pattern} {size} B");
    let terr = |source| BenchError::Transport {
        transport: name.to_string(),
        source,
    };
    let Pair {
        parent,
        child: child_ep,
        notes,
    } = transport.connect(size).map_err(terr)?;
    let report = SharedMap::new(4096).map_err(|source| BenchError::Sys {
        what: "mmap (child report)",
        source,
    })?;
    let _pin = AffinityGuard::pin(cpus.parent)?;

    let mut parent_ep = Some(parent);
    // The child's endpoint is handed over to the child (`Endpoint::hand_over`, through
    // shm-fork's `Inherit`) and adopted there before this closure runs.
    let proc = child::spawn(&what, cpus.child, child_ep, |mut ep| {
        // The parent's endpoint is not ours: release this process's copy only (for pipes
        // and sockets: close the parent's descriptors, so that we see its EOF).
        drop(parent_ep.take());
        let code = match pattern {
            Pattern::PingPong | Pattern::TypedPingPong => {
                child_echo(&mut *ep, size, payload, verify, &report)
            }
            Pattern::Stream | Pattern::TypedStream => {
                child_produce(&mut *ep, size, payload, &report)
            }
        };
        report
            .u64_at(R_WAKES)
            .store(ep.wake_syscalls(), Ordering::SeqCst);
        drop(ep);
        code
    })?;
    let mut ep = parent_ep
        .take()
        .expect("parent endpoint present in the parent");
    let deadline = watchdog_deadline(budget);
    let dog = Watchdog::arm(&proc, deadline)?;

    let mut checker = Checker::new(payload, verify);
    let measured = match pattern {
        Pattern::PingPong | Pattern::TypedPingPong => {
            parent_pingpong(&mut *ep, size, budget, payload, &mut checker)
        }
        Pattern::Stream | Pattern::TypedStream => {
            parent_consume(&mut *ep, size, budget, &mut checker)
        }
    };
    let parent_wakes = ep.wake_syscalls();
    // Closing our end is the child's signal to stop.
    drop(ep);
    // `Stalled` if the watchdog fired (or the child outlived the deadline).
    let child_result = dog.finish(proc);
    let (msgs, elapsed, hist) = match (measured, child_result) {
        (Ok(m), Ok(())) => m,
        // The child's own account of a failure says more than our EOF.
        (Err(_), Err(child_err)) => return Err(child_err),
        (Err(e), Ok(())) | (Ok(_), Err(e)) => return Err(named(e, name)),
    };
    if let Some(seq) = checker.first_bad {
        return Err(BenchError::Corrupt {
            transport: name.to_string(),
            seq,
            size,
        });
    }
    Ok(Sample {
        msgs,
        total_msgs: checker.next_seq,
        elapsed,
        hist,
        verified_bytes: checker.verified_bytes,
        child_msgs: report.u64_at(R_MSGS).load(Ordering::SeqCst),
        child_verified_bytes: report.u64_at(R_VERIFIED).load(Ordering::SeqCst),
        wakes: parent_wakes + report.u64_at(R_WAKES).load(Ordering::SeqCst),
        notes,
    })
}

/// How long a scenario may take before its watchdog kills the child: four times its
/// budget plus [`Budget::stall_slack`] (30 s by default), far beyond any healthy run (the
/// slowest healthy case, 1 MiB round trips through a default pipe, takes ~5 ms each), so
/// it only ends a transport that hangs.
pub fn watchdog_deadline(budget: &Budget) -> Duration {
    (budget.warmup_time + budget.measure_time) * 4 + budget.stall_slack
}

/// Maps a transport error of the parent.
fn parent_err(source: TransportError) -> BenchError {
    BenchError::Transport {
        transport: String::new(),
        source,
    }
}

/// Puts the transport's name into an error made by the parent's loops.
fn named(e: BenchError, name: &str) -> BenchError {
    match e {
        BenchError::Transport { source, .. } => BenchError::Transport {
            transport: name.to_string(),
            source,
        },
        BenchError::Corrupt { seq, size, .. } => BenchError::Corrupt {
            transport: name.to_string(),
            seq,
            size,
        },
        other => other,
    }
}

/// Corruption seen by the parent's checker.
fn corrupt(seq: u64, size: usize) -> BenchError {
    BenchError::Corrupt {
        transport: String::new(),
        seq,
        size,
    }
}

pub(crate) type Measured = (u64, Duration, Histogram<u64>);

/// The measuring loop every pattern shares: `step` (one round trip, or one message
/// received) until warm, then timed batches of `batch` steps until the budget is spent.
/// Each batch records its mean per-step interval, ns.
///
/// A batch of one (a round trip) is timed from a clock read just before it to one just
/// after it, and recorded outside that interval: its figure is the round trip's latency
/// plus about one clock read, not the harness's bookkeeping. Longer batches (streams) are
/// timed end to end, one batch's end the next one's start, so their rate counts
/// everything the consumer does.
pub(crate) fn timed_loop(
    budget: &Budget,
    batch: u64,
    mut step: impl FnMut() -> Result<(), BenchError>,
) -> Result<Measured, BenchError> {
    let warm_start = Instant::now();
    let mut n = 0;
    while !budget.warm(n, warm_start.elapsed()) {
        step()?;
        n += 1;
    }
    let mut hist = new_histogram();
    let start = Instant::now();
    let mut last = start;
    let mut m = 0u64;
    loop {
        let b = batch.min(budget.max_msgs.saturating_sub(m)).max(1);
        if batch == 1 {
            last = Instant::now();
        }
        for _ in 0..b {
            step()?;
        }
        m += b;
        let now = Instant::now();
        hist.saturating_record(((now - last).as_nanos() / u128::from(b)).max(1) as u64);
        last = now;
        if budget.done(m, now - start) {
            return Ok((m, now - start, hist));
        }
    }
}

fn parent_pingpong(
    ep: &mut dyn Endpoint,
    size: usize,
    budget: &Budget,
    payload: &Payload,
    checker: &mut Checker<'_>,
) -> Result<Measured, BenchError> {
    let mut seq = 0u64;
    timed_loop(budget, 1, || {
        ep.send(size, &mut |b| payload.fill(b, seq))
            .map_err(parent_err)?;
        ep.recv(size, &mut |b| {
            checker.check(b);
        })
        .map_err(parent_err)?;
        if let Some(bad) = checker.first_bad {
            return Err(corrupt(bad, size));
        }
        seq += 1;
        Ok(())
    })
}

/// Messages per timed batch in the stream pattern: 64 KiB worth, between 1 and 64.
fn stream_batch(size: usize) -> u64 {
    ((64 * 1024) / size).clamp(1, 64) as u64
}

fn parent_consume(
    ep: &mut dyn Endpoint,
    size: usize,
    budget: &Budget,
    checker: &mut Checker<'_>,
) -> Result<Measured, BenchError> {
    timed_loop(budget, stream_batch(size), || {
        ep.recv(size, &mut |b| {
            checker.check(b);
        })
        .map_err(parent_err)?;
        match checker.first_bad {
            Some(bad) => Err(corrupt(bad, size)),
            None => Ok(()),
        }
    })
}

/// Child side of ping-pong: echo until the parent closes.
fn child_echo(
    ep: &mut dyn Endpoint,
    size: usize,
    payload: &Payload,
    verify: bool,
    report: &SharedMap,
) -> i32 {
    let mut checker = Checker::new(payload, verify);
    let code = loop {
        match ep.echo(size, &mut |b| {
            checker.check(b);
        }) {
            Ok(()) if checker.first_bad.is_some() => break EXIT_CORRUPT,
            Ok(()) => {}
            Err(TransportError::Disconnected) => break EXIT_OK,
            Err(_) => break EXIT_TRANSPORT,
        }
    };
    report
        .u64_at(R_MSGS)
        .store(checker.next_seq, Ordering::SeqCst);
    report
        .u64_at(R_VERIFIED)
        .store(checker.verified_bytes, Ordering::SeqCst);
    report
        .u64_at(R_FIRST_BAD)
        .store(checker.first_bad.map_or(0, |s| s + 1), Ordering::SeqCst);
    code
}

/// Child side of streaming: produce until the parent closes.
fn child_produce(ep: &mut dyn Endpoint, size: usize, payload: &Payload, report: &SharedMap) -> i32 {
    let mut seq = 0u64;
    let code = loop {
        match ep.send(size, &mut |b| payload.fill(b, seq)) {
            Ok(()) => seq += 1,
            Err(TransportError::Disconnected) => break EXIT_OK,
            Err(_) => break EXIT_TRANSPORT,
        }
    };
    report.u64_at(R_MSGS).store(seq, Ordering::SeqCst);
    code
}
