//! What a run measures and for how long.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::transport::Transport;

/// A traffic pattern between the parent and the child.
///
/// The typed patterns run the transports of typed values (a struct through bincode or
/// postcard, a `bytemuck::Pod` struct with no codec, over the shm ring; bincode over a
/// pipe as the reference) instead of the byte transports; their size is the encoded size
/// of the value ([`Transport::message_size`]), not one of `--sizes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Pattern {
    /// Round trip: the parent sends `size` bytes, the child echoes them back.
    #[value(name = "pingpong")]
    PingPong,
    /// One-way streaming: the child produces messages as fast as it can, the parent
    /// consumes them.
    #[value(name = "stream")]
    Stream,
    /// Round trip of a typed value: the parent sends it, the child decodes it and sends it
    /// back re-encoded.
    #[value(name = "typed-pingpong")]
    #[serde(rename = "typed-pingpong")]
    TypedPingPong,
    /// Streaming typed values from the child to the parent.
    #[value(name = "typed-stream")]
    #[serde(rename = "typed-stream")]
    TypedStream,
}

impl Pattern {
    /// All patterns, in the order a run measures them.
    pub const ALL: [Pattern; 4] = [
        Pattern::PingPong,
        Pattern::Stream,
        Pattern::TypedPingPong,
        Pattern::TypedStream,
    ];

    /// The name used on the command line and in the reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Pattern::PingPong => "pingpong",
            Pattern::Stream => "stream",
            Pattern::TypedPingPong => "typed-pingpong",
            Pattern::TypedStream => "typed-stream",
        }
    }

    /// Whether this pattern runs the typed transports.
    pub(crate) fn is_typed(self) -> bool {
        matches!(self, Pattern::TypedPingPong | Pattern::TypedStream)
    }

    /// Whether this is a round trip (latency) pattern.
    pub(crate) fn is_round_trip(self) -> bool {
        matches!(self, Pattern::PingPong | Pattern::TypedPingPong)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The two CPUs a scenario runs on: the parent on one, the child on the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CpuPair {
    /// CPU of the parent (the side that measures).
    pub parent: usize,
    /// CPU of the forked child.
    pub child: usize,
}

impl CpuPair {
    /// Whether both processes share one CPU.
    pub(crate) fn same_core(&self) -> bool {
        self.parent == self.child
    }
}

/// How many messages a measurement takes, in time and in counts.
///
/// The warm-up runs until both `warmup_time` has passed and `warmup_msgs` messages went
/// through; the measurement then runs until `measure_time` has passed and at least
/// `min_msgs` were measured, but never beyond `max_msgs`. Tests set the times to zero and
/// `min_msgs == max_msgs` to get an exact message count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Budget {
    /// Minimum warm-up time (not measured).
    pub warmup_time: Duration,
    /// Minimum number of warm-up messages (not measured).
    pub warmup_msgs: u64,
    /// Target measurement time.
    pub measure_time: Duration,
    /// Minimum number of measured messages, even if that exceeds `measure_time`.
    pub min_msgs: u64,
    /// Maximum number of measured messages.
    pub max_msgs: u64,
    /// Slack of the scenario's watchdog: the child is killed, and the scenario reported
    /// as stalled, after `4 × (warmup_time + measure_time) + stall_slack`.
    pub stall_slack: Duration,
}

impl Budget {
    /// The budget of one scenario in a default run (about 2 minutes in all).
    pub const DEFAULT: Budget = Budget {
        warmup_time: Duration::from_millis(30),
        warmup_msgs: 3,
        // 138 scenarios per repetition (10 byte transports × 2 patterns × 6 sizes, the
        // round-trip floors at 8 and 64 B, the ring floor at 6 sizes, 4 typed × 2), 5
        // repetitions: 690 × ~0.2 s ≈ 2.3 min.
        measure_time: Duration::from_millis(170),
        min_msgs: 20,
        max_msgs: 50_000_000,
        stall_slack: Duration::from_secs(30),
    };

    /// The budget of one scenario in `--quick` mode (the whole run under 30 s).
    pub const QUICK: Budget = Budget {
        warmup_time: Duration::from_millis(10),
        warmup_msgs: 2,
        // 96 scenarios per repetition (10 × 2 × 4 sizes, the floors' 8, 4 typed × 2), 5
        // repetitions: 480 × ~45 ms, plus the memcpy floor and the overhead check: under
        // 30 s on the reference machine.
        measure_time: Duration::from_millis(35),
        min_msgs: 10,
        max_msgs: 20_000_000,
        stall_slack: Duration::from_secs(30),
    };

    /// An exact message count with no time component (for tests and verify mode).
    pub fn exact(warmup_msgs: u64, msgs: u64) -> Budget {
        Budget {
            warmup_time: Duration::ZERO,
            warmup_msgs,
            measure_time: Duration::ZERO,
            min_msgs: msgs,
            max_msgs: msgs,
            stall_slack: Duration::from_secs(30),
        }
    }

    /// Whether the measurement of `n` messages over `elapsed` is complete.
    pub(crate) fn done(&self, n: u64, elapsed: Duration) -> bool {
        n >= self.max_msgs || (n >= self.min_msgs && elapsed >= self.measure_time)
    }

    /// Whether the warm-up of `n` messages over `elapsed` is complete.
    pub(crate) fn warm(&self, n: u64, elapsed: Duration) -> bool {
        n >= self.warmup_msgs && elapsed >= self.warmup_time
    }
}

/// Everything a run needs.
#[derive(Clone)]
pub struct Config {
    /// Transports to measure, in the order they alternate within a repetition (the byte
    /// patterns run the byte transports among them, the typed patterns the transports of
    /// typed values).
    pub transports: Vec<&'static dyn Transport>,
    /// Patterns to measure.
    pub patterns: Vec<Pattern>,
    /// Message sizes in bytes.
    pub sizes: Vec<usize>,
    /// Repetitions (each runs every transport once per scenario).
    pub reps: u32,
    /// CPUs of the parent and of the child.
    pub cpus: CpuPair,
    /// Budget of each scenario.
    pub budget: Budget,
    /// Budget of each floor measurement (its `measure_time` and counts are used).
    pub floor_budget: Budget,
    /// Verify every payload byte (full checksum) instead of a sample per message.
    pub verify: bool,
    /// Show a progress bar on stderr (hidden anyway when stderr is not a terminal).
    pub progress: bool,
    /// Check at start whether the machine is busy and warn.
    pub busy_check: bool,
    /// Measure the harness's own cost in every repetition (`shm-spin` through the harness
    /// and through a minimal loop).
    pub overhead_check: bool,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field(
                "transports",
                &self.transports.iter().map(|t| t.name()).collect::<Vec<_>>(),
            )
            .field("patterns", &self.patterns)
            .field("sizes", &self.sizes)
            .field("reps", &self.reps)
            .field("cpus", &self.cpus)
            .field("budget", &self.budget)
            .field("floor_budget", &self.floor_budget)
            .field("verify", &self.verify)
            .finish_non_exhaustive()
    }
}
