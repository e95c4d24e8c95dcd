//! The kit's offsets (`shm_testkit::layout`, plain numbers: the kit cannot depend on this
//! crate) against live channels of every flavor: each named word moves when the channel
//! does what writes it. If a layout changes and the kit does not, this fails, instead of
//! the hostile tests and fuzz targets silently poking the wrong words.

use shm_channel::Builder;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shm_channel::{broadcast, mpsc, spsc, Flavor, Receiver, Sender};
use shm_core::liveness::ProcessIdentity;
use shm_core::{HeapRegion, SharedMemory};
use shm_testkit::layout::{self, event, frame, header};
use shm_testkit::Words;

mod support;
use support::Mem;

fn me() -> u64 {
    ProcessIdentity::current().unwrap().to_raw()
}

fn heap(len: usize) -> Arc<dyn SharedMemory> {
    Arc::new(HeapRegion::new(len).unwrap())
}

/// Waits (bounded) until the u32 at `offset` is `value`.
fn eventually(mem: Mem, offset: usize, value: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while mem.load(layout::Word::u32("waiters", offset)) != value {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

/// A receiver blocked on an empty ring announces itself on the data event at `data_event`;
/// a send wakes it.
fn receiver_waits_on_the_data_event<F: Flavor>(
    tx: &mut Sender<F>,
    rx: &mut Receiver<F>,
    mem: Mem,
    data_event: usize,
) {
    std::thread::scope(|s| {
        let waiter = s.spawn(|| rx.recv_timeout(Duration::from_secs(10)).map(|_| ()));
        assert!(eventually(mem, data_event + event::WAITERS, 1));
        tx.send(b"wake").unwrap();
        waiter.join().unwrap().unwrap();
    });
}

/// A sender blocked on a full ring announces itself on the space event at `space_event`;
/// a receive frees it.
fn sender_waits_on_the_space_event<F: Flavor>(
    tx: &mut Sender<F>,
    rx: &mut Receiver<F>,
    mem: Mem,
    space_event: usize,
) {
    while tx.try_send(&[0; 24]).is_ok() {}
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            tx.send_timeout(&[1; 24], Duration::from_secs(10))
                .map(|_| ())
        });
        assert!(eventually(mem, space_event + event::WAITERS, 1));
        rx.recv().unwrap();
        waiter.join().unwrap().unwrap();
    });
}

fn check_header(mem: Mem, magic: &[u8; 8], version: u64, capacity: usize, len: usize) {
    assert_eq!(mem.load(header::WORDS[0]), u64::from_le_bytes(*magic));
    assert_eq!(mem.load(header::WORDS[1]), version, "version");
    assert_eq!(mem.load_u64(header::CAPACITY), capacity as u64);
    assert_eq!(mem.load_u64(header::REGION_LEN), len as u64);
    assert_ne!(mem.load_u64(header::HASH), 0);
}

#[test]
fn spsc_offsets_match_the_channel() {
    use layout::spsc::*;
    const CAP: usize = 256;
    assert_eq!(
        Builder::<spsc::Spsc>::new(CAP).region_len(),
        Some(region_len(CAP))
    );
    let memory = heap(region_len(CAP));
    let mem = Mem(&*memory);
    let (mut tx, mut rx) = Builder::<spsc::Spsc>::new(CAP)
        .create_in(memory.clone())
        .unwrap();
    check_header(mem, b"SHMSPSC1", LAYOUT_VERSION, CAP, region_len(CAP));
    assert_eq!(mem.load_u64(SENDER_OWNER), me());
    assert_eq!(mem.load_u64(RECEIVER_OWNER), me());
    tx.send(b"hello").unwrap();
    assert_eq!(mem.load_u64(TAIL), frame::frame_len(5));
    assert_eq!(mem.load_u64(DATA), frame::data(5, 0));
    assert_eq!(mem.load_u64(HEAD), 0);
    std::thread::scope(|s| {
        let rx = &mut rx;
        let waiter = s.spawn(move || {
            let first = rx.recv_timeout(Duration::from_secs(10)).unwrap();
            let second = rx.recv_timeout(Duration::from_secs(10)).unwrap();
            (first, second)
        });
        // The receiver takes "hello", then sleeps on the data event.
        assert!(eventually(mem, DATA_EVENT + event::WAITERS, 1));
        tx.send(b"again").unwrap();
        let (first, second) = waiter.join().unwrap();
        assert_eq!((&first[..], &second[..]), (&b"hello"[..], &b"again"[..]));
    });
    assert_eq!(mem.load_u64(HEAD), 2 * frame::frame_len(5));
    assert_ne!(mem.load(WORDS[6]), 0, "the data event's seq moved");
    sender_waits_on_the_space_event(&mut tx, &mut rx, mem, SPACE_EVENT);
    drop(tx);
    assert_eq!(mem.load(WORDS[4]), 1, "sender closed");
    assert_eq!(mem.load_u64(SENDER_OWNER), 0);
    drop(rx);
    assert_eq!(mem.load(WORDS[5]), 1, "receiver closed");
    assert_eq!(mem.load_u64(RECEIVER_OWNER), 0);
    assert_eq!(
        WORDS.iter().map(|w| w.offset).collect::<Vec<_>>(),
        [
            128, 256, 384, 392, 400, 404, 512, 516, 528, 532, 520, 536, 420, 640, 648, 668, 680,
            684
        ]
    );
    assert_eq!((TYPES, DATA), (640, 896));
    type_line_is_written_by_the_first_typed_end::<spsc::Spsc>(memory, TYPES);
}

