//! A hostile peer: garbage written into the header, the indices, the owner and closed
//! words, the events and the frame headers between our operations — and, across `fork`,
//! while our operations run. Every operation must end in a typed error (`Corrupted`, a
//! header error, ...), a clean refusal or a normal result: never a panic, never a fault
//! (the across-fork versions run on a mapping between `PROT_NONE` guard pages and check the
//! child's exit status), never a call that outlives its deadline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shm_channel::spsc::{Builder, Receiver, Sender};
use shm_channel::{CallError, ChannelError};
use shm_core::{HeapRegion, Region, SharedMemory};
use shm_testkit::{fork_child, fork_lock};

/// Offsets in the SPSC control block (see `layout.rs`).
const MAGIC: usize = 0;
const VERSION: usize = 8;
const CAPACITY: usize = 16;
const REGION_LEN: usize = 32;
const TAIL: usize = 128;
const HEAD: usize = 256;
const SENDER_OWNER: usize = 384;
const RECEIVER_OWNER: usize = 392;
const SENDER_CLOSED: usize = 400;
const RECEIVER_CLOSED: usize = 404;
const DATA_EVENT: usize = 512;
const SPACE_EVENT: usize = 520;
const DATA: usize = 640;

const TAG_DATA: u64 = 0xD1 << 32;
const TAG_PAD: u64 = 0xAD << 32;

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
    /// A fixed offset, written as a u64 (or u32 for the flags and event words).
    Word(usize),
    /// The frame header the receiver reads next.
    FrameAtHead,
    /// The frame header of the last message published.
    LastFrame,
}

/// A value a hostile peer writes, possibly relative to what is there.
#[derive(Clone, Copy, Debug)]
enum Garbage {
    Value(u64),
    /// The value found, plus this.
    Plus(u64),
    /// The value found with these bits flipped.
    Flip(u64),
}

fn values() -> Vec<Garbage> {
    let cap = CAP as u64;
    let mut values: Vec<Garbage> = [
        0,
        u64::MAX,
        cap,
        cap + 1,
        2 * cap - 1,
        0xFFFF_FFF8,
        1 << 63,
        7,
        TAG_DATA | cap,
        TAG_DATA | (cap - 8),
        TAG_DATA | 0xFFFF_FFF8,
        TAG_DATA | 0xFFFF_FFFF,
        TAG_PAD | cap,
        TAG_PAD | 8,
        TAG_PAD,
        1 | (123_456 << 22), // pid 1 with the wrong start time
        0x3f_ffff,           // a pid that does not exist, start time 0
        0xdead_beef_dead_beef,
    ]
    .into_iter()
    .map(Garbage::Value)
    .collect();
    values.extend([
        Garbage::Plus(8),
        Garbage::Plus(4),
        Garbage::Plus(cap),
        Garbage::Plus(cap + 8),
        Garbage::Plus(2 * cap),
        Garbage::Plus(8u64.wrapping_neg()),
        Garbage::Flip(1 << 33), // flipped tag bit
        Garbage::Flip(0xff << 40),
        Garbage::Flip(1),
    ]);
    values
}

fn targets() -> Vec<Target> {
    let mut targets: Vec<Target> = [
        MAGIC,
        VERSION,
        CAPACITY,
        REGION_LEN,
        TAIL,
        HEAD,
        SENDER_OWNER,
        RECEIVER_OWNER,
        SENDER_CLOSED,
        RECEIVER_CLOSED,
        DATA_EVENT,
        SPACE_EVENT,
    ]
    .into_iter()
    .map(Target::Word)
    .collect();
    targets.extend([Target::FrameAtHead, Target::LastFrame]);
    targets
}

