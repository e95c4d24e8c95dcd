//! Integration tests of the harness. None asserts a timing: they check that the report has
//! the promised shape, that every transport moves exactly the bytes it claims (verify
//! mode), that corruption and failing children are reported, and that bad arguments are
//! rejected.
//!
//! Every test that forks takes `FORK_LOCK`, so no two tests of this binary fork at once
//! from libtest's threads.

use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use clap::Parser;
use serde_json::Value;
use shm_bench::affinity::allowed_cpus;
use shm_bench::cli::Cli;
use shm_bench::pattern::run_scenario;
use shm_bench::payload::Payload;
use shm_bench::report::{csv, json, plot};
use shm_bench::transport::{
    self, Endpoint, MsgIn, MsgOut, Pair, Transport, TransportError, TRANSPORTS,
};
use shm_bench::typed::TYPED;
use shm_bench::{runner, BenchError, Budget, Config, CpuPair, Pattern};

/// The patterns of the byte transports.
const BYTE_PATTERNS: [Pattern; 2] = [Pattern::PingPong, Pattern::Stream];

static FORK_LOCK: Mutex<()> = Mutex::new(());

fn fork_lock() -> MutexGuard<'static, ()> {
    FORK_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Two CPUs this test process may use (one, shared, on a single-CPU machine).
fn cpus() -> CpuPair {
    let allowed = allowed_cpus();
    let parent = allowed[0];
    let child = *allowed.get(1).unwrap_or(&parent);
    CpuPair { parent, child }
}

fn tiny_config(sizes: Vec<usize>) -> Config {
    Config {
        transports: TRANSPORTS.to_vec(),
        typed: TYPED.to_vec(),
        patterns: Pattern::ALL.to_vec(),
        sizes,
        reps: 1,
        cpus: cpus(),
        budget: Budget::exact(2, 20),
        floor_budget: Budget {
            warmup_time: Duration::from_millis(1),
            measure_time: Duration::from_millis(5),
            ..Budget::exact(2, 20)
        },
        verify: false,
        progress: false,
        busy_check: false,
    }
}

fn num(v: &Value, field: &str) -> f64 {
    v.get(field)
        .unwrap_or_else(|| panic!("missing field `{field}` in {v}"))
        .as_f64()
        .unwrap_or_else(|| panic!("field `{field}` is not a number in {v}"))
}

#[test]
fn json_report_matches_schema() {
    let _g = fork_lock();
    let report = runner::run(&tiny_config(vec![64])).expect("tiny run");
    let doc: Value = serde_json::from_str(&json::to_string(&report)).expect("valid JSON");

    let m = &doc["machine"];
    assert!(m["cpu"].is_string());
    assert!(m["cores"].is_u64() && m["cores"].as_u64().unwrap() >= 1);
    assert!(m["kernel"].is_string());

    let f = &doc["floors"];
    for field in ["cacheline_rtt_ns", "futex_rtt_ns", "memcpy_bytes_per_s"] {
        let x = num(f, field);
        assert!(x.is_finite() && x > 0.0, "{field} = {x}");
    }

    let results = doc["results"].as_array().expect("results is an array");
    assert_eq!(results.len(), (TRANSPORTS.len() + TYPED.len()) * 2);
    for r in results {
        let name = r["transport"].as_str().expect("transport is a string");
        let pattern = r["pattern"].as_str().expect("pattern is a string");
        if pattern.starts_with("typed-") {
            let t = shm_bench::typed::by_name(name)
                .unwrap_or_else(|| panic!("unknown typed transport {name}"));
            assert!(
                pattern == "typed-pingpong" || pattern == "typed-stream",
                "{pattern}"
            );
            assert_eq!(r["size"].as_u64(), Some(t.encoded_size() as u64));
            assert!(num(r, "vs_pipe") > 0.0, "{name}: ratio to pipe-bincode");
        } else {
            assert!(
                transport::by_name(name).is_some(),
                "unknown transport {name}"
            );
            assert!(pattern == "pingpong" || pattern == "stream", "{pattern}");
            assert_eq!(r["size"].as_u64(), Some(64));
        }
        assert_eq!(r["reps"].as_u64(), Some(1));
        for field in [
            "p50_ns",
            "p99_ns",
            "msgs_per_s",
            "bytes_per_s",
            "wakes_per_msg",
            "min",
            "max",
        ] {
            num(r, field);
        }
        assert!(num(r, "min") <= num(r, "max"));
        let wakes = num(r, "wakes_per_msg");
        if name.starts_with("shm-") {
            assert!(wakes.is_finite() && wakes >= 0.0, "{name}: {wakes}");
        } else {
            assert_eq!(wakes, 0.0, "pipes and sockets make no wake syscalls");
        }
    }

    // The other renderings of the same report.
    let csv_text = csv::to_string(&report);
    assert_eq!(csv_text.lines().count(), 1 + results.len());
    assert!(csv_text.starts_with(csv::HEADER));
    let svg = plot::to_svg(&report).expect("plot");
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
    let table = shm_bench::report::table::render(&report);
    assert!(table.contains("unix-socket"));
}

