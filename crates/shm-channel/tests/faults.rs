//! Fault injection across real processes: a peer killed (SIGKILL) before, during and after
//! a write, at random points of a checked stream, while blocked; a peer stopped (SIGSTOP)
//! and continued. Each time the survivor never receives a partial, corrupt or reordered
//! message, gets every message committed before the fault, sees `PeerDied` in its blocked
//! call, and a new process attaching in place of the dead one makes the channel work again.
//!
//! The random-kill tests run `SHM_SOAK_KILLS` kills (default 200 producer kills and half
//! as many consumer kills); counts and detection latencies are printed (`--nocapture`).
//! Nothing here asserts a timing: every wait has a generous deadline ([`PATIENCE`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use shm_channel::spsc::{self, Receiver, Sender};
use shm_channel::{RecvError, RecvTimeoutError, SendTimeoutError, TryRecvError, TrySendError};
use shm_core::liveness::ProcessIdentity;
use shm_core::{Region, SharedMemory};
use shm_testkit::{fork_child, fork_lock, TestChild};

/// Generous bound on every wait, so a bug fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(20);

/// Words of the control page shared with children (a `Region` made before the fork).
const STAGE: usize = 0;
/// A count the child publishes (messages committed, or the next sequence it expects).
const COUNT: usize = 8;
/// Checks failed in children that could not report through their exit code (killed).
const ERRORS: usize = 16;
/// Messages a consumer child received (for the totals).
const RECEIVED: usize = 24;

/// A page of words shared with the children.
struct Control(Region);

impl Control {
    fn new() -> Control {
        Control(Region::anonymous(4096).unwrap())
    }

    fn word(&self, offset: usize) -> &AtomicU64 {
        self.0.atomic_u64(offset).unwrap()
    }

    fn set(&self, offset: usize, value: u64) {
        self.word(offset).store(value, Ordering::SeqCst);
    }

    fn get(&self, offset: usize) -> u64 {
        self.word(offset).load(Ordering::SeqCst)
    }

    /// Waits until the word at `offset` is at least `value`; panics after [`PATIENCE`].
    fn wait_for(&self, offset: usize, value: u64) {
        let deadline = Instant::now() + PATIENCE;
        while self.get(offset) < value {
            assert!(Instant::now() < deadline, "child never reached {value}");
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// Deterministic xorshift.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// FNV-1a.
fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ *b as u32).wrapping_mul(0x0100_0193)
    })
}

