//! A peer's frame may announce any length for a string, a byte buffer or a sequence: the
//! serde codecs refuse one longer than the frame with `RecvError::Decode`, before any
//! allocation of that size (bincode allocates a string's announced length before reading
//! it; docs/safety.md). Strings of every length prefix width still round-trip.

use shm_channel::{Builder, Receiver, Sender};
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use shm_channel::codec::{Bincode, Codec, Postcard};
use shm_channel::{spsc, typed, CodecError, TryRecvError};
use shm_core::HeapRegion;
use shm_testkit::layout::spsc::DATA;

const CAPACITY: usize = 1 << 20;

fn heap_channel() -> (Sender<spsc::Spsc>, Receiver<spsc::Spsc>) {
    let heap = Arc::new(HeapRegion::new(DATA + CAPACITY).unwrap());
    Builder::<spsc::Spsc>::new(CAPACITY)
        .create_in(heap)
        .unwrap()
}

/// Sends `frame` as it is and decodes it as a `T` with `C`.
fn decode_frame<T, C: Codec<T>>(frame: &[u8]) -> Result<T, TryRecvError<typed::RecvError>> {
    let (mut tx, rx) = heap_channel();
    tx.send(frame).unwrap();
    typed::Receiver::<T, _, C>::try_from(rx).unwrap().try_recv()
}

fn round_trip<T: Clone + PartialEq + std::fmt::Debug, C: Codec<T>>(value: T) {
    let (tx, rx) = heap_channel();
    let mut tx = typed::Sender::<T, _, C>::try_from(tx).unwrap();
    let mut rx = typed::Receiver::<T, _, C>::try_from(rx).unwrap();
    tx.send(value.clone())
        .unwrap_or_else(|e| panic!("send: {e}"));
    assert_eq!(rx.try_recv().unwrap(), value);
}

/// The decode error's message, or a panic naming what came instead.
fn decode_error<T: std::fmt::Debug>(result: Result<T, TryRecvError<typed::RecvError>>) -> String {
    match result {
        Err(TryRecvError::Recv(typed::RecvError::Decode(CodecError::Decode(message)))) => message,
        other => panic!("expected a decode error, got {other:?}"),
    }
}

/// bincode's varint of `n` with the widest marker (253: eight little-endian bytes).
fn bincode_u64(n: u64) -> Vec<u8> {
    let mut out = vec![253];
    out.extend_from_slice(&n.to_le_bytes());
    out
}

/// postcard's varint (LEB128) of `n`.
fn postcard_u64(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Named {
    id: u32,
    name: String,
}

/// A frame of `Named` whose name announces `len` bytes and holds 4.
fn named_frame(len_prefix: Vec<u8>) -> Vec<u8> {
    let mut frame = vec![7];
    frame.extend(len_prefix);
    frame.extend_from_slice(b"abcd");
    frame
}

/// bincode's own check of a borrowed string against the frame: the decoder asks for one
/// (an owned string would first be allocated at the announced length).
fn is_cut_short(message: &str) -> bool {
    message.contains("UnexpectedEnd")
}

#[test]
fn bincode_refuses_a_string_longer_than_the_frame_before_allocating_it() {
    for len in [5, 300, 70_000, 1 << 40, u64::MAX] {
        let message = decode_error(decode_frame::<Named, Bincode>(&named_frame(bincode_u64(
            len,
        ))));
        assert!(is_cut_short(&message), "{len}: {message}");
    }
    // The narrower prefixes too: 251 (two bytes), 252 (four bytes).
    for prefix in [vec![251, 0x10, 0x27], vec![252, 0, 0, 0, 0x40]] {
        let message = decode_error(decode_frame::<Named, Bincode>(&named_frame(prefix)));
        assert!(is_cut_short(&message), "{message}");
    }
}

#[test]
fn postcard_refuses_a_string_longer_than_the_frame() {
    for len in [5, 300, 70_000, 1 << 40] {
        decode_error(decode_frame::<Named, Postcard>(&named_frame(postcard_u64(
            len,
        ))));
    }
}

#[test]
fn strings_nested_anywhere_are_checked() {
    // A string inside a sequence, an option and as a map key.
    let in_vec = [vec![1], bincode_u64(1 << 40), b"x".to_vec()].concat();
    assert!(is_cut_short(&decode_error(decode_frame::<
        Vec<String>,
        Bincode,
    >(&in_vec))));
    let in_option = [vec![1], bincode_u64(1 << 40), b"x".to_vec()].concat();
    assert!(is_cut_short(&decode_error(decode_frame::<
        Option<String>,
        Bincode,
    >(&in_option))));
    let as_key = [vec![1], bincode_u64(1 << 40), b"x".to_vec(), vec![0]].concat();
    assert!(is_cut_short(&decode_error(decode_frame::<
        BTreeMap<String, u8>,
        Bincode,
    >(&as_key))));
}

#[test]
fn a_sequence_announcing_more_elements_than_the_frame_holds_is_an_error() {
    for frame in [
        [bincode_u64(1 << 40), vec![1, 2, 3]].concat(),
        [bincode_u64(u64::MAX), vec![1]].concat(),
    ] {
        decode_error(decode_frame::<Vec<u8>, Bincode>(&frame));
        decode_error(decode_frame::<Vec<u64>, Bincode>(&frame));
    }
    decode_error(decode_frame::<Vec<u8>, Postcard>(
        &[postcard_u64(1 << 40), vec![1, 2, 3]].concat(),
    ));
}

fn strings_of_every_prefix_width_round_trip<C: Codec<Named> + Codec<Vec<String>>>() {
    for len in [0, 1, 250, 251, 300, 65_535, 65_536, 70_000] {
        let name: String = "é".repeat(len / 2) + &"x".repeat(len % 2);
        round_trip::<Named, C>(Named { id: 9, name });
    }
    round_trip::<Vec<String>, C>(vec!["a".into(), "bc".repeat(200), String::new()]);
}

#[test]
fn strings_of_every_prefix_width_round_trip_with_bincode() {
    strings_of_every_prefix_width_round_trip::<Bincode>();
}

#[test]
fn strings_of_every_prefix_width_round_trip_with_postcard() {
    strings_of_every_prefix_width_round_trip::<Postcard>();
}

/// Decodes `frame` as a `T` on a thread of its own; the error's message, or a panic if no
/// result came within 20 s (a decode that never ends must fail this test, not hang it).
fn decode_error_in_time<T: std::fmt::Debug + Send + 'static, C: Codec<T>>(
    frame: Vec<u8>,
) -> String {
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(decode_frame::<T, C>(&frame));
    });
    let decoded = result
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the decode did not end");
    decode_error(decoded)
}

#[test]
fn a_sequence_of_zero_sized_values_cannot_announce_more_than_the_frame_allows() {
    // `()` takes no byte: only the element budget ends these.
    let bincode_units = decode_error_in_time::<Vec<()>, Bincode>(bincode_u64(1 << 62));
    let postcard_units = decode_error_in_time::<Vec<()>, Postcard>(postcard_u64(1 << 62));
    // Nested: each inner sequence (200 units, one byte) stays within the budget, all of
    // them together not.
    let nested = [bincode_u64(1 << 20), vec![200; 64]].concat();
    let bincode_nested = decode_error_in_time::<Vec<Vec<()>>, Bincode>(nested);
    for message in [bincode_units, postcard_units, bincode_nested] {
        assert!(message.contains("sequence elements"), "{message}");
    }
    // Within the budget, zero-sized values still decode.
    round_trip::<Vec<()>, Bincode>(vec![(); 1000]);
    round_trip::<Vec<()>, Postcard>(vec![(); 1000]);
}
