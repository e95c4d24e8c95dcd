//! The harness's own cost per message, measured in every repetition: the `shm-spin`
//! ring's 8 B round trip and 64 B stream, once through the harness (dyn endpoints, every
//! payload byte written and its stamps checked, a clock read and a histogram record per
//! round trip) and once through a minimal loop over the same endpoints (the
//! `shm-channel` API called directly, the clock read once per thousand messages). The
//! ratio says how much of a figure in the table is the harness, not the library; both
//! sides are means over the measured messages, so the ratio compares like with like.

use std::time::{Duration, Instant};

use serde::Serialize;
use shm_channel::spsc::Spsc;
use shm_channel::{Builder, Receiver, Sender};
use shm_channel::{RecvError, RecvIntoError, SendError};
use shm_core::notify::WaitStrategy;

use crate::affinity::AffinityGuard;
use crate::child::{self, EXIT_OK, EXIT_TRANSPORT};
use crate::config::{Budget, CpuPair, Pattern};
use crate::error::BenchError;
use crate::payload::Payload;
use crate::scenario::run_scenario;
use crate::transport::ring::{ring_capacity, SHM_SPIN};

/// The round-trip message size the check uses.
const RTT_SIZE: usize = 8;
/// The stream message size the check uses.
pub(crate) const STREAM_SIZE: usize = 64;

/// Messages between two clock reads in the minimal loops.
const CLOCK_EVERY: u64 = 1024;

/// One repetition's check: the same figures through the harness and the minimal loop.
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct OverheadSample {
    /// Harness: mean 8 B round trip, ns.
    pub(crate) harness_rtt_ns: f64,
    /// Minimal loop: mean 8 B round trip, ns.
    pub(crate) minimal_rtt_ns: f64,
    /// Harness: 64 B messages per second.
    pub(crate) harness_stream_msgs_per_s: f64,
    /// Minimal loop: 64 B messages per second.
    pub(crate) minimal_stream_msgs_per_s: f64,
}

/// Runs the check once: harness and minimal loop, round trip then stream.
pub(crate) fn measure(
    cpus: CpuPair,
    budget: &Budget,
    payload: &Payload,
) -> Result<OverheadSample, BenchError> {
    let harness_rtt = run_scenario(
        &SHM_SPIN,
        Pattern::PingPong,
        RTT_SIZE,
        budget,
        cpus,
        false,
        payload,
    )?;
    let minimal_rtt_ns = minimal_round_trip(cpus, budget)?;
    let harness_stream = run_scenario(
        &SHM_SPIN,
        Pattern::Stream,
        STREAM_SIZE,
        budget,
        cpus,
        false,
        payload,
    )?;
    let minimal_stream_msgs_per_s = minimal_stream(cpus, budget)?;
    Ok(OverheadSample {
        harness_rtt_ns: harness_rtt.mean_ns(),
        minimal_rtt_ns,
        harness_stream_msgs_per_s: 1e9 / harness_stream.mean_ns(),
        minimal_stream_msgs_per_s,
    })
}

/// A spinning SPSC ring, built as `shm-spin` builds its two.
fn ring(size: usize) -> Result<(Sender<Spsc>, Receiver<Spsc>), BenchError> {
    Builder::<Spsc>::new(ring_capacity(size))
        .wait_strategy(WaitStrategy::Spin)
        .create()
        .map_err(|e| failed(&e.to_string()))
}

fn failed(what: &str) -> BenchError {
    BenchError::Transport {
        transport: "overhead check".into(),
        source: crate::transport::TransportError::Failed(what.into()),
    }
}

/// Runs `step` until warm, then in runs of [`CLOCK_EVERY`] until the budget is spent;
/// returns (steps measured, time).
fn minimal_loop(
    budget: &Budget,
    mut step: impl FnMut() -> Result<(), BenchError>,
) -> Result<(u64, Duration), BenchError> {
    let warm = Instant::now();
    let mut n = 0;
    while !budget.warm(n, warm.elapsed()) {
        step()?;
        n += 1;
    }
    let start = Instant::now();
    let mut m = 0u64;
    loop {
        for _ in 0..CLOCK_EVERY {
            step()?;
        }
        m += CLOCK_EVERY;
        let elapsed = start.elapsed();
        if budget.done(m, elapsed) {
            return Ok((m, elapsed));
        }
    }
}

/// The 8 B round trip with `send` / `recv_into` called directly; mean ns.
fn minimal_round_trip(cpus: CpuPair, budget: &Budget) -> Result<f64, BenchError> {
    let (mut ping_tx, ping_rx) = ring(RTT_SIZE)?;
    let (pong_tx, mut pong_rx) = ring(RTT_SIZE)?;
    let _pin = AffinityGuard::pin(cpus.parent)?;
    let proc = child::spawn(
        "overhead check (round trip)",
        cpus.child,
        (ping_rx, pong_tx),
        |(mut rx, mut tx)| {
            let mut buf = [0u8; RTT_SIZE];
            loop {
                match rx.recv_into(&mut buf) {
                    Ok(_) => {}
                    Err(RecvIntoError::Recv(RecvError::Disconnected)) => return EXIT_OK,
                    Err(_) => return EXIT_TRANSPORT,
                }
                if tx.send(&buf).is_err() {
                    return EXIT_TRANSPORT;
                }
            }
        },
    )?;
    let mut seq = 0u64;
    let mut buf = [0u8; RTT_SIZE];
    let measured = minimal_loop(budget, || {
        ping_tx
            .send(&seq.to_le_bytes())
            .map_err(|_| failed("send"))?;
        pong_rx.recv_into(&mut buf).map_err(|_| failed("recv"))?;
        if u64::from_le_bytes(buf) != seq {
            return Err(failed("echo out of sequence"));
        }
        seq += 1;
        Ok(())
    });
    drop(ping_tx);
    let (n, elapsed) = reaped(proc, measured)?;
    Ok(elapsed.as_nanos() as f64 / n as f64)
}

/// The 64 B stream with `send` / `recv_into` called directly; messages per second.
fn minimal_stream(cpus: CpuPair, budget: &Budget) -> Result<f64, BenchError> {
    let (tx, mut rx) = ring(STREAM_SIZE)?;
    let _pin = AffinityGuard::pin(cpus.parent)?;
    let proc = child::spawn("overhead check (stream)", cpus.child, tx, |mut tx| {
        let mut msg = [0u8; STREAM_SIZE];
        let mut seq = 0u64;
        loop {
            msg[..8].copy_from_slice(&seq.to_le_bytes());
            match tx.send(&msg) {
                Ok(()) => seq += 1,
                Err(SendError::Disconnected(_)) => return EXIT_OK,
                Err(_) => return EXIT_TRANSPORT,
            }
        }
    })?;
    let mut seq = 0u64;
    let mut buf = [0u8; STREAM_SIZE];
    let measured = minimal_loop(budget, || {
        rx.recv_into(&mut buf).map_err(|_| failed("recv"))?;
        let got = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
        if got != seq {
            return Err(failed("stream out of sequence"));
        }
        seq += 1;
        Ok(())
    });
    drop(rx);
    let (n, elapsed) = reaped(proc, measured)?;
    Ok(n as f64 / elapsed.as_secs_f64().max(1e-12))
}

/// The minimal loop's measurement once its child (told to stop by the parent's close) is
/// reaped: the child's failure first, then the loop's.
fn reaped(
    proc: child::BenchChild,
    measured: Result<(u64, Duration), BenchError>,
) -> Result<(u64, Duration), BenchError> {
    proc.wait()?;
    measured
}