/// Sizes that exercise short stamps, odd lengths, the pipe buffer boundary and 1 MiB.
const SIZES: [usize; 7] = [1, 8, 15, 100, 4096, 65_536 + 3, 1 << 20];

/// Bytes per message the receiver of `t` verifies one by one in verify mode: all of them,
/// except for the stamps-only transport, whose messages carry only their stamps (shorter
/// than 16 bytes, the stamps are the whole message).
fn verified_per_msg(t: &dyn Transport, size: usize) -> u64 {
    if t.name() == "shm-zero-copy-stamps" && size >= 16 {
        0
    } else {
        size as u64
    }
}

#[test]
fn every_transport_moves_exact_bytes_in_pingpong() {
    let _g = fork_lock();
    let payload = Payload::new(1 << 20);
    for t in TRANSPORTS {
        for size in SIZES {
            let msgs = if size > 100_000 { 4 } else { 25 };
            let budget = Budget::exact(2, msgs);
            let s = run_scenario(*t, Pattern::PingPong, size, &budget, cpus(), true, &payload)
                .unwrap_or_else(|e| panic!("{} {size}: {e}", t.name()));
            let total = 2 + msgs;
            assert_eq!(s.msgs, msgs, "{} {size}", t.name());
            assert_eq!(s.total_msgs, total, "{} {size}", t.name());
            assert_eq!(s.child_msgs, total, "{} {size}", t.name());
            let per_msg = verified_per_msg(*t, size);
            assert_eq!(s.verified_bytes, total * per_msg, "{} {size}", t.name());
            assert_eq!(
                s.child_verified_bytes,
                total * per_msg,
                "{} {size}",
                t.name()
            );
        }
    }
}

#[test]
fn every_transport_moves_exact_bytes_in_stream() {
    let _g = fork_lock();
    let payload = Payload::new(1 << 20);
    for t in TRANSPORTS {
        for size in SIZES {
            let msgs = if size > 100_000 { 4 } else { 200 };
            let budget = Budget::exact(3, msgs);
            let s = run_scenario(*t, Pattern::Stream, size, &budget, cpus(), true, &payload)
                .unwrap_or_else(|e| panic!("{} {size}: {e}", t.name()));
            assert_eq!(s.msgs, msgs, "{} {size}", t.name());
            assert_eq!(s.total_msgs, 3 + msgs, "{} {size}", t.name());
            assert_eq!(
                s.verified_bytes,
                (3 + msgs) * verified_per_msg(*t, size),
                "{} {size}",
                t.name()
            );
            // The producer may have sent more than we read before we closed.
            assert!(s.child_msgs >= s.total_msgs, "{} {size}", t.name());
        }
    }
}

/// A test transport wrapping `pipe`: its parent endpoint flips one payload bit of the
/// message with sequence number `bad_seq` it sends, or its child endpoint fails at once.
struct Faulty {
    corrupt_seq: Option<u64>,
    child_fails: bool,
}

