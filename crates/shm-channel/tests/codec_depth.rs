//! The serde codecs limit nesting depth: a peer's small frame of deeply nested variants of a
//! recursive type is a `RecvError::Decode`, never a stack overflow in the receiver (docs/safety.md); messages up to `MAX_DECODE_DEPTH` deep, and realistic ones, still decode.

use shm_channel::{Builder, Receiver, Sender};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use shm_channel::codec::{Bincode, Codec, Postcard, MAX_DECODE_DEPTH};
use shm_channel::{spsc, typed, CodecError, TryRecvError};
use shm_core::HeapRegion;
use shm_testkit::{fork_child, fork_lock};

const CAPACITY: usize = 4096;
use shm_testkit::layout::spsc::DATA;

/// A byte channel over a heap region: the test writes frames a hostile peer could write.
fn heap_channel(capacity: usize) -> (Sender<spsc::Spsc>, Receiver<spsc::Spsc>) {
    let heap = Arc::new(HeapRegion::new(DATA + capacity).unwrap());
    Builder::<spsc::Spsc>::new(capacity)
        .create_in(heap)
        .unwrap()
}

/// Sends `frame` as it is and decodes it as a `T` with `C`.
fn decode_frame<T, C: Codec<T>>(frame: &[u8]) -> Result<T, TryRecvError<typed::RecvError>> {
    let (mut tx, rx) = heap_channel(CAPACITY);
    tx.send(frame).unwrap();
    typed::Receiver::<T, _, C>::try_from(rx).unwrap().try_recv()
}

/// Sends `value` through a typed channel and decodes it with `C`.
fn round_trip<T, C: Codec<T>>(value: T) -> Result<T, TryRecvError<typed::RecvError>> {
    let (tx, rx) = heap_channel(CAPACITY);
    let mut tx = typed::Sender::<T, _, C>::try_from(tx).unwrap();
    let mut rx = typed::Receiver::<T, _, C>::try_from(rx).unwrap();
    tx.send(value).unwrap_or_else(|e| panic!("send: {e}"));
    rx.try_recv()
}

fn is_depth_error(result: Result<impl std::fmt::Debug, TryRecvError<typed::RecvError>>) -> bool {
    match result {
        Err(TryRecvError::Recv(typed::RecvError::Decode(CodecError::Decode(message)))) => {
            message.contains(&format!("deeper than {MAX_DECODE_DEPTH} levels"))
        }
        _ => false,
    }
}

// Recursive message types, one per kind of container. Each comment gives the frame of one
// level (the same bytes in bincode's standard configuration and in postcard: varint tags
// and lengths, raw `u8`s), and what ends the recursion; `levels` is how many levels of
// nesting (containers, as `MAX_DECODE_DEPTH` counts them) one repetition adds.

/// Newtype variant: `[1]`, ended by `[0]`; 1 level.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Chain {
    End,
    Next(Box<Chain>),
}

/// Newtype variant holding a sequence: `[1, 1]` (variant, length), ended by `[0]`;
/// 2 levels (the variant's content, then the element).
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
enum Tree {
    Leaf,
    Node(Vec<Tree>),
}

/// Newtype struct holding an option: `[1]` (`Some`), ended by `[0]`; 2 levels.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Maybe(Option<Box<Maybe>>);

/// Map values: `[1, 0]` (length, key), ended by `[0]`; 2 levels.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Dict(BTreeMap<u8, Dict>);

/// Tuple variant: `[1, 0]` (variant, first field), ended by `[0]`; 1 level.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Pair {
    End,
    Node(u8, Box<Pair>),
}

/// Struct variant: `[1]`, ended by `[0]`; 1 level.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Record {
    End,
    Node { child: Box<Record> },
}

/// A frame of `repeat` repetitions of `level`, then `end`.
fn nested(level: &[u8], repeat: usize, end: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(level.len() * repeat + end.len());
    for _ in 0..repeat {
        frame.extend_from_slice(level);
    }
    frame.extend_from_slice(end);
    frame
}

/// How a decode in the child ended.
const DECODE_ERROR: i32 = 0;
const DECODED: i32 = 1;
const OTHER_ERROR: i32 = 2;

