//! Failures are reported, never hung: a corrupt payload, a child whose transport fails, a
//! child that panics, a child that cannot pin itself, a child that never answers (the
//! watchdog kills it), a child that does not exit when the parent closes (killed at the
//! deadline), a ring child killed mid-scenario (the ring reports the dead peer),
//! a harness called from a multi-threaded process (shm-fork refuses to fork). Test-only
//! transports wrap the real ones to inject each fault.

mod common;

use std::time::Duration;

use common::cpus;
use shm_bench::pattern::{run_scenario, Sample};
use shm_bench::payload::Payload;
use shm_bench::transport::{self, Endpoint, MsgIn, MsgOut, Pair, Transport, TransportError};
use shm_bench::{BenchError, Budget, CpuPair, Pattern};
use shm_core::liveness::ProcessIdentity;
use shm_fork::ForkError;

/// The patterns of the byte transports.
const BYTE_PATTERNS: [Pattern; 2] = [Pattern::PingPong, Pattern::Stream];

/// One scenario of `t` in `pattern` with 64 B messages, stamps checked only.
fn run_small(
    t: &dyn Transport,
    pattern: Pattern,
    budget: &Budget,
    payload: &Payload,
) -> Result<Sample, BenchError> {
    run_scenario(t, pattern, 64, budget, cpus(), false, payload)
}

fn main() {
    common::run(&[
        (
            "flipped_payload_bit_is_caught_in_verify_mode",
            flipped_payload_bit_is_caught_in_verify_mode,
        ),
        (
            "failing_child_is_reported_not_hung",
            failing_child_is_reported_not_hung,
        ),
        (
            "stuck_child_is_killed_by_the_watchdog",
            stuck_child_is_killed_by_the_watchdog,
        ),
        (
            "panicking_child_is_reported_as_a_panic",
            panicking_child_is_reported_as_a_panic,
        ),
        ("unpinnable_child_is_reported", unpinnable_child_is_reported),
        (
            "child_that_outlives_the_close_is_killed_at_the_deadline",
            child_that_outlives_the_close_is_killed_at_the_deadline,
        ),
        (
            "ring_child_killed_mid_scenario_is_reported_not_hung",
            ring_child_killed_mid_scenario_is_reported_not_hung,
        ),
        // Last: it starts (and joins) a thread.
        (
            "multi_threaded_caller_is_refused",
            multi_threaded_caller_is_refused,
        ),
    ]);
}

/// A test transport wrapping `pipe`: its parent endpoint flips one payload bit of the
/// message with sequence number `bad_seq` it sends, or its child endpoint misbehaves
/// ([`ChildFault`]).
struct Faulty {
    corrupt_seq: Option<u64>,
    child: ChildFault,
}

/// What the child endpoint of [`Faulty`] does on every call.
#[derive(Clone, Copy, PartialEq)]
enum ChildFault {
    /// Works.
    None,
    /// Returns an I/O error.
    Fails,
    /// Panics.
    Panics,
    /// Works, but when the parent closes, blocks for ever instead of returning.
    IgnoresClose,
}

struct FaultyEnd {
    inner: Box<dyn Endpoint>,
    sent: u64,
    corrupt_seq: Option<u64>,
    fault: ChildFault,
}

impl FaultyEnd {
    fn inject(&self) -> Result<(), TransportError> {
        match self.fault {
            ChildFault::None | ChildFault::IgnoresClose => Ok(()),
            ChildFault::Fails => Err(TransportError::Io(std::io::Error::other("injected"))),
            ChildFault::Panics => panic!("injected panic"),
        }
    }

