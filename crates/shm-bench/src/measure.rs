//! The measuring loops every scenario shares, and the clock they read.
//!
//! **Round trips** are timed one by one: one clock read after each reply, so that a round
//! trip's interval runs from the end of the previous one (just before its send) to the
//! end of its own receive, and the intervals add up to the whole measurement. The
//! bookkeeping — recording the previous interval, checking the budget — is done between
//! the send and the receive, while the message is in flight, off the round trip's critical
//! path (a round trip of ~200 ns leaves the parent well over 100 ns of waiting).
//!
//! **Streams** are timed in batches (64 KiB or 64 messages, whichever is fewer, at least
//! one), one batch's end the next one's start, and each batch records its mean
//! per-message interval: the clock is not read per message, and the rate counts
//! everything the consumer does.
//!
//! **The clock.** The per-message clock read is on the critical path of every round trip,
//! and the monotonic clock costs ~28 ns a read on these VMs (vDSO `clock_gettime`), an
//! eighth of a ring's round trip. Where the CPU's time-stamp counter runs at a constant
//! rate (x86-64 with `constant_tsc`, `nonstop_tsc` and `rdtscp`; the kernel's own clock
//! source here), the loops read it instead, with `rdtscp` (which waits for the loads
//! before it, as the vDSO's ordered read does) and convert its ticks to ns by its rate
//! against the monotonic clock over the same measurement; elsewhere they read the
//! monotonic clock. The budget's time limit is always checked on the monotonic clock.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::config::Budget;
use crate::error::BenchError;

/// The highest value the latency histograms track: 60 s in ns.
const HIST_MAX_NS: u64 = 60_000_000_000;

/// The highest tick count a measurement's histogram tracks: 60 s at up to 16 ticks a ns.
const HIST_MAX_TICKS: u64 = HIST_MAX_NS * 16;

/// A new latency histogram (1 ns .. 60 s, 3 significant digits).
pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_NS, 3).expect("valid histogram bounds")
}

/// One side of a scenario as the loops drive it.
pub(crate) trait Steps {
    /// Sends the next message.
    fn send(&mut self) -> Result<(), BenchError>;
    /// Receives (and checks) the next `n` messages.
    fn recv(&mut self, n: u64) -> Result<(), BenchError>;
}

/// What a measuring loop produced.
#[derive(Debug)]
pub(crate) struct Measured {
    /// Messages (round trips) measured, after the warm-up.
    pub(crate) msgs: u64,
    /// Duration of the measured part.
    pub(crate) elapsed: Duration,
    /// Round-trip times or per-message intervals, ns.
    pub(crate) hist: Histogram<u64>,
}

/// Times `side`'s round trips (send, then receive) until the budget is spent.
pub(crate) fn round_trips(budget: &Budget, side: &mut impl Steps) -> Result<Measured, BenchError> {
    warm_up(budget, || {
        side.send()?;
        side.recv(1)
    })?;
    let mut watch = Stopwatch::start();
    let mut last = watch.start_ticks;
    let mut pending = None;
    let mut m = 0u64;
    loop {
        side.send()?;
        // In flight: the previous round trip's bookkeeping.
        if let Some(ticks) = pending.take() {
            watch.record(ticks, 1);
        }
        m += 1;
        let done = budget.done(m, watch.start.elapsed());
        side.recv(1)?;
        let now = watch.ticks();
        let interval = now - last;
        last = now;
        if done {
            watch.record(interval, 1);
            return Ok(watch.finish(m));
        }
        pending = Some(interval);
    }
}

/// Times `side`'s receives in batches of `batch` until the budget is spent.
pub(crate) fn stream(
    budget: &Budget,
    batch: u64,
    side: &mut impl Steps,
) -> Result<Measured, BenchError> {
    warm_up(budget, || side.recv(1))?;
    let mut watch = Stopwatch::start();
    let mut last = watch.start_ticks;
    let mut m = 0u64;
    loop {
        let b = batch.min(budget.max_msgs.saturating_sub(m)).max(1);
        side.recv(b)?;
        m += b;
        let now = watch.ticks();
        watch.record(now - last, b);
        last = now;
        if budget.done(m, watch.start.elapsed()) {
            return Ok(watch.finish(m));
        }
    }
}

/// Runs `step` until the budget's warm-up is complete.
fn warm_up(
    budget: &Budget,
    mut step: impl FnMut() -> Result<(), BenchError>,
) -> Result<(), BenchError> {
    let start = Instant::now();
    let mut n = 0;
    while !budget.warm(n, start.elapsed()) {
        step()?;
        n += 1;
    }
    Ok(())
}