/// Decodes `frame` as a `T` with `C` in a forked child, on the calling thread's stack (a
/// libtest thread: 2 MiB unless `RUST_MIN_STACK` says otherwise); the child's exit code,
/// 128 + signal if it died (134: `SIGABRT`, the stack overflow handler).
fn decode_in_child<T, C: Codec<T>>(frame: &[u8]) -> i32 {
    let lock = fork_lock();
    let child = fork_child(&lock, || {
        let (mut tx, rx) = spsc::channel(1 << 20).unwrap();
        tx.send(frame).unwrap();
        match typed::Receiver::<T, _, C>::try_from(rx).unwrap().try_recv() {
            Err(TryRecvError::Recv(typed::RecvError::Decode(_))) => DECODE_ERROR,
            Ok(_) => DECODED,
            Err(_) => OTHER_ERROR,
        }
    });
    child.wait()
}

/// Decodes `frame` as a `T` with both codecs in forked children; a line per codec that did
/// not fail with a decode error.
fn hostile_frame<T: Serialize + DeserializeOwned>(frame: &[u8]) -> Vec<String> {
    let name = std::any::type_name::<T>();
    [
        ("bincode", decode_in_child::<T, Bincode>(frame)),
        ("postcard", decode_in_child::<T, Postcard>(frame)),
    ]
    .into_iter()
    .filter(|(_, code)| *code != DECODE_ERROR)
    .map(|(codec, code)| format!("{name} with {codec}: child exited with {code}"))
    .collect()
}

/// A hostile peer's frames: 100 000 repetitions of each type's level (100–200 KB).
#[test]
fn deeply_nested_frames_are_decode_errors_not_crashes() {
    const DEEP: usize = 100_000;
    let failures = [
        hostile_frame::<Chain>(&nested(&[1], DEEP, &[0])),
        hostile_frame::<Tree>(&nested(&[1, 1], DEEP, &[0])),
        hostile_frame::<Maybe>(&nested(&[1], DEEP, &[0])),
        hostile_frame::<Dict>(&nested(&[1, 0], DEEP, &[0])),
        hostile_frame::<Pair>(&nested(&[1, 0], DEEP, &[0])),
        hostile_frame::<Record>(&nested(&[1], DEEP, &[0])),
    ]
    .concat();
    assert!(
        failures.is_empty(),
        "not a decode error (1: decoded, 2: another error, 134: crashed):\n{}",
        failures.join("\n")
    );
}

/// Checks that `repeats` repetitions of `level` then `end` (whose deepest value sits exactly
/// at, or for some shapes one short of, `MAX_DECODE_DEPTH`) decode and one more repetition
/// is a depth error, with both codecs, on a thread with the default 2 MiB stack.
fn limit_is_exact<T>(level: &[u8], end: &[u8], repeats: usize)
where
    T: Serialize + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let at_limit = nested(level, repeats, end);
    let past_limit = nested(level, repeats + 1, end);
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let name = std::any::type_name::<T>();
            decode_frame::<T, Bincode>(&at_limit)
                .unwrap_or_else(|e| panic!("{name} at the limit, bincode: {e}"));
            decode_frame::<T, Postcard>(&at_limit)
                .unwrap_or_else(|e| panic!("{name} at the limit, postcard: {e}"));
            let bincode = decode_frame::<T, Bincode>(&past_limit);
            assert!(is_depth_error(bincode), "{name} past the limit, bincode");
            let postcard = decode_frame::<T, Postcard>(&past_limit);
            assert!(is_depth_error(postcard), "{name} past the limit, postcard");
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn nesting_exactly_at_the_limit_decodes_and_one_past_it_is_a_decode_error() {
    assert_eq!(MAX_DECODE_DEPTH, 128, "the depths below assume 128");
    // The innermost `Chain::End` at depth 128.
    limit_is_exact::<Chain>(&[1], &[0], 128);
    // The innermost `Tree::Leaf` at depth 2 * 64 = 128.
    limit_is_exact::<Tree>(&[1, 1], &[0], 64);
    // The innermost `Maybe` at depth 2 * 63 = 126 and its `None` at 127: one more level
    // puts the `None` at 129.
    limit_is_exact::<Maybe>(&[1], &[0], 63);
    // Likewise the innermost, empty, map at 127.
    limit_is_exact::<Dict>(&[1, 0], &[0], 63);
    // The innermost `End` at depth 128.
    limit_is_exact::<Pair>(&[1, 0], &[0], 128);
    limit_is_exact::<Record>(&[1], &[0], 128);
}

