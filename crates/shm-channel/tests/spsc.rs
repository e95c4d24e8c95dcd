//! The SPSC channel in one process, over heap regions (runs under Miri too): order and
//! wrap-around, empty messages, read grants, deferred sends, capacities and attach, hostile
//! values in the tail, head and frame headers, typed messages with every codec, two
//! threads, batched releases. The calls every flavor shares are in `endpoint_calls.rs`; the
//! channel across `fork` in `across_fork.rs`, its faults in `faults_spsc*.rs`, a hostile
//! peer in `hostile_spsc.rs`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use shm_channel::codec::{Bincode, Codec, Plain, Postcard};
use shm_channel::spsc::{self, Spsc};
use shm_channel::Endpoint as _;
use shm_channel::{
    typed, ChannelError, CodecError, RecvError, SendError, TryRecvError, TrySendError,
};
use shm_channel::{Builder, Receiver, Sender};
use shm_core::{HeapRegion, SharedMemory};

// Offsets of the control block (the kit's, checked in `kit_layout.rs`).
use shm_testkit::layout::spsc::{DATA, FRAME_LAP_SHIFT, HEAD, TAIL};

mod support;

/// A typed channel over a heap region (so the test also runs under Miri).
fn typed_heap<T, C: Codec<T>>(
    capacity: usize,
) -> (
    typed::Sender<T, shm_channel::spsc::Spsc, C>,
    typed::Receiver<T, shm_channel::spsc::Spsc, C>,
) {
    let (tx, rx, _) = heap_channel(capacity);
    (
        typed::Sender::try_from(tx).unwrap(),
        typed::Receiver::try_from(rx).unwrap(),
    )
}

fn heap_channel(capacity: usize) -> (Sender<Spsc>, Receiver<Spsc>, Arc<HeapRegion>) {
    support::heap_channel(Builder::<Spsc>::new(capacity))
}

#[test]
fn messages_arrive_in_order_and_intact() {
    let (mut tx, mut rx, _) = heap_channel(256);
    for round in 0..50u8 {
        let msg: Vec<u8> = (0..round).collect();
        tx.send(&msg).unwrap();
        assert_eq!(rx.recv().unwrap(), msg);
    }
}

#[test]
fn empty_messages_are_messages() {
    let (mut tx, mut rx, _) = heap_channel(64);
    tx.send(&[]).unwrap();
    tx.send(b"x").unwrap();
    assert_eq!(rx.recv().unwrap(), b"");
    assert_eq!(rx.recv().unwrap(), b"x");
}

#[test]
fn frames_wrap_around_with_padding() {
    let (mut tx, mut rx, _) = heap_channel(128);
    let message = |i: usize| -> Vec<u8> { (0..(i * 37) % 121).map(|b| (b + i) as u8).collect() };
    // Sizes up to the largest (120) land at every offset and must pad at the end; a frame
    // larger than the room left after padding needs the receiver to skip the padding, so
    // the two sides run on two threads.
    std::thread::scope(|s| {
        s.spawn(move || {
            for i in 0..500 {
                tx.send(&message(i)).unwrap();
            }
        });
        for i in 0..500 {
            assert_eq!(rx.recv().unwrap(), message(i), "message {i}");
        }
    });
}

#[test]
fn read_grant_releases_space_on_drop() {
    let (mut tx, mut rx, _) = heap_channel(64);
    tx.send(&[1; 48]).unwrap();
    assert!(matches!(tx.try_send(&[2; 48]), Err(TrySendError::Full(()))));
    {
        let frame = rx.read().unwrap();
        assert_eq!(frame.len(), 48);
        let mut part = [0u8; 4];
        frame.read_at(44, &mut part).unwrap();
        assert_eq!(part, [1; 4]);
        assert!(frame.read_at(45, &mut part).is_err());
        // Still held: no room yet.
        assert!(matches!(tx.try_send(&[2; 48]), Err(TrySendError::Full(()))));
    }
    tx.try_send(&[2; 48]).unwrap();
}