/// Writes `garbage` into `target` of the channel in `memory`.
fn poke(memory: &dyn SharedMemory, target: Target, garbage: Garbage) {
    let mask = CAP as u64 - 1;
    let offset = match target {
        Target::Word(offset) => offset,
        Target::FrameAtHead => {
            let head = memory.atomic_u64(HEAD).unwrap().load(Ordering::SeqCst);
            DATA + (head & mask & !7) as usize
        }
        Target::LastFrame => {
            // The last frame starts at or before tail - 8: write the word just before tail
            // (a payload word or the header of an empty message).
            let tail = memory.atomic_u64(TAIL).unwrap().load(Ordering::SeqCst);
            DATA + (tail.wrapping_sub(8) & mask & !7) as usize
        }
    };
    let is_u32 = matches!(offset, VERSION | SENDER_CLOSED | RECEIVER_CLOSED)
        || (DATA_EVENT..DATA).contains(&offset);
    if is_u32 {
        let word = memory.atomic_u32(offset).unwrap();
        let old = u64::from(word.load(Ordering::SeqCst));
        word.store(apply(garbage, old) as u32, Ordering::SeqCst);
    } else {
        let word = memory.atomic_u64(offset).unwrap();
        let old = word.load(Ordering::SeqCst);
        word.store(apply(garbage, old), Ordering::SeqCst);
    }
}

fn apply(garbage: Garbage, old: u64) -> u64 {
    match garbage {
        Garbage::Value(v) => v,
        Garbage::Plus(d) => old.wrapping_add(d),
        Garbage::Flip(bits) => old ^ bits,
    }
}

/// How the operations of one case ended.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    ok: u64,
    corrupted: u64,
    refused: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.ok += other.ok;
        self.corrupted += other.corrupted;
        self.refused += other.refused;
    }
}

/// Runs `f`, checking it returns within [`BOUND`].
fn bounded<R>(what: &str, f: impl FnOnce() -> R) -> R {
    let start = Instant::now();
    let result = f();
    assert!(start.elapsed() < BOUND, "{what} took {:?}", start.elapsed());
    result
}

fn count_send(tally: &mut Tally, result: Result<(), impl CallError>) {
    match result {
        Ok(()) => tally.ok += 1,
        Err(err) if err.corruption().is_some() => tally.corrupted += 1,
        Err(_) => tally.refused += 1,
    }
}

fn count_recv(tally: &mut Tally, result: Result<Vec<u8>, impl CallError>) {
    match result {
        Ok(msg) => {
            assert!(msg.len() <= CAP - 8, "a {}-byte message", msg.len());
            tally.ok += 1;
        }
        Err(err) if err.corruption().is_some() => tally.corrupted += 1,
        Err(_) => tally.refused += 1,
    }
}

