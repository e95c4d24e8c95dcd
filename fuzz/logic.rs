//! The bodies of the fuzz targets, shared by the cargo-fuzz binaries (`fuzz/fuzz_targets/`)
//! and by `crates/shm-channel/tests/corpus.rs`, which replays the checked-in corpus as an
//! ordinary test. Both include this file with `#[path]`, so the logic exists once.
//!
//! Every target must end in `Ok` or a clean `Err` for any input: a panic, a hang or an
//! out-of-bounds access (AddressSanitizer under cargo-fuzz, guard pages in the replay) is a
//! finding. Hangs are ruled out by construction — only `try_*` and `*_timeout` calls with
//! tiny timeouts — and each call is checked against a generous bound.

#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shm_channel::codec::{Bincode, Codec, Plain, Postcard};
use shm_channel::spsc::{Builder, Receiver, Sender};
use shm_channel::{
    typed, ChannelError, RecvError, RecvIntoError, RecvTimeoutError, SendError, SendTimeoutError,
    TryRecvError, TrySendError,
};
use shm_core::{HeapRegion, SharedMemory};

/// Offsets in the SPSC control block (see `crates/shm-channel/src/layout.rs`).
pub const MAGIC: usize = 0;
/// Layout version (u32).
pub const VERSION: usize = 8;
/// Platform word (u32).
pub const PLATFORM: usize = 12;
/// Header capacity (u64).
pub const CAPACITY: usize = 16;
/// Layout hash (u64).
pub const HASH: usize = 24;
/// Declared region length (u64).
pub const REGION_LEN: usize = 32;
/// Producer tail (u64).
pub const TAIL: usize = 128;
/// Consumer head (u64).
pub const HEAD: usize = 256;
/// Sender owner identity (u64).
pub const SENDER_OWNER: usize = 384;
/// Receiver owner identity (u64).
pub const RECEIVER_OWNER: usize = 392;
/// Sender closed flag (u32).
pub const SENDER_CLOSED: usize = 400;
/// Receiver closed flag (u32).
pub const RECEIVER_CLOSED: usize = 404;
/// Data event (seq u32, waiters u32).
pub const DATA_EVENT: usize = 512;
/// Space event (seq u32, waiters u32).
pub const SPACE_EVENT: usize = 520;
/// Start of the frames.
pub const DATA: usize = 640;

/// Tags of frame header words (bits 32..40).
const TAG_DATA: u64 = 0xD1;
const TAG_PAD: u64 = 0xAD;

/// Longest any single call may take, though every call here has a deadline of at most a
/// millisecond: far beyond any scheduling delay, so only a real hang trips it.
const CALL_BOUND: Duration = Duration::from_secs(10);

/// The memory a target runs on: `len` usable bytes, zeroed.
pub type MakeMemory = fn(usize) -> Arc<dyn SharedMemory>;

/// A private heap buffer (AddressSanitizer sees any access past its end).
pub fn heap_memory(len: usize) -> Arc<dyn SharedMemory> {
    Arc::new(HeapRegion::new(len).expect("heap region"))
}

/// A shared mapping between `PROT_NONE` guard pages (a stray access faults at once).
pub fn guarded_memory(len: usize) -> Arc<dyn SharedMemory> {
    Arc::new(
        shm_core::Region::options(len)
            .guard_pages(true)
            .anonymous()
            .expect("guarded region"),
    )
}

/// Runs `f`, panicking if it outlives [`CALL_BOUND`] (a call that ignores its deadline).
fn timed<R>(what: &str, f: impl FnOnce() -> R) -> R {
    let start = Instant::now();
    let result = f();
    let took = start.elapsed();
    assert!(took < CALL_BOUND, "{what} took {took:?}");
    result
}

/// A cursor over the fuzz input; reads past the end give zeros.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }
}

fn load_u64(memory: &dyn SharedMemory, offset: usize) -> u64 {
    memory
        .atomic_u64(offset)
        .map_or(0, |w| w.load(Ordering::SeqCst))
}

fn poke_u64(memory: &dyn SharedMemory, offset: usize, value: u64) {
    if let Ok(word) = memory.atomic_u64(offset & !7) {
        word.store(value, Ordering::SeqCst);
    }
}

fn poke_u32(memory: &dyn SharedMemory, offset: usize, value: u32) {
    if let Ok(word) = memory.atomic_u32(offset & !3) {
        word.store(value, Ordering::SeqCst);
    }
}