/// Message `seq`: sequence number, checksum, then a length and content both derived from
/// `seq` (so the receiver can rebuild the expected bytes from the sequence number alone).
fn message(seq: u64, max_len: usize, buf: &mut Vec<u8>) {
    let mut rng = Rng(seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let len = rng.below(max_len as u64 + 1) as usize;
    buf.clear();
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.extend((0..len).map(|_| rng.next() as u8));
    let sum = checksum(&buf[12..]);
    buf[8..12].copy_from_slice(&sum.to_le_bytes());
}

/// Checks a received message: intact (checksum, exact bytes); returns its sequence number.
fn verify(got: &[u8], max_len: usize) -> Result<u64, String> {
    if got.len() < 12 {
        return Err(format!("partial message of {} bytes", got.len()));
    }
    let seq = u64::from_le_bytes(got[..8].try_into().unwrap());
    let sum = u32::from_le_bytes(got[8..12].try_into().unwrap());
    if sum != checksum(&got[12..]) {
        return Err(format!("checksum mismatch in message {seq}"));
    }
    let mut expected = Vec::new();
    message(seq, max_len, &mut expected);
    if got != expected {
        return Err(format!("message {seq} differs from what was sent"));
    }
    Ok(seq)
}

/// A sender or receiver that a child can adopt.
trait Endpoint {
    fn hand_over_to(&self, to: ProcessIdentity);
    fn adopt_here(&self);
}

impl Endpoint for Sender {
    fn hand_over_to(&self, to: ProcessIdentity) {
        self.hand_over(to).unwrap();
    }
    fn adopt_here(&self) {
        self.adopt().unwrap();
    }
}

impl Endpoint for Receiver {
    fn hand_over_to(&self, to: ProcessIdentity) {
        self.hand_over(to).unwrap();
    }
    fn adopt_here(&self) {
        self.adopt().unwrap();
    }
}

impl Endpoint for shm_channel::broadcast::Sender {
    fn hand_over_to(&self, to: ProcessIdentity) {
        self.hand_over(to).unwrap();
    }
    fn adopt_here(&self) {
        self.adopt().unwrap();
    }
}

impl Endpoint for shm_channel::broadcast::Receiver {
    fn hand_over_to(&self, to: ProcessIdentity) {
        self.hand_over(to).unwrap();
    }
    fn adopt_here(&self) {
        self.adopt().unwrap();
    }
}

/// Forks a child that adopts `endpoint` and runs `f` with it; the parent hands the endpoint
/// over and drops its copy (which, no longer owned here, closes nothing).
fn fork_owner<E: Endpoint>(
    lock: &std::sync::MutexGuard<'static, ()>,
    endpoint: E,
    f: impl FnOnce(E) -> i32,
) -> TestChild {
    let mut slot = Some(endpoint);
    let child = fork_child(lock, || {
        let endpoint = slot.take().unwrap();
        endpoint.adopt_here();
        f(endpoint)
    });
    let endpoint = slot.take().unwrap();
    endpoint.hand_over_to(ProcessIdentity::of_pid(child.pid()).unwrap());
    drop(endpoint);
    child
}

/// Sleeps forever (until killed): the state of a peer that stopped mid-operation.
fn hang() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// SIGKILLs `child` and checks it died of it.
fn kill_and_reap(child: TestChild) {
    child.kill();
    assert_eq!(child.wait(), 128 + libc::SIGKILL);
}

/// Receives until the sender is found dead: every message must be intact and in sequence
/// from `next`. Returns the next expected sequence number and how long `PeerDied` took to
/// come once the ring ran dry.
fn drain_until_peer_died(rx: &mut Receiver, mut next: u64, max_len: usize) -> (u64, Duration) {
    loop {
        let waited = Instant::now();
        match rx.recv_timeout(PATIENCE) {
            Ok(msg) => {
                let seq = verify(&msg, max_len).unwrap();
                assert_eq!(seq, next, "lost, duplicated or reordered");
                next += 1;
            }
            Err(RecvTimeoutError::PeerDied) => return (next, waited.elapsed()),
            Err(other) => panic!("expected PeerDied after message {next}, got {other:?}"),
        }
    }
}

/// A new process attaches as sender in place of the dead one, sends `count` messages from
/// `first`, and closes cleanly; the parent receives them all, then `Disconnected`.
fn recover_sender(
    lock: &std::sync::MutexGuard<'static, ()>,
    rx: &mut Receiver,
    first: u64,
    count: u64,
    max_len: usize,
) {
    let memory = Arc::clone(rx.memory());
    let control = Control::new();
    let child = fork_child(lock, || {
        let Ok(mut tx) = Sender::attach(memory) else {
            return 2;
        };
        control.set(STAGE, 1);
        let mut buf = Vec::new();
        for seq in first..first + count {
            message(seq, max_len, &mut buf);
            if tx.send(&buf).is_err() {
                return 3;
            }
        }
        0
    });
    // Until the new sender has attached, the owner slot still names the dead one, and a
    // receive would rightly report PeerDied again.
    control.wait_for(STAGE, 1);
    for seq in first..first + count {
        let msg = rx.recv_timeout(PATIENCE).unwrap();
        assert_eq!(verify(&msg, max_len).unwrap(), seq);
    }
    assert_eq!(
        rx.recv_timeout(PATIENCE),
        Err(RecvTimeoutError::Disconnected)
    );
    assert_eq!(child.wait(), 0);
}

/// How a producer child is stopped for the kill.
#[derive(Clone, Copy, Debug)]
enum Moment {
    /// After `n` complete messages, before starting the next write.
    BeforeWrite,
    /// Half-way through writing the payload of a reserved grant.
    MidPayload,
    /// With the whole payload written, before committing the grant.
    BeforeCommit,
}

/// A producer is killed at `moment` after 5 committed messages; the receiver gets exactly
/// those 5, then `PeerDied`; a new sender attaches and the channel works again.
fn producer_killed_at(moment: Moment) {
    const MAX: usize = 1000;
    const COMMITTED: u64 = 5;
    let control = Control::new();
    let (tx, mut rx) = spsc::channel(1 << 14).unwrap();
    let lock = fork_lock();
    let child = fork_owner(&lock, tx, |mut tx| {
        let mut buf = Vec::new();
        for seq in 0..COMMITTED {
            message(seq, MAX, &mut buf);
            tx.send(&buf).unwrap();
        }
        message(COMMITTED, MAX, &mut buf);
        let mut grant = tx.reserve(buf.len()).unwrap();
        match moment {
            Moment::BeforeWrite => {}
            Moment::MidPayload => grant.write_at(0, &buf[..buf.len() / 2]).unwrap(),
            Moment::BeforeCommit => grant.write_at(0, &buf).unwrap(),
        }
        control.set(STAGE, 1);
        hang()
    });
    control.wait_for(STAGE, 1);
    let killed = Instant::now();
    kill_and_reap(child);
    let (next, _) = drain_until_peer_died(&mut rx, 0, MAX);
    assert_eq!(next, COMMITTED, "{moment:?}: committed messages lost");
    eprintln!("{moment:?}: PeerDied {:?} after SIGKILL", killed.elapsed());
    // Still dead, still nothing partial.
    assert_eq!(rx.try_recv(), Err(TryRecvError::PeerDied));
    // The uncommitted frame is overwritten by the new sender: resume at the same number.
    recover_sender(&lock, &mut rx, COMMITTED, 50, MAX);
}

#[test]
fn producer_killed_before_a_write() {
    producer_killed_at(Moment::BeforeWrite);
}

#[test]
fn producer_killed_mid_payload() {
    producer_killed_at(Moment::MidPayload);
}

#[test]
fn producer_killed_between_write_and_commit() {
    producer_killed_at(Moment::BeforeCommit);
}

#[test]
fn producer_killed_inside_a_batch_loses_only_the_unpublished_batch() {
    const MAX: usize = 100;
    let control = Control::new();
    let (tx, mut rx) = spsc::channel(1 << 14).unwrap();
    let lock = fork_lock();
    let child = fork_owner(&lock, tx, |mut tx| {
        let mut buf = Vec::new();
        for seq in 0..3 {
            message(seq, MAX, &mut buf);
            tx.send(&buf).unwrap();
        }
        let mut batch = tx.batch();
        for seq in 3..6 {
            message(seq, MAX, &mut buf);
            batch.send(&buf).unwrap();
        }
        control.set(STAGE, 1);
        hang()
    });
    control.wait_for(STAGE, 1);
    kill_and_reap(child);
    // Committed into a batch is not published: the batch dies with its process.
    let (next, _) = drain_until_peer_died(&mut rx, 0, MAX);
    assert_eq!(next, 3);
    recover_sender(&lock, &mut rx, 3, 20, MAX);
}

#[test]
fn consumer_killed_while_the_producer_is_blocked() {
    const MAX: usize = 200;
    let control = Control::new();
    let (mut tx, rx) = spsc::channel(1 << 12).unwrap();
    let lock = fork_lock();
    let child = fork_owner(&lock, rx, |mut rx| {
        for seq in 0..10 {
            let msg = rx.recv().unwrap();
            if verify(&msg, MAX) != Ok(seq) {
                return 1;
            }
        }
        control.set(STAGE, 1);
        hang()
    });
    let mut buf = Vec::new();
    let mut seq = 0;
    let died = loop {
        message(seq, MAX, &mut buf);
        match tx.send_timeout(&buf, Duration::from_millis(100)) {
            Ok(()) => seq += 1,
            Err(SendTimeoutError::Timeout(())) => {
                // Full and blocked: the consumer has stopped reading. Kill it while we
                // block in a long send.
                control.wait_for(STAGE, 1);
                let pid = Pid::from_raw(child.pid());
                let killer = std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(20));
                    kill(pid, Signal::SIGKILL).unwrap();
                    Instant::now()
                });
                let result = tx.send_timeout(&buf, PATIENCE);
                let seen = Instant::now();
                let killed = killer.join().unwrap();
                eprintln!(
                    "blocked sender saw the consumer's death {:?} after SIGKILL",
                    seen.saturating_duration_since(killed)
                );
                break result;
            }
            Err(other) => panic!("{other:?}"),
        }
    };
    assert!(
        matches!(died, Err(SendTimeoutError::PeerDied(()))),
        "{died:?}"
    );
    assert_eq!(child.wait(), 128 + libc::SIGKILL);
    // Recovery: a new consumer continues after the 10 messages the dead one released.
    let memory = Arc::clone(tx.memory());
    let total = seq + 100;
    control.set(STAGE, 0);
    let child = fork_child(&lock, || {
        let Ok(mut rx) = Receiver::attach(memory) else {
            return 2;
        };
        control.set(STAGE, 1);
        for expected in 10..total {
            match rx.recv().map(|m| verify(&m, MAX)) {
                Ok(Ok(got)) if got == expected => {}
                _ => return 3,
            }
        }
        match rx.recv() {
            Err(RecvError::Disconnected) => 0,
            _ => 4,
        }
    });
    control.wait_for(STAGE, 1);
    while seq < total {
        message(seq, MAX, &mut buf);
        tx.send_timeout(&buf, PATIENCE).unwrap();
        seq += 1;
    }
    drop(tx);
    assert_eq!(child.wait(), 0);
}