#[test]
fn values_encoded_at_the_limit_round_trip() {
    fn chain(depth: usize) -> Chain {
        (0..depth).fold(Chain::End, |inner, _| Chain::Next(Box::new(inner)))
    }
    assert_eq!(
        round_trip::<_, Bincode>(chain(MAX_DECODE_DEPTH)).unwrap(),
        chain(MAX_DECODE_DEPTH)
    );
    assert_eq!(
        round_trip::<_, Postcard>(chain(MAX_DECODE_DEPTH)).unwrap(),
        chain(MAX_DECODE_DEPTH)
    );
    // Encoding is not limited: the sender's own values are trusted; the receiver refuses.
    assert!(is_depth_error(round_trip::<_, Bincode>(chain(
        MAX_DECODE_DEPTH + 1
    ))));
    assert!(is_depth_error(round_trip::<_, Postcard>(chain(
        MAX_DECODE_DEPTH + 1
    ))));
}

#[test]
fn bytes_after_the_value_are_still_refused() {
    let frame = nested(&[1], 3, &[0, 0]);
    for result in [
        decode_frame::<Chain, Bincode>(&frame),
        decode_frame::<Chain, Postcard>(&frame),
    ] {
        match result {
            Err(TryRecvError::Recv(typed::RecvError::Decode(CodecError::Decode(message)))) => {
                assert!(message.contains("1 bytes left"), "{message}")
            }
            other => panic!("expected a decode error, got {other:?}"),
        }
    }
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Unit;

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Id(u64);

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
enum Command {
    Stop,
    Rename(String),
    Move(i32, i32),
    Resize { width: u32, height: u32 },
    Batch(Vec<Command>),
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Header {
    id: Id,
    reply_to: Option<Id>,
    tags: Vec<String>,
    priority: Option<Option<u8>>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Message {
    header: Header,
    commands: Vec<Command>,
    attributes: BTreeMap<String, Vec<u32>>,
    counters: HashMap<u16, i64>,
    payload: Vec<u8>,
    point: (f64, f32, char, bool),
    wide: (i128, u128),
    marker: Unit,
    signed: [i8; 4],
    tree: Tree,
}

fn message() -> Message {
    Message {
        header: Header {
            id: Id(u64::MAX),
            reply_to: Some(Id(7)),
            tags: vec!["alpha".into(), String::new(), "γ — ünïcode".into()],
            priority: Some(None),
        },
        commands: vec![
            Command::Stop,
            Command::Rename("renamed".into()),
            Command::Move(-3, i32::MIN),
            Command::Resize {
                width: 640,
                height: 480,
            },
            Command::Batch(vec![
                Command::Batch(vec![Command::Stop, Command::Move(1, 2)]),
                Command::Rename("inner".into()),
            ]),
        ],
        attributes: [
            ("empty".to_string(), vec![]),
            ("primes".to_string(), vec![2, 3, 5, 7, 11, u32::MAX]),
        ]
        .into_iter()
        .collect(),
        counters: [(1, -1), (2, i64::MIN), (u16::MAX, i64::MAX)]
            .into_iter()
            .collect(),
        payload: (0..=255).collect(),
        point: (std::f64::consts::PI, -0.5, 'é', true),
        wide: (i128::MIN, u128::MAX),
        marker: Unit,
        signed: [-128, -1, 0, 127],
        tree: Tree::Node(vec![
            Tree::Leaf,
            Tree::Node(vec![Tree::Node(vec![Tree::Leaf]), Tree::Leaf]),
        ]),
    }
}

#[test]
fn realistic_messages_round_trip_with_both_codecs() {
    let msg = message();
    assert_eq!(round_trip::<_, Bincode>(msg.clone()).unwrap(), msg);
    assert_eq!(round_trip::<_, Postcard>(msg.clone()).unwrap(), msg);

    let batch: Vec<Option<Message>> = vec![None, Some(msg.clone()), None];
    assert_eq!(round_trip::<_, Bincode>(batch.clone()).unwrap(), batch);
    assert_eq!(round_trip::<_, Postcard>(batch.clone()).unwrap(), batch);

    let scalars = (Unit, Id(0), (), 'x', String::from("s"), -1i16);
    assert_eq!(round_trip::<_, Bincode>(scalars.clone()).unwrap(), scalars);
    assert_eq!(round_trip::<_, Postcard>(scalars.clone()).unwrap(), scalars);
}

#[test]
fn many_messages_in_a_row_round_trip() {
    let (tx, rx) = heap_channel(CAPACITY);
    let mut tx = typed::Sender::<Message, _, Postcard>::try_from(tx).unwrap();
    let mut rx = typed::Receiver::<Message, _, Postcard>::try_from(rx).unwrap();
    for round in 0..20u64 {
        let mut msg = message();
        msg.header.id = Id(round);
        tx.send(msg.clone()).unwrap();
        assert_eq!(rx.try_recv().unwrap(), msg);
    }
}
