//! Fault injection into a broadcast channel across real processes: reader processes
//! SIGKILLed one by one while the sender streams under back-pressure, and the sender
//! SIGKILLed at random points of its stream. The sender is never wedged by a dead reader;
//! readers get every message published, intact and in order, then `PeerDied`.
//!
//! Nothing here asserts a timing: every wait has a generous deadline ([`PATIENCE`]).

use std::time::{Duration, Instant};

use shm_channel::broadcast::{self, Policy, MAX_READERS};
use shm_testkit::message::{message, verify};
use shm_testkit::{fork_lock, kill_and_reap, kill_later, kills, ControlPage, Rng, TestChild};

mod support;
use shm_channel::RecvTimeoutError;
use support::faults::{
    fork_owner, recv_checked, send_counting, wait_stage, COUNT, PATIENCE, STAGE,
};

/// Broadcast with back-pressure: one long-lived reader process and 14 reader processes
/// SIGKILLed one by one at random points while the sender streams. The sender is never
/// wedged by a dead reader (it is dropped from the back-pressure) and the surviving reader
/// gets every message intact and in order. (All receivers subscribe before the first send.)
#[test]
fn readers_killed_at_random_points_of_a_stream() {
    const MAX: usize = 200;
    const TOTAL: u64 = 30_000;
    let (mut tx, survivor) = broadcast::channel(1 << 12, Policy::BackPressure).unwrap();
    let victims: Vec<_> = (0..MAX_READERS - 2)
        .map(|_| tx.subscribe().unwrap())
        .collect();
    let lock = fork_lock();
    let survivor = fork_owner(&lock, survivor, |mut rx| {
        if !recv_checked(&mut rx, 0..TOTAL, MAX) {
            return 1;
        }
        match rx.recv() {
            Err(broadcast::RecvError::Recv(shm_channel::RecvError::Disconnected)) => 0,
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
    let mut rng = Rng::new(0xb0ad_ca57);
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
fn sender_killed_at_random_points_of_its_stream() {
    const MAX: usize = 200;
    let rounds = kills(200) / 20;
    let mut rng = Rng::new(0x005e_4de4);
    let lock = fork_lock();
    for _ in 0..rounds {
        let control = ControlPage::new();
        let (tx, mut rx1) = broadcast::channel(1 << 12, Policy::BackPressure).unwrap();
        let mut rx2 = tx.subscribe().unwrap();
        let child = fork_owner(&lock, tx, |mut tx| {
            control.set(STAGE, 1);
            send_counting(&mut tx, 0.., MAX, &control, |_| {})
        });
        wait_stage(&control, STAGE, 1);
        let killer = kill_later(child.pid(), Duration::from_micros(rng.below(3000)));
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
                    Err(RecvTimeoutError::Recv(broadcast::RecvError::Recv(
                        shm_channel::RecvError::PeerDied,
                    ))) => done[i] = true,
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