#[test]
fn consumer_killed_holding_a_read_grant_gets_the_message_redelivered() {
    const MAX: usize = 64;
    let control = Control::new();
    let (mut tx, rx) = spsc::channel(1 << 12).unwrap();
    let lock = fork_lock();
    let child = fork_owner(&lock, rx, |mut rx| {
        for _ in 0..3 {
            rx.recv().unwrap();
        }
        let grant = rx.read().unwrap(); // message 3, never released
        control.set(STAGE, 1 + grant.len() as u64);
        hang()
    });
    let mut buf = Vec::new();
    for seq in 0..6 {
        message(seq, MAX, &mut buf);
        tx.send(&buf).unwrap();
    }
    control.wait_for(STAGE, 1);
    kill_and_reap(child);
    let memory = Arc::clone(tx.memory());
    let child = fork_child(&lock, || {
        let Ok(mut rx) = Receiver::attach(memory) else {
            return 2;
        };
        // At least once: the message the dead consumer held is delivered again.
        for expected in 3..6 {
            match rx.recv().map(|m| verify(&m, MAX)) {
                Ok(Ok(got)) if got == expected => {}
                _ => return 3,
            }
        }
        0
    });
    assert_eq!(child.wait(), 0);
    drop(tx);
}

/// Waits until `pid` has stopped (SIGSTOP delivered).
fn wait_stopped(pid: i32) {
    let status = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WUNTRACED)).unwrap();
    assert!(matches!(status, WaitStatus::Stopped(..)), "{status:?}");
}

