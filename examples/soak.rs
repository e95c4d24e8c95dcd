//! Soak: sequence-numbered, checksummed messages of random sizes through an SPSC byte
//! channel between two forked processes, while a supervisor kills (SIGKILL) the producer or
//! the consumer now and then and starts a new process that attaches in its place.
//!
//! ```text
//! cargo run --release --example soak -- --messages 100000000 --restarts 20 [--max-len 56]
//! ```
//!
//! Resume protocol, so that "nothing committed is lost or duplicated" can be checked:
//!
//! - The consumer verifies each message (sequence number, checksum, exact bytes) while it
//!   still holds the read grant, records `next = seq + 1` in a control word shared with the
//!   supervisor, and only then releases the frame. A consumer killed between the two leaves
//!   `next` one past a message still in the ring: its successor receives that message once
//!   more and recognises it (`seq == next - 1`) as a redelivery, not a duplicate.
//! - A producer that dies leaves complete, published frames (delivered) and at most one
//!   uncommitted frame (never delivered). The consumer drains the ring until `PeerDied` —
//!   which the channel reports only once every published frame was delivered — and
//!   acknowledges; the supervisor then starts the new producer from the consumer's `next`.
//! - Every other message must arrive exactly once, in order: a sequence number above `next`
//!   is counted as lost, one below as duplicated, a bad checksum or content as corrupted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use shm_channel::spsc::{self, Receiver, Sender};
use shm_channel::{RecvTimeoutError, SendTimeoutError};
use shm_core::liveness::ProcessIdentity;
use shm_core::{Region, SharedMemory};

/// Control words shared by the supervisor, the producer and the consumer. Each writer has
/// its own 128-byte line: the consumer updates its words on every message, the producer
/// its own, and sharing one line would make both sides bounce it on every message.
mod word {
    /// Next sequence number the consumer expects (every lower one was delivered once, in
    /// order): the authoritative count of messages received.
    pub const NEXT: usize = 0;
    /// Messages handed to the consumer, redeliveries after a consumer death included.
    pub const DELIVERIES: usize = 8;
    /// Sequence numbers skipped.
    pub const LOST: usize = 16;
    /// Messages received twice.
    pub const DUPLICATED: usize = 24;
    /// Messages with a bad checksum or content.
    pub const CORRUPTED: usize = 32;
    /// Frames delivered again after a consumer died holding them.
    pub const REDELIVERED: usize = 40;
    /// Bumped by the consumer each time it finds the producer dead (ring drained).
    pub const PRODUCER_DEATHS_SEEN: usize = 48;
    /// Sequence number the producer reached when it finished (all committed below it).
    pub const SENT: usize = 256;
    /// Set to 1 by a producer or consumer once attached and running.
    pub const PRODUCER_UP: usize = 512;
    /// See `PRODUCER_UP`.
    pub const CONSUMER_UP: usize = 520;
    /// Total messages to move.
    pub const TOTAL: usize = 528;
}

struct Control(Region);

impl Control {
    fn word(&self, offset: usize) -> &AtomicU64 {
        self.0.atomic_u64(offset).expect("control word")
    }

    fn get(&self, offset: usize) -> u64 {
        self.word(offset).load(Ordering::SeqCst)
    }

    fn set(&self, offset: usize, value: u64) {
        self.word(offset).store(value, Ordering::SeqCst);
    }

    fn add(&self, offset: usize, value: u64) {
        self.word(offset).fetch_add(value, Ordering::Relaxed);
    }

    /// Waits until `cond` holds; false after 60 s (the run is then reported as stuck).
    fn wait(&self, cond: impl Fn(&Control) -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !cond(self) {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        true
    }
}

struct Options {
    messages: u64,
    restarts: u64,
    max_len: usize,
    capacity: usize,
    /// `--producers P`: 0 for the SPSC channel, else P concurrent MPSC producers.
    producers: u64,
}

fn parse() -> Result<Options, String> {
    let mut options = Options {
        messages: 10_000_000,
        restarts: 10,
        max_len: 56,
        capacity: 1 << 16,
        producers: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number: u64 = value.parse().map_err(|e| format!("{flag} {value}: {e}"))?;
        match flag.as_str() {
            "--messages" => options.messages = number,
            "--restarts" => options.restarts = number,
            "--max-len" => options.max_len = number as usize,
            "--capacity" => options.capacity = number as usize,
            "--producers" => options.producers = number,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(options)
}

/// Length and content of message `seq` derive from `seq` alone (xorshift), so the consumer
/// rebuilds the expected bytes without any shared state.
fn fill(seq: u64, max_len: usize, buf: &mut Vec<u8>) {
    let mut x = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let len = 12 + (next() % (max_len as u64 + 1)) as usize;
    buf.clear();
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    while buf.len() < len {
        let word = next().to_le_bytes();
        let take = (len - buf.len()).min(8);
        buf.extend_from_slice(&word[..take]);
    }
    let sum = checksum(&buf[12..]);
    buf[8..12].copy_from_slice(&sum.to_le_bytes());
}

/// FNV-1a.
fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ *b as u32).wrapping_mul(0x0100_0193)
    })
}

