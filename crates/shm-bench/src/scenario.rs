//! One scenario: a transport, a pattern and a message size, measured once between this
//! process and a forked child.
//!
//! - **ping-pong** (`pingpong`, `typed-pingpong`): the parent sends message `seq`, the
//!   child checks and echoes it, the parent checks the echo. Each round trip is timed in
//!   the parent and recorded (ns) in a histogram.
//! - **stream** (`stream`, `typed-stream`): the child produces messages `0, 1, 2, …` as
//!   fast as the transport takes them; the parent consumes and checks them, timed in
//!   batches ([`crate::measure`]).
//!
//! Byte transports and transports of typed values run through the same code: the
//! messages are [`Outgoing`]s, checked by a [`Checker`].
//!
//! The child's loop ends when the parent closes its endpoint (EOF / `EPIPE`), so a child
//! never outlives a parent that stops or dies.

use std::sync::atomic::Ordering;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::affinity::AffinityGuard;
use crate::child::{self, Watchdog, EXIT_CORRUPT, EXIT_OK, EXIT_TRANSPORT};
use crate::config::{Budget, CpuPair, Pattern};
use crate::error::BenchError;
use crate::measure::{self, Measured, Steps};
use crate::payload::{Checker, Outgoing, Payload};
use crate::report::Figures;
use crate::shm::SharedMap;
use crate::transport::{Endpoint, Pair, Transport, TransportError};

// Layout of the child's report page (written by the child before `_exit`, read by the
// parent after `waitpid`).
const R_MSGS: usize = 0;
const R_VERIFIED: usize = 8;
const R_WAKES: usize = 16;

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