#[test]
fn stopped_producer_is_alive_and_resumes_after_sigcont() {
    const MAX: usize = 100;
    let control = Control::new();
    let (tx, mut rx) = spsc::channel(1 << 12).unwrap();
    let lock = fork_lock();
    let child = fork_owner(&lock, tx, |mut tx| {
        let mut buf = Vec::new();
        for seq in 0..2000 {
            message(seq, MAX, &mut buf);
            if tx.send(&buf).is_err() {
                return 1;
            }
            control.set(COUNT, seq + 1);
            if seq % 50 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        0
    });
    let mut next = 0;
    for _ in 0..100 {
        let msg = rx.recv_timeout(PATIENCE).unwrap();
        assert_eq!(verify(&msg, MAX).unwrap(), next);
        next += 1;
    }
    kill(Pid::from_raw(child.pid()), Signal::SIGSTOP).unwrap();
    wait_stopped(child.pid());
    // Drain what it published before stopping; then a stopped peer is a slow peer.
    let timeouts = loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(msg) => {
                assert_eq!(verify(&msg, MAX).unwrap(), next);
                next += 1;
            }
            Err(RecvTimeoutError::Timeout) => break 1,
            Err(other) => panic!("a stopped producer gave {other:?}"),
        }
    };
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    eprintln!(
        "stopped at message {next} ({} committed), {timeouts} timeout",
        control.get(COUNT)
    );
    kill(Pid::from_raw(child.pid()), Signal::SIGCONT).unwrap();
    while next < 2000 {
        let msg = rx.recv_timeout(PATIENCE).unwrap();
        assert_eq!(verify(&msg, MAX).unwrap(), next);
        next += 1;
    }
    assert_eq!(
        rx.recv_timeout(PATIENCE),
        Err(RecvTimeoutError::Disconnected)
    );
    assert_eq!(child.wait(), 0);
}

#[test]
fn stopped_consumer_is_alive_and_resumes_after_sigcont() {
    const MAX: usize = 100;
    const TOTAL: u64 = 3000;
    let (mut tx, rx) = spsc::channel(1 << 11).unwrap();
    let lock = fork_lock();
    let child = fork_owner(&lock, rx, |mut rx| {
        for expected in 0..TOTAL {
            match rx.recv().map(|m| verify(&m, MAX)) {
                Ok(Ok(got)) if got == expected => {}
                _ => return 1,
            }
        }
        match rx.recv() {
            Err(RecvError::Disconnected) => 0,
            _ => 2,
        }
    });
    let mut buf = Vec::new();
    let mut seq = 0;
    while seq < 20 {
        message(seq, MAX, &mut buf);
        tx.send_timeout(&buf, PATIENCE).unwrap();
        seq += 1;
    }
    kill(Pid::from_raw(child.pid()), Signal::SIGSTOP).unwrap();
    wait_stopped(child.pid());
    // Fill the ring; then the stopped consumer makes sends time out, never PeerDied.
    let mut timeouts = 0;
    while timeouts < 3 {
        message(seq, MAX, &mut buf);
        match tx.send_timeout(&buf, Duration::from_millis(50)) {
            Ok(()) => seq += 1,
            Err(SendTimeoutError::Timeout(())) => timeouts += 1,
            Err(other) => panic!("a stopped consumer gave {other:?}"),
        }
    }
    assert!(matches!(tx.try_send(&buf), Err(TrySendError::Full(()))));
    kill(Pid::from_raw(child.pid()), Signal::SIGCONT).unwrap();
    while seq < TOTAL {
        message(seq, MAX, &mut buf);
        tx.send_timeout(&buf, PATIENCE).unwrap();
        seq += 1;
    }
    drop(tx);
    assert_eq!(child.wait(), 0);
}