fn count_attach<T>(tally: &mut Tally, result: Result<T, ChannelError>) {
    match result {
        Ok(_) => tally.ok += 1,
        Err(ChannelError::Corrupted(_)) => tally.corrupted += 1,
        Err(_) => tally.refused += 1,
    }
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
        for garbage in values() {
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
    let memory: Arc<dyn SharedMemory> = Arc::new(HeapRegion::new(DATA + CAP).unwrap());
    let total = matrix(&memory, |_, target, garbage| {
        poke(&*memory, target, garbage)
    });
    eprintln!("{} cases: {total:?}", targets().len() * values().len());
    assert!(total.corrupted > 0 && total.refused > 0 && total.ok > 0);
}

/// A shared mapping between guard pages, large enough for the channel.
fn guarded() -> Arc<dyn SharedMemory> {
    Arc::new(
        Region::options(DATA + CAP)
            .guard_pages(true)
            .anonymous()
            .unwrap(),
    )
}

/// Words of the control page shared with the child.
struct Control(Region);

impl Control {
    fn new() -> Control {
        Control(Region::anonymous(4096).unwrap())
    }

    fn word(&self, offset: usize) -> &AtomicU64 {
        self.0.atomic_u64(offset).unwrap()
    }

    /// Waits for the word at 0 to reach `value`; false after a long time (a dead peer).
    fn wait_for(&self, value: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.word(0).load(Ordering::SeqCst) < value {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::yield_now();
        }
        true
    }
}

#[test]
fn garbage_from_another_process_between_operations_never_faults_the_victim() {
    let memory = guarded();
    let control = Control::new();
    let lock = fork_lock();
    // The child is the victim: it runs the matrix; the parent is the hostile peer and
    // writes each case's garbage when the child says it is ready.
    let child = fork_child(&lock, || {
        let total = matrix(&memory, |case, _, _| {
            let case = case as u64;
            control.word(0).store(2 * case + 1, Ordering::SeqCst);
            assert!(control.wait_for(2 * case + 2), "the hostile peer went away");
        });
        control.word(8).store(total.corrupted, Ordering::SeqCst);
        control.word(16).store(total.refused, Ordering::SeqCst);
        control.word(24).store(total.ok, Ordering::SeqCst);
        0
    });
    let mut case = 0u64;
    for target in targets() {
        for garbage in values() {
            assert!(
                control.wait_for(2 * case + 1),
                "victim stopped at case {case}"
            );
            poke(&*memory, target, garbage);
            control.word(0).store(2 * case + 2, Ordering::SeqCst);
            case += 1;
        }
    }
    let status = child.wait();
    assert_eq!(status, 0, "victim exited with {status} (139 = SIGSEGV)");
    eprintln!(
        "{case} cases across fork: corrupted {}, refused {}, ok {}",
        control.word(8).load(Ordering::SeqCst),
        control.word(16).load(Ordering::SeqCst),
        control.word(24).load(Ordering::SeqCst)
    );
}

#[test]
fn garbage_racing_our_operations_never_faults_the_victim() {
    const ROUNDS: u64 = 300;
    let memory = guarded();
    let control = Control::new();
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
            control.word(0).store(round + 1, Ordering::SeqCst);
            total.add(drive(&mut tx, &mut rx, &memory));
        }
        control.word(0).store(u64::MAX, Ordering::SeqCst);
        control.word(8).store(total.corrupted, Ordering::SeqCst);
        0
    });
    let targets = targets();
    let values = values();
    let mut rng = 0x1234_5678_9abc_def1u64;
    let mut pokes = 0u64;
    while control.word(0).load(Ordering::SeqCst) != u64::MAX {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let target = targets[(rng % targets.len() as u64) as usize];
        let garbage = values[((rng >> 20) % values.len() as u64) as usize];
        // Leave the header alone most of the time, so the victim gets past attach checks.
        if matches!(target, Target::Word(offset) if offset < TAIL) && rng % 8 != 0 {
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
        control.word(8).load(Ordering::SeqCst)
    );
}

/// A value from the hostile list, relative to `old` where it says so.
fn pick_garbage(rng: &mut u64, old: u64) -> u64 {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    let values = values();
    apply(values[(*rng % values.len() as u64) as usize], old)
}

/// Writes garbage into `count` random 8-aligned words of `memory` (any structure's layout:
/// header, indices, slots, frame headers, payloads).
fn scatter(memory: &dyn SharedMemory, len: usize, count: usize, rng: &mut u64) {
    for _ in 0..count {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        // Bias towards the control block, where most of the interesting words are.
        let span = if *rng % 2 == 0 { 1024.min(len) } else { len };
        let offset = ((*rng >> 8) as usize % span) & !7;
        let word = memory.atomic_u64(offset).unwrap();
        let old = word.load(Ordering::SeqCst);
        word.store(pick_garbage(rng, old), Ordering::SeqCst);
    }
}

/// Runs `victim` in a forked child; its exit status must be 0 (not a panic, not SIGSEGV).
fn in_child(victim: impl FnOnce() -> u64) {
    let control = Control::new();
    let lock = fork_lock();
    let child = fork_child(&lock, || {
        let results = victim();
        control.word(8).store(results, Ordering::SeqCst);
        0
    });
    let status = child.wait();
    assert_eq!(
        status, 0,
        "victim exited with {status} (139 = SIGSEGV, 101 = panic)"
    );
    eprintln!(
        "{} typed errors from garbage",
        control.word(8).load(Ordering::SeqCst)
    );
}

