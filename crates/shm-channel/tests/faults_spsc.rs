//! Fault injection into an SPSC channel across real processes:
//!
//! - at chosen moments: a producer killed (SIGKILL) before, during and after a write or
//!   with deferred sends unpublished; a consumer killed while the producer is blocked or
//!   while it holds a read grant; either side stopped (SIGSTOP) and continued. Each time
//!   the survivor never receives a partial, corrupt or reordered message, gets every
//!   message committed before the fault, sees `PeerDied` in its blocked call, and a new
//!   process attaching in place of the dead one makes the channel work again;
//! - at random points of a checked stream: the producer or the consumer SIGKILLed again and
//!   again, each time replaced by a new process that attaches in its place. Nothing
//!   received is partial, corrupt or reordered; the producer's deaths lose nothing it
//!   published; a consumer's death redelivers at most the message it held. These run
//!   `SHM_SOAK_KILLS` kills (default 200 producer kills and half as many consumer kills);
//!   counts and detection latencies are printed (`--nocapture`).
//!
//! Nothing here asserts a timing: every wait has a generous deadline ([`PATIENCE`]).

use std::ops::Range;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use shm_channel::spsc::{self, Spsc};
use shm_channel::{
    Endpoint, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use shm_channel::{Receiver, Sender};
use shm_core::liveness::ProcessIdentity;
use shm_testkit::message::{message, verify};
use shm_testkit::{
    fork_child, fork_lock, hang, kill_and_reap, kill_later, kills, ControlPage, Latencies, Rng,
    TestChild,
};

mod support;
use support::assert_ends;
use support::faults::{
    drain_until_peer_died, fork_owner, recover_sender, recv_checked, send_checked, send_counting,
    wait_stage, COUNT, ERRORS, PATIENCE, RECEIVED, STAGE,
};

/// A fresh SPSC channel of `capacity`, the control page its children report on, and the
/// fork lock, held for the test.
fn channel_and_lock(
    capacity: usize,
) -> (
    Sender<Spsc>,
    Receiver<Spsc>,
    ControlPage,
    MutexGuard<'static, ()>,
) {
    let (tx, rx) = spsc::channel(capacity).unwrap();
    (tx, rx, ControlPage::new(), fork_lock())
}

/// Sends the checked messages `seqs`, closes the channel (drops the sender) and waits for
/// the consumer `child`, which must have received them all and exit 0.
fn send_rest_and_close(mut tx: Sender<Spsc>, seqs: Range<u64>, max: usize, child: TestChild) {
    send_checked(&mut tx, seqs, max).unwrap();
    drop(tx);
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
    let (tx, mut rx, control, lock) = channel_and_lock(1 << 14);
    let child = fork_owner(&lock, tx, |mut tx| {
        let mut buf = Vec::new();
        send_checked(&mut tx, 0..COMMITTED, MAX).unwrap();
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
    wait_stage(&control, STAGE, 1);
    let killed = Instant::now();
    kill_and_reap(child);
    let (next, _) = drain_until_peer_died(&mut rx, 0, MAX);
    assert_eq!(next, COMMITTED, "{moment:?}: committed messages lost");
    eprintln!("{moment:?}: PeerDied {:?} after SIGKILL", killed.elapsed());
    // Still dead, still nothing partial.
    assert_eq!(rx.try_recv(), Err(TryRecvError::Recv(RecvError::PeerDied)));
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
fn producer_killed_with_deferred_sends_loses_only_the_unpublished_ones() {
    const MAX: usize = 100;
    let (tx, mut rx, control, lock) = channel_and_lock(1 << 14);
    let child = fork_owner(&lock, tx, |mut tx| {
        let mut buf = Vec::new();
        send_checked(&mut tx, 0..3, MAX).unwrap();
        for seq in 3..6 {
            message(seq, MAX, &mut buf);
            tx.send_deferred(&buf).unwrap();
        }
        control.set(STAGE, 1);
        hang()
    });
    wait_stage(&control, STAGE, 1);
    kill_and_reap(child);
    // Committed but deferred is not published: it dies with its process.
    let (next, _) = drain_until_peer_died(&mut rx, 0, MAX);
    assert_eq!(next, 3);
    recover_sender(&lock, &mut rx, 3, 20, MAX);
}

#[test]
fn consumer_killed_while_the_producer_is_blocked_in_send() {
    const MAX: usize = 200;
    let (mut tx, rx, control, lock) = channel_and_lock(1 << 12);
    let child = fork_owner(&lock, rx, |mut rx| {
        if !recv_checked(&mut rx, 0..10, MAX) {
            return 1;
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
                wait_stage(&control, STAGE, 1);
                let killer = kill_later(child.pid(), Duration::from_millis(20));
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
        matches!(died, Err(SendTimeoutError::Send(SendError::PeerDied(())))),
        "{died:?}"
    );
    assert_eq!(child.wait(), 128 + libc::SIGKILL);
    // Recovery: a new consumer continues after the 10 messages the dead one released.
    let memory = Arc::clone(tx.memory());
    let total = seq + 100;
    control.set(STAGE, 0);
    let child = fork_child(&lock, || {
        let Ok(mut rx) = Receiver::<Spsc>::attach(memory) else {
            return 2;
        };
        control.set(STAGE, 1);
        if !recv_checked(&mut rx, 10..total, MAX) {
            return 3;
        }
        match rx.recv() {
            Err(RecvError::Disconnected) => 0,
            _ => 4,
        }
    });
    wait_stage(&control, STAGE, 1);
    send_rest_and_close(tx, seq..total, MAX, child);
}

#[test]
fn consumer_killed_holding_a_read_grant_gets_the_message_redelivered() {
    const MAX: usize = 64;
    let (mut tx, rx, control, lock) = channel_and_lock(1 << 12);
    let child = fork_owner(&lock, rx, |mut rx| {
        for _ in 0..3 {
            rx.recv().unwrap();
        }
        let grant = rx.read().unwrap(); // message 3, never released
        control.set(STAGE, 1 + grant.len() as u64);
        hang()
    });
    send_checked(&mut tx, 0..6, MAX).unwrap();
    wait_stage(&control, STAGE, 1);
    kill_and_reap(child);
    let memory = Arc::clone(tx.memory());
    let child = fork_child(&lock, || {
        let Ok(mut rx) = Receiver::<Spsc>::attach(memory) else {
            return 2;
        };
        // At least once: the message the dead consumer held is delivered again.
        if !recv_checked(&mut rx, 3..6, MAX) {
            return 3;
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
fn producer_stopped_by_sigstop_is_alive_and_resumes_after_sigcont() {
    const MAX: usize = 100;
    let (tx, mut rx, control, lock) = channel_and_lock(1 << 12);
    let child = fork_owner(&lock, tx, |mut tx| {
        send_counting(&mut tx, 0..2000, MAX, &control, |seq| {
            if seq % 50 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        })
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
    assert_ends(&mut rx, RecvError::Disconnected);
    assert_eq!(child.wait(), 0);
}

#[test]
fn consumer_stopped_by_sigstop_is_alive_and_resumes_after_sigcont() {
    const MAX: usize = 100;
    const TOTAL: u64 = 3000;
    let (mut tx, rx) = spsc::channel(1 << 11).unwrap();
    let lock = fork_lock();
    let child = fork_owner(&lock, rx, |mut rx| {
        if !recv_checked(&mut rx, 0..TOTAL, MAX) {
            return 1;
        }
        match rx.recv() {
            Err(RecvError::Disconnected) => 0,
            _ => 2,
        }
    });
    let mut buf = Vec::new();
    let mut seq = 0;
    send_checked(&mut tx, seq..20, MAX).unwrap();
    seq = 20;
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
    send_rest_and_close(tx, seq..TOTAL, MAX, child);
}

#[test]
fn producer_killed_at_random_points_of_a_stream() {
    const MAX: usize = 300;
    let total_kills = kills(200);
    let control = ControlPage::new();
    let (tx, mut rx) = spsc::channel(1 << 12).unwrap();
    let memory = Arc::clone(rx.memory());
    let mut rng = Rng::new(0x5eed_1234_abcd_ef01);
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
                None => match Sender::<Spsc>::attach(child_memory) {
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
                    grant.commit(buf.len()).unwrap();
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
        wait_stage(&control, STAGE, 1);
        let killer = kill_later(child.pid(), Duration::from_micros(rng.below(3000)));
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
    let control = ControlPage::new();
    let (mut tx, rx) = spsc::channel(1 << 12).unwrap();
    let memory = Arc::clone(tx.memory());
    let mut rng = Rng::new(0xfeed_5678_1234_0001);
    let lock = fork_lock();
    let mut rx = Some(rx);
    // COUNT: the sequence number the consumer is processing (set before it releases the
    // message): a new consumer's first message is that one (if the dead consumer was
    // killed holding it) or the next, and after that every number follows in order.
    control.set(COUNT, 0);
    let consumer = |rx: Option<Receiver<Spsc>>, last_round: bool| {
        let mut rx = match rx {
            Some(rx) => {
                rx.adopt().unwrap();
                rx
            }
            None => match Receiver::<Spsc>::attach(Arc::clone(&memory)) {
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
            let mut msg = vec![0u8; grant.len()];
            grant.copy_to(&mut msg);
            let seq = match verify(&msg, MAX) {
                Ok(seq) => seq,
                Err(_) => {
                    control.add(ERRORS, 1);
                    return 4;
                }
            };
            let ok = seq == expected || (first && seq == expected + 1);
            if !ok {
                control.add(ERRORS, 1);
                return 5;
            }
            first = false;
            control.set(COUNT, seq);
            control.add(RECEIVED, 1);
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
        wait_stage(&control, STAGE, 1);
        let killer = kill_later(child.pid(), Duration::from_micros(rng.below(3000)));
        // Send until the dead consumer is noticed (with the ring full).
        loop {
            message(seq, MAX, &mut buf);
            match tx.send_timeout(&buf, PATIENCE) {
                Ok(()) => seq += 1,
                Err(SendTimeoutError::Send(SendError::PeerDied(()))) => break,
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
    wait_stage(&control, STAGE, 1);
    let end = seq + 100;
    send_checked(&mut tx, seq..end, MAX).unwrap();
    seq = end;
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