/// Number of random kills to run: `SHM_SOAK_KILLS`, or `default`.
fn kills(default: u64) -> u64 {
    std::env::var("SHM_SOAK_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Latency statistics, printed at the end of a kill loop.
#[derive(Default)]
struct Latencies(Vec<Duration>);

impl Latencies {
    fn report(&mut self, what: &str) {
        self.0.sort();
        if let (Some(first), Some(last)) = (self.0.first(), self.0.last()) {
            eprintln!(
                "{what}: min {first:?}, median {:?}, max {last:?}",
                self.0[self.0.len() / 2]
            );
        }
    }
}

#[test]
fn producer_killed_at_random_points_of_a_stream() {
    const MAX: usize = 300;
    let total_kills = kills(200);
    let control = Control::new();
    let (tx, mut rx) = spsc::channel(1 << 12).unwrap();
    let memory = Arc::clone(rx.memory());
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let lock = fork_lock();
    let mut next = 0u64; // next sequence number the receiver expects
    let mut tx = Some(tx);
    let mut latencies = Latencies::default();
    let started = Instant::now();
    for round in 0..total_kills {
        control.set(STAGE, 0);
        // The new producer resumes after the last message received: the previous one's
        // death was reported only after every message it published had been delivered.
        let first = next;
        let child_memory = Arc::clone(&memory);
        let mut first_tx = tx.take();
        let child = fork_child(&lock, || {
            let mut tx = match first_tx.take() {
                Some(tx) => {
                    tx.adopt().unwrap();
                    tx
                }
                None => match Sender::attach(child_memory) {
                    Ok(tx) => tx,
                    Err(_) => return 2,
                },
            };
            control.set(STAGE, 1);
            let mut buf = Vec::new();
            for seq in first.. {
                message(seq, MAX, &mut buf);
                if seq % 3 == 0 {
                    // Zero-copy path too: reserve, write in two halves, commit.
                    let mut grant = tx.reserve(buf.len()).unwrap();
                    let half = buf.len() / 2;
                    grant.write_at(0, &buf[..half]).unwrap();
                    grant.write_at(half, &buf[half..]).unwrap();
                    grant.commit(buf.len());
                } else if tx.send(&buf).is_err() {
                    return 1;
                }
            }
            0
        });
        if let Some(tx) = first_tx.take() {
            tx.hand_over(ProcessIdentity::of_pid(child.pid()).unwrap())
                .unwrap();
        }
        control.wait_for(STAGE, 1);
        let delay = Duration::from_micros(rng.below(3000));
        let pid = Pid::from_raw(child.pid());
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            kill(pid, Signal::SIGKILL).unwrap();
        });
        let (after, latency) = drain_until_peer_died(&mut rx, next, MAX);
        killer.join().unwrap();
        assert_eq!(child.wait(), 128 + libc::SIGKILL, "round {round}");
        latencies.0.push(latency);
        next = after;
    }
    eprintln!(
        "producer kills: {total_kills}, messages received intact and in order: {next}, \
         in {:?}",
        started.elapsed()
    );
    latencies.report("PeerDied after the ring ran dry");
    recover_sender(&lock, &mut rx, next, 100, MAX);
}