#[test]
fn mpsc_garbage_anywhere_is_an_error_never_a_crash() {
    use shm_channel::mpsc;
    in_child(|| {
        let len = mpsc::region_len_for(CAP).unwrap();
        let memory: Arc<dyn SharedMemory> =
            Arc::new(Region::options(len).guard_pages(true).anonymous().unwrap());
        let mut rng = 0x7777_1234_5678_9abcu64;
        let mut errors = 0;
        for round in 0..400usize {
            let (mut tx, mut rx) = mpsc::Builder::new(CAP).create_in(memory.clone()).unwrap();
            let mut tx2 = tx.try_clone().unwrap();
            for i in 0..(3 + round % 5) {
                tx.try_send(&vec![i as u8; 40 + 30 * i]).unwrap();
                tx2.try_send(&[9; 24]).unwrap();
                rx.try_recv().unwrap();
            }
            scatter(&*memory, len, 1 + round % 4, &mut rng);
            for _ in 0..3 {
                if bounded("try_send", || tx.try_send(&[1; 100])).is_err() {
                    errors += 1;
                }
                if bounded("send_timeout", || tx2.send_timeout(&[2; 300], TIMEOUT)).is_err() {
                    errors += 1;
                }
                if let Ok(mut grant) = bounded("try_reserve", || tx.try_reserve(64)) {
                    grant.write_at(0, &[3; 64]).unwrap();
                    grant.commit(50);
                }
                for _ in 0..3 {
                    match bounded("recv_timeout", || rx.recv_timeout(TIMEOUT)) {
                        Ok(msg) => assert!(msg.len() <= CAP),
                        Err(_) => errors += 1,
                    }
                }
                if let Ok(grant) = bounded("try_read", || rx.try_read()) {
                    let _ = grant.to_vec();
                }
            }
            let _ = bounded("attach", || mpsc::Sender::attach(memory.clone()));
            let _ = bounded("attach", || mpsc::Receiver::attach(memory.clone()));
        }
        errors
    });
}

#[test]
fn broadcast_garbage_anywhere_is_an_error_never_a_crash() {
    use shm_channel::broadcast::{self, Policy};
    in_child(|| {
        let len = broadcast::region_len_for(CAP).unwrap();
        let memory: Arc<dyn SharedMemory> =
            Arc::new(Region::options(len).guard_pages(true).anonymous().unwrap());
        let mut rng = 0x4242_dead_beef_0101u64;
        let mut errors = 0;
        for round in 0..400usize {
            let policy = if round % 2 == 0 {
                Policy::BackPressure
            } else {
                Policy::Overwrite
            };
            let (mut tx, mut rx) = broadcast::Builder::new(CAP)
                .policy(policy)
                .create_in(memory.clone())
                .unwrap();
            let mut rx2 = tx.subscribe().unwrap();
            for i in 0..(3 + round % 5) {
                tx.try_send(&vec![i as u8; 40 + 30 * i]).unwrap();
                rx.try_recv().unwrap();
                rx2.try_recv().unwrap();
            }
            scatter(&*memory, len, 1 + round % 4, &mut rng);
            for _ in 0..3 {
                if bounded("try_send", || tx.try_send(&[1; 100])).is_err() {
                    errors += 1;
                }
                if bounded("send_timeout", || tx.send_timeout(&[2; 300], TIMEOUT)).is_err() {
                    errors += 1;
                }
                for rx in [&mut rx, &mut rx2] {
                    for _ in 0..2 {
                        match bounded("recv_timeout", || rx.recv_timeout(TIMEOUT)) {
                            Ok(msg) => assert!(msg.len() <= CAP),
                            Err(_) => errors += 1,
                        }
                    }
                }
            }
            let _ = bounded("subscribe", || tx.subscribe());
        }
        errors
    });
}
