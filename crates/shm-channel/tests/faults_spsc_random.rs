//! Fault injection into an SPSC channel across real processes, at random points of a
//! checked stream: the producer or the consumer SIGKILLed again and again, each time
//! replaced by a new process that attaches in its place. Nothing received is partial,
//! corrupt or reordered; the producer's deaths lose nothing it published; a consumer's
//! death redelivers at most the message it held.
//!
//! The tests run `SHM_SOAK_KILLS` kills (default 200 producer kills and half as many
//! consumer kills); counts and detection latencies are printed (`--nocapture`). Nothing
//! here asserts a timing: every wait has a generous deadline ([`PATIENCE`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use shm_channel::spsc::{self, Receiver, Sender};
use shm_channel::{RecvError, SendTimeoutError};
use shm_core::liveness::ProcessIdentity;
use shm_testkit::message::{message, verify};
use shm_testkit::{fork_child, fork_lock, kill_later, kills, ControlPage, Latencies, Rng};

mod support;
use shm_channel::Endpoint;
use shm_channel::SendError;
use support::faults::{
    drain_until_peer_died, recover_sender, send_checked, wait_stage, COUNT, ERRORS, PATIENCE,
    RECEIVED, STAGE,
};

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