/// Forks a child running `f`, which `_exit`s with its result.
fn spawn(f: impl FnOnce() -> i32) -> Pid {
    // SAFETY: the supervisor is single-threaded (no lock can be held by another thread at
    // the fork), and the child only runs `f` then `_exit`s without returning.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let code = f();
            // SAFETY: ends the child without running the parent's destructors again.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => child,
    }
}

fn producer(mut tx: Sender, control: &Control, max_len: usize) -> i32 {
    control.set(word::PRODUCER_UP, 1);
    let total = control.get(word::TOTAL);
    let mut buf = Vec::with_capacity(max_len + 12);
    let mut seq = control.get(word::NEXT);
    while seq < total {
        fill(seq, max_len, &mut buf);
        match tx.send_timeout(&buf, Duration::from_secs(1)) {
            Ok(()) => seq += 1,
            // The consumer is being replaced: retry the same message.
            Err(SendTimeoutError::Timeout(()) | SendTimeoutError::PeerDied(())) => {
                std::thread::sleep(Duration::from_micros(100))
            }
            Err(_) => return 1,
        }
    }
    control.set(word::SENT, seq);
    drop(tx); // clean close: the consumer gets Disconnected after the last message
    0
}

fn consumer(mut rx: Receiver, control: &Control, max_len: usize) -> i32 {
    control.set(word::CONSUMER_UP, 1);
    let total = control.get(word::TOTAL);
    let mut expected = Vec::with_capacity(max_len + 12);
    let mut got = vec![0u8; max_len + 12];
    let mut first = true;
    let mut dead_seen = false;
    loop {
        let grant = match rx.read_timeout(Duration::from_secs(1)) {
            Ok(grant) => grant,
            Err(RecvTimeoutError::Disconnected) => {
                return i32::from(control.get(word::NEXT) != total);
            }
            Err(RecvTimeoutError::PeerDied) => {
                // Every message the dead producer published has been delivered: tell the
                // supervisor once, then wait for the new producer.
                if !dead_seen {
                    dead_seen = true;
                    control.add(word::PRODUCER_DEATHS_SEEN, 1);
                }
                std::thread::sleep(Duration::from_micros(100));
                continue;
            }
            Err(RecvTimeoutError::Timeout) => continue,
            Err(_) => return 2,
        };
        dead_seen = false;
        let len = grant.len().min(got.len());
        grant.copy_to(&mut got[..len]);
        let msg = &got[..len];
        let next = control.get(word::NEXT);
        if len < 12 || grant.len() > got.len() {
            control.add(word::CORRUPTED, 1);
            continue;
        }
        let seq = u64::from_le_bytes(msg[..8].try_into().expect("8 bytes"));
        fill(seq, max_len, &mut expected);
        if msg != &expected[..] {
            control.add(word::CORRUPTED, 1);
            drop(grant);
            continue;
        }
        if first && next > 0 && seq == next - 1 {
            control.add(word::REDELIVERED, 1);
        } else if seq < next {
            control.add(word::DUPLICATED, 1);
        } else {
            if seq > next {
                control.add(word::LOST, seq - next);
            }
            control.set(word::NEXT, seq + 1);
        }
        first = false;
        control.add(word::DELIVERIES, 1);
        drop(grant); // release only after NEXT records the message
    }
}