struct FaultyEnd {
    inner: Box<dyn Endpoint>,
    sent: u64,
    corrupt_seq: Option<u64>,
    fail: bool,
}

impl Endpoint for FaultyEnd {
    fn send(
        &mut self,
        len: usize,
        fill: &mut dyn FnMut(&mut MsgOut<'_>),
    ) -> Result<(), TransportError> {
        if self.fail {
            return Err(TransportError::Io(std::io::Error::other("injected")));
        }
        let seq = self.sent;
        self.sent += 1;
        let corrupt = self.corrupt_seq == Some(seq);
        self.inner.send(len, &mut |b| {
            fill(b);
            if corrupt {
                let mut byte = [0u8];
                b.read_at(len / 2, &mut byte);
                b.write_at(len / 2, &[byte[0] ^ 0x10]);
            }
        })
    }

    fn recv(&mut self, len: usize, read: &mut dyn FnMut(&MsgIn<'_>)) -> Result<(), TransportError> {
        if self.fail {
            return Err(TransportError::Io(std::io::Error::other("injected")));
        }
        self.inner.recv(len, read)
    }

    fn echo(
        &mut self,
        len: usize,
        inspect: &mut dyn FnMut(&MsgIn<'_>),
    ) -> Result<(), TransportError> {
        if self.fail {
            return Err(TransportError::Io(std::io::Error::other("injected")));
        }
        self.inner.echo(len, inspect)
    }
}

impl Transport for Faulty {
    fn name(&self) -> &'static str {
        "faulty"
    }

    fn description(&self) -> &'static str {
        "pipe with injected faults (tests only)"
    }

    fn connect(&self, max_msg: usize) -> Result<Pair, TransportError> {
        let p = transport::pipe::PIPE.connect(max_msg)?;
        Ok(Pair {
            parent: Box::new(FaultyEnd {
                inner: p.parent,
                sent: 0,
                corrupt_seq: self.corrupt_seq,
                fail: false,
            }),
            child: Box::new(FaultyEnd {
                inner: p.child,
                sent: 0,
                corrupt_seq: None,
                fail: self.child_fails,
            }),
            notes: Vec::new(),
        })
    }
}

#[test]
fn flipped_payload_bit_is_caught_in_verify_mode() {
    let _g = fork_lock();
    let payload = Payload::new(4096);
    let t = Faulty {
        corrupt_seq: Some(5),
        child_fails: false,
    };
    let r = run_scenario(
        &t,
        Pattern::PingPong,
        1000,
        &Budget::exact(2, 20),
        cpus(),
        true,
        &payload,
    );
    match r {
        Err(BenchError::Child { detail, .. }) => assert!(detail.contains("corrupt"), "{detail}"),
        Err(BenchError::Corrupt { seq, .. }) => assert_eq!(seq, 5),
        other => panic!("corruption not caught: {other:?}"),
    }
}

#[test]
fn failing_child_is_reported_not_hung() {
    let _g = fork_lock();
    let payload = Payload::new(64);
    let t = Faulty {
        corrupt_seq: None,
        child_fails: true,
    };
    for pattern in BYTE_PATTERNS {
        let r = run_scenario(
            &t,
            pattern,
            64,
            &Budget::exact(2, 20),
            cpus(),
            false,
            &payload,
        );
        match r {
            Err(BenchError::Child { detail, .. }) => {
                assert!(detail.contains("transport error"), "{detail}")
            }
            other => panic!("{pattern}: child failure not reported: {other:?}"),
        }
    }
}

#[test]
fn bad_arguments_are_rejected() {
    let bad: &[&[&str]] = &[
        &["--transports", "carrier-pigeon"],
        &["--transports", "pipe,nope"],
        &["--sizes", "0"],
        &["--sizes", "8,0"],
        &["--sizes", "lots"],
        &["--sizes", "1024m"],
        &["--reps", "0"],
        &["--reps", "-1"],
        &["--cpus", "0,4096"],
        &["--cpus", "0,0"],
        &["--cpus", "0"],
        &["--patterns", "broadcast"],
    ];
    for args in bad {
        let argv = std::iter::once("shm-bench").chain(args.iter().copied());
        assert!(Cli::try_parse_from(argv).is_err(), "accepted {args:?}");
    }
}

#[test]
fn good_arguments_make_the_expected_config() {
    let cli = Cli::try_parse_from([
        "shm-bench",
        "--quick",
        "--sizes",
        "4k,8,1MiB",
        "--transports",
        "unix-socket,pipe",
        "--reps",
        "7",
    ])
    .expect("valid arguments");
    let c = cli.into_config();
    assert_eq!(c.sizes, vec![8, 4096, 1 << 20]);
    assert_eq!(c.reps, 7);
    // Registry order, not argument order: that is the alternation order.
    let names: Vec<_> = c.transports.iter().map(|t| t.name()).collect();
    assert_eq!(names, ["pipe", "unix-socket"]);
    assert_eq!(c.patterns, Pattern::ALL.to_vec());
}

#[test]
fn binary_exits_with_code_2_on_bad_arguments() {
    // Spawning a process is fork + exec: keep it out of the other tests' forks.
    let _g = fork_lock();
    let bin = env!("CARGO_BIN_EXE_shm-bench");
    for args in [["--transports", "nope"], ["--sizes", "0"], ["--reps", "0"]] {
        let out = Command::new(bin)
            .args(args)
            .output()
            .expect("run shm-bench");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("error"), "{args:?}: {err}");
    }
}