    /// The inner endpoint's result, unless it is the parent's close and we ignore it.
    fn outcome(&self, r: Result<(), TransportError>) -> Result<(), TransportError> {
        if self.fault == ChildFault::IgnoresClose && matches!(r, Err(TransportError::Disconnected))
        {
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        r
    }
}

impl Endpoint for FaultyEnd {
    fn send(
        &mut self,
        len: usize,
        fill: &mut dyn FnMut(&mut MsgOut<'_>),
    ) -> Result<(), TransportError> {
        self.inject()?;
        let seq = self.sent;
        self.sent += 1;
        let corrupt = self.corrupt_seq == Some(seq);
        let r = self.inner.send(len, &mut |b| {
            fill(b);
            if corrupt {
                let mut byte = [0u8];
                b.read_at(len / 2, &mut byte);
                b.write_at(len / 2, &[byte[0] ^ 0x10]);
            }
        });
        self.outcome(r)
    }

    fn recv(&mut self, len: usize, read: &mut dyn FnMut(&MsgIn<'_>)) -> Result<(), TransportError> {
        self.inject()?;
        let r = self.inner.recv(len, read);
        self.outcome(r)
    }

    fn echo(
        &mut self,
        len: usize,
        inspect: &mut dyn FnMut(&MsgIn<'_>),
    ) -> Result<(), TransportError> {
        self.inject()?;
        let r = self.inner.echo(len, inspect);
        self.outcome(r)
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
        Ok(Pair::new(
            FaultyEnd {
                inner: p.parent,
                sent: 0,
                corrupt_seq: self.corrupt_seq,
                fault: ChildFault::None,
            },
            FaultyEnd {
                inner: p.child,
                sent: 0,
                corrupt_seq: None,
                fault: self.child,
            },
        ))
    }
}

fn flipped_payload_bit_is_caught_in_verify_mode() {
    let payload = Payload::new(4096);
    let t = Faulty {
        corrupt_seq: Some(5),
        child: ChildFault::None,
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

fn failing_child_is_reported_not_hung() {
    let payload = Payload::new(64);
    let t = Faulty {
        corrupt_seq: None,
        child: ChildFault::Fails,
    };
    for pattern in BYTE_PATTERNS {
        let r = run_small(&t, pattern, &Budget::exact(2, 20), &payload);
        match r {
            Err(BenchError::Child { detail, .. }) => {
                assert!(detail.contains("transport error"), "{detail}")
            }
            other => panic!("{pattern}: child failure not reported: {other:?}"),
        }
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

fn stuck_child_is_killed_by_the_watchdog() {
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

fn child_that_outlives_the_close_is_killed_at_the_deadline() {
    // The parent measures to the end and closes; the child does not exit. Waiting for it
    // is bounded by the scenario's deadline, after which it is killed.
    let payload = Payload::new(64);
    let budget = Budget {
        stall_slack: Duration::from_millis(300),
        ..Budget::exact(2, 20)
    };
    let t = Faulty {
        corrupt_seq: None,
        child: ChildFault::IgnoresClose,
    };
    for pattern in BYTE_PATTERNS {
        let r = run_small(&t, pattern, &budget, &payload);
        assert!(
            matches!(r, Err(BenchError::Stalled { .. })),
            "{pattern}: {r:?}"
        );
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

    fn hand_over(&self, child: ProcessIdentity) -> Result<(), TransportError> {
        self.inner.hand_over(child)
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

fn ring_child_killed_mid_scenario_is_reported_not_hung() {
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

fn panicking_child_is_reported_as_a_panic() {
    let payload = Payload::new(64);
    let t = Faulty {
        corrupt_seq: None,
        child: ChildFault::Panics,
    };
    for pattern in BYTE_PATTERNS {
        let r = run_small(&t, pattern, &Budget::exact(2, 20), &payload);
        match r {
            Err(BenchError::Child { detail, .. }) => {
                assert_eq!(detail, "panicked: injected panic", "{pattern}")
            }
            other => panic!("{pattern}: child panic not reported: {other:?}"),
        }
    }
}

fn unpinnable_child_is_reported() {
    let payload = Payload::new(64);
    // No machine has CPU 4095 in this process's mask (nor in a glibc CpuSet).
    let cpus = CpuPair {
        parent: cpus().parent,
        child: 4095,
    };
    let budget = Budget::exact(2, 20);
    for pattern in BYTE_PATTERNS {
        let r = run_scenario(
            &transport::pipe::PIPE,
            pattern,
            64,
            &budget,
            cpus,
            false,
            &payload,
        );
        match r {
            Err(BenchError::Child { detail, .. }) => {
                assert!(detail.contains("could not pin"), "{pattern}: {detail}")
            }
            other => panic!("{pattern}: pin failure not reported: {other:?}"),
        }
    }
}

fn multi_threaded_caller_is_refused() {
    let payload = Payload::new(64);
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let _ = stopped.recv();
    });
    let r = run_scenario(
        &transport::pipe::PIPE,
        Pattern::PingPong,
        64,
        &Budget::exact(2, 20),
        cpus(),
        false,
        &payload,
    );
    stop.send(()).unwrap();
    thread.join().unwrap();
    match r {
        Err(BenchError::Fork {
            source: ForkError::MultiThreaded { threads },
            ..
        }) => assert!(threads >= 2, "{threads}"),
        other => panic!("forked from a multi-threaded process: {other:?}"),
    }
}
