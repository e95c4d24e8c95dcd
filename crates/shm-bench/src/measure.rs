//! The measuring loops every scenario shares, and the clock they read.
//!
//! **Round trips** are timed one by one, from a clock read just before each send to one
//! just after its reply was received and checked, and recorded outside that interval: its
//! figure is the round trip's latency plus about one clock read, not the harness's
//! bookkeeping.
//!
//! **Streams** are timed in batches (64 KiB or 64 messages, whichever is fewer, at least
//! one), one batch's end the next one's start, and each batch records its mean
//! per-message interval: the clock is not read per message, and the rate counts
//! everything the consumer does.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::config::Budget;
use crate::error::BenchError;

/// The highest value the latency histograms track: 60 s in ns.
const HIST_MAX_NS: u64 = 60_000_000_000;

/// A new latency histogram (1 ns .. 60 s, 3 significant digits).
pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_NS, 3).expect("valid histogram bounds")
}

/// One side of a scenario as the loops drive it.
pub(crate) trait Steps {
    /// Sends the next message.
    fn send(&mut self) -> Result<(), BenchError>;
    /// Receives (and checks) the next message.
    fn recv(&mut self) -> Result<(), BenchError>;
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
        side.recv()
    })?;
    let mut watch = Stopwatch::start();
    let mut m = 0u64;
    loop {
        let before = watch.now_ns();
        side.send()?;
        side.recv()?;
        let after = watch.now_ns();
        watch.record(after - before, 1);
        m += 1;
        if budget.done(m, Duration::from_nanos(after)) {
            return Ok(watch.finish(m, after));
        }
    }
}

/// Times `side`'s receives in batches of `batch` until the budget is spent.
pub(crate) fn stream(
    budget: &Budget,
    batch: u64,
    side: &mut impl Steps,
) -> Result<Measured, BenchError> {
    warm_up(budget, || side.recv())?;
    let mut watch = Stopwatch::start();
    let mut last = 0;
    let mut m = 0u64;
    loop {
        let b = batch.min(budget.max_msgs.saturating_sub(m)).max(1);
        for _ in 0..b {
            side.recv()?;
        }
        m += b;
        let now = watch.now_ns();
        watch.record(now - last, b);
        last = now;
        if budget.done(m, Duration::from_nanos(now)) {
            return Ok(watch.finish(m, now));
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

/// The clock of one measurement: its start, and a histogram of intervals.
struct Stopwatch {
    start: Instant,
    hist: Histogram<u64>,
}

impl Stopwatch {
    fn start() -> Stopwatch {
        let hist = new_histogram();
        Stopwatch {
            start: Instant::now(),
            hist,
        }
    }

    /// The clock now, ns since the start.
    #[inline]
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Records an interval of `ns` over `n` messages (its mean per message).
    #[inline]
    fn record(&mut self, ns: u64, n: u64) {
        self.hist.saturating_record((ns / n.max(1)).max(1));
    }

    /// The measurement of `msgs` messages that ended at `end_ns`.
    fn finish(self, msgs: u64, end_ns: u64) -> Measured {
        Measured {
            msgs,
            elapsed: Duration::from_nanos(end_ns),
            hist: self.hist,
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

        fn recv(&mut self) -> Result<(), BenchError> {
            self.recvs += 1;
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
}