/// Whether this CPU's time-stamp counter ticks at a constant rate, through sleep states
/// and frequency changes (asked once).
fn tsc_is_steady() -> bool {
    static STEADY: OnceLock<bool> = OnceLock::new();
    *STEADY.get_or_init(|| {
        cfg!(target_arch = "x86_64")
            && std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| {
                let flags = info.lines().find(|l| l.starts_with("flags")).unwrap_or("");
                let has = |flag| flags.split_whitespace().any(|f| f == flag);
                has("constant_tsc") && has("nonstop_tsc") && has("rdtscp")
            })
    })
}

/// The clock of one measurement: ticks of the time-stamp counter (or ns of the monotonic
/// clock), the start on both clocks, and a histogram of intervals in ticks.
struct Stopwatch {
    start: Instant,
    start_ticks: u64,
    tsc: bool,
    ticks_hist: Histogram<u64>,
}

impl Stopwatch {
    fn start() -> Stopwatch {
        let mut watch = Stopwatch {
            start: Instant::now(),
            start_ticks: 0,
            tsc: tsc_is_steady(),
            ticks_hist: Histogram::new_with_bounds(1, HIST_MAX_TICKS, 3)
                .expect("valid histogram bounds"),
        };
        watch.start = Instant::now();
        watch.start_ticks = watch.ticks();
        watch
    }

    /// The clock now, in ticks.
    #[inline]
    fn ticks(&self) -> u64 {
        #[cfg(target_arch = "x86_64")]
        if self.tsc {
            let mut cpu = 0u32;
            // SAFETY: `rdtscp` reads the time-stamp counter (and writes the CPU's
            // signature to `cpu`, a live local); the CPU has it (`tsc_is_steady` checked
            // the flag) and user mode may use it (Linux sets CR4.TSD only for processes
            // that ask, which this one does not).
            return unsafe { core::arch::x86_64::__rdtscp(&mut cpu) };
        }
        self.start.elapsed().as_nanos() as u64
    }

    /// Records an interval of `ticks` over `n` messages (its mean per message).
    #[inline]
    fn record(&mut self, ticks: u64, n: u64) {
        self.ticks_hist.saturating_record((ticks / n.max(1)).max(1));
    }

    /// The measurement of `msgs` messages ending now, its histogram in ns.
    fn finish(self, msgs: u64) -> Measured {
        let end_ticks = self.ticks();
        let elapsed = self.start.elapsed();
        let ns_per_tick = if self.tsc {
            elapsed.as_nanos() as f64 / end_ticks.saturating_sub(self.start_ticks).max(1) as f64
        } else {
            1.0
        };
        let mut hist = new_histogram();
        for bucket in self.ticks_hist.iter_recorded() {
            let ns = (bucket.value_iterated_to() as f64 * ns_per_tick).round() as u64;
            hist.saturating_record_n(ns.max(1), bucket.count_at_value());
        }
        Measured {
            msgs,
            elapsed,
            hist,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps that count their calls.
    #[derive(Default)]
    struct Counted {
        sends: u64,
        recvs: u64,
    }

    impl Steps for Counted {
        fn send(&mut self) -> Result<(), BenchError> {
            self.sends += 1;
            Ok(())
        }

        fn recv(&mut self, n: u64) -> Result<(), BenchError> {
            self.recvs += n;
            std::hint::black_box(&self.recvs);
            Ok(())
        }
    }

    #[test]
    fn round_trips_measure_exactly_the_budget() {
        let mut side = Counted::default();
        let m = round_trips(&Budget::exact(3, 50), &mut side).unwrap();
        assert_eq!((m.msgs, side.sends, side.recvs), (50, 53, 53));
        assert_eq!(m.hist.len(), 50);
    }

    #[test]
    fn stream_batches_cover_exactly_the_budget() {
        let mut side = Counted::default();
        let m = stream(&Budget::exact(2, 100), 64, &mut side).unwrap();
        assert_eq!((m.msgs, side.sends, side.recvs), (100, 0, 102));
        // Two batches: 64 messages, then the 36 left.
        assert_eq!(m.hist.len(), 2);
    }

    #[test]
    fn intervals_come_out_in_nanoseconds() {
        let mut side = Counted::default();
        let budget = Budget {
            measure_time: Duration::from_millis(20),
            max_msgs: u64::MAX,
            ..Budget::exact(0, 1_000)
        };
        let m = round_trips(&budget, &mut side).unwrap();
        let mean_ns = m.elapsed.as_nanos() as f64 / m.msgs as f64;
        // The histogram's mean is the loop's mean interval, whatever the clock ticks in
        // (generous bounds: this is a unit conversion check, not a timing).
        let ratio = m.hist.mean() / mean_ns;
        assert!((0.5..2.0).contains(&ratio), "{ratio}");
    }
}
