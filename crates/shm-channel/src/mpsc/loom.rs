//! loom models of the MPSC ring: claim/commit by two producers, a producer that stops
//! between claim and commit, padding at a tiny capacity, and runs of frames claimed with
//! one CAS (in order; a producer dying between the claim and the commit of its run).
//!
//! Every word of the model's memory (indices, slots, frame headers and payload) is a loom
//! atomic, so the commit marker and the consumer's zeroing are part of the model.
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p shm-channel --release --lib mpsc`

use std::sync::atomic::Ordering;
use std::sync::Arc;

use loom::sync::atomic::AtomicU64;
use loom::thread;

use super::{Consumer, Frame, Producer, RingMem, SenderSlot, MAX_SENDERS};
use crate::ring::Peek;

/// The ring's memory as loom atomics, one per 8-byte word.
struct LoomMem {
    tail: AtomicU64,
    head: AtomicU64,
    slots: Vec<SenderSlot>,
    words: Vec<AtomicU64>,
}

impl LoomMem {
    fn new(capacity: u64) -> Arc<LoomMem> {
        Arc::new(LoomMem {
            tail: AtomicU64::new(0),
            head: AtomicU64::new(0),
            // Only the slots a model uses are allocated; `slot` clamps to them.
            slots: (0..2.min(MAX_SENDERS))
                .map(|_| SenderSlot::default())
                .collect(),
            words: (0..capacity / 8).map(|_| AtomicU64::new(0)).collect(),
        })
    }
}

impl RingMem for LoomMem {
    fn capacity(&self) -> u64 {
        self.words.len() as u64 * 8
    }
    fn tail(&self) -> &AtomicU64 {
        &self.tail
    }
    fn head(&self) -> &AtomicU64 {
        &self.head
    }
    fn slot(&self, index: usize) -> &SenderSlot {
        &self.slots[index.min(self.slots.len() - 1)]
    }
    fn load_word(&self, offset: u64, order: Ordering) -> u64 {
        self.words[(offset / 8) as usize].load(order)
    }
    fn store_word(&self, offset: u64, word: u64, order: Ordering) {
        self.words[(offset / 8) as usize].store(word, order);
    }
    fn zero(&self, offset: u64, len: u64) {
        for i in 0..len / 8 {
            // Relaxed: published by the Release store of `head`.
            self.words[(offset / 8 + i) as usize].store(0, Ordering::Relaxed);
        }
    }
}

impl LoomMem {
    /// Copies `src` into the data area at `offset`, word by word.
    fn write_bytes(&self, offset: u64, src: &[u8]) {
        for (i, chunk) in src.chunks(8).enumerate() {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            // Relaxed: payload, published by the Release store of the frame header.
            self.words[(offset / 8) as usize + i]
                .store(u64::from_le_bytes(word), Ordering::Relaxed);
        }
    }
    /// Copies data-area bytes at `offset` into `dst`.
    fn read_bytes(&self, offset: u64, dst: &mut [u8]) {
        for (i, chunk) in dst.chunks_mut(8).enumerate() {
            // Relaxed: ordered after the Acquire load of the frame header.
            let word = self.words[(offset / 8) as usize + i].load(Ordering::Relaxed);
            chunk.copy_from_slice(&word.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// Copies the payload of `frame` out (at most `dst.len()` bytes).
fn read(mem: &LoomMem, frame: &Frame, dst: &mut [u8]) {
    let n = frame.len.min(dst.len());
    mem.read_bytes(frame.offset + 8, &mut dst[..n]);
}

/// Two producer threads (slots 0 and 1) send one 8-byte message each; the consumer gets
/// both, in either order.
fn two_producers_send_one_each(mem: &Arc<LoomMem>, consumer: &mut Consumer) {
    let producers: Vec<_> = (0..2u8)
        .map(|p| {
            let mem = mem.clone();
            thread::spawn(move || {
                let mut producer = Producer::new(&*mem, p as usize);
                send(&mem, &mut producer, &[p + 1; 8]);
            })
        })
        .collect();
    let mut got = [recv(mem, consumer), recv(mem, consumer)];
    got.sort();
    assert_eq!(got, [vec![1; 8], vec![2; 8]]);
    for p in producers {
        p.join().unwrap();
    }
}

/// Claims, writes and commits `msg`, yielding while the ring is full.
fn send(mem: &LoomMem, producer: &mut Producer, msg: &[u8]) {
    loop {
        if let Some(claim) = producer.try_claim(mem, msg.len()).unwrap() {
            mem.write_bytes(claim.offset + 8, msg);
            producer.commit(mem, claim, msg.len(), true);
            return;
        }
        thread::yield_now();
    }
}

/// Receives one message, yielding while the ring is empty or blocked.
fn recv(mem: &LoomMem, consumer: &mut Consumer) -> Vec<u8> {
    loop {
        if let Peek::Frame(frame) = consumer.try_peek(mem, None).unwrap() {
            let mut out = vec![0u8; frame.len];
            read(mem, &frame, &mut out);
            consumer.release(mem, frame);
            return out;
        }
        thread::yield_now();
    }
}

/// A loom model over a 64-byte ring, with its consumer.
fn model_with_consumer(f: impl Fn(Arc<LoomMem>, Consumer) + Sync + Send + 'static) {
    loom::model(move || {
        let mem = LoomMem::new(64);
        let consumer = Consumer::new(&*mem).unwrap();
        f(mem, consumer);
    });
}

/// A thread running `body` with a producer on `slot`.
fn spawn_producer(
    mem: &Arc<LoomMem>,
    slot: usize,
    body: impl FnOnce(&LoomMem, &mut Producer) + Send + 'static,
) -> thread::JoinHandle<()> {
    let mem = Arc::clone(mem);
    thread::spawn(move || {
        let mut producer = Producer::new(&*mem, slot);
        body(&mem, &mut producer);
    })
}

/// A thread that sends `msg` from a producer on `slot`.
fn spawn_sender(mem: &Arc<LoomMem>, slot: usize, msg: [u8; 8]) -> thread::JoinHandle<()> {
    spawn_producer(mem, slot, move |mem, producer| send(mem, producer, &msg))
}

/// Receives every 8-byte message there is, producer `dead` known dead: its claims are
/// skipped, never waited for.
fn drain_past(mem: &LoomMem, consumer: &mut Consumer, dead: usize) -> Vec<[u8; 8]> {
    let mut is_dead = |slot: usize| slot == dead;
    let mut got = Vec::new();
    loop {
        match consumer.try_peek(mem, Some(&mut is_dead)).unwrap() {
            Peek::Frame(frame) => {
                let mut out = [0u8; 8];
                read(mem, &frame, &mut out);
                got.push(out);
                consumer.release(mem, frame);
            }
            Peek::Empty => return got,
            Peek::Blocked => panic!("blocked behind a dead producer"),
        }
    }
}

#[test]
fn two_producers_claim_and_commit() {
    model_with_consumer(|mem, mut consumer| {
        two_producers_send_one_each(&mem, &mut consumer);
        assert_eq!(consumer.try_peek(&*mem, None).unwrap(), Peek::Empty);
    });
}

#[test]
fn producer_stopped_between_claim_and_commit_is_never_seen() {
    model_with_consumer(|mem, mut consumer| {
        let stopper = spawn_producer(&mem, 0, |mem, producer| {
            let claim = producer.try_claim(mem, 8).unwrap().unwrap();
            mem.write_bytes(claim.offset + 8, &[0xEE; 4]);
            // Stops here: never commits.
        });
        let sender = spawn_sender(&mem, 1, [7; 8]);
        // Concurrently: the consumer sees B's frame, or nothing; never A's bytes.
        if let Peek::Frame(frame) = consumer.try_peek(&*mem, None).unwrap() {
            let mut out = [0u8; 8];
            read(&mem, &frame, &mut out);
            assert_eq!(out, [7; 8]);
            consumer.release(&*mem, frame);
        }
        stopper.join().unwrap();
        sender.join().unwrap();
        // Once A is known dead, its claim is skipped and B's message (if still there)
        // follows; nothing of A's is ever returned.
        for out in drain_past(&mem, &mut consumer, 0) {
            assert_eq!(out, [7; 8]);
        }
        assert_eq!(consumer.abandoned, 1);
    });
}

#[test]
fn two_producers_pad_at_a_tiny_capacity() {
    loom::model(|| {
        let mem = LoomMem::new(32);
        let mut consumer = Consumer::new(&*mem).unwrap();
        {
            // Move both indices to offset 24: the next 16-byte frame needs a pad.
            let mut producer = Producer::new(&*mem, 0);
            for _ in 0..3 {
                send(&mem, &mut producer, &[]);
                assert_eq!(recv(&mem, &mut consumer), Vec::<u8>::new());
            }
        }
        two_producers_send_one_each(&mem, &mut consumer);
    });
}

/// Claims a run of frames for `msgs` with one CAS (yielding while the ring is full), then
/// writes and commits as many of them as the run holds, in order; how many.
fn send_run(mem: &LoomMem, producer: &mut Producer, msgs: &[&[u8]]) -> usize {
    loop {
        if let Some(run) = producer
            .try_claim_run(mem, msgs.len(), &|i| msgs[i].len())
            .unwrap()
        {
            let mut offset = run.offset;
            for msg in &msgs[..run.frames] {
                mem.write_bytes(offset + 8, msg);
                let claim = super::Claim {
                    offset,
                    len: msg.len(),
                };
                producer.commit(mem, claim, msg.len(), true);
                offset += crate::frame::frame_len(msg.len() as u64);
            }
            return run.frames;
        }
        thread::yield_now();
    }
}

#[test]
fn two_producers_claim_runs_and_commit_in_order() {
    model_with_consumer(|mem, mut consumer| {
        let producers: Vec<_> = (0..2u8)
            .map(|p| {
                let mem = mem.clone();
                thread::spawn(move || {
                    let mut producer = Producer::new(&*mem, p as usize);
                    let (a, b) = ([p * 2 + 1; 8], [p * 2 + 2; 8]);
                    let msgs: [&[u8]; 2] = [&a, &b];
                    let mut sent = 0;
                    while sent < msgs.len() {
                        sent += send_run(&mem, &mut producer, &msgs[sent..]);
                    }
                })
            })
            .collect();
        let got: Vec<u8> = (0..4).map(|_| recv(&mem, &mut consumer)[0]).collect();
        // Each producer's two messages arrive in the order it sent them.
        for p in 0..2u8 {
            let first = got.iter().position(|&m| m == p * 2 + 1).unwrap();
            let second = got.iter().position(|&m| m == p * 2 + 2).unwrap();
            assert!(first < second, "{got:?}");
        }
        for p in producers {
            p.join().unwrap();
        }
        assert_eq!(consumer.try_peek(&*mem, None).unwrap(), Peek::Empty);
    });
}

#[test]
fn producer_dying_inside_a_claimed_run_loses_only_its_uncommitted_frames() {
    model_with_consumer(|mem, mut consumer| {
        let dying = spawn_producer(&mem, 0, |mem, producer| {
            let run = producer.try_claim_run(mem, 2, &|_| 8).unwrap().unwrap();
            assert_eq!(run.frames, 2);
            // The first frame of the run is committed ...
            mem.write_bytes(run.offset + 8, &[0xA1; 8]);
            let first = super::Claim {
                offset: run.offset,
                len: 8,
            };
            producer.commit(mem, first, 8, true);
            // ... the second half-written, then the producer dies: never committed.
            mem.write_bytes(run.offset + 16 + 8, &[0xEE; 4]);
        });
        let sender = spawn_sender(&mem, 1, [7; 8]);
        // Concurrently: only committed frames, never the dead producer's second one.
        let mut got = Vec::new();
        while let Peek::Frame(frame) = consumer.try_peek(&*mem, None).unwrap() {
            let mut out = [0u8; 8];
            read(&mem, &frame, &mut out);
            got.push(out);
            consumer.release(&*mem, frame);
        }
        dying.join().unwrap();
        sender.join().unwrap();
        // Once it is known dead, its uncommitted frame is skipped; every committed frame,
        // its own first one and the other producer's, is delivered.
        got.extend(drain_past(&mem, &mut consumer, 0));
        got.sort();
        assert_eq!(got, [[7; 8], [0xA1; 8]]);
        assert_eq!(consumer.abandoned, 1);
    });
}
