//! Failures are reported, never hung: a corrupt payload, a child whose transport fails, a
//! child that panics, a child that cannot pin itself, a child that never answers (the
//! watchdog kills it), a child that does not exit when the parent closes (killed at the
//! deadline), a ring child killed mid-scenario (the ring reports the dead peer),
//! a harness called from a multi-threaded process (shm-fork refuses to fork). Test-only
//! transports wrap the real ones to inject each fault.

mod common;

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::{cpus, ChildFault, Fault};
use shm_bench::transport::{
    self, Checker, Endpoint, MsgIn, MsgOut, Outgoing, Pair, Transport, TransportError,
};
use shm_bench::{run_scenario, BenchError, Budget, CpuPair, Pattern, Payload, Sample};
use shm_fork::ForkError;

/// The patterns of the byte transports.
const BYTE_PATTERNS: [Pattern; 2] = [Pattern::PingPong, Pattern::Stream];

fn main() {
    shm_testkit::run_serially(&[
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

/// One scenario of `t` in each byte pattern with 64 B messages (stamps checked only):
/// what each ended with.
fn both_patterns(
    t: &dyn Transport,
    cpus: CpuPair,
    budget: &Budget,
) -> Vec<(Pattern, Result<Sample, BenchError>)> {
    let payload = Payload::new(64);
    BYTE_PATTERNS
        .into_iter()
        .map(|p| (p, run_scenario(t, p, 64, budget, cpus, false, &payload)))
        .collect()
}

/// Asserts that every one of `outcomes` is a child failure whose account `holds`.
fn child_failed(
    outcomes: Vec<(Pattern, Result<Sample, BenchError>)>,
    holds: impl Fn(&str) -> bool,
) {
    for (pattern, r) in outcomes {
        match r {
            Err(BenchError::Child { detail, .. }) => assert!(holds(&detail), "{pattern}: {detail}"),
            other => panic!("{pattern}: child failure not reported: {other:?}"),
        }
    }
}

/// Asserts that every one of `outcomes` ended as stalled.
fn stalled(outcomes: Vec<(Pattern, Result<Sample, BenchError>)>) {
    for (pattern, r) in outcomes {
        assert!(
            matches!(r, Err(BenchError::Stalled { .. })),
            "{pattern}: {r:?}"
        );
    }
}

/// A budget whose watchdog fires 0.3 s after the scenario's (zero) measuring time.
fn short_watchdog() -> Budget {
    Budget {
        stall_slack: Duration::from_millis(300),
        ..Budget::exact(2, 20)
    }
}

/// A socket-pair transport whose parent flips one payload bit of the message it sends
/// with sequence number `seq`.
struct Corrupting {
    seq: u64,
}

struct SocketEnd {
    sock: UnixStream,
    buf: Vec<u8>,
    sent: u64,
    corrupt: Option<u64>,
}

fn socket_err(e: io::Error) -> TransportError {
    match e.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset => TransportError::Disconnected,
        _ => TransportError::Io(e),
    }
}

impl SocketEnd {
    fn read_checked(&mut self, check: &mut Checker<'_>) -> Result<(), TransportError> {
        self.buf.resize(check.size(), 0);
        self.sock.read_exact(&mut self.buf).map_err(socket_err)?;
        check.check(&MsgIn::private(&self.buf));
        Ok(())
    }
}

impl Endpoint for SocketEnd {
    fn send(&mut self, msg: &Outgoing<'_>) -> Result<(), TransportError> {
        self.buf.resize(msg.size(), 0);
        msg.write_to(&mut MsgOut::private(&mut self.buf));
        if self.corrupt == Some(self.sent) {
            let middle = self.buf.len() / 2;
            self.buf[middle] ^= 0x10;
        }
        self.sent += 1;
        self.sock.write_all(&self.buf).map_err(socket_err)
    }

    fn recv(&mut self, check: &mut Checker<'_>) -> Result<(), TransportError> {
        self.read_checked(check)
    }

    fn echo(&mut self, check: &mut Checker<'_>) -> Result<(), TransportError> {
        self.read_checked(check)?;
        self.sock.write_all(&self.buf).map_err(socket_err)
    }
}

impl Transport for Corrupting {
    fn name(&self) -> &'static str {
        "corrupting"
    }

    fn connect(&self, _max_msg: usize) -> Result<Pair, TransportError> {
        let (a, b) = UnixStream::pair()?;
        let end = |sock, corrupt| SocketEnd {
            sock,
            buf: Vec::new(),
            sent: 0,
            corrupt,
        };
        Ok(Pair::new(end(a, Some(self.seq)), end(b, None)))
    }
}

fn flipped_payload_bit_is_caught_in_verify_mode() {
    let payload = Payload::new(4096);
    let r = run_scenario(
        &Corrupting { seq: 5 },
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

/// The child's endpoint fails every call with an I/O error.
#[derive(Clone)]
struct Fails;

impl Fault for Fails {
    fn before(&mut self) -> Result<(), TransportError> {
        Err(TransportError::Io(io::Error::other("injected")))
    }
}

fn failing_child_is_reported_not_hung() {
    let t = ChildFault::on("pipe", Fails);
    child_failed(both_patterns(&t, cpus(), &Budget::exact(2, 20)), |d| {
        d.contains("transport error")
    });
}

/// The child's endpoint never answers: it sleeps for ever in every call, keeping its
/// descriptors open, so the parent blocks until the watchdog kills the child.
#[derive(Clone)]
struct NeverAnswers;

impl Fault for NeverAnswers {
    fn before(&mut self) -> Result<(), TransportError> {
        block_forever()
    }
}

/// Sleeps until killed.
fn block_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn stuck_child_is_killed_by_the_watchdog() {
    let t = ChildFault::on("pipe", NeverAnswers);
    stalled(both_patterns(&t, cpus(), &short_watchdog()));
}

/// The child's endpoint works, but when the parent closes, blocks for ever instead of
/// returning.
#[derive(Clone)]
struct IgnoresClose;

impl Fault for IgnoresClose {
    fn after(&mut self, result: Result<(), TransportError>) -> Result<(), TransportError> {
        if matches!(result, Err(TransportError::Disconnected)) {
            block_forever()
        }
        result
    }
}

fn child_that_outlives_the_close_is_killed_at_the_deadline() {
    // The parent measures to the end and closes; the child does not exit. Waiting for it
    // is bounded by the scenario's deadline, after which it is killed.
    let t = ChildFault::on("pipe", IgnoresClose);
    stalled(both_patterns(&t, cpus(), &short_watchdog()));
}

/// The child SIGKILLs itself at its call number `after`, without closing its endpoints:
/// the parent must see the death through the ring (`PeerDied`), not wait for the
/// watchdog.
#[derive(Clone)]
struct DiesAfter {
    calls: u64,
}

impl Fault for DiesAfter {
    fn before(&mut self) -> Result<(), TransportError> {
        if self.calls == 0 {
            // SAFETY: kill(2) on our own pid; the process ends at once.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
        self.calls -= 1;
        Ok(())
    }
}

fn ring_child_killed_mid_scenario_is_reported_not_hung() {
    // A 30 s watchdog: if the ring did not report the dead peer, the scenario would end
    // as `Stalled` (after 30 s), not as the child's death.
    let budget = Budget {
        stall_slack: Duration::from_secs(30),
        ..Budget::exact(2, 1_000_000)
    };
    let payload = Payload::new(4096);
    let t = ChildFault::on("shm-spin-park", DiesAfter { calls: 50 });
    for pattern in BYTE_PATTERNS {
        let r = run_scenario(&t, pattern, 4096, &budget, cpus(), false, &payload);
        child_failed(vec![(pattern, r)], |d| d.contains("SIGKILL"));
    }
}

/// The child's endpoint panics.
#[derive(Clone)]
struct Panics;

impl Fault for Panics {
    fn before(&mut self) -> Result<(), TransportError> {
        panic!("injected panic")
    }
}

fn panicking_child_is_reported_as_a_panic() {
    let t = ChildFault::on("pipe", Panics);
    child_failed(both_patterns(&t, cpus(), &Budget::exact(2, 20)), |d| {
        d == "panicked: injected panic"
    });
}

fn unpinnable_child_is_reported() {
    // No machine has CPU 4095 in this process's mask (nor in a glibc CpuSet).
    let cpus = CpuPair {
        parent: cpus().parent,
        child: 4095,
    };
    let pipe = transport::by_name("pipe").expect("pipe");
    child_failed(both_patterns(pipe, cpus, &Budget::exact(2, 20)), |d| {
        d.contains("could not pin")
    });
}

fn multi_threaded_caller_is_refused() {
    let payload = Payload::new(64);
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let _ = stopped.recv();
    });
    let r = run_scenario(
        transport::by_name("pipe").expect("pipe"),
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