fn main() {
    let options = match parse() {
        Ok(options) => options,
        Err(err) => {
            eprintln!(
                "soak: {err}\nusage: soak --messages N --restarts K [--max-len B] [--capacity C] \
                 [--producers P (MPSC)]"
            );
            std::process::exit(2);
        }
    };
    if options.producers > 0 {
        std::process::exit(mpsc_soak::run(&options));
    }
    let control = Control(Region::anonymous(4096).expect("control region"));
    control.set(word::TOTAL, options.messages);
    let (tx, rx) = spsc::channel(options.capacity).expect("channel");
    let memory: Arc<dyn SharedMemory> = Arc::clone(tx.memory());
    let max_len = options.max_len.min(tx.max_message_len() - 12);

    let start_producer = |tx: Option<Sender>| {
        control.set(word::PRODUCER_UP, 0);
        let memory = Arc::clone(&memory);
        let mut slot = tx;
        let pid = spawn(|| {
            let tx = match slot.take() {
                Some(tx) => {
                    if tx.adopt().is_err() {
                        return 3;
                    }
                    tx
                }
                None => match Sender::attach(memory) {
                    Ok(tx) => tx,
                    Err(_) => return 4,
                },
            };
            producer(tx, &control, max_len)
        });
        if let Some(tx) = slot.take() {
            let to = ProcessIdentity::of_pid(pid.as_raw()).expect("identity");
            tx.hand_over(to).expect("hand over");
        }
        assert!(
            control.wait(|c| c.get(word::PRODUCER_UP) == 1),
            "producer never started"
        );
        pid
    };
    let start_consumer = |rx: Option<Receiver>| {
        control.set(word::CONSUMER_UP, 0);
        let memory = Arc::clone(&memory);
        let mut slot = rx;
        let pid = spawn(|| {
            let rx = match slot.take() {
                Some(rx) => {
                    if rx.adopt().is_err() {
                        return 3;
                    }
                    rx
                }
                None => match Receiver::attach(memory) {
                    Ok(rx) => rx,
                    Err(_) => return 4,
                },
            };
            consumer(rx, &control, max_len)
        });
        if let Some(rx) = slot.take() {
            let to = ProcessIdentity::of_pid(pid.as_raw()).expect("identity");
            rx.hand_over(to).expect("hand over");
        }
        assert!(
            control.wait(|c| c.get(word::CONSUMER_UP) == 1),
            "consumer never started"
        );
        pid
    };

    let started = Instant::now();
    let mut consumer_pid = start_consumer(Some(rx));
    let mut producer_pid = start_producer(Some(tx));
    let (mut producer_kills, mut consumer_kills) = (0u64, 0u64);
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut last_report = (Instant::now(), 0u64);
    let mut next_kill = 1u64;
    let mut producer_done = false;
    let kill_at = |k: u64| options.messages * k / (options.restarts + 1);
    println!(
        "soak: {} messages of 12..={} bytes through a {} B ring, {} restarts",
        options.messages,
        max_len + 12,
        options.capacity,
        options.restarts
    );
    loop {
        std::thread::sleep(Duration::from_millis(2));
        let received = control.get(word::NEXT);
        if last_report.0.elapsed() >= Duration::from_secs(1) {
            let rate = (received - last_report.1) as f64 / last_report.0.elapsed().as_secs_f64();
            println!(
                "{:>7.1} s  {:>12} received  {:>8.2} M msg/s",
                started.elapsed().as_secs_f64(),
                received,
                rate / 1e6
            );
            last_report = (Instant::now(), received);
        }
        if received >= options.messages {
            break;
        }
        if next_kill <= options.restarts && received >= kill_at(next_kill) {
            next_kill += 1;
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            if rng % 2 == 0 && !producer_done {
                // Kill the producer; the consumer drains the ring and acknowledges; the new
                // producer resumes from the consumer's NEXT.
                let seen = control.get(word::PRODUCER_DEATHS_SEEN);
                kill(producer_pid, Signal::SIGKILL).expect("kill producer");
                if let Ok(WaitStatus::Exited(..)) = waitpid(producer_pid, None) {
                    // It had sent everything and closed the channel before the signal.
                    producer_done = true;
                    continue;
                }
                assert!(
                    control.wait(|c| c.get(word::PRODUCER_DEATHS_SEEN) > seen),
                    "the consumer never saw the producer die"
                );
                producer_pid = start_producer(None);
                producer_kills += 1;
                println!(
                    "{:>7.1} s  producer killed and replaced",
                    started.elapsed().as_secs_f64()
                );
            } else {
                kill(consumer_pid, Signal::SIGKILL).expect("kill consumer");
                let _ = waitpid(consumer_pid, None);
                consumer_pid = start_consumer(None);
                consumer_kills += 1;
                println!(
                    "{:>7.1} s  consumer killed and replaced",
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }
    let elapsed = started.elapsed();
    let producer_status = if producer_done {
        Ok(WaitStatus::Exited(producer_pid, 0))
    } else {
        waitpid(producer_pid, None)
    };
    let consumer_status = waitpid(consumer_pid, None);
    let clean = |status: nix::Result<WaitStatus>| matches!(status, Ok(WaitStatus::Exited(_, 0)));
    let received = control.get(word::NEXT) - control.get(word::LOST);
    println!(
        "done in {:.1} s: {:.2} M msg/s overall",
        elapsed.as_secs_f64(),
        received as f64 / elapsed.as_secs_f64() / 1e6
    );
    println!(
        "sent (committed) {}, received {} ({} deliveries), lost {}, duplicated {}, \
         corrupted {}, redelivered after a consumer death {}",
        control.get(word::SENT),
        received,
        control.get(word::DELIVERIES),
        control.get(word::LOST) + options.messages.saturating_sub(control.get(word::NEXT)),
        control.get(word::DUPLICATED),
        control.get(word::CORRUPTED),
        control.get(word::REDELIVERED)
    );
    println!(
        "restarts: {producer_kills} producers and {consumer_kills} consumers killed (SIGKILL) \
         and replaced; last producer exit clean: {}, last consumer exit clean: {}",
        clean(producer_status),
        clean(consumer_status)
    );
    let ok = received == options.messages
        && control.get(word::LOST) == 0
        && control.get(word::DUPLICATED) == 0
        && control.get(word::CORRUPTED) == 0;
    std::process::exit(if ok { 0 } else { 1 });
}

/// The MPSC variant: `P` producer processes into one consumer process; producers (and the
/// consumer) are killed and replaced now and then.
///
/// Each producer process is an *incarnation* with its own id, stamped into the top bits of
/// its sequence numbers. It records how many messages it has committed in its own line of
/// a table; the consumer keeps, per incarnation, the next sequence number it expects. At
/// the end, for every incarnation, what arrived must be exactly what it committed (one more
/// if it was killed between a send and its record), in order, intact, once (one
/// redelivery allowed per consumer death, as for SPSC).
mod mpsc_soak {
    use super::*;
    use shm_channel::mpsc;

    /// Producer ids live in the top bits of the stamped sequence numbers.
    const ID_SHIFT: u32 = 40;
    /// Most incarnations a run can have (table size).
    const MAX_INCARNATIONS: usize = 8192;
    /// Words per table line (one 128-byte line per incarnation: no false sharing).
    const LINE: usize = 16;

    /// Per-incarnation counters: `RECORDED` written by the producer, `NEXT` by the consumer.
    struct Table(Region);

    impl Table {
        fn word(&self, inc: u64, which: usize) -> &AtomicU64 {
            self.0
                .atomic_u64((inc as usize * LINE + which) * 8)
                .expect("table word")
        }
    }
    const RECORDED: usize = 0;
    const NEXT: usize = 8;

    /// Global words (supervisor, consumer).
    const STOP: usize = 0;
    const DELIVERED: usize = 128;
    const DELIVERIES: usize = 136;
    const LOST: usize = 144;
    const DUPLICATED: usize = 152;
    const CORRUPTED: usize = 160;
    const REDELIVERED: usize = 168;
    const UP: usize = 256;

    fn producer(
        mut tx: mpsc::Sender,
        inc: u64,
        control: &Control,
        table: &Table,
        max_len: usize,
    ) -> i32 {
        control.set(UP, 1);
        let mut buf = Vec::with_capacity(max_len + 12);
        let mut seq = 0u64;
        while control.get(STOP) == 0 {
            fill((inc << ID_SHIFT) | seq, max_len, &mut buf);
            match tx.send_timeout(&buf, Duration::from_millis(100)) {
                Ok(()) => {
                    seq += 1;
                    table.word(inc, RECORDED).store(seq, Ordering::Relaxed);
                }
                Err(SendTimeoutError::Timeout(()) | SendTimeoutError::PeerDied(())) => {}
                Err(_) => return 1,
            }
        }
        0
    }

    fn consumer(mut rx: mpsc::Receiver, control: &Control, table: &Table, max_len: usize) -> i32 {
        control.set(UP, 1);
        let mut expected = Vec::with_capacity(max_len + 12);
        let mut got = vec![0u8; max_len + 12];
        let mut first = true;
        loop {
            let grant = match rx.read_timeout(Duration::from_secs(1)) {
                Ok(grant) => grant,
                Err(RecvTimeoutError::Disconnected | RecvTimeoutError::PeerDied)
                    if control.get(STOP) != 0 =>
                {
                    return 0
                }
                Err(
                    RecvTimeoutError::Timeout
                    | RecvTimeoutError::PeerDied
                    | RecvTimeoutError::Disconnected,
                ) => continue,
                Err(_) => return 2,
            };
            let len = grant.len().min(got.len());
            grant.copy_to(&mut got[..len]);
            if len < 12 || grant.len() > got.len() {
                control.add(CORRUPTED, 1);
                continue;
            }
            let tagged = u64::from_le_bytes(got[..8].try_into().expect("8 bytes"));
            fill(tagged, max_len, &mut expected);
            if got[..len] != expected[..] {
                control.add(CORRUPTED, 1);
                continue;
            }
            let (inc, seq) = (tagged >> ID_SHIFT, tagged & ((1 << ID_SHIFT) - 1));
            if inc as usize >= MAX_INCARNATIONS {
                control.add(CORRUPTED, 1);
                continue;
            }
            let next_word = table.word(inc, NEXT);
            let next = next_word.load(Ordering::Relaxed);
            if first && next > 0 && seq == next - 1 {
                control.add(REDELIVERED, 1);
            } else if seq < next {
                control.add(DUPLICATED, 1);
            } else {
                if seq > next {
                    control.add(LOST, seq - next);
                }
                next_word.store(seq + 1, Ordering::SeqCst);
                control.add(DELIVERED, 1);
            }
            first = false;
            control.add(DELIVERIES, 1);
            drop(grant); // release only after the table records the message
        }
    }

    pub(super) fn run(options: &Options) -> i32 {
        let control = Control(Region::anonymous(4096).expect("control region"));
        let table = Table(Region::anonymous(MAX_INCARNATIONS * LINE * 8).expect("table"));
        let (tx, rx) = mpsc::channel(options.capacity).expect("channel");
        let memory: Arc<dyn SharedMemory> = Arc::clone(tx.memory());
        let max_len = options.max_len.min(tx.max_message_len() - 12);
        let mut incarnations = 0u64;
        let mut refused_attaches = 0u64;
        let mut start_producer = |tx: Option<mpsc::Sender>| -> (Pid, u64) {
            let mut first = tx;
            loop {
                let inc = incarnations;
                incarnations += 1;
                assert!((inc as usize) < MAX_INCARNATIONS, "too many restarts");
                control.set(UP, 0);
                let memory = Arc::clone(&memory);
                let mut slot = first.take();
                let pid = spawn(|| {
                    let tx = match slot.take() {
                        Some(tx) => match tx.adopt() {
                            Ok(()) => tx,
                            Err(_) => return 3,
                        },
                        None => match mpsc::Sender::attach(memory) {
                            Ok(tx) => tx,
                            Err(_) => return 4,
                        },
                    };
                    producer(tx, inc, &control, &table, max_len)
                });
                if let Some(tx) = slot.take() {
                    let to = ProcessIdentity::of_pid(pid.as_raw()).expect("identity");
                    tx.hand_over(to).expect("hand over");
                }
                if control.wait(|c| c.get(UP) == 1 || child_exited(pid)) && control.get(UP) == 1 {
                    return (pid, inc);
                }
                // The attach was refused (every slot taken): count it and try again.
                let _ = waitpid(pid, None);
                refused_attaches += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        println!(
            "soak (MPSC, {} producers): {} messages of 12..={} bytes through a {} B ring, \
             {} restarts",
            options.producers,
            options.messages,
            max_len + 12,
            options.capacity,
            options.restarts
        );
        let started = Instant::now();
        let mut producers: Vec<(Pid, u64)> = (0..options.producers)
            .map(|_| start_producer(Some(tx.try_clone().expect("clone"))))
            .collect();
        drop(tx);
        let start_consumer = |rx: Option<mpsc::Receiver>| -> Pid {
            control.set(UP, 0);
            let memory = Arc::clone(&memory);
            let mut slot = rx;
            let pid = spawn(|| {
                let rx = match slot.take() {
                    Some(rx) => match rx.adopt() {
                        Ok(()) => rx,
                        Err(_) => return 3,
                    },
                    None => match mpsc::Receiver::attach(memory) {
                        Ok(rx) => rx,
                        Err(_) => return 4,
                    },
                };
                consumer(rx, &control, &table, max_len)
            });
            if let Some(rx) = slot.take() {
                let to = ProcessIdentity::of_pid(pid.as_raw()).expect("identity");
                rx.hand_over(to).expect("hand over");
            }
            assert!(control.wait(|c| c.get(UP) == 1), "consumer never started");
            pid
        };
        let mut consumer_pid = start_consumer(Some(rx));
        let (mut producer_kills, mut consumer_kills) = (0u64, 0u64);
        let mut killed = Vec::new();
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next_kill = 1u64;
        let kill_at = |k: u64| options.messages * k / (options.restarts + 1);
        let mut last_report = (Instant::now(), 0u64);
        loop {
            std::thread::sleep(Duration::from_millis(2));
            let delivered = control.get(DELIVERED);
            if last_report.0.elapsed() >= Duration::from_secs(1) {
                let rate =
                    (delivered - last_report.1) as f64 / last_report.0.elapsed().as_secs_f64();
                println!(
                    "{:>7.1} s  {:>12} received  {:>8.2} M msg/s",
                    started.elapsed().as_secs_f64(),
                    delivered,
                    rate / 1e6
                );
                last_report = (Instant::now(), delivered);
            }
            if delivered >= options.messages {
                break;
            }
            if next_kill <= options.restarts && delivered >= kill_at(next_kill) {
                next_kill += 1;
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                if rng % 3 != 0 {
                    let victim = (rng >> 8) as usize % producers.len();
                    let (pid, inc) = producers[victim];
                    kill(pid, Signal::SIGKILL).expect("kill producer");
                    let _ = waitpid(pid, None);
                    killed.push(inc);
                    producers[victim] = start_producer(None);
                    producer_kills += 1;
                    println!(
                        "{:>7.1} s  producer {inc} killed and replaced",
                        started.elapsed().as_secs_f64()
                    );
                } else {
                    kill(consumer_pid, Signal::SIGKILL).expect("kill consumer");
                    let _ = waitpid(consumer_pid, None);
                    consumer_pid = start_consumer(None);
                    consumer_kills += 1;
                    println!(
                        "{:>7.1} s  consumer killed and replaced",
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        }
        control.set(STOP, 1);
        let mut clean = true;
        for (pid, _) in &producers {
            clean &= matches!(waitpid(*pid, None), Ok(WaitStatus::Exited(_, 0)));
        }
        clean &= matches!(waitpid(consumer_pid, None), Ok(WaitStatus::Exited(_, 0)));
        let elapsed = started.elapsed();
        // Per incarnation: delivered == recorded, or recorded + 1 for a killed one.
        let (mut committed, mut short) = (0u64, 0u64);
        for inc in 0..incarnations {
            let recorded = table.word(inc, RECORDED).load(Ordering::SeqCst);
            let delivered = table.word(inc, NEXT).load(Ordering::SeqCst);
            committed += recorded;
            let ok = delivered == recorded || (killed.contains(&inc) && delivered == recorded + 1);
            if !ok {
                short += recorded.saturating_sub(delivered);
                eprintln!(
                    "incarnation {inc}: recorded {recorded} committed, {delivered} delivered"
                );
            }
        }
        let delivered = control.get(DELIVERED);
        println!(
            "done in {:.1} s: {:.2} M msg/s overall",
            elapsed.as_secs_f64(),
            delivered as f64 / elapsed.as_secs_f64() / 1e6
        );
        println!(
            "sent (committed, recorded by {incarnations} producer processes) {committed}, \
             received {delivered} ({} deliveries), lost {}, duplicated {}, corrupted {}, \
             redelivered after a consumer death {}",
            control.get(DELIVERIES),
            control.get(LOST) + short,
            control.get(DUPLICATED),
            control.get(CORRUPTED),
            control.get(REDELIVERED)
        );
        println!(
            "restarts: {producer_kills} producers and {consumer_kills} consumers killed \
             (SIGKILL) and replaced; attaches refused (no free sender slot) {refused_attaches}; \
             clean exits at the end: {clean}"
        );
        let ok = short == 0
            && control.get(LOST) == 0
            && control.get(DUPLICATED) == 0
            && control.get(CORRUPTED) == 0;
        i32::from(!ok)
    }

    /// Whether `pid` has exited (without reaping it).
    fn child_exited(pid: Pid) -> bool {
        matches!(
            nix::sys::wait::waitid(
                nix::sys::wait::Id::Pid(pid),
                nix::sys::wait::WaitPidFlag::WEXITED
                    | nix::sys::wait::WaitPidFlag::WNOHANG
                    | nix::sys::wait::WaitPidFlag::WNOWAIT
            ),
            Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..))
        )
    }
}