/// The type line at `types`: untouched by byte ends, written by the first typed end (its
/// fingerprint, then the description), read back by [`Endpoint::type_fingerprint`].
fn type_line_is_written_by_the_first_typed_end<F: Flavor>(
    memory: Arc<dyn SharedMemory>,
    types: usize,
) where
    Sender<F>: shm_channel::Endpoint,
{
    use shm_channel::codec::Plain;
    use shm_channel::{typed, Endpoint};
    use shm_testkit::layout::types::*;
    let mem = Mem(&*memory);
    assert_eq!(
        mem.load_u64(types + FINGERPRINT),
        0,
        "a byte channel is untyped"
    );
    let tx = Sender::<F>::attach(memory.clone()).unwrap();
    let tx = typed::Sender::<[u32; 3], F, Plain>::try_from(tx).unwrap();
    let recorded = tx.type_fingerprint().unwrap();
    assert_eq!(mem.load_u64(types + FINGERPRINT), recorded.id());
    assert_eq!(mem.load_u64(types + DESCRIBED), recorded.id());
    assert_eq!(mem.load_u64(types + SIZE), 12);
    assert_eq!(mem.load(layout::Word::u32("align", types + ALIGN)), 4);
    assert_eq!(mem.load(layout::Word::u32("flags", types + FLAGS)), 1);
    assert_eq!(
        mem.load(layout::Word::u32("name length", types + NAME_LEN)),
        8
    );
    assert_eq!(
        mem.load(layout::Word::u32("codec length", types + CODEC_LEN)),
        5
    );
    assert_eq!(
        mem.load_u64(types + CODEC),
        u64::from_le_bytes(*b"plain\0\0\0")
    );
    assert_eq!(mem.load_u64(types + NAME), u64::from_le_bytes(*b"[u32; 3]"));
    assert_eq!(
        recorded.to_string(),
        "`[u32; 3]` by plain (12 bytes, align 4)"
    );
    assert!(types + LEN <= memory.len());
}

