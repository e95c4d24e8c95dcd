//! loom models of the SPSC ring: every interleaving (up to `LOOM_MAX_PREEMPTIONS`) of the
//! header, index and flag operations, on a heap region.
//!
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p shm-channel --release --lib loom`
//! (`scripts/loom` does this in its own target directory).

use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

use loom::thread;
use shm_core::notify::Handshake;
use shm_core::HeapRegion;

use super::layout::{region_len_for, Layout};
use super::ring::{Reader, Writer};
use crate::shared::lane::{Frame, Slot};
use crate::shared::ring::{RecvRing, RingSide, SendRing};
use crate::spsc::Spsc;
use crate::Builder;
use crate::{Endpoint, RecvError, TryRecvError};

fn ring(capacity: usize) -> (Writer, Reader) {
    ring_lined(capacity, false)
}

/// A ring whose reader asks for lined frames (`lined`) from the start.
fn ring_lined(capacity: usize, lined: bool) -> (Writer, Reader) {
    let heap = Arc::new(HeapRegion::new(region_len_for(capacity).unwrap()).unwrap());
    // loom cannot model `membarrier`: the models run the SeqCst handshake (which is what
    // every channel uses under `cfg(loom)`, see `shared::creation::effective_handshake`).
    let layout = Layout::create(
        heap,
        &crate::shared::creation::Creation {
            doorbells: None,
            capacity,
            options: (),
            handshake: Handshake::SeqCst,
        },
    )
    .unwrap();
    layout.status().line_hint.store(u32::from(lined), SeqCst);
    (
        Writer::new(layout.clone()).unwrap(),
        Reader::new(layout).unwrap(),
    )
}

/// Sends `msg`, yielding while the ring is full.
fn send(writer: &mut Writer, msg: &[u8]) {
    loop {
        if let Some(slot) = writer.try_reserve(msg.len()).unwrap() {
            // SAFETY: the slot's payload is valid for `msg.len()` bytes until commit.
            unsafe {
                std::ptr::copy_nonoverlapping(msg.as_ptr(), writer.payload_ptr(&slot), msg.len())
            };
            writer.commit(slot, msg.len());
            writer.publish();
            return;
        }
        thread::yield_now();
    }
}

/// The next published frame, if any.
fn peek(reader: &mut Reader) -> Option<Frame> {
    reader.try_peek(false).unwrap()
}

/// The next message if one is published: copied out, then released.
fn try_recv(reader: &mut Reader) -> Option<Vec<u8>> {
    let frame = peek(reader)?;
    let mut out = vec![0u8; frame.len];
    // SAFETY: the frame's payload is valid for `frame.len` bytes until release.
    unsafe {
        std::ptr::copy_nonoverlapping(reader.payload_ptr(&frame), out.as_mut_ptr(), frame.len)
    };
    reader.release(frame);
    Some(out)
}

/// Receives one message, yielding while the ring is empty.
fn recv(reader: &mut Reader) -> Vec<u8> {
    loop {
        if let Some(out) = try_recv(reader) {
            return out;
        }
        thread::yield_now();
    }
}

#[test]
fn loom_publish_then_consume_in_order() {
    loom::model(|| stream(64, 0, &[b"first!!!", b"second"]));
}

/// Runs `write` with the writer of a ring of `capacity` bytes in a thread of its own, while
/// the reader, releasing in batches of `release_batch` bytes, receives `expected` in order.
fn read_while(
    capacity: usize,
    release_batch: u64,
    write: impl FnOnce(Writer) + Send + 'static,
    expected: &[&[u8]],
) {
    let (writer, mut reader) = ring(capacity);
    reader.set_release_batch(release_batch);
    let producer = thread::spawn(move || write(writer));
    for msg in expected {
        assert_eq!(recv(&mut reader), *msg);
    }
    producer.join().unwrap();
}

/// Streams `messages` from a writer thread to the reader on a ring of `capacity` bytes,
/// whose reader releases in batches of `release_batch` bytes.
fn stream(capacity: usize, release_batch: u64, messages: &'static [&'static [u8]]) {
    let write = move |mut writer: Writer| {
        for msg in messages {
            send(&mut writer, msg);
        }
    };
    read_while(capacity, release_batch, write, messages);
}

#[test]
fn loom_batched_releases_never_starve_the_writer() {
    // 32 bytes hold two 16-byte frames; the reader hands space back only per 16 bytes or
    // when it finds the ring empty, and the writer needs that space to go on.
    loom::model(|| stream(32, 16, &[&[1; 8], &[2; 8], &[3; 8]]));
}

#[test]
fn loom_wrap_around_at_tiny_capacity() {
    // 32 bytes: a 9-byte message takes 24, so the second must pad and wrap, and the third
    // reuses space the reader released.
    loom::model(|| stream(32, 0, &[&[1; 9], &[2; 9], &[3; 1]]));
}

#[test]
fn loom_lined_frames_wrap_and_arrive_in_order() {
    // 128 bytes of lined frames (loom lines lanes of 64 bytes and more): the first two
    // messages take a line each, the third waits for the first line to be released and
    // wraps into it.
    loom::model(|| {
        let messages: &[&[u8]] = &[&[1; 9], &[2; 40], &[3; 1]];
        let (mut writer, mut reader) = ring_lined(128, true);
        let producer = thread::spawn(move || {
            for msg in messages {
                send(&mut writer, msg);
            }
        });
        for msg in messages {
            assert_eq!(recv(&mut reader), *msg);
        }
        producer.join().unwrap();
    });
}

#[test]
fn loom_uncommitted_frame_is_never_seen() {
    loom::model(|| {
        let (mut writer, mut reader) = ring(64);
        let producer = thread::spawn(move || {
            send(&mut writer, b"done");
            // Stops between reserve and commit: writes the payload, never commits.
            write_uncommitted(&mut writer, b"half");
            writer.publish(); // publishes nothing new
        });
        let mut seen = Vec::new();
        for _ in 0..3 {
            if let Some(out) = try_recv(&mut reader) {
                seen.push(out);
            }
            thread::yield_now();
        }
        producer.join().unwrap();
        while let Some(frame) = peek(&mut reader) {
            reader.release(frame);
            seen.push(b"?".to_vec());
        }
        // Only the committed message, ever.
        assert!(seen.len() <= 1);
        assert!(seen.iter().all(|m| m == b"done"));
    });
}

/// Reserves a frame for `msg` (the ring must have room) and writes its payload, without
/// committing it: as a writer stopped between reserve and commit leaves it.
fn write_uncommitted(writer: &mut Writer, msg: &[u8]) -> Slot {
    let slot = writer.try_reserve(msg.len()).unwrap().unwrap();
    // SAFETY: the slot's payload is valid for `msg.len()` bytes until commit.
    unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), writer.payload_ptr(&slot), msg.len()) };
    slot
}

/// Writes `msg` into a reserved frame and commits it without publishing.
fn commit(writer: &mut Writer, msg: &[u8]) {
    let slot = write_uncommitted(writer, msg);
    writer.commit(slot, msg.len());
}

#[test]
fn loom_deferred_frames_appear_together_in_order() {
    // Three frames committed, then one publication: the reader sees none of them or all
    // of them, in order (the first frame's header is the one store that publishes).
    loom::model(|| {
        let (mut writer, mut reader) = ring(64);
        let producer = thread::spawn(move || {
            commit(&mut writer, &[1; 3]);
            commit(&mut writer, &[2; 8]);
            commit(&mut writer, &[3; 1]);
            writer.publish();
        });
        let first = try_recv(&mut reader);
        if first.is_some() {
            assert_eq!(first.unwrap(), [1; 3]);
            assert_eq!(try_recv(&mut reader).unwrap(), [2; 8]);
            assert_eq!(try_recv(&mut reader).unwrap(), [3; 1]);
        }
        producer.join().unwrap();
    });
}

#[test]
fn loom_headers_of_earlier_laps_are_not_new_frames() {
    // 32 bytes of 16-byte frames: the fifth message is written over the first, the ring
    // is exactly full at times, and every header the reader meets is of lap 0, 1 or 2.
    loom::model(|| stream(32, 0, &[&[1; 8], &[2; 8], &[3; 8], &[4; 8], &[5; 8]]));
}

/// A writer thread that does `before_dying` with its writer and then dies (drops it, doing
/// nothing more), and a writer taking over the channel after it that sends `successor_sends`;
/// meanwhile the reader must receive `expected`, in order.
fn successor_continues(
    before_dying: impl FnOnce(&mut Writer) + Send + 'static,
    successor_sends: &'static [u8],
    expected: &[&[u8]],
) {
    let write = move |mut writer: Writer| {
        let layout = writer.layout().clone();
        before_dying(&mut writer);
        drop(writer); // dies here
        let mut successor = Writer::new(layout).unwrap();
        send(&mut successor, successor_sends);
    };
    read_while(64, 0, write, expected);
}

#[test]
fn loom_writer_dying_before_its_commit_loses_only_that_frame() {
    // A writer dies with a frame's payload written and its header not: a writer taking over
    // continues there, and the reader never sees the half-written frame.
    loom::model(|| {
        successor_continues(
            |writer| {
                send(writer, b"done");
                write_uncommitted(writer, b"half");
            },
            b"next",
            &[b"done", b"next"],
        )
    });
}

#[test]
fn loom_writer_dying_before_its_tail_store_is_recovered() {
    // A writer dies after publishing a frame and before recording its tail: the writer
    // taking over finds the frame and continues after it, while the reader reads.
    loom::model(|| {
        successor_continues(
            |writer| {
                let layout = writer.layout().clone();
                send(writer, b"one");
                let recorded = layout.producer().tail.load(SeqCst);
                send(writer, b"two");
                // As if the second publication's tail store never happened.
                layout.producer().tail.store(recorded, SeqCst);
            },
            b"three",
            &[b"one", b"two", b"three"],
        )
    });
}

#[test]
fn loom_close_delivers_everything_before_disconnect() {
    loom::model(|| {
        let heap = Arc::new(HeapRegion::new(region_len_for(64).unwrap()).unwrap());
        let (mut tx, mut rx) = Builder::<Spsc>::new(64).create_in(heap).unwrap();
        let producer = thread::spawn(move || {
            tx.try_send(b"a").unwrap();
            tx.try_send(b"b").unwrap();
            drop(tx);
        });
        let mut got = Vec::new();
        loop {
            match rx.try_recv() {
                Ok(msg) => got.push(msg),
                Err(TryRecvError::Empty) => thread::yield_now(),
                Err(TryRecvError::Recv(RecvError::Disconnected)) => break,
                Err(other) => panic!("{other}"),
            }
        }
        assert_eq!(got, vec![b"a".to_vec(), b"b".to_vec()]);
        producer.join().unwrap();
    });
}

#[test]
fn loom_receiver_drop_disconnects_sender() {
    loom::model(|| {
        let heap = Arc::new(HeapRegion::new(region_len_for(32).unwrap()).unwrap());
        let (mut tx, rx) = Builder::<Spsc>::new(32).create_in(heap).unwrap();
        let consumer = thread::spawn(move || drop(rx));
        // Fill, then keep trying: once the drop is visible, every send is Disconnected.
        let mut disconnected = false;
        for _ in 0..4 {
            match tx.try_send(&[0; 8]) {
                Ok(()) | Err(crate::TrySendError::Full(())) => thread::yield_now(),
                Err(crate::TrySendError::Send(crate::SendError::Disconnected(()))) => {
                    disconnected = true
                }
                Err(other) => panic!("{other}"),
            }
        }
        consumer.join().unwrap();
        assert!(disconnected || tx.try_send(&[0; 8]).is_err());
        assert!(matches!(
            tx.try_send(&[0; 1]),
            Err(crate::TrySendError::Send(
                crate::SendError::Disconnected(())
            ))
        ));
    });
}

#[test]
fn loom_channels_always_use_the_seqcst_handshake() {
    // loom cannot model `membarrier`: under `cfg(loom)` a channel forced to `Membarrier`
    // still publishes with SeqCst stores, the protocol the models above check.
    loom::model(|| {
        let heap = Arc::new(HeapRegion::new(region_len_for(64).unwrap()).unwrap());
        let (mut tx, mut rx) = Builder::<Spsc>::new(64)
            .handshake(Handshake::Membarrier)
            .create_in(heap.clone())
            .unwrap();
        assert_eq!(tx.handshake(), Handshake::SeqCst);
        assert_eq!(rx.handshake(), Handshake::SeqCst);
        let producer = thread::spawn(move || tx.try_send(b"ping").unwrap());
        loop {
            match rx.try_recv() {
                Ok(msg) => break assert_eq!(msg, b"ping"),
                Err(TryRecvError::Empty) => thread::yield_now(),
                Err(other) => panic!("{other}"),
            }
        }
        producer.join().unwrap();
    });
}