#[test]
fn consumer_killed_at_random_points_of_a_stream() {
    const MAX: usize = 300;
    let total_kills = kills(200) / 2;
    let control = Control::new();
    let (mut tx, rx) = spsc::channel(1 << 12).unwrap();
    let memory = Arc::clone(tx.memory());
    let mut rng = Rng(0xfeed_5678_1234_0001);
    let lock = fork_lock();
    let mut rx = Some(rx);
    // COUNT: the sequence number the consumer is processing (set before it releases the
    // message): a new consumer's first message is that one (if the dead consumer was
    // killed holding it) or the next, and after that every number follows in order.
    control.set(COUNT, 0);
    let consumer = |rx: Option<Receiver>, last_round: bool| {
        let mut rx = match rx {
            Some(rx) => {
                rx.adopt().unwrap();
                rx
            }
            None => match Receiver::attach(Arc::clone(&memory)) {
                Ok(rx) => rx,
                Err(_) => return 2,
            },
        };
        control.set(STAGE, 1);
        let mut first = true;
        let mut expected = control.get(COUNT);
        loop {
            let grant = match rx.read() {
                Ok(grant) => grant,
                Err(RecvError::Disconnected) if last_round => return 0,
                Err(_) => return 3,
            };
            let msg = grant.to_vec();
            let seq = match verify(&msg, MAX) {
                Ok(seq) => seq,
                Err(_) => {
                    control.word(ERRORS).fetch_add(1, Ordering::SeqCst);
                    return 4;
                }
            };
            let ok = seq == expected || (first && seq == expected + 1);
            if !ok {
                control.word(ERRORS).fetch_add(1, Ordering::SeqCst);
                return 5;
            }
            first = false;
            control.set(COUNT, seq);
            control.word(RECEIVED).fetch_add(1, Ordering::SeqCst);
            drop(grant);
            expected = seq + 1;
        }
    };
    let mut buf = Vec::new();
    let mut seq = 0u64;
    let mut latencies = Latencies::default();
    let started = Instant::now();
    for _ in 0..=total_kills {
        let last_round = false;
        control.set(STAGE, 0);
        let mut first_rx = rx.take();
        let child = fork_child(&lock, || consumer(first_rx.take(), last_round));
        if let Some(rx) = first_rx.take() {
            rx.hand_over(ProcessIdentity::of_pid(child.pid()).unwrap())
                .unwrap();
        }
        control.wait_for(STAGE, 1);
        let delay = Duration::from_micros(rng.below(3000));
        let pid = Pid::from_raw(child.pid());
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            kill(pid, Signal::SIGKILL).unwrap();
            Instant::now()
        });
        // Send until the dead consumer is noticed (with the ring full).
        loop {
            message(seq, MAX, &mut buf);
            match tx.send_timeout(&buf, PATIENCE) {
                Ok(()) => seq += 1,
                Err(SendTimeoutError::PeerDied(())) => break,
                Err(other) => panic!("{other:?}"),
            }
        }
        let seen = Instant::now();
        let killed = killer.join().unwrap();
        latencies.0.push(seen.saturating_duration_since(killed));
        assert_eq!(child.wait(), 128 + libc::SIGKILL);
        assert_eq!(control.get(ERRORS), 0, "a consumer saw a bad message");
    }
    // A last consumer drains everything; then the channel closes cleanly.
    control.set(STAGE, 0);
    let child = fork_child(&lock, || consumer(None, true));
    control.wait_for(STAGE, 1);
    let end = seq + 100;
    while seq < end {
        message(seq, MAX, &mut buf);
        tx.send_timeout(&buf, PATIENCE).unwrap();
        seq += 1;
    }
    drop(tx);
    assert_eq!(child.wait(), 0);
    assert_eq!(control.get(ERRORS), 0);
    assert_eq!(
        control.get(COUNT),
        end - 1,
        "the last message was not received"
    );
    eprintln!(
        "consumer kills: {}, messages sent: {seq}, received (with redeliveries): {}, in {:?}",
        total_kills + 1,
        control.get(RECEIVED),
        started.elapsed()
    );
    latencies.report("blocked sender saw PeerDied after SIGKILL");
}

