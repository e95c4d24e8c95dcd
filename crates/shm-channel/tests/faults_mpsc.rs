//! Fault injection into an MPSC channel across real processes: short-lived producers
//! SIGKILLed at random points of their streams, often between claim and commit, while a
//! long-lived producer streams on. Nothing received is partial or reordered, nothing a
//! producer committed is lost, and no dead claim wedges the ring.
//!
//! Nothing here asserts a timing: every wait has a generous deadline ([`PATIENCE`]).

use shm_channel::Sender;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shm_channel::mpsc;
use shm_channel::{RecvTimeoutError, SendTimeoutError};
use shm_core::liveness::ProcessIdentity;
use shm_testkit::message::{message, tag, untag, verify};
use shm_testkit::{fork_child, fork_lock, hang, kill_and_reap, kills, ControlPage, Rng};

mod support;
use shm_channel::Endpoint;
use shm_channel::RecvError;
use support::faults::{PATIENCE, STAGE};

/// MPSC: one long-lived producer streams while short-lived producers attach, send checked
/// messages (half of the victims in runs claimed with one CAS, `send_all`; the others half
/// through write grants) and are SIGKILLed at random points, often mid-frame or mid-run. Per producer, what arrives is intact, in order, without gaps, and is every
/// message it committed (plus at most the one it was killed after committing, before
/// recording it); the long-lived producer is never wedged by a dead claim.
#[test]
fn producers_killed_at_random_points_some_between_claim_and_commit() {
    const MAX: usize = 200;
    // Messages per run of the victims that send runs (`Sender::send_all`).
    const RUN: u64 = 8;
    let victims = kills(200) / 2;
    // Word 8 * (1 + k): messages victim k recorded as sent. Word 0: stop the streamer.
    let words = ControlPage::with_len(8 * (victims as usize + 2));
    let word = |k: u64| words.word(8 * k as usize);
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
        let (id, seq) = untag(tagged);
        assert_eq!(seq, next[id as usize], "producer {id}: lost or reordered");
        next[id as usize] += 1;
    };
    let mut rng = Rng::new(0x0dd_ba11_cafe_f00d);
    assert!(victims >= 4, "SHM_SOAK_KILLS too small for the MPSC test");
    let started = Instant::now();
    for k in 1..=victims {
        let up = ControlPage::new();
        let child_memory = Arc::clone(&memory);
        let mut victim = fork_child(&lock, || {
            let mut tx = match Sender::<mpsc::Mpsc>::attach(child_memory) {
                Ok(tx) => tx,
                Err(err) => {
                    eprintln!("victim {k}: {err}");
                    return 2;
                }
            };
            up.set(STAGE, 1);
            if k % 2 == 1 {
                // Every odd victim sends runs: one claim for the run, commits in order; it
                // is often killed between the claim and the commit of a run.
                let mut run: Vec<Vec<u8>> = vec![Vec::new(); RUN as usize];
                for first in (0..).step_by(RUN as usize) {
                    for (i, buf) in run.iter_mut().enumerate() {
                        message(tag(k, first + i as u64), MAX, buf);
                    }
                    let msgs: Vec<&[u8]> = run.iter().map(Vec::as_slice).collect();
                    if tx.send_all(&msgs).is_err() {
                        return 6;
                    }
                    word(k).store(first + RUN, Ordering::SeqCst);
                }
            }
            let mut buf = Vec::new();
            for seq in 0.. {
                message(tag(k, seq), MAX, &mut buf);
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
                    grant.commit(buf.len()).unwrap();
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
            RecvTimeoutError::Recv(RecvError::PeerDied)
                | RecvTimeoutError::Recv(RecvError::Disconnected)
        ),
        "{end:?}"
    );
    assert_eq!(streamer.wait(), 0);
    assert_eq!(next[0], word(victims + 1).load(Ordering::SeqCst));
    for k in 1..=victims {
        let recorded = word(k).load(Ordering::SeqCst);
        let got = next[k as usize];
        // Killed after committing, before recording: one message more, or (a run victim)
        // any prefix of the run it was sending.
        let most = if k % 2 == 1 {
            recorded + RUN
        } else {
            recorded + 1
        };
        assert!(
            (recorded..=most).contains(&got),
            "victim {k}: recorded {recorded} committed, {got} delivered"
        );
    }
    eprintln!(
        "mpsc: {victims} producers killed, {} messages delivered intact and in order \
         ({} from the streamer), {} dead senders reaped, in {:?}",
        next.iter().sum::<u64>(),
        next[0],
        rx.dead_senders(),
        started.elapsed()
    );
}