impl Sample {
    /// The figures of this sample for messages of `size` bytes.
    pub(crate) fn figures(&self, size: usize) -> Figures {
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

    /// The mean round trip (or per-message interval) of the measured part, ns.
    pub(crate) fn mean_ns(&self) -> f64 {
        self.elapsed.as_nanos() as f64 / self.msgs.max(1) as f64
    }
}

/// Runs one scenario: connects `transport`, forks the child onto `cpus.child`, measures
/// on `cpus.parent` within `budget`, reaps the child.
///
/// `size` must be one the transport supports in `pattern` ([`Transport::supports`]: a
/// transport of typed values carries only its [`Transport::message_size`]) and at most
/// the payload template's length. With `verify`, every byte of every message (every
/// field of every value) is checked by its receiver and counted in
/// [`Sample::verified_bytes`] / [`Sample::child_verified_bytes`]; otherwise only the
/// sequence stamps (two words) of each message, or each value's sequence number.
pub fn run_scenario(
    transport: &dyn Transport,
    pattern: Pattern,
    size: usize,
    budget: &Budget,
    cpus: CpuPair,
    verify: bool,
    payload: &Payload,
) -> Result<Sample, BenchError> {
    let name = transport.name();
    if size == 0 || size > payload.max_len() {
        return Err(BenchError::Config(format!(
            "message size {size} outside 1..={}",
            payload.max_len()
        )));
    }
    if !transport.supports(pattern, size) {
        return Err(BenchError::Config(format!(
            "{name} does not run {pattern} with {size}-byte messages"
        )));
    }
    let what = format!("{name} {pattern} {size} B");
    let Pair {
        parent,
        child: child_ep,
        notes,
    } = transport
        .connect(size)
        .map_err(|e| named(parent_err(e), name))?;
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
        let (code, msgs, verified) = if pattern.is_round_trip() {
            child_echo(&mut *ep, Checker::new(payload, size, verify))
        } else {
            child_produce(&mut *ep, Outgoing::first(payload, size))
        };
        report.u64_at(R_MSGS).store(msgs, Ordering::SeqCst);
        report.u64_at(R_VERIFIED).store(verified, Ordering::SeqCst);
        report
            .u64_at(R_WAKES)
            .store(ep.wake_syscalls(), Ordering::SeqCst);
        drop(ep);
        code
    })?;
    let ep = parent_ep
        .take()
        .expect("parent endpoint present in the parent");
    let deadline = watchdog_deadline(budget);
    let dog = Watchdog::arm(&proc, deadline)?;

    let mut parent = Parent {
        ep,
        out: Outgoing::first(payload, size),
        check: Checker::new(payload, size, verify),
    };
    let measured = if pattern.is_round_trip() {
        measure::round_trips(budget, &mut parent)
    } else {
        measure::stream(budget, stream_batch(size), &mut parent)
    };
    let parent_wakes = parent.ep.wake_syscalls();
    let Parent { ep, check, .. } = parent;
    // Closing our end is the child's signal to stop.
    drop(ep);
    // `Stalled` if the watchdog fired (or the child outlived the deadline).
    let child_result = dog.finish(proc);
    let Measured {
        msgs,
        elapsed,
        hist,
    } = match (measured, child_result) {
        (Ok(m), Ok(())) => m,
        // The child's own account of a failure says more than our EOF.
        (Err(_), Err(child_err)) => return Err(child_err),
        (Err(e), Ok(())) | (Ok(_), Err(e)) => return Err(named(e, name)),
    };
    Ok(Sample {
        msgs,
        total_msgs: check.next_seq,
        elapsed,
        hist,
        verified_bytes: check.verified_bytes,
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
fn watchdog_deadline(budget: &Budget) -> Duration {
    (budget.warmup_time + budget.measure_time) * 4 + budget.stall_slack
}

/// Messages per timed batch in the stream pattern: 64 KiB worth, between 1 and 64.
fn stream_batch(size: usize) -> u64 {
    ((64 * 1024) / size).clamp(1, 64) as u64
}

/// Maps a transport error of the parent (named by [`named`]).
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

/// The parent's side: its endpoint, the next message it sends, the checker of what it
/// receives.
struct Parent<'a> {
    ep: Box<dyn Endpoint>,
    out: Outgoing<'a>,
    check: Checker<'a>,
}

impl Steps for Parent<'_> {
    #[inline]
    fn send(&mut self) -> Result<(), BenchError> {
        self.ep.send(&self.out).map_err(parent_err)?;
        self.out.advance();
        Ok(())
    }

    #[inline]
    fn recv(&mut self, n: u64) -> Result<(), BenchError> {
        self.ep.recv_batch(&mut self.check, n).map_err(parent_err)?;
        match self.check.first_bad {
            Some(seq) => Err(BenchError::Corrupt {
                transport: String::new(),
                seq,
                size: self.check.size(),
            }),
            None => Ok(()),
        }
    }
}

/// Child side of ping-pong: echoes until the parent closes. Returns the exit code, the
/// messages received and the bytes verified.
fn child_echo(ep: &mut dyn Endpoint, mut check: Checker<'_>) -> (i32, u64, u64) {
    let code = loop {
        match ep.echo(&mut check) {
            Ok(()) if check.first_bad.is_some() => break EXIT_CORRUPT,
            Ok(()) => {}
            Err(TransportError::Disconnected) => break EXIT_OK,
            Err(_) => break EXIT_TRANSPORT,
        }
    };
    (code, check.next_seq, check.verified_bytes)
}

/// Child side of streaming: produces until the parent closes. Returns the exit code and
/// the messages sent.
fn child_produce(ep: &mut dyn Endpoint, mut out: Outgoing<'_>) -> (i32, u64, u64) {
    let code = loop {
        match ep.send_batch(&mut out, PRODUCE_BATCH) {
            Ok(()) => {}
            Err(TransportError::Disconnected) => break EXIT_OK,
            Err(_) => break EXIT_TRANSPORT,
        }
    };
    (code, out.seq(), 0)
}

/// Messages a stream's producer sends per call of [`Endpoint::send_batch`]: one dynamic
/// call per batch, the batches back to back (the consumer's batches are the measuring
/// loop's).
const PRODUCE_BATCH: u64 = 64;