/// Largest payload of a ring of `capacity` bytes.
fn max_payload(capacity: usize) -> usize {
    capacity - 8
}

/// A failed call's outcome, whichever call made it (each has its own error type).
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    /// `Full`, `Empty` or `Timeout`: nothing happened in time.
    NotNow,
    Disconnected,
    TooLarge,
    /// `recv_into`'s buffer was too small for a message of this length.
    TooSmall(usize),
    /// Anything else, by its `Debug` form.
    Other(String),
}

/// The [`Failure`] an error stands for.
trait Classify: std::fmt::Debug {
    fn classify(&self) -> Failure;
}

macro_rules! classify_send {
    ($($error:ident $(:: $not_now:ident)?),*) => {$(
        impl Classify for $error<()> {
            fn classify(&self) -> Failure {
                match self {
                    $($error::$not_now(()) => Failure::NotNow,)?
                    $error::Disconnected(()) => Failure::Disconnected,
                    $error::TooLarge((), _) => Failure::TooLarge,
                    other => Failure::Other(format!("{other:?}")),
                }
            }
        }
    )*};
}

classify_send!(SendError, TrySendError::Full, SendTimeoutError::Timeout);

macro_rules! classify_recv {
    ($($error:ident $(:: $not_now:ident)?),*) => {$(
        impl Classify for $error {
            fn classify(&self) -> Failure {
                match self {
                    $($error::$not_now => Failure::NotNow,)?
                    $error::Disconnected => Failure::Disconnected,
                    other => Failure::Other(format!("{other:?}")),
                }
            }
        }
    )*};
}

classify_recv!(RecvError, TryRecvError::Empty, RecvTimeoutError::Timeout);

impl<E: Classify> Classify for RecvIntoError<E> {
    fn classify(&self) -> Failure {
        match self {
            RecvIntoError::BufferTooSmall { needed } => Failure::TooSmall(*needed),
            RecvIntoError::Recv(e) => e.classify(),
        }
    }
}

/// Checks what a receive returned on a ring of `capacity`: a message no longer than the
/// ring can hold, or an error.
fn check_received<E>(result: &Result<Vec<u8>, E>, capacity: usize) {
    if let Ok(msg) = result {
        assert!(msg.len() <= max_payload(capacity), "{} bytes", msg.len());
    }
}

// ---------------------------------------------------------------------------------------
// Target (a): attach to arbitrary bytes.
// ---------------------------------------------------------------------------------------

/// Attaches a sender and a receiver to memory filled from `data`, then drives them.
///
/// `data[0]`: bits 4..7 pick the capacity (16 << n); bits 0..1 pick how the input lands:
/// 0 raw bytes from offset 0 (header included); 1 a valid channel, then the input over
/// everything after the header; 2 and 3 a valid channel, then the input read as sparse
/// `(u16 offset, u64 value)` patches.
pub fn attach(data: &[u8], make: MakeMemory) {
    let mut input = Input(data);
    let mode = input.u8();
    let capacity = 16usize << ((mode >> 4) & 7);
    let memory = make(DATA + capacity);
    match mode & 3 {
        0 => {
            let n = input.0.len().min(memory.len());
            memory.write_bytes(0, &input.0[..n]).unwrap();
        }
        1 => {
            drop(Builder::new(capacity).create_in(memory.clone()).unwrap());
            let n = input.0.len().min(memory.len() - 64);
            memory.write_bytes(64, &input.0[..n]).unwrap();
        }
        _ => {
            drop(Builder::new(capacity).create_in(memory.clone()).unwrap());
            while !input.is_empty() {
                let offset = usize::from(input.u16()) % memory.len();
                poke_u64(&*memory, offset, input.u64());
            }
        }
    }
    let tx = timed("Sender::attach", || Sender::attach(memory.clone()));
    let rx = timed("Receiver::attach", || Receiver::attach(memory.clone()));
    check_attach(&tx, &*memory);
    check_attach(&rx, &*memory);
    drive_attached(tx.ok(), rx.ok());
}

/// An attach that succeeded found a channel that fits the mapping.
fn check_attach<E: Endpoint>(result: &Result<E, ChannelError>, memory: &dyn SharedMemory) {
    if let Ok(endpoint) = result {
        let capacity = endpoint.capacity();
        assert!(capacity.is_power_of_two() && capacity >= 16);
        assert!(DATA + capacity <= memory.len());
    }
}