#[test]
fn deferred_sends_and_grants_publish_on_flush() {
    let (mut tx, mut rx, _) = heap_channel(4096);
    for i in 0..10u8 {
        tx.send_deferred(&[i; 3]).unwrap();
    }
    let mut grant = tx.reserve(4).unwrap();
    grant.write_at(0, b"last").unwrap();
    grant.commit_deferred(4).unwrap();
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    tx.flush();
    for i in 0..10u8 {
        assert_eq!(rx.try_recv().unwrap(), [i; 3]);
    }
    assert_eq!(rx.try_recv().unwrap(), b"last");
}

#[test]
fn batch_larger_than_the_ring_publishes_as_it_fills() {
    let (mut tx, mut rx, _) = heap_channel(64);
    std::thread::scope(|s| {
        s.spawn(move || {
            for i in 0..100u8 {
                tx.send_deferred(&[i; 8]).unwrap();
            }
            tx.flush();
        });
        for i in 0..100u8 {
            assert_eq!(rx.recv().unwrap(), [i; 8]);
        }
    });
}

#[test]
fn invalid_capacities_are_refused() {
    for capacity in [0, 8, 100, 1000] {
        let err = spsc::channel(capacity).unwrap_err();
        assert!(
            matches!(err, ChannelError::InvalidCapacity { .. }),
            "{capacity}: {err}"
        );
    }
    let small = Arc::new(HeapRegion::new(1024).unwrap());
    let err = Builder::<Spsc>::new(1024).create_in(small).unwrap_err();
    assert!(matches!(
        err,
        ChannelError::RegionTooSmall {
            needed: 1920, // DATA + 1024
            len: 1024
        }
    ));
}

#[test]
fn attach_validates_the_header() {
    let heap = Arc::new(HeapRegion::new(DATA + 256).unwrap());
    let err = Receiver::<Spsc>::attach(heap.clone()).unwrap_err();
    assert!(matches!(err, ChannelError::Header(_)), "{err}");
    let mut tx = Builder::<Spsc>::new(256)
        .create_sender_in(heap.clone())
        .unwrap();
    let mut rx = Receiver::<Spsc>::attach(heap.clone()).unwrap();
    tx.send(b"attached").unwrap();
    assert_eq!(rx.recv().unwrap(), b"attached");
    // A second receiver while this (live) process owns it is refused.
    assert!(matches!(
        Receiver::<Spsc>::attach(heap.clone()),
        Err(ChannelError::Ownership(_))
    ));
    // Corrupt capacity in the header: refused.
    heap.atomic_u64(16)
        .unwrap()
        .store(1 << 20, Ordering::SeqCst);
    assert!(matches!(
        Sender::<Spsc>::attach(heap.clone()),
        Err(ChannelError::RegionTooSmall { .. })
    ));
    heap.atomic_u64(16).unwrap().store(100, Ordering::SeqCst);
    assert!(matches!(
        Sender::<Spsc>::attach(heap),
        Err(ChannelError::InvalidCapacity { .. })
    ));
}

#[test]
fn garbage_tail_does_not_mislead_the_receiver() {
    for garbage in [u64::MAX, 257, 256 + 8, 3, 2 * 256 - 1] {
        let (mut tx, mut rx, heap) = heap_channel(256);
        tx.send(b"ok").unwrap();
        heap.atomic_u64(TAIL)
            .unwrap()
            .store(garbage, Ordering::SeqCst);
        // The receiver finds frames by their headers, never by the tail: it reads what was
        // sent, then nothing; only `len`, an estimate, reads the tail (clamped).
        assert_eq!(rx.try_recv().unwrap(), b"ok", "{garbage:#x}");
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "{garbage:#x}");
        assert!(rx.len() <= 256, "{garbage:#x}");
        tx.send(b"more").unwrap();
        assert_eq!(rx.try_recv().unwrap(), b"more", "{garbage:#x}");
    }
}