/// MPSC: one long-lived producer streams while short-lived producers attach, send checked
/// messages (half of them through write grants) and are SIGKILLed at random points, often
/// mid-frame. Per producer, what arrives is intact, in order, without gaps, and is every
/// message it committed (plus at most the one it was killed after committing, before
/// recording it); the long-lived producer is never wedged by a dead claim.
#[test]
fn mpsc_producers_killed_at_random_points_of_a_stream() {
    use shm_channel::mpsc;
    const MAX: usize = 200;
    /// Producer ids live in the top bits of the sequence numbers.
    const ID_SHIFT: u32 = 40;
    let victims = kills(200) / 2;
    // Word 8 * (1 + k): messages victim k recorded as sent. Word 0: stop the streamer.
    let words = Region::anonymous(8 * (victims as usize + 2)).unwrap();
    let word = |k: u64| words.atomic_u64(8 * k as usize).unwrap();
    let (tx, mut rx) = mpsc::channel(1 << 12).unwrap();
    let memory = Arc::clone(tx.memory());
    let lock = fork_lock();
    let mut slot = Some(tx);
    let streamer = fork_child(&lock, || {
        let mut tx = slot.take().unwrap();
        tx.adopt().unwrap();
        let mut buf = Vec::new();
        let mut seq = 0u64;
        while word(0).load(Ordering::SeqCst) == 0 {
            message(seq, MAX, &mut buf);
            match tx.send_timeout(&buf, Duration::from_millis(100)) {
                Ok(()) => seq += 1,
                Err(SendTimeoutError::Timeout(())) => {}
                Err(_) => return 1,
            }
        }
        word(victims + 1).store(seq, Ordering::SeqCst);
        0
    });
    slot.take()
        .unwrap()
        .hand_over(ProcessIdentity::of_pid(streamer.pid()).unwrap())
        .unwrap();
    let mut next = vec![0u64; victims as usize + 1];
    let mut receive = |msg: Vec<u8>| {
        let tagged = verify(&msg, MAX).unwrap();
        let (id, seq) = (tagged >> ID_SHIFT, tagged & ((1 << ID_SHIFT) - 1));
        assert_eq!(seq, next[id as usize], "producer {id}: lost or reordered");
        next[id as usize] += 1;
    };
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    assert!(victims >= 4, "SHM_SOAK_KILLS too small for the MPSC test");
    let started = Instant::now();
    for k in 1..=victims {
        let up = Control::new();
        let child_memory = Arc::clone(&memory);
        let mut victim = fork_child(&lock, || {
            let mut tx = match mpsc::Sender::attach(child_memory) {
                Ok(tx) => tx,
                Err(err) => {
                    eprintln!("victim {k}: {err}");
                    return 2;
                }
            };
            up.set(STAGE, 1);
            let mut buf = Vec::new();
            for seq in 0.. {
                message((k << ID_SHIFT) | seq, MAX, &mut buf);
                if k % 4 == 0 && seq == 3 + k % 5 {
                    // Every fourth victim dies holding a half-written claim.
                    let Ok(mut grant) = tx.reserve_timeout(buf.len(), PATIENCE) else {
                        return 5;
                    };
                    grant.write_at(0, &buf[..buf.len() / 2]).unwrap();
                    up.set(STAGE, 2);
                    hang()
                }
                if seq % 2 == 0 {
                    let Ok(mut grant) = tx.reserve_timeout(buf.len(), PATIENCE) else {
                        return 3;
                    };
                    let half = buf.len() / 2;
                    grant.write_at(0, &buf[..half]).unwrap();
                    grant.write_at(half, &buf[half..]).unwrap();
                    grant.commit(buf.len());
                } else if tx.send_timeout(&buf, PATIENCE).is_err() {
                    return 4;
                }
                word(k).store(seq + 1, Ordering::SeqCst);
            }
            0
        });
        while up.get(STAGE) == 0 {
            if let Some(code) = victim.wait_timeout(Duration::from_millis(1)) {
                panic!(
                    "victim {k} could not attach (exit {code}); senders {}, dead {}",
                    rx.sender_count(),
                    rx.dead_senders()
                );
            }
        }
        let until = Instant::now() + Duration::from_micros(rng.below(3000));
        let deadline = Instant::now() + PATIENCE;
        let mid_frame = k % 4 == 0;
        while (!mid_frame && Instant::now() < until) || (mid_frame && up.get(STAGE) < 2) {
            assert!(Instant::now() < deadline, "victim {k} never claimed");
            match rx.recv_timeout(Duration::from_millis(1)) {
                Ok(msg) => receive(msg),
                Err(RecvTimeoutError::Timeout) => {}
                Err(other) => panic!("{other:?}"),
            }
        }
        kill_and_reap(victim);
    }
    word(0).store(1, Ordering::SeqCst);
    let end = loop {
        match rx.recv_timeout(PATIENCE) {
            Ok(msg) => receive(msg),
            Err(end) => break end,
        }
    };
    assert!(
        matches!(
            end,
            RecvTimeoutError::PeerDied | RecvTimeoutError::Disconnected
        ),
        "{end:?}"
    );
    assert_eq!(streamer.wait(), 0);
    assert_eq!(next[0], word(victims + 1).load(Ordering::SeqCst));
    for k in 1..=victims {
        let recorded = word(k).load(Ordering::SeqCst);
        let got = next[k as usize];
        assert!(
            got == recorded || got == recorded + 1,
            "victim {k}: recorded {recorded} committed, {got} delivered"
        );
    }
    eprintln!(
        "mpsc: {victims} producers killed, {} messages delivered intact and in order \
         ({} from the streamer), {} abandoned frames skipped, in {:?}",
        next.iter().sum::<u64>(),
        next[0],
        rx.abandoned_frames(),
        started.elapsed()
    );
}

