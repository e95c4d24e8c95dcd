//! The SPSC soak: one producer process, one consumer process, each killed and replaced now
//! and then (see the resume protocol in `main.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use shm_channel::spsc::{self, Spsc};
use shm_channel::{Receiver, Sender};
use shm_channel::{RecvTimeoutError, SendTimeoutError};
use shm_core::liveness::ProcessIdentity;
use shm_core::SharedMemory;
use shm_testkit::message::{message, Checker, PREFIX};
use shm_testkit::{ControlPage, Rng};

use crate::{spawn, Options, PATIENCE};
use shm_channel::Endpoint;
use shm_channel::RecvError;
use shm_channel::SendError;

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

fn producer(mut tx: Sender<Spsc>, control: &ControlPage, max_len: usize) -> i32 {
    control.set(word::PRODUCER_UP, 1);
    let total = control.get(word::TOTAL);
    let mut buf = Vec::with_capacity(max_len + PREFIX);
    let mut seq = control.get(word::NEXT);
    while seq < total {
        message(seq, max_len, &mut buf);
        match tx.send_timeout(&buf, Duration::from_secs(1)) {
            Ok(()) => seq += 1,
            // The consumer is being replaced: retry the same message.
            Err(
                SendTimeoutError::Timeout(()) | SendTimeoutError::Send(SendError::PeerDied(())),
            ) => std::thread::sleep(Duration::from_micros(100)),
            Err(_) => return 1,
        }
    }
    control.set(word::SENT, seq);
    drop(tx); // clean close: the consumer gets Disconnected after the last message
    0
}

fn consumer(mut rx: Receiver<Spsc>, control: &ControlPage, max_len: usize) -> i32 {
    control.set(word::CONSUMER_UP, 1);
    let total = control.get(word::TOTAL);
    let mut checker = Checker::new(max_len);
    let mut got = vec![0u8; max_len + PREFIX];
    let mut first = true;
    let mut dead_seen = false;
    loop {
        let grant = match rx.read_timeout(Duration::from_secs(1)) {
            Ok(grant) => grant,
            Err(RecvTimeoutError::Recv(RecvError::Disconnected)) => {
                return i32::from(control.get(word::NEXT) != total);
            }
            Err(RecvTimeoutError::Recv(RecvError::PeerDied)) => {
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
        if grant.len() > got.len() {
            control.add(word::CORRUPTED, 1);
            continue;
        }
        let Ok(seq) = checker.check(msg) else {
            control.add(word::CORRUPTED, 1);
            drop(grant);
            continue;
        };
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

/// Runs the SPSC soak; the process exit code (0: nothing lost, duplicated or corrupted).
pub(crate) fn run(options: &Options) -> i32 {
    let control = ControlPage::new();
    control.set(word::TOTAL, options.messages);
    let (tx, rx) = spsc::channel(options.capacity).expect("channel");
    let memory: Arc<dyn SharedMemory> = Arc::clone(tx.memory());
    let max_len = options.max_len.min(tx.max_message_len() - PREFIX);

    let start_producer = |tx: Option<Sender<Spsc>>| {
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
                None => match Sender::<Spsc>::attach(memory) {
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
            control.wait_until(PATIENCE, |c| c.get(word::PRODUCER_UP) == 1),
            "producer never started"
        );
        pid
    };
    let start_consumer = |rx: Option<Receiver<Spsc>>| {
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
                None => match Receiver::<Spsc>::attach(memory) {
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
            control.wait_until(PATIENCE, |c| c.get(word::CONSUMER_UP) == 1),
            "consumer never started"
        );
        pid
    };

    let started = Instant::now();
    let mut consumer_pid = start_consumer(Some(rx));
    let mut producer_pid = start_producer(Some(tx));
    let (mut producer_kills, mut consumer_kills) = (0u64, 0u64);
    let mut rng = Rng::new(0x2545_f491_4f6c_dd1d);
    let mut last_report = (Instant::now(), 0u64);
    let mut next_kill = 1u64;
    let mut producer_done = false;
    let kill_at = |k: u64| options.messages * k / (options.restarts + 1);
    println!(
        "soak: {} messages of 12..={} bytes through a {} B ring, {} restarts",
        options.messages,
        max_len + PREFIX,
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
            if rng.below(2) == 0 && !producer_done {
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
                    control.wait_until(PATIENCE, |c| c.get(word::PRODUCER_DEATHS_SEEN) > seen),
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
    i32::from(!ok)
}