#[test]
fn garbage_head_is_corruption() {
    for garbage in [u64::MAX, 1, 512, 4096] {
        let (mut tx, _rx, heap) = heap_channel(64);
        heap.atomic_u64(HEAD)
            .unwrap()
            .store(garbage, Ordering::SeqCst);
        // The sender loads the head when it thinks the ring is full.
        let mut result = Ok(());
        for _ in 0..10 {
            result = tx.try_send(&[0; 8]);
            if result.is_err() {
                break;
            }
        }
        assert!(
            matches!(result, Err(TrySendError::Send(SendError::Corrupted((), _)))),
            "{garbage:#x}: {result:?}"
        );
    }
}

#[test]
fn garbage_frame_header_is_corruption() {
    // Words of the current lap (0) that no sender writes.
    for garbage in [
        0xD1 << 32 | 250,
        0xD1 << 32 | 0xffff_ffff,
        0xAD << 32 | 8,
        0x7f << 32 | 8,
        0xD1 << 32 | 1 << 40 | 8,
        // A lined frame longer than the ring.
        0xD3 << 32 | 250,
    ] {
        let (mut tx, mut rx, heap) = heap_channel(256);
        tx.send(&[0; 16]).unwrap();
        heap.atomic_u64(DATA)
            .unwrap()
            .store(garbage, Ordering::SeqCst);
        let err = rx.try_recv().unwrap_err();
        assert!(
            matches!(err, TryRecvError::Recv(RecvError::Corrupted(_))),
            "{garbage:#x}: {err}"
        );
    }
}

#[test]
fn a_lined_frame_whose_padding_passes_the_ring_end_is_corruption() {
    // In a 32-byte ring an 8-byte frame fits, but not the padding to the next 64-byte line.
    let (mut tx, mut rx, heap) = heap_channel(32);
    tx.send(&[0; 8]).unwrap();
    heap.atomic_u64(DATA)
        .unwrap()
        .store(0xD3 << 32 | 8, Ordering::SeqCst);
    let err = rx.try_recv().unwrap_err();
    assert!(
        matches!(err, TryRecvError::Recv(RecvError::Corrupted(_))),
        "{err}"
    );
}

#[test]
fn frame_headers_of_another_lap_are_not_frames_yet() {
    // Zero, and words of other laps (the top 16 bits): the receiver waits for the frame,
    // as it would for a slow sender.
    for garbage in [
        0u64,
        u64::MAX,
        1 << FRAME_LAP_SHIFT | 0xD1 << 32 | 8,
        0xffff << FRAME_LAP_SHIFT | 0xAD << 32 | 256,
    ] {
        let (mut tx, mut rx, heap) = heap_channel(256);
        tx.send(&[0; 16]).unwrap();
        heap.atomic_u64(DATA)
            .unwrap()
            .store(garbage, Ordering::SeqCst);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "{garbage:#x}");
    }
}

#[test]
fn typed_round_trips_with_every_codec() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
    struct Msg {
        seq: u64,
        name: String,
        values: Vec<f32>,
        tag: Option<char>,
    }
    let msg = |i: u64| Msg {
        seq: i,
        name: format!("message {i}"),
        values: (0..i % 7).map(|v| v as f32 * 0.5).collect(),
        tag: (i % 2 == 0).then_some('x'),
    };

    let (mut tx, mut rx) = typed_heap::<Msg, Bincode>(512);
    for i in 0..100 {
        tx.send(msg(i)).unwrap();
        assert_eq!(rx.recv().unwrap(), msg(i));
    }
    let (mut tx, mut rx) = typed_heap::<Msg, Postcard>(512);
    for i in 0..100 {
        tx.send(msg(i)).unwrap();
        assert_eq!(rx.recv().unwrap(), msg(i));
    }
    let (mut tx, mut rx) = typed_heap::<[u32; 5], Plain>(512);
    for i in 0..100 {
        tx.send([i; 5]).unwrap();
        assert_eq!(rx.recv().unwrap(), [i; 5]);
    }
}

#[test]
fn typed_errors_hand_the_value_back() {
    let (mut tx, rx) = typed_heap::<String, Bincode>(64);
    let err = tx.send("x".repeat(100)).unwrap_err();
    assert!(matches!(
        &err,
        typed::SendError::Send(SendError::TooLarge(_, 56))
    ));
    assert_eq!(err.into_inner().len(), 100);
    drop(rx);
    let err = tx.send("bye".into()).unwrap_err();
    assert!(matches!(&err, typed::SendError::Send(SendError::Disconnected(s)) if s == "bye"));
}