#[test]
fn mpsc_offsets_match_the_channel() {
    use layout::mpsc::*;
    const CAP: usize = 256;
    assert_eq!(
        Builder::<mpsc::Mpsc>::new(CAP).region_len(),
        Some(region_len(CAP))
    );
    assert_eq!(mpsc::MAX_SENDERS, MAX_SENDERS);
    assert_eq!(mpsc::DEFAULT_MAX_SENDERS, DEFAULT_LANES);
    let memory = heap(region_len(CAP));
    let mem = Mem(&*memory);
    let (mut tx, mut rx) = Builder::<mpsc::Mpsc>::new(CAP)
        .create_in(memory.clone())
        .unwrap();
    // The header's capacity is the whole data area: every lane.
    check_header(
        mem,
        b"SHMMPSC1",
        LAYOUT_VERSION,
        DEFAULT_LANES * CAP,
        region_len(CAP),
    );
    assert_eq!(mem.load_u64(LANES), DEFAULT_LANES as u64);
    assert_eq!(mem.load_u64(RECEIVER_OWNER), me());
    assert_eq!(mem.load(WORDS[1]), 1, "sender count");
    assert_eq!(mem.load_u64(USED), 0b1, "lane 0 used");
    let tx2 = tx.try_clone().unwrap();
    assert_eq!((tx.slot(), tx2.slot()), (0, 1));
    assert_eq!(mem.load(WORDS[1]), 2, "sender count");
    assert_eq!(mem.load_u64(USED), 0b11, "lanes 0 and 1 used");
    assert_eq!(mem.load(slot_words(1)[0]), me());
    drop(tx2);
    assert_eq!(mem.load(WORDS[1]), 1, "sender count");
    assert_eq!(mem.load(slot_words(1)[0]), 0, "slot 1 free again");
    let [owner, _, _, tail, head, _, _] = slot_words(0);
    assert_eq!(mem.load(owner), me());
    tx.send(b"hello").unwrap();
    assert_eq!(mem.load(tail), frame::frame_len(5));
    assert_eq!(mem.load_u64(DATA), frame::data(5, 0));
    assert_eq!(rx.recv().unwrap(), b"hello");
    assert_eq!(mem.load(head), frame::frame_len(5));
    // Lane 1 lies a capacity further on.
    let mut tx3 = tx.try_clone().unwrap();
    assert_eq!(tx3.slot(), 1);
    tx3.send(b"lane one").unwrap();
    assert_eq!(mem.load_u64(DATA + CAP), frame::data(8, 0));
    assert_eq!(rx.recv().unwrap(), b"lane one");
    drop(tx3);
    receiver_waits_on_the_data_event(&mut tx, &mut rx, mem, DATA_EVENT);
    // A sender blocked on a full lane sleeps on its slot's space event.
    sender_waits_on_the_space_event(&mut tx, &mut rx, mem, slot(0) + SLOT_SPACE_EVENT);
    drop(rx);
    assert_eq!(mem.load(WORDS[2]), 1, "receiver closed");
    assert_eq!(mem.load_u64(RECEIVER_OWNER), 0);
    assert_eq!((TYPES, DATA), (25088, 25344));
    type_line_is_written_by_the_first_typed_end::<mpsc::Mpsc>(memory, TYPES);
}

#[test]
fn broadcast_offsets_match_the_channel() {
    use layout::broadcast::*;
    const CAP: usize = 256;
    assert_eq!(
        Builder::<broadcast::Broadcast>::new(CAP).region_len(),
        Some(region_len(CAP))
    );
    assert_eq!(broadcast::MAX_READERS, MAX_READERS);
    let memory = heap(region_len(CAP));
    let mem = Mem(&*memory);
    let (mut tx, mut rx) = Builder::<broadcast::Broadcast>::new(CAP)
        .policy(broadcast::Policy::Overwrite)
        .create_in(memory.clone())
        .unwrap();
    check_header(mem, b"SHMBCST1", LAYOUT_VERSION, CAP, region_len(CAP));
    assert_eq!(mem.load_u64(SENDER_OWNER), me());
    assert_eq!(mem.load(WORDS[4]), 1, "policy: overwrite");
    let [owner, cursor] = reader_words(0);
    assert_eq!(mem.load(owner), me());
    tx.send(b"hello").unwrap();
    assert_eq!(mem.load_u64(TAIL), 32);
    assert_eq!(mem.load_u64(DATA), 1, "stamp: sequence number + 1");
    assert_eq!(mem.load_u64(DATA + 8), frame::data(5, 0));
    assert_eq!(rx.recv().unwrap(), b"hello");
    assert_eq!(mem.load(cursor), 32);
    let rx2 = tx.subscribe().unwrap();
    assert_eq!(mem.load(reader_words(1)[0]), me());
    drop(rx2);
    assert_eq!(mem.load(reader_words(1)[0]), 0);
    receiver_waits_on_the_data_event(&mut tx, &mut rx, mem, DATA_EVENT);
    assert_eq!(mem.load_u64(OLDEST), 0);
    for i in 0..20u8 {
        tx.send(&[i; 8]).unwrap();
    }
    assert!(mem.load_u64(OLDEST) > 0, "overwriting raised oldest");
    drop(tx);
    assert_eq!(mem.load(WORDS[3]), 1, "sender closed");
    assert_eq!(mem.load_u64(SENDER_OWNER), 0);
    assert_eq!((SPACE_EVENT, TYPES, DATA), (400, 2560, 2816));
    type_line_is_written_by_the_first_typed_end::<broadcast::Broadcast>(memory, TYPES);
}

