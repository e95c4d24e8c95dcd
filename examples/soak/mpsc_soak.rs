//! The MPSC variant: `P` producer processes into one consumer process; producers (and the
//! consumer) are killed and replaced now and then.
//!
//! Each producer process is an *incarnation* with its own id, stamped into the top bits of
//! its sequence numbers. It records how many messages it has committed in its own line of
//! a table; the consumer keeps, per incarnation, the next sequence number it expects. At
//! the end, for every incarnation, what arrived must be exactly what it committed (one more
//! if it was killed between a send and its record), in order, intact, once (one
//! redelivery allowed per consumer death, as for SPSC).

use shm_channel::{Receiver, Sender};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use shm_channel::mpsc;
use shm_channel::{RecvTimeoutError, SendTimeoutError};
use shm_core::liveness::ProcessIdentity;
use shm_core::SharedMemory;
use shm_testkit::message::{message, tag, untag, Checker, PREFIX};
use shm_testkit::{ControlPage, Rng};

use crate::{spawn, Options, PATIENCE};
use shm_channel::Endpoint;
use shm_channel::RecvError;
use shm_channel::SendError;

/// Most incarnations a run can have (table size).
const MAX_INCARNATIONS: usize = 8192;
/// Words per table line (one 128-byte line per incarnation: no false sharing).
const LINE: usize = 16;

/// Per-incarnation counters: `RECORDED` written by the producer, `NEXT` by the consumer.
struct Table(ControlPage);

impl Table {
    fn word(&self, inc: u64, which: usize) -> &AtomicU64 {
        self.0.word((inc as usize * LINE + which) * 8)
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
    mut tx: Sender<mpsc::Mpsc>,
    inc: u64,
    control: &ControlPage,
    table: &Table,
    max_len: usize,
) -> i32 {
    control.set(UP, 1);
    let mut buf = Vec::with_capacity(max_len + PREFIX);
    let mut seq = 0u64;
    while control.get(STOP) == 0 {
        message(tag(inc, seq), max_len, &mut buf);
        match tx.send_timeout(&buf, Duration::from_millis(100)) {
            Ok(()) => {
                seq += 1;
                table.word(inc, RECORDED).store(seq, Ordering::Relaxed);
            }
            Err(
                SendTimeoutError::Timeout(()) | SendTimeoutError::Send(SendError::PeerDied(())),
            ) => {}
            Err(_) => return 1,
        }
    }
    0
}

fn consumer(
    mut rx: Receiver<mpsc::Mpsc>,
    control: &ControlPage,
    table: &Table,
    max_len: usize,
) -> i32 {
    control.set(UP, 1);
    let mut checker = Checker::new(max_len);
    let mut got = vec![0u8; max_len + PREFIX];
    let mut first = true;
    loop {
        let grant = match rx.read_timeout(Duration::from_secs(1)) {
            Ok(grant) => grant,
            Err(
                RecvTimeoutError::Recv(RecvError::Disconnected)
                | RecvTimeoutError::Recv(RecvError::PeerDied),
            ) if control.get(STOP) != 0 => return 0,
            Err(
                RecvTimeoutError::Timeout
                | RecvTimeoutError::Recv(RecvError::PeerDied)
                | RecvTimeoutError::Recv(RecvError::Disconnected),
            ) => continue,
            Err(_) => return 2,
        };
        let len = grant.len().min(got.len());
        grant.copy_to(&mut got[..len]);
        if grant.len() > got.len() {
            control.add(CORRUPTED, 1);
            continue;
        }
        let Ok(tagged) = checker.check(&got[..len]) else {
            control.add(CORRUPTED, 1);
            continue;
        };
        let (inc, seq) = untag(tagged);
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
    let control = ControlPage::new();
    let table = Table(ControlPage::with_len(MAX_INCARNATIONS * LINE * 8));
    let (tx, rx) = mpsc::channel(options.capacity).expect("channel");
    let memory: Arc<dyn SharedMemory> = Arc::clone(tx.memory());
    let max_len = options.max_len.min(tx.max_message_len() - PREFIX);
    let mut incarnations = 0u64;
    let mut refused_attaches = 0u64;
    let mut start_producer = |tx: Option<Sender<mpsc::Mpsc>>| -> (Pid, u64) {
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
                    None => match Sender::<mpsc::Mpsc>::attach(memory) {
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
            if control.wait_until(PATIENCE, |c| c.get(UP) == 1 || child_exited(pid))
                && control.get(UP) == 1
            {
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
        max_len + PREFIX,
        options.capacity,
        options.restarts
    );
    let started = Instant::now();
    let mut producers: Vec<(Pid, u64)> = (0..options.producers)
        .map(|_| start_producer(Some(tx.try_clone().expect("clone"))))
        .collect();
    drop(tx);
    let start_consumer = |rx: Option<Receiver<mpsc::Mpsc>>| -> Pid {
        control.set(UP, 0);
        let memory = Arc::clone(&memory);
        let mut slot = rx;
        let pid = spawn(|| {
            let rx = match slot.take() {
                Some(rx) => match rx.adopt() {
                    Ok(()) => rx,
                    Err(_) => return 3,
                },
                None => match Receiver::<mpsc::Mpsc>::attach(memory) {
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
        assert!(
            control.wait_until(PATIENCE, |c| c.get(UP) == 1),
            "consumer never started"
        );
        pid
    };
    let mut consumer_pid = start_consumer(Some(rx));
    let (mut producer_kills, mut consumer_kills) = (0u64, 0u64);
    let mut killed = Vec::new();
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut next_kill = 1u64;
    let kill_at = |k: u64| options.messages * k / (options.restarts + 1);
    let mut last_report = (Instant::now(), 0u64);
    loop {
        std::thread::sleep(Duration::from_millis(2));
        let delivered = control.get(DELIVERED);
        if last_report.0.elapsed() >= Duration::from_secs(1) {
            let rate = (delivered - last_report.1) as f64 / last_report.0.elapsed().as_secs_f64();
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
            if rng.below(3) != 0 {
                let victim = rng.below(producers.len() as u64) as usize;
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
            eprintln!("incarnation {inc}: recorded {recorded} committed, {delivered} delivered");
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
