//! A hostile peer against the SPSC channel: garbage written into the header, the indices,
//! the owner and closed words, the events and the frame headers between our operations —
//! and, across `fork`, while our operations run. (MPSC and broadcast: `hostile_mpsc.rs`,
//! `hostile_broadcast.rs`.) Every operation must end in a typed error (`Corrupted`, a
//! header error, ...), a clean refusal or a normal result: never a panic, never a fault
//! (the across-fork versions run on a mapping between `PROT_NONE` guard pages and check the
//! child's exit status), never a call that outlives its deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use shm_channel::spsc::{Builder, Receiver, Sender};
use shm_channel::{CallError, ChannelError};
use shm_core::{HeapRegion, Region, SharedMemory};
use shm_testkit::garbage::values;
use shm_testkit::layout::{header, spsc, Word};
use shm_testkit::{fork_child, fork_lock, ControlPage, Garbage, Rng, Tally, Words};

mod support;
use support::Mem;

/// The capacity of the channels under attack.
const CAP: usize = 1024;

/// The timeout of our timed calls.
const TIMEOUT: Duration = Duration::from_millis(5);
/// A call that takes longer than this has ignored its deadline (generous: the machine is
/// shared, and this only has to catch a hang).
const BOUND: Duration = Duration::from_secs(5);

/// Which shared word a case writes.
#[derive(Clone, Copy, Debug)]
enum Target {
    /// A fixed word.
    Word(Word),
    /// The frame header the receiver reads next.
    FrameAtHead,
    /// The frame header of the last message published.
    LastFrame,
}

/// The header's magic, version, capacity and region length; every word of the control
/// block; the next and the last frame header.
fn targets() -> Vec<Target> {
    let words = [0, 1, 3, 5].map(|i| header::WORDS[i]);
    let mut targets: Vec<Target> = words
        .into_iter()
        .chain(spsc::WORDS)
        .map(Target::Word)
        .collect();
    targets.extend([Target::FrameAtHead, Target::LastFrame]);
    targets
}

/// Writes `garbage` into `target` of the channel in `memory`.
fn poke(memory: &dyn SharedMemory, target: Target, garbage: Garbage) {
    let mem = Mem(memory);
    let mask = CAP as u64 - 1;
    let word = match target {
        Target::Word(word) => word,
        Target::FrameAtHead => {
            let head = mem.load_u64(spsc::HEAD);
            Word::u64("frame at head", spsc::DATA + (head & mask & !7) as usize)
        }
        Target::LastFrame => {
            // The last frame starts at or before tail - 8: write the word just before tail
            // (a payload word or the header of an empty message).
            let tail = mem.load_u64(spsc::TAIL);
            Word::u64(
                "last frame",
                spsc::DATA + (tail.wrapping_sub(8) & mask & !7) as usize,
            )
        }
    };
    mem.poke(word, garbage);
}

/// Runs `f`, checking it returns within [`BOUND`].
fn bounded<R>(what: &str, f: impl FnOnce() -> R) -> R {
    let start = Instant::now();
    let result = f();
    assert!(start.elapsed() < BOUND, "{what} took {:?}", start.elapsed());
    result
}

fn count_send(tally: &mut Tally, result: Result<(), impl CallError>) {
    tally.count(result.map_err(|err| err.corruption().is_some()));
}

fn count_recv(tally: &mut Tally, result: Result<Vec<u8>, impl CallError>) {
    if let Ok(msg) = &result {
        assert!(msg.len() <= CAP - 8, "a {}-byte message", msg.len());
    }
    tally.count(result.map(drop).map_err(|err| err.corruption().is_some()));
}

fn count_attach<T>(tally: &mut Tally, result: Result<T, ChannelError>) {
    tally.count(
        result
            .map(drop)
            .map_err(|err| matches!(err, ChannelError::Corrupted(_))),
    );
}

/// Our side of a case: every kind of call, a few times, on a possibly poisoned channel.
fn drive(tx: &mut Sender, rx: &mut Receiver, memory: &Arc<dyn SharedMemory>) -> Tally {
    let mut t = Tally::default();
    for round in 0..3 {
        count_send(&mut t, bounded("try_send", || tx.try_send(&[round; 40])));
        count_recv(&mut t, bounded("try_recv", || rx.try_recv()));
        count_send(
            &mut t,
            bounded("send_timeout", || tx.send_timeout(&[1; 300], TIMEOUT)),
        );
        count_recv(&mut t, bounded("recv_timeout", || rx.recv_timeout(TIMEOUT)));
        match bounded("try_reserve", || tx.try_reserve(100)) {
            Ok(mut grant) => {
                grant.write_at(0, &[2; 100]).unwrap();
                grant.commit(60);
                t.ok += 1;
            }
            Err(err) => count_send(&mut t, Err(err)),
        }
        match bounded("try_read", || rx.try_read()) {
            Ok(grant) => {
                let mut buf = vec![0; grant.len()];
                grant.read_at(0, &mut buf).unwrap();
                t.ok += 1;
            }
            Err(err) => count_recv(&mut t, Err(err)),
        }
        count_recv(
            &mut t,
            bounded("read_timeout", || {
                rx.read_timeout(TIMEOUT).map(|grant| grant.to_vec())
            }),
        );
    }
    count_send(
        &mut t,
        bounded("send_timeout", || tx.send_timeout(&[3; 900], TIMEOUT)),
    );
    // A new endpoint on the poisoned memory: refused (owned by us, a bad header, a corrupt
    // index) or, where the poke named a dead owner, taking over.
    count_attach(
        &mut t,
        bounded("Sender::attach", || Sender::attach(memory.clone())),
    );
    count_attach(
        &mut t,
        bounded("Receiver::attach", || Receiver::attach(memory.clone())),
    );
    t
}