/// The line hint (SPSC: the status line's, MPSC: each sender slot's) turns the next
/// frames into lined ones: the tag `frame::TAG_LINED`, each frame padded to the next
/// 64-byte line, every message delivered; a lane smaller than 4 KiB never lines.
fn lined_frames_follow_the_hint<F: Flavor>(
    builder: impl Fn(usize) -> Builder<F>,
    region_len: fn(usize) -> usize,
    data: usize,
    hint: layout::Word,
    tail: layout::Word,
) {
    for (cap, lined) in [(4096, true), (2048, false)] {
        let memory = heap(region_len(cap));
        let mem = Mem(&*memory);
        let (mut tx, mut rx) = builder(cap).create_in(memory.clone()).unwrap();
        mem.store(hint, 1);
        tx.send(b"hello").unwrap();
        tx.send(&[7; 64]).unwrap();
        if lined {
            assert_eq!(mem.load_u64(data), frame::lined(5), "{cap}");
            assert_eq!(mem.load_u64(data + 64), frame::lined(64), "{cap}");
            assert_eq!(mem.load(tail), 64 + 128, "{cap}");
        } else {
            assert_eq!(mem.load_u64(data), frame::data(5, 0), "{cap}");
            let second = data + frame::frame_len(5) as usize;
            assert_eq!(mem.load_u64(second), frame::data(64, 0), "{cap}");
        }
        assert_eq!(rx.recv().unwrap(), b"hello");
        assert_eq!(rx.recv().unwrap(), [7; 64]);
        // A grant given up, then one committed shorter than reserved: the frame's span
        // follows what was committed.
        drop(tx.reserve(200).unwrap());
        let mut grant = tx.reserve(200).unwrap();
        grant.write_at(0, b"short").unwrap();
        grant.commit(5).unwrap();
        if lined {
            assert_eq!(mem.load_u64(data + 192), frame::lined(5), "{cap}");
        }
        assert_eq!(rx.recv().unwrap(), b"short");
        // Around the ring a few times, every size from 0 to 300 bytes, still lined.
        for round in 0..40usize {
            let msg = vec![round as u8; (round * 37) % 301];
            tx.send(&msg).unwrap();
            assert_eq!(rx.recv().unwrap(), msg, "{cap} round {round}");
        }
    }
}

#[test]
fn spsc_frames_are_lined_while_the_hint_asks() {
    use layout::spsc::*;
    lined_frames_follow_the_hint(
        Builder::<spsc::Spsc>::new,
        region_len,
        DATA,
        layout::Word::u32("line hint", LINE_HINT),
        WORDS[0],
    );
}

#[test]
fn mpsc_frames_are_lined_while_the_hint_asks() {
    use layout::mpsc::*;
    lined_frames_follow_the_hint(
        Builder::<mpsc::Mpsc>::new,
        region_len,
        DATA,
        slot_words(0)[6],
        slot_words(0)[3],
    );
}

/// A receiver that finds each frame at its first look, right behind the sender, asks for
/// lined frames after 256 of them; one that finds nothing before each frame (a round
/// trip's pattern) stops asking after 256 more.
#[test]
fn a_receiver_close_behind_its_sender_asks_for_lines_and_stops_when_it_waits() {
    use layout::spsc::*;
    const CAP: usize = 1 << 16;
    let memory = heap(region_len(CAP));
    let mem = Mem(&*memory);
    let hint = layout::Word::u32("line hint", LINE_HINT);
    let (mut tx, mut rx) = Builder::<spsc::Spsc>::new(CAP)
        .create_in(memory.clone())
        .unwrap();
    for i in 0..256u32 {
        assert_eq!(mem.load(hint), 0, "frame {i}");
        tx.send(&i.to_le_bytes()).unwrap();
        assert_eq!(rx.recv().unwrap(), i.to_le_bytes());
    }
    assert_eq!(mem.load(hint), 1, "streaming close behind");
    for i in 0..256u32 {
        assert_eq!(mem.load(hint), 1, "frame {i}");
        assert!(rx.try_recv().is_err());
        tx.send(&i.to_le_bytes()).unwrap();
        assert_eq!(rx.recv().unwrap(), i.to_le_bytes());
    }
    assert_eq!(mem.load(hint), 0, "waiting before each frame");
}