#[test]
fn undecodable_frames_are_decode_errors() {
    let (mut tx, rx, _) = heap_channel(256);
    let mut rx_plain = typed::Receiver::<u64, _, Plain>::try_from(rx).unwrap();
    tx.send(&[1, 2, 3]).unwrap();
    assert_eq!(
        rx_plain.recv(),
        Err(typed::RecvError::Decode(CodecError::Length {
            expected: 8,
            found: 3
        }))
    );
    // A channel's typed ends carry one type: each codec gets a channel of its own.
    let (mut tx, rx, _) = heap_channel(256);
    let mut rx_bincode = typed::Receiver::<String, _, Bincode>::try_from(rx).unwrap();
    // A length prefix announcing 2^60 bytes: refused without allocating them.
    tx.send(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0x10]).unwrap();
    assert!(matches!(
        rx_bincode.recv(),
        Err(typed::RecvError::Decode(_))
    ));
    tx.send(&[3, 0xff, 0xfe, 0xfd]).unwrap(); // invalid UTF-8
    assert!(matches!(
        rx_bincode.recv(),
        Err(typed::RecvError::Decode(_))
    ));
    let (mut tx, rx, _) = heap_channel(256);
    let mut rx_postcard = typed::Receiver::<String, _, Postcard>::try_from(rx).unwrap();
    tx.send(&[0xff, 0xff, 0xff, 0xff, 0x0f]).unwrap();
    assert!(matches!(
        rx_postcard.recv(),
        Err(typed::RecvError::Decode(_))
    ));
    // The channel carries on after decode errors.
    tx.send(&[2, b'o', b'k']).unwrap();
    assert_eq!(rx_postcard.recv().unwrap(), "ok");
}

#[test]
fn two_threads_stream_checked_messages() {
    let count: u32 = if cfg!(miri) { 200 } else { 200_000 };
    let (mut tx, mut rx, _) = heap_channel(1024);
    std::thread::scope(|s| {
        s.spawn(move || {
            for seq in 0..count {
                let len = 4 + (seq as usize * 7) % 60;
                let mut msg = vec![(seq % 251) as u8; len];
                msg[..4].copy_from_slice(&seq.to_le_bytes());
                tx.send(&msg).unwrap();
            }
        });
        let mut buf = [0u8; 64];
        for seq in 0..count {
            let len = rx.recv_into(&mut buf).unwrap();
            assert_eq!(len, 4 + (seq as usize * 7) % 60);
            assert_eq!(u32::from_le_bytes(buf[..4].try_into().unwrap()), seq);
            assert!(buf[4..len].iter().all(|b| *b == (seq % 251) as u8));
        }
        assert_eq!(rx.recv(), Err(RecvError::Disconnected));
    });
}

#[test]
fn batched_releases_are_handed_back_when_the_batch_fills_or_the_ring_empties() {
    let (mut tx, mut rx, heap) = heap_channel(256);
    rx.set_release_batch(64);
    let head = || heap.atomic_u64(HEAD).unwrap().load(Ordering::SeqCst);
    for i in 0..4u8 {
        tx.send(&[i; 8]).unwrap(); // 16-byte frames
    }
    assert_eq!(rx.recv().unwrap(), [0; 8]);
    assert_eq!(head(), 0, "one release waits in the batch");
    for i in 1..4u8 {
        assert_eq!(rx.recv().unwrap(), [i; 8]);
    }
    // 64 bytes released: the batch is full at the fifth frame or when the ring empties.
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(head(), 64, "found empty: every release handed back");

    // A sender blocked on a full ring is released by the receiver's batches.
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..200u32 {
                tx.send(&i.to_le_bytes()).unwrap();
            }
        });
        for i in 0..200u32 {
            assert_eq!(rx.recv().unwrap(), i.to_le_bytes());
        }
    });
    drop(rx);
    assert_eq!(
        head(),
        64 + 200 * 16,
        "dropping the receiver hands back its batch"
    );
}
