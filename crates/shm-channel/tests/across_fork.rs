//! The channel across a real `fork`: a million checked messages, typed round trips with
//! every codec, disconnects both ways, peer death and a peer writing garbage.

use shm_channel::{Receiver, Sender};
use std::sync::atomic::Ordering;
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use shm_channel::codec::{Bincode, Codec, Plain, Postcard};
use shm_channel::spsc::{self};
use shm_channel::Endpoint;
use shm_channel::RecvError;
use shm_channel::SendError;
use shm_channel::{typed, RecvTimeoutError, SendTimeoutError};
use shm_core::liveness::ProcessIdentity;
use shm_testkit::layout::spsc::DATA;
use shm_testkit::{fork_child, fork_lock, kill_later, Rng, TestChild};

mod support;
use support::assert_ends;
use support::faults::fork_owner;

/// Generous bound on every wait, so a bug fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(20);

/// FNV-1a of the payload after the 8-byte sequence number.
fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ *b as u32).wrapping_mul(0x0100_0193)
    })
}

/// Message `seq`: sequence number, checksum, then `len` pseudo-random bytes.
fn fill_message(rng: &mut Rng, seq: u64, buf: &mut Vec<u8>) {
    let len = (rng.next_u64() % 300) as usize;
    buf.clear();
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    let mut word = rng.next_u64();
    for i in 0..len {
        if i % 8 == 0 {
            word = rng.next_u64();
        }
        buf.push((word >> ((i % 8) * 8)) as u8);
    }
    let sum = checksum(&buf[12..]);
    buf[8..12].copy_from_slice(&sum.to_le_bytes());
}

#[test]
fn a_million_random_messages_arrive_intact_and_in_order() {
    const COUNT: u64 = 1_000_000;
    let (tx, mut rx) = spsc::channel(1 << 16).unwrap();
    let mut tx = Some(tx);
    let lock = fork_lock();
    let child = fork_child(&lock, || {
        let mut tx = tx.take().unwrap();
        tx.adopt().unwrap();
        let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
        let mut buf = Vec::with_capacity(512);
        for seq in 0..COUNT {
            fill_message(&mut rng, seq, &mut buf);
            if tx.send(&buf).is_err() {
                return 1;
            }
        }
        drop(tx); // clean close: the parent sees Disconnected after the last message
        0
    });
    tx.as_ref()
        .unwrap()
        .hand_over(ProcessIdentity::of_pid(child.pid()).unwrap())
        .unwrap();
    drop(tx); // the parent's copy: not the owner any more, so no disconnect

    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut expected = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    for seq in 0..COUNT {
        let len = rx.recv_into(&mut buf).unwrap();
        fill_message(&mut rng, seq, &mut expected);
        let got = &buf[..len];
        assert_eq!(
            u64::from_le_bytes(got[..8].try_into().unwrap()),
            seq,
            "reordered or lost"
        );
        assert_eq!(
            u32::from_le_bytes(got[8..12].try_into().unwrap()),
            checksum(&got[12..]),
            "corrupted message {seq}"
        );
        assert_eq!(got, &expected[..], "message {seq}");
    }
    assert_ends(&mut rx, RecvError::Disconnected);
    assert_eq!(child.wait(), 0);
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
struct Reading {
    sensor: String,
    seq: u64,
    values: Vec<f64>,
    ok: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Sample {
    seq: u64,
    value: f64,
}

/// Parent sends `items` to a forked child, which echoes each back; the parent checks.
fn echo_across_fork<T, C>(items: Vec<T>)
where
    T: Clone + PartialEq + std::fmt::Debug,
    C: Codec<T>,
{
    let (mut to_child, from_parent) =
        typed::pair::<T, _, C>(spsc::channel(1 << 14).unwrap()).unwrap();
    let (to_parent, mut from_child) =
        typed::pair::<T, _, C>(spsc::channel(1 << 14).unwrap()).unwrap();
    let mut child_ends = Some((from_parent, to_parent));
    let lock = fork_lock();
    let n = items.len();
    let child = fork_child(&lock, || {
        let (mut rx, mut tx) = child_ends.take().unwrap();
        rx.adopt().unwrap();
        tx.adopt().unwrap();
        for _ in 0..n {
            let Ok(item) = rx.recv() else { return 1 };
            if tx.send(item).is_err() {
                return 2;
            }
        }
        0
    });
    let identity = ProcessIdentity::of_pid(child.pid()).unwrap();
    let (rx, tx) = child_ends.take().unwrap();
    rx.hand_over(identity).unwrap();
    tx.hand_over(identity).unwrap();
    drop((rx, tx));
    for item in items {
        to_child.send(item.clone()).unwrap();
        assert_eq!(from_child.recv_timeout(PATIENCE).unwrap(), item);
    }
    assert_eq!(child.wait(), 0);
}

#[test]
fn typed_round_trips_across_fork_with_every_codec() {
    let readings: Vec<Reading> = (0..200)
        .map(|i| Reading {
            sensor: format!("sensor-{i}"),
            seq: i,
            values: (0..i % 10).map(|v| v as f64 / 3.0).collect(),
            ok: i % 3 == 0,
        })
        .collect();
    echo_across_fork::<Reading, Bincode>(readings.clone());
    echo_across_fork::<Reading, Postcard>(readings);
    echo_across_fork::<Sample, Plain>(
        (0..200)
            .map(|i| Sample {
                seq: i,
                value: i as f64 * 1.5,
            })
            .collect(),
    );
}

/// Forks a child that owns the sender of a new 1 KiB channel and runs `f` with it; the
/// receiver, and the fork lock, stay with the test.
fn fork_sender(
    f: impl FnOnce(Sender<spsc::Spsc>) -> i32,
) -> (TestChild, Receiver<spsc::Spsc>, MutexGuard<'static, ()>) {
    let (tx, rx) = spsc::channel(1 << 10).unwrap();
    let lock = fork_lock();
    (fork_owner(&lock, tx, f), rx, lock)
}

#[test]
fn child_dropping_its_sender_disconnects_the_parent_after_every_message() {
    let (child, mut rx, _lock) = fork_sender(|mut tx| {
        for i in 0..100u32 {
            tx.send(&i.to_le_bytes()).unwrap();
        }
        drop(tx);
        0
    });
    for i in 0..100u32 {
        assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), i.to_le_bytes());
    }
    assert_ends(&mut rx, RecvError::Disconnected);
    assert_eq!(child.wait(), 0);
}

