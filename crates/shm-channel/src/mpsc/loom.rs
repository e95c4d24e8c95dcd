//! loom models of the MPSC ring: claim/commit by two producers, a producer that stops
//! between claim and commit, padding at a tiny capacity, and runs of frames claimed with
//! one CAS (in order; a producer dying between the claim and the commit of its run).
//!
//! Every word of the model's memory (indices, slots, frame headers and payload) is a loom
//! atomic, so the commit marker and the consumer's zeroing are part of the model.
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p shm-channel --release --lib mpsc`

use std::sync::Arc;

use loom::thread;
use shm_core::notify::Handshake;
use shm_core::HeapRegion;

use super::claim::{Claim, ClaimCursor};
use super::consume::{Frame, ReadCursor};
use super::layout::{region_len_for, Layout};
use crate::shared::creation::Creation;
use crate::shared::frame::frame_len;
use crate::shared::ring::Peek;

/// A fresh MPSC region of `capacity` bytes on the heap (its frame words are loom atomics:
/// see `crate::shared::primitive`).
fn ring(capacity: usize) -> Arc<Layout> {
    let heap = Arc::new(HeapRegion::new(region_len_for(capacity).unwrap()).unwrap());
    let how = Creation {
        capacity,
        options: (),
        zeroed: true,
        handshake: Handshake::SeqCst,
        doorbells: None,
    };
    Arc::new(Layout::create(heap, &how).unwrap())
}

/// Copies `src` into the data area at `offset`.
fn write_bytes(layout: &Layout, offset: u64, src: &[u8]) {
    // SAFETY: the models write only into frames they claimed, inside the data area.
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), layout.data().ptr(offset), src.len()) };
}

/// Copies the payload of `frame` out (at most `dst.len()` bytes).
fn read(layout: &Layout, frame: &Frame, dst: &mut [u8]) {
    let n = frame.len.min(dst.len());
    // SAFETY: a peeked frame's payload lies inside the data area, valid until released.
    unsafe { std::ptr::copy_nonoverlapping(layout.payload_ptr(frame.offset), dst.as_mut_ptr(), n) };
}

/// Two producer threads (slots 0 and 1) send one 8-byte message each; the consumer gets
/// both, in either order.
fn two_producers_send_one_each(mem: &Arc<Layout>, consumer: &mut ReadCursor) {
    let producers: Vec<_> = (0..2u8)
        .map(|p| {
            let mem = mem.clone();
            thread::spawn(move || {
                let mut producer = ClaimCursor::new(&*mem, p as usize);
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
fn send(mem: &Layout, producer: &mut ClaimCursor, msg: &[u8]) {
    loop {
        if let Some(claim) = producer.try_claim(mem, msg.len()).unwrap() {
            write_bytes(mem, claim.offset + 8, msg);
            producer.commit(mem, claim, msg.len(), true);
            return;
        }
        thread::yield_now();
    }
}

/// Receives one message, yielding while the ring is empty or blocked.
fn recv(mem: &Layout, consumer: &mut ReadCursor) -> Vec<u8> {
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
fn model_with_consumer(f: impl Fn(Arc<Layout>, ReadCursor) + Sync + Send + 'static) {
    loom::model(move || {
        let mem = ring(64);
        let consumer = ReadCursor::new(&*mem).unwrap();
        f(mem, consumer);
    });
}

/// A thread running `body` with a producer on `slot`.
fn spawn_producer(
    mem: &Arc<Layout>,
    slot: usize,
    body: impl FnOnce(&Layout, &mut ClaimCursor) + Send + 'static,
) -> thread::JoinHandle<()> {
    let mem = Arc::clone(mem);
    thread::spawn(move || {
        let mut producer = ClaimCursor::new(&*mem, slot);
        body(&mem, &mut producer);
    })
}

/// A thread that sends `msg` from a producer on `slot`.
fn spawn_sender(mem: &Arc<Layout>, slot: usize, msg: [u8; 8]) -> thread::JoinHandle<()> {
    spawn_producer(mem, slot, move |mem, producer| send(mem, producer, &msg))
}

/// Receives every 8-byte message there is, producer `dead` known dead: its claims are
/// skipped, never waited for.
fn drain_past(mem: &Layout, consumer: &mut ReadCursor, dead: usize) -> Vec<[u8; 8]> {
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
            write_bytes(mem, claim.offset + 8, &[0xEE; 4]);
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
        let mem = ring(32);
        let mut consumer = ReadCursor::new(&*mem).unwrap();
        {
            // Move both indices to offset 24: the next 16-byte frame needs a pad.
            let mut producer = ClaimCursor::new(&*mem, 0);
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
fn send_run(mem: &Layout, producer: &mut ClaimCursor, msgs: &[&[u8]]) -> usize {
    loop {
        if let Some(run) = producer
            .try_claim_run(mem, msgs.len(), &|i| msgs[i].len())
            .unwrap()
        {
            let mut offset = run.offset;
            for msg in &msgs[..run.frames] {
                write_bytes(mem, offset + 8, msg);
                let claim = Claim {
                    offset,
                    len: msg.len(),
                };
                producer.commit(mem, claim, msg.len(), true);
                offset += frame_len(msg.len() as u64);
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
                    let mut producer = ClaimCursor::new(&*mem, p as usize);
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
            write_bytes(mem, run.offset + 8, &[0xA1; 8]);
            let first = Claim {
                offset: run.offset,
                len: 8,
            };
            producer.commit(mem, first, 8, true);
            // ... the second half-written, then the producer dies: never committed.
            write_bytes(mem, run.offset + 16 + 8, &[0xEE; 4]);
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