trait Endpoint {
    fn capacity(&self) -> usize;
}

impl Endpoint for Sender {
    fn capacity(&self) -> usize {
        Sender::capacity(self)
    }
}

impl Endpoint for Receiver {
    fn capacity(&self) -> usize {
        Receiver::capacity(self)
    }
}

/// A few operations on whatever attached.
fn drive_attached(mut tx: Option<Sender>, mut rx: Option<Receiver>) {
    let tiny = Duration::from_micros(200);
    for round in 0..3usize {
        if let Some(tx) = tx.as_mut() {
            let len = [0, 1, 8, tx.capacity() / 2, tx.max_message_len()][round % 5];
            let msg = vec![0x5a; len];
            let _ = timed("try_send", || tx.try_send(&msg));
            let _ = timed("send_timeout", || tx.send_timeout(b"attached", tiny));
            if let Ok(mut grant) = timed("try_reserve", || tx.try_reserve(24)) {
                let _ = grant.write_at(0, &[7; 24]);
                grant.commit(17);
            }
        }
        if let Some(rx) = rx.as_mut() {
            let capacity = rx.capacity();
            let got = timed("try_recv", || rx.try_recv());
            check_received(&got, capacity);
            let got = timed("recv_timeout", || rx.recv_timeout(tiny));
            check_received(&got, capacity);
            if let Ok(grant) = timed("try_read", || rx.try_read()) {
                let mut buf = [0u8; 16];
                let _ = grant.read_at(0, &mut buf[..grant.len().min(16)]);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Target (b): a hostile peer's script.
// ---------------------------------------------------------------------------------------

/// The state of a script: our endpoints, and what we expect while nobody tampered.
struct Script {
    memory: Arc<dyn SharedMemory>,
    capacity: usize,
    tx: Option<Sender>,
    rx: Option<Receiver>,
    /// Messages sent and not yet received, while the shared memory holds only what our own
    /// endpoints wrote; `None` from the first hostile write on.
    model: Option<VecDeque<Vec<u8>>>,
    /// Messages made so far (their contents derive from this counter).
    made: u64,
}

impl Script {
    fn message(&mut self, len: usize) -> Vec<u8> {
        self.made += 1;
        let seed = self.made;
        (0..len)
            .map(|i| (seed.wrapping_mul(31).wrapping_add(i as u64)) as u8)
            .collect()
    }

    fn clean(&self) -> bool {
        self.model.is_some()
    }

    fn sent(&mut self, msg: Vec<u8>) {
        if let Some(model) = self.model.as_mut() {
            model.push_back(msg);
        }
    }

    /// Checks a send outcome; while clean, an error must be one a sane channel gives.
    fn check_send(&mut self, result: Result<(), impl Classify>, msg: Vec<u8>) {
        match result.map_err(|e| e.classify()) {
            Ok(()) => self.sent(msg),
            Err(Failure::NotNow | Failure::TooLarge) => {}
            Err(Failure::Disconnected) => {
                assert!(
                    !self.clean() || self.rx.is_none(),
                    "disconnected while clean"
                )
            }
            Err(err) => assert!(!self.clean(), "{err:?} while clean"),
        }
    }

    /// Checks a receive outcome against the model while clean.
    fn check_recv(&mut self, result: Result<Vec<u8>, impl Classify>) {
        check_received(&result, self.capacity);
        let tx_gone = self.tx.is_none();
        let Some(model) = self.model.as_mut() else {
            return;
        };
        match result.map_err(|e| e.classify()) {
            Ok(msg) => {
                let expected = model.pop_front();
                assert_eq!(Some(msg), expected, "reordered, lost or partial message");
            }
            Err(Failure::NotNow) => {
                assert!(model.is_empty(), "{} messages not seen", model.len())
            }
            Err(Failure::Disconnected) => {
                assert!(model.is_empty() && tx_gone, "disconnected too early")
            }
            Err(Failure::TooSmall(needed)) => {
                assert_eq!(Some(needed), model.front().map(Vec::len))
            }
            Err(err) => panic!("{err:?} while clean"),
        }
    }

    /// A hostile write: the model no longer holds.
    fn tamper(&mut self) {
        self.model = None;
    }

    /// A value a hostile peer would find interesting for the word at `offset`.
    fn special(&self, pick: u8, offset: usize) -> u64 {
        let cap = self.capacity as u64;
        let here = load_u64(&*self.memory, offset & !7);
        let len = |n: u64| n & 0xffff_ffff;
        match pick % 24 {
            0 => 0,
            1 => u64::MAX,
            2 => cap,
            3 => cap + 1,
            4 => 2 * cap - 1,
            5 => 0xFFFF_FFF8,
            6 => here.wrapping_add(8),
            7 => here.wrapping_sub(8),
            8 => here.wrapping_add(cap),
            9 => here.wrapping_add(cap + 8),
            10 => here.wrapping_add(4),
            11 => 1 << 63,
            12 => 7,
            13 => (TAG_DATA << 32) | len(cap),
            14 => (TAG_DATA << 32) | len(cap - 8),
            15 => (TAG_DATA << 32) | 0xFFFF_FFF8,
            16 => (TAG_PAD << 32) | len(cap),
            17 => (TAG_PAD << 32) | 8,
            18 => TAG_PAD << 32,
            19 => here ^ (1 << 33), // a flipped tag bit
            20 => here ^ (0xff << 40),
            21 => shm_core::liveness::ProcessIdentity::current().map_or(1, |me| me.to_raw()),
            22 => 1 | (12345 << 22), // pid 1 with a start time it does not have
            _ => (TAG_DATA << 32) | len(here.wrapping_add(cap / 2)),
        }
    }

    /// An interesting shared word: the header's, the indices, owners, flags, events, or a
    /// frame header around the current head or tail.
    fn word(&self, pick: u8) -> usize {
        let mask = self.capacity as u64 - 1;
        let head = load_u64(&*self.memory, HEAD);
        let tail = load_u64(&*self.memory, TAIL);
        let frame = |pos: u64| DATA + ((pos & mask) & !7) as usize;
        match pick % 20 {
            0 => MAGIC,
            1 => VERSION,
            2 => CAPACITY,
            3 => HASH,
            4 => REGION_LEN,
            5 | 6 => TAIL,
            7 | 8 => HEAD,
            9 => SENDER_OWNER,
            10 => RECEIVER_OWNER,
            11 => SENDER_CLOSED,
            12 => RECEIVER_CLOSED,
            13 => DATA_EVENT,
            14 => SPACE_EVENT,
            15 | 16 => frame(head),
            17 => frame(tail),
            18 => frame(tail.wrapping_sub(8)),
            _ => PLATFORM,
        }
    }
}

/// Runs a script decoded from `data`: our operations interleaved with hostile writes.
///
/// `data[0]` picks the capacity (16 << n, n < 8); then each operation is one byte of
/// opcode followed by its arguments (see the `match` below).
pub fn script(data: &[u8], make: MakeMemory) {
    let mut input = Input(data);
    let capacity = 16usize << (input.u8() % 8);
    let memory = make(DATA + capacity);
    let (tx, rx) = Builder::new(capacity).create_in(memory.clone()).unwrap();
    let mut s = Script {
        memory,
        capacity,
        tx: Some(tx),
        rx: Some(rx),
        model: Some(VecDeque::new()),
        made: 0,
    };
    let tiny = |input: &mut Input| Duration::from_micros(u64::from(input.u8()) * 4);
    let mut steps = 0;
    while !input.is_empty() && steps < 256 {
        steps += 1;
        let op = input.u8();
        let len = usize::from(input.u16()) % (max_payload(capacity) + 16);
        match op % 16 {
            0 => {
                let msg = s.message(len);
                if let Some(tx) = s.tx.as_mut() {
                    let result = timed("try_send", || tx.try_send(&msg));
                    s.check_send(result, msg);
                }
            }
            1 => {
                let timeout = tiny(&mut input);
                let msg = s.message(len);
                if let Some(tx) = s.tx.as_mut() {
                    let result = timed("send_timeout", || tx.send_timeout(&msg, timeout));
                    s.check_send(result, msg);
                }
            }
            2 | 3 => {
                // Reserve, write, commit `written` bytes (or drop the grant uncommitted).
                let written = usize::from(input.u16());
                let msg = s.message(len);
                if let Some(tx) = s.tx.as_mut() {
                    let outcome = match timed("try_reserve", || tx.try_reserve(len)) {
                        Ok(mut grant) => {
                            assert_eq!(grant.len(), len);
                            assert!(grant.write_at(0, &msg).is_ok());
                            assert!(grant.write_at(len, &[1]).is_err());
                            let committed = (op % 16 == 2).then(|| written % (len + 1));
                            if let Some(n) = committed {
                                grant.commit(n);
                            }
                            Ok(committed)
                        }
                        Err(err) => Err(err),
                    };
                    match outcome {
                        Ok(Some(n)) => s.sent(msg[..n].to_vec()),
                        Ok(None) => {}
                        Err(err) => s.check_send(Err(err), Vec::new()),
                    }
                }
            }
            4 => {
                if let Some(rx) = s.rx.as_mut() {
                    let result = timed("try_recv", || rx.try_recv());
                    s.check_recv(result);
                }
            }
            5 => {
                let timeout = tiny(&mut input);
                if let Some(rx) = s.rx.as_mut() {
                    let result = timed("recv_timeout", || rx.recv_timeout(timeout));
                    s.check_recv(result);
                }
            }
            6 => {
                // A read grant, read in part, then released.
                if let Some(rx) = s.rx.as_mut() {
                    let result = timed("try_read", || {
                        rx.try_read().map(|grant| {
                            let mut head = vec![0u8; grant.len().min(len)];
                            grant.read_at(0, &mut head).unwrap();
                            assert!(grant.read_at(grant.len(), &mut [0]).is_err());
                            let all = grant.to_vec();
                            assert_eq!(&all[..head.len()], &head[..]);
                            all
                        })
                    });
                    s.check_recv(result);
                }
            }
            7 => {
                // `recv_into` blocks without a deadline, so only while the model says a
                // message is there; a buffer too small keeps the message in the ring.
                let ready = s.model.as_ref().is_some_and(|m| !m.is_empty());
                if let (true, Some(rx)) = (ready, s.rx.as_mut()) {
                    let mut buf = vec![0u8; len];
                    let result = timed("recv_into", || rx.recv_into(&mut buf));
                    let result = result.map(|n| buf[..n].to_vec());
                    s.check_recv(result);
                }
            }
            8 => {
                // A batch of up to 4 messages, published together. A batch waits for room
                // without a deadline, so only on a ring the model says is empty, with at
                // most half the ring in the batch (one padding frame fits besides).
                let count = input.u8() % 4 + 1;
                // Empty means nothing published and unread, padding frames included.
                let empty = s.model.as_ref().is_some_and(VecDeque::is_empty)
                    && load_u64(&*s.memory, HEAD) == load_u64(&*s.memory, TAIL);
                if let (true, Some(tx)) = (empty, s.tx.as_mut()) {
                    let mut msgs = Vec::new();
                    let mut budget = capacity / 2;
                    for k in 0..count {
                        let n = (len >> k) % (capacity / 8 + 1);
                        let span = 8 + n.next_multiple_of(8);
                        if span > budget {
                            break;
                        }
                        budget -= span;
                        s.made += 1;
                        let seed = s.made;
                        msgs.push((0..n).map(|i| (seed + i as u64) as u8).collect::<Vec<u8>>());
                    }
                    let mut results = Vec::new();
                    {
                        let mut batch = tx.batch();
                        for msg in &msgs {
                            results.push(timed("batch.send", || batch.send(msg)));
                        }
                    }
                    for (msg, result) in msgs.into_iter().zip(results) {
                        s.check_send(result, msg);
                    }
                }
            }
            9 => {
                // Drop an endpoint (clean close) or attach a new one in its place.
                if op & 0x10 == 0 {
                    if s.tx.is_some() {
                        s.tx = None;
                    } else {
                        let result = timed("Sender::attach", || Sender::attach(s.memory.clone()));
                        match result {
                            Ok(tx) => s.tx = Some(tx),
                            Err(err) => assert!(!s.clean(), "re-attach refused: {err}"),
                        }
                    }
                } else if s.rx.is_some() {
                    s.rx = None;
                } else {
                    let result = timed("Receiver::attach", || Receiver::attach(s.memory.clone()));
                    match result {
                        Ok(rx) => s.rx = Some(rx),
                        Err(err) => assert!(!s.clean(), "re-attach refused: {err}"),
                    }
                }
            }
            10 => {
                // A second endpoint of a side we own is refused (we are alive).
                let clean = s.clean();
                if s.tx.is_some() {
                    let second = Sender::attach(s.memory.clone());
                    assert!(!clean || second.is_err(), "two senders");
                }
                if s.rx.is_some() {
                    let second = Receiver::attach(s.memory.clone());
                    assert!(!clean || second.is_err(), "two receivers");
                }
            }
            11 | 12 => {
                // Hostile: an arbitrary u64 at an arbitrary aligned offset.
                let offset = usize::from(input.u16()) % s.memory.len();
                let value = input.u64();
                poke_u64(&*s.memory, offset, value);
                s.tamper();
            }
            13 => {
                // Hostile: an arbitrary u32.
                let offset = usize::from(input.u16()) % s.memory.len();
                let value = input.u32();
                poke_u32(&*s.memory, offset, value);
                s.tamper();
            }
            _ => {
                // Hostile: an interesting value in an interesting word.
                let offset = s.word(input.u8());
                let value = s.special(input.u8(), offset);
                let is_u32 = (SENDER_CLOSED..DATA).contains(&offset)
                    || offset == VERSION
                    || offset == PLATFORM;
                if is_u32 {
                    poke_u32(&*s.memory, offset, value as u32);
                } else {
                    poke_u64(&*s.memory, offset, value);
                }
                s.tamper();
            }
        }
    }
    // Whatever the peer did, our drops are clean.
    drop(s.tx.take());
    drop(s.rx.take());
}

// ---------------------------------------------------------------------------------------
// Target (c): codec input.
// ---------------------------------------------------------------------------------------

/// A sensor reading (strings, vectors, options).
#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
pub struct Reading {
    sensor: String,
    seq: u64,
    values: Vec<i32>,
    ok: bool,
    unit: Option<char>,
}

/// A command enum (tagged variants, nested data).
#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
pub enum Command {
    /// Unit variant.
    Ping,
    /// Struct variant.
    Move {
        /// x.
        x: i64,
        /// y.
        y: i16,
    },
    /// Newtype variant.
    Name(String),
    /// Bytes.
    Blob(Vec<u8>),
    /// A map.
    Table(BTreeMap<u16, String>),
}

/// A recursive type: the codecs must refuse nesting deeper than their limit instead of
/// overflowing the stack.
#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
pub enum Tree {
    /// A leaf.
    Leaf(u8),
    /// A node.
    Node(Vec<Tree>),
}

/// Plain data.
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub struct Sample {
    seq: u64,
    values: [u32; 4],
}

/// Decodes `data[1..]` as one frame with the codec and type `data[0]` picks; a decoded
/// value must survive an encode/decode round trip through the channel.
pub fn codec(data: &[u8]) {
    let Some((&pick, frame)) = data.split_first() else {
        return;
    };
    let frame = &frame[..frame.len().min(8000)];
    match pick % 11 {
        0 => decode_one::<Reading, Bincode>(frame),
        1 => decode_one::<Command, Bincode>(frame),
        2 => decode_one::<(u32, String), Bincode>(frame),
        3 => decode_one::<Vec<Vec<u8>>, Bincode>(frame),
        4 => decode_one::<Reading, Postcard>(frame),
        5 => decode_one::<Command, Postcard>(frame),
        6 => decode_one::<(u32, String), Postcard>(frame),
        7 => decode_one::<Vec<Vec<u8>>, Postcard>(frame),
        8 => decode_one::<Sample, Plain>(frame),
        9 => decode_one::<Tree, Bincode>(frame),
        _ => decode_one::<Tree, Postcard>(frame),
    }
}

fn decode_one<T, C>(frame: &[u8])
where
    T: Clone + PartialEq + std::fmt::Debug,
    C: Codec<T>,
{
    let memory = heap_memory(DATA + 8192);
    let (mut tx, rx) = Builder::new(8192).create_in(memory).unwrap();
    tx.try_send(frame).unwrap();
    let mut rx = typed::Receiver::<T, C>::from_bytes(rx);
    match rx.try_recv() {
        Ok(value) => {
            let mut tx = typed::Sender::<T, C>::from_bytes(tx);
            match tx.try_send(value.clone()) {
                Ok(()) => assert_eq!(rx.try_recv().unwrap(), value, "round trip"),
                // A value decoded from <= 4 KiB may encode larger (never beyond the ring
                // here, but say so rather than assume).
                Err(TrySendError::TooLarge(..) | TrySendError::Full(_)) => {}
                Err(err) => panic!("re-encoding a decoded value: {err:?}"),
            }
        }
        Err(TryRecvError::Decode(_)) => {}
        Err(err) => panic!("decoding {} bytes: {err:?}", frame.len()),
    }
}