/// Broadcast with back-pressure: one long-lived reader process and 14 reader processes
/// SIGKILLed one by one at random points while the sender streams. The sender is never
/// wedged by a dead reader (it is dropped from the back-pressure) and the surviving reader
/// gets every message intact and in order. (All receivers subscribe before the first send.)
#[test]
fn broadcast_readers_killed_at_random_points_of_a_stream() {
    use shm_channel::broadcast::{self, Policy, MAX_READERS};
    const MAX: usize = 200;
    const TOTAL: u64 = 30_000;
    let (mut tx, survivor) = broadcast::channel(1 << 12, Policy::BackPressure).unwrap();
    let victims: Vec<_> = (0..MAX_READERS - 2)
        .map(|_| tx.subscribe().unwrap())
        .collect();
    let lock = fork_lock();
    let survivor = fork_owner(&lock, survivor, |mut rx| {
        for expected in 0..TOTAL {
            match rx.recv().map(|m| verify(&m, MAX)) {
                Ok(Ok(seq)) if seq == expected => {}
                _ => return 1,
            }
        }
        match rx.recv() {
            Err(broadcast::RecvError::Disconnected) => 0,
            _ => 2,
        }
    });
    let mut children: Vec<TestChild> = victims
        .into_iter()
        .map(|rx| {
            fork_owner(&lock, rx, |mut rx| {
                // Reads (checking) until killed; a slow reader, so it holds the sender back.
                for expected in 0.. {
                    match rx.recv().map(|m| verify(&m, MAX)) {
                        Ok(Ok(seq)) if seq == expected => {}
                        _ => return 1,
                    }
                    std::thread::sleep(Duration::from_micros(20));
                }
                0
            })
        })
        .collect();
    let mut rng = Rng(0xb0ad_ca57);
    let mut buf = Vec::new();
    let started = Instant::now();
    let mut kills = 0;
    for seq in 0..TOTAL {
        message(seq, MAX, &mut buf);
        tx.send_timeout(&buf, PATIENCE)
            .unwrap_or_else(|e| panic!("message {seq}: {e:?}"));
        if seq % 2000 == 1000 && !children.is_empty() {
            let victim = children.remove(rng.below(children.len() as u64) as usize);
            kill_and_reap(victim);
            kills += 1;
        }
    }
    drop(tx);
    assert_eq!(survivor.wait(), 0);
    for child in children {
        kill_and_reap(child);
        kills += 1;
    }
    eprintln!(
        "broadcast: {kills} readers killed, {TOTAL} messages to the survivor in {:?}",
        started.elapsed()
    );
}

/// Broadcast: the sender process is SIGKILLed at a random point of its stream; both
/// receivers get every message it published, intact and in order, then `PeerDied`.
#[test]
fn broadcast_sender_killed_at_random_points() {
    use shm_channel::broadcast::{self, Policy};
    const MAX: usize = 200;
    let rounds = kills(200) / 20;
    let mut rng = Rng(0x005e_4de4);
    let lock = fork_lock();
    for _ in 0..rounds {
        let control = Control::new();
        let (tx, mut rx1) = broadcast::channel(1 << 12, Policy::BackPressure).unwrap();
        let mut rx2 = tx.subscribe().unwrap();
        let child = fork_owner(&lock, tx, |mut tx| {
            control.set(STAGE, 1);
            let mut buf = Vec::new();
            for seq in 0.. {
                message(seq, MAX, &mut buf);
                if tx.send(&buf).is_err() {
                    return 1;
                }
                control.set(COUNT, seq + 1);
            }
            0
        });
        control.wait_for(STAGE, 1);
        let pid = Pid::from_raw(child.pid());
        let delay = Duration::from_micros(rng.below(3000));
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            kill(pid, Signal::SIGKILL).unwrap();
        });
        // Read alternately from both receivers until both report the death.
        let mut next = [0u64; 2];
        let mut done = [false; 2];
        while !(done[0] && done[1]) {
            for (i, rx) in [&mut rx1, &mut rx2].into_iter().enumerate() {
                if done[i] {
                    continue;
                }
                match rx.recv_timeout(PATIENCE) {
                    Ok(msg) => {
                        assert_eq!(verify(&msg, MAX).unwrap(), next[i], "receiver {i}");
                        next[i] += 1;
                    }
                    Err(broadcast::RecvTimeoutError::PeerDied) => done[i] = true,
                    Err(other) => panic!("receiver {i}: {other:?}"),
                }
            }
        }
        killer.join().unwrap();
        assert_eq!(child.wait(), 128 + libc::SIGKILL);
        let recorded = control.get(COUNT);
        for got in next {
            assert!(
                got == recorded || got == recorded + 1,
                "recorded {recorded} sent, {got} delivered"
            );
        }
    }
    eprintln!("broadcast: {rounds} senders killed");
}
