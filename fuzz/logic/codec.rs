//! Target `codec`: codec input.

use std::collections::BTreeMap;

use shm_channel::codec::{BatchCodec, Bincode, Codec, Plain, Postcard};
use shm_channel::spsc::Spsc;
use shm_channel::Builder;
use shm_channel::{bulk, typed, TryRecvError, TrySendError};
use shm_testkit::layout::spsc::DATA;

use super::heap_memory;
use shm_channel::SendError;

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

/// Decodes `data[1..]` as one frame with the codec and type `data[0]` picks (a value, or a
/// bulk channel's batch); what decodes must survive an encode/decode round trip through the
/// channel.
pub fn codec(data: &[u8]) {
    let Some((&pick, frame)) = data.split_first() else {
        return;
    };
    let frame = &frame[..frame.len().min(8000)];
    match pick % 14 {
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
        10 => decode_one::<Tree, Postcard>(frame),
        11 => decode_batch::<Reading, Bincode>(frame),
        12 => decode_batch::<Command, Postcard>(frame),
        _ => decode_batch::<Sample, Plain>(frame),
    }
}

/// The byte ends of an 8 KiB SPSC channel holding `frame`.
fn holding(
    frame: &[u8],
) -> (
    shm_channel::Sender<shm_channel::spsc::Spsc>,
    shm_channel::Receiver<shm_channel::spsc::Spsc>,
) {
    let memory = heap_memory(DATA + 8192);
    let (mut tx, rx) = Builder::<Spsc>::new(8192).create_in(memory).unwrap();
    tx.try_send(frame).unwrap();
    (tx, rx)
}

fn decode_one<T, C>(frame: &[u8])
where
    T: Clone + PartialEq + std::fmt::Debug,
    C: Codec<T>,
{
    let (tx, rx) = holding(frame);
    let mut rx = typed::Receiver::<T, _, C>::try_from(rx).unwrap();
    match rx.try_recv() {
        Ok(value) => {
            let mut tx = typed::Sender::<T, _, C>::try_from(tx).unwrap();
            match tx.try_send(value.clone()) {
                Ok(()) => assert_eq!(rx.try_recv().unwrap(), value, "round trip"),
                // A value decoded from <= 4 KiB may encode larger (never beyond the ring
                // here, but say so rather than assume).
                Err(
                    TrySendError::Send(typed::SendError::Send(SendError::TooLarge(..)))
                    | TrySendError::Full(_),
                ) => {}
                Err(err) => panic!("re-encoding a decoded value: {err:?}"),
            }
        }
        Err(TryRecvError::Recv(typed::RecvError::Decode(_))) => {}
        Err(err) => panic!("decoding {} bytes: {err:?}", frame.len()),
    }
}

/// Decodes `frame` as a batch of `T`s onto an empty `Vec`: on success it holds what the
/// frame holds, and the items sent again arrive the same; on a decode error it stays empty.
fn decode_batch<T, C>(frame: &[u8])
where
    T: Clone + PartialEq + std::fmt::Debug,
    C: BatchCodec<T>,
{
    let (tx, rx) = holding(frame);
    let mut rx = bulk::Receiver::<T, _, C>::try_from(rx).unwrap();
    let mut out = Vec::new();
    match rx.drain_into(&mut out, usize::MAX) {
        Ok(count) => {
            assert_eq!(out.len(), count);
            let mut tx = bulk::Sender::<T, _, C>::try_from(tx).unwrap();
            // Items decoded from a frame of at most 8000 bytes fit the ring again (an item
            // may encode longer: then `TooLarge`, said rather than assumed away).
            match tx.send(&out) {
                Ok(()) => {
                    let mut again = Vec::new();
                    while again.len() < count {
                        rx.drain_into(&mut again, usize::MAX).unwrap();
                    }
                    assert_eq!(again, out, "batch round trip");
                }
                Err(bulk_error) => assert!(
                    matches!(bulk_error, typed::SendError::Send(SendError::TooLarge(..))),
                    "re-encoding a decoded batch: {bulk_error:?}"
                ),
            }
        }
        Err(typed::RecvError::Decode(_)) => {
            assert!(out.is_empty(), "a refused batch appends nothing")
        }
        Err(err) => panic!("decoding a batch of {} bytes: {err:?}", frame.len()),
    }
}