/// A transport whose child endpoint never answers (it sleeps for ever).
struct Stuck;

struct StuckEnd;

impl Endpoint for StuckEnd {
    fn send(&mut self, _: usize, _: &mut dyn FnMut(&mut MsgOut<'_>)) -> Result<(), TransportError> {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }

    fn recv(&mut self, _: usize, _: &mut dyn FnMut(&MsgIn<'_>)) -> Result<(), TransportError> {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }

    fn echo(&mut self, _: usize, _: &mut dyn FnMut(&MsgIn<'_>)) -> Result<(), TransportError> {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

impl Transport for Stuck {
    fn name(&self) -> &'static str {
        "stuck"
    }

    fn description(&self) -> &'static str {
        "a pipe whose child side never answers (tests only)"
    }

    fn connect(&self, max_msg: usize) -> Result<Pair, TransportError> {
        let p = transport::pipe::PIPE.connect(max_msg)?;
        // The child keeps its pipe ends open (inside `_keep`) but never uses them, so the
        // parent blocks until the watchdog kills the child.
        struct Hold {
            _keep: Box<dyn Endpoint>,
            inner: StuckEnd,
        }
        impl Endpoint for Hold {
            fn send(
                &mut self,
                l: usize,
                f: &mut dyn FnMut(&mut MsgOut<'_>),
            ) -> Result<(), TransportError> {
                self.inner.send(l, f)
            }
            fn recv(
                &mut self,
                l: usize,
                f: &mut dyn FnMut(&MsgIn<'_>),
            ) -> Result<(), TransportError> {
                self.inner.recv(l, f)
            }
            fn echo(
                &mut self,
                l: usize,
                f: &mut dyn FnMut(&MsgIn<'_>),
            ) -> Result<(), TransportError> {
                self.inner.echo(l, f)
            }
        }
        Ok(Pair {
            parent: p.parent,
            child: Box::new(Hold {
                _keep: p.child,
                inner: StuckEnd,
            }),
            notes: Vec::new(),
        })
    }
}

#[test]
fn stuck_child_is_killed_by_the_watchdog() {
    let _g = fork_lock();
    let payload = Payload::new(64);
    let budget = Budget {
        stall_slack: Duration::from_millis(300),
        ..Budget::exact(2, 20)
    };
    for pattern in BYTE_PATTERNS {
        let r = run_scenario(&Stuck, pattern, 64, &budget, cpus(), false, &payload);
        assert!(
            matches!(r, Err(BenchError::Stalled { .. })),
            "{pattern}: {r:?}"
        );
    }
}

#[test]
fn typed_transports_move_exact_values() {
    let _g = fork_lock();
    for t in TYPED {
        for pattern in [Pattern::TypedPingPong, Pattern::TypedStream] {
            let s = t
                .run(pattern, &Budget::exact(3, 40), cpus(), true)
                .unwrap_or_else(|e| panic!("{} {pattern}: {e}", t.name()));
            let size = t.encoded_size() as u64;
            assert_eq!(s.msgs, 40, "{} {pattern}", t.name());
            assert_eq!(s.total_msgs, 43, "{} {pattern}", t.name());
            assert_eq!(s.verified_bytes, 43 * size, "{} {pattern}", t.name());
            if pattern == Pattern::TypedPingPong {
                assert_eq!(s.child_msgs, 43, "{}", t.name());
                assert_eq!(s.child_verified_bytes, 43 * size, "{}", t.name());
            } else {
                assert!(s.child_msgs >= 43, "{}", t.name());
            }
        }
    }
}

/// A ring transport whose child process SIGKILLs itself after `after` messages, without
/// closing its endpoints: the parent must see the death through the ring (`PeerDied`),
/// not wait for the watchdog.
struct DyingRing {
    after: u64,
}

struct DyingEnd {
    inner: Box<dyn Endpoint>,
    left: u64,
}

impl DyingEnd {
    fn tick(&mut self) {
        if self.left == 0 {
            // SAFETY: kill(2) on our own pid; the process ends at once.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
        self.left -= 1;
    }
}

impl Endpoint for DyingEnd {
    fn send(
        &mut self,
        len: usize,
        fill: &mut dyn FnMut(&mut MsgOut<'_>),
    ) -> Result<(), TransportError> {
        self.tick();
        self.inner.send(len, fill)
    }

    fn recv(&mut self, len: usize, read: &mut dyn FnMut(&MsgIn<'_>)) -> Result<(), TransportError> {
        self.inner.recv(len, read)
    }

    fn echo(
        &mut self,
        len: usize,
        inspect: &mut dyn FnMut(&MsgIn<'_>),
    ) -> Result<(), TransportError> {
        self.tick();
        self.inner.echo(len, inspect)
    }

    fn hand_over(&self, child_pid: i32) -> Result<(), TransportError> {
        self.inner.hand_over(child_pid)
    }

    fn adopt(&self) -> Result<(), TransportError> {
        self.inner.adopt()
    }
}

impl Transport for DyingRing {
    fn name(&self) -> &'static str {
        "dying-ring"
    }

    fn description(&self) -> &'static str {
        "shm-spin-park whose child SIGKILLs itself (tests only)"
    }

    fn connect(&self, max_msg: usize) -> Result<Pair, TransportError> {
        let p = transport::ring::SHM_SPIN_PARK.connect(max_msg)?;
        Ok(Pair {
            parent: p.parent,
            child: Box::new(DyingEnd {
                inner: p.child,
                left: self.after,
            }),
            notes: Vec::new(),
        })
    }
}

#[test]
fn ring_child_killed_mid_scenario_is_reported_not_hung() {
    let _g = fork_lock();
    let payload = Payload::new(4096);
    // A 30 s watchdog: if the ring did not report the dead peer, the scenario would end
    // as `Stalled` (after 30 s), not as the child's death.
    let budget = Budget {
        stall_slack: Duration::from_secs(30),
        ..Budget::exact(2, 1_000_000)
    };
    for pattern in BYTE_PATTERNS {
        let r = run_scenario(
            &DyingRing { after: 50 },
            pattern,
            4096,
            &budget,
            cpus(),
            false,
            &payload,
        );
        match r {
            Err(BenchError::Child { detail, .. }) => {
                assert!(detail.contains("SIGKILL"), "{pattern}: {detail}")
            }
            other => panic!("{pattern}: dead ring peer not reported: {other:?}"),
        }
    }
}