#[test]
fn child_dropping_its_receiver_disconnects_the_parents_sender() {
    let (mut tx, rx) = spsc::channel(1 << 10).unwrap();
    let lock = fork_lock();
    let child = fork_owner(&lock, rx, |mut rx| {
        let first = rx.recv();
        drop(rx);
        i32::from(first.is_err())
    });
    tx.send(b"one").unwrap();
    let deadline = Instant::now() + PATIENCE;
    // Once the child has dropped its receiver, sends fail with Disconnected.
    loop {
        match tx.send_timeout(b"more", Duration::from_millis(50)) {
            Err(SendTimeoutError::Send(SendError::Disconnected(()))) => break,
            Ok(()) | Err(SendTimeoutError::Timeout(())) => {
                assert!(Instant::now() < deadline, "never disconnected");
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(child.wait(), 0);
}

#[test]
fn sigkill_of_the_sender_wakes_the_blocked_receiver_with_peer_died() {
    let (child, mut rx, _lock) = fork_sender(|mut tx| {
        for i in 0..3u8 {
            tx.send(&[i]).unwrap();
        }
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    for i in 0..3u8 {
        assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), [i]);
    }
    // The receiver is (about to be) blocked in recv; kill the sender from another thread.
    let killer = kill_later(child.pid(), Duration::from_millis(50));
    let result = rx.recv_timeout(PATIENCE);
    let seen = Instant::now();
    let killed = killer.join().unwrap();
    assert_eq!(result, Err(RecvTimeoutError::Recv(RecvError::PeerDied)));
    eprintln!(
        "PeerDied seen {:?} after SIGKILL",
        seen.saturating_duration_since(killed)
    );
    assert_eq!(child.wait(), 128 + libc::SIGKILL);
}

#[test]
fn sigkill_of_the_receiver_wakes_the_blocked_sender_with_peer_died() {
    let (mut tx, rx) = spsc::channel(1 << 8).unwrap();
    let lock = fork_lock();
    let child = fork_owner(&lock, rx, |_rx| loop {
        std::thread::sleep(Duration::from_secs(1));
    });
    // Fill the ring: the receiver never reads.
    while tx.try_send(&[0; 24]).is_ok() {}
    let killer = kill_later(child.pid(), Duration::from_millis(50));
    let result = tx.send_timeout(&[1; 24], PATIENCE);
    killer.join().unwrap();
    assert!(
        matches!(result, Err(SendTimeoutError::Send(SendError::PeerDied(())))),
        "{result:?}"
    );
    assert_eq!(child.wait(), 128 + libc::SIGKILL);
}

#[test]
fn garbage_written_by_a_peer_is_corruption_not_a_crash() {
    let (tx, mut rx) = spsc::channel(1 << 10).unwrap();
    let memory = tx.memory().clone();
    let lock = fork_lock();
    let child = fork_owner(&lock, tx, |mut tx| {
        tx.send(b"fine").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        // A hostile peer: the next frame header (after the 16-byte frame of "fine"), of
        // the right lap, claims a payload far larger than the ring.
        tx.memory()
            .atomic_u64(DATA + 16)
            .unwrap()
            .store(0xD1 << 32 | 0xffff_ffff, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(200));
        0
    });
    assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), b"fine");
    let result = rx.recv_timeout(PATIENCE);
    assert!(
        matches!(result, Err(RecvTimeoutError::Recv(RecvError::Corrupted(_)))),
        "{result:?}"
    );
    assert_eq!(child.wait(), 0);
    drop(memory);
}