/// Creates a channel in `memory` and brings it into an interesting state: messages in
/// flight, the indices past a wrap of the ring.
fn warm_up(memory: &Arc<dyn SharedMemory>, skew: usize) -> (Sender, Receiver) {
    let (mut tx, mut rx) = Builder::new(CAP).create_in(memory.clone()).unwrap();
    for i in 0..(5 + skew % 7) {
        tx.try_send(&vec![i as u8; 100 + 13 * i]).unwrap();
        rx.try_recv().unwrap();
    }
    for i in 0..3 {
        tx.try_send(&[i; 50]).unwrap();
    }
    (tx, rx)
}

/// Every target × every garbage value, one at a time, on `memory`.
fn matrix(memory: &Arc<dyn SharedMemory>, between: impl Fn(usize, Target, Garbage)) -> Tally {
    let mut total = Tally::default();
    let mut case = 0;
    for target in targets() {
        for garbage in values(CAP) {
            let (mut tx, mut rx) = warm_up(memory, case);
            between(case, target, garbage);
            total.add(drive(&mut tx, &mut rx, memory));
            drop((tx, rx));
            case += 1;
        }
    }
    total
}

#[test]
fn garbage_between_operations_on_a_heap_region_is_an_error_never_a_crash() {
    let memory: Arc<dyn SharedMemory> = Arc::new(HeapRegion::new(spsc::region_len(CAP)).unwrap());
    let total = matrix(&memory, |_, target, garbage| {
        poke(&*memory, target, garbage)
    });
    eprintln!("{} cases: {total:?}", targets().len() * values(CAP).len());
    assert!(total.corrupted > 0 && total.refused > 0 && total.ok > 0);
}

/// A shared mapping between guard pages, large enough for the channel.
fn guarded() -> Arc<dyn SharedMemory> {
    Arc::new(
        Region::options(spsc::region_len(CAP))
            .guard_pages(true)
            .anonymous()
            .unwrap(),
    )
}

/// Waits for the word at 0 of `control` to reach `value`; false after a long time (a dead
/// peer).
fn wait_for(control: &ControlPage, value: u64) -> bool {
    control.wait_for(0, value, Duration::from_secs(30))
}

#[test]
fn garbage_from_another_process_between_operations_never_faults_the_victim() {
    let memory = guarded();
    let control = ControlPage::new();
    let lock = fork_lock();
    // The child is the victim: it runs the matrix; the parent is the hostile peer and
    // writes each case's garbage when the child says it is ready.
    let child = fork_child(&lock, || {
        let total = matrix(&memory, |case, _, _| {
            let case = case as u64;
            control.set(0, 2 * case + 1);
            assert!(
                wait_for(&control, 2 * case + 2),
                "the hostile peer went away"
            );
        });
        control.set(8, total.corrupted);
        control.set(16, total.refused);
        control.set(24, total.ok);
        0
    });
    let mut case = 0u64;
    for target in targets() {
        for garbage in values(CAP) {
            assert!(
                wait_for(&control, 2 * case + 1),
                "victim stopped at case {case}"
            );
            poke(&*memory, target, garbage);
            control.set(0, 2 * case + 2);
            case += 1;
        }
    }
    let status = child.wait();
    assert_eq!(status, 0, "victim exited with {status} (139 = SIGSEGV)");
    eprintln!(
        "{case} cases across fork: corrupted {}, refused {}, ok {}",
        control.get(8),
        control.get(16),
        control.get(24)
    );
}

#[test]
fn garbage_racing_our_operations_never_faults_the_victim() {
    const ROUNDS: u64 = 300;
    let memory = guarded();
    let control = ControlPage::new();
    let lock = fork_lock();
    // The victim loops over fresh channels and every call while the hostile parent writes
    // garbage into random words as fast as it can.
    let child = fork_child(&lock, || {
        let mut total = Tally::default();
        for round in 0..ROUNDS {
            let (mut tx, mut rx) = match Builder::new(CAP).create_in(memory.clone()) {
                Ok(pair) => pair,
                Err(_) => continue,
            };
            control.set(0, round + 1);
            total.add(drive(&mut tx, &mut rx, &memory));
        }
        control.set(0, u64::MAX);
        control.set(8, total.corrupted);
        0
    });
    let targets = targets();
    let values = values(CAP);
    let mut rng = Rng::new(0x1234_5678_9abc_def1);
    let mut pokes = 0u64;
    while control.get(0) != u64::MAX {
        let target = *rng.pick(&targets);
        let garbage = *rng.pick(&values);
        // Leave the header alone most of the time, so the victim gets past attach checks.
        if matches!(target, Target::Word(word) if word.offset < spsc::TAIL) && rng.below(8) != 0 {
            continue;
        }
        poke(&*memory, target, garbage);
        pokes += 1;
        if pokes % 64 == 0 {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    let status = child.wait();
    assert_eq!(status, 0, "victim exited with {status} (139 = SIGSEGV)");
    eprintln!(
        "{ROUNDS} rounds, {pokes} racing pokes: {} corrupted results",
        control.get(8)
    );
}
