//! Channels of every flavor and layer behind one type, for the select tests: byte and
//! typed (`u64`) channels of SPSC, MPSC and broadcast, their ends, and what a receive after
//! a select found.

use shm_channel::{Receiver, Sender};
use std::fmt;

use shm_channel::broadcast::Policy;
use shm_channel::select::Selectable;
use shm_channel::{broadcast, mpsc, spsc, typed, Endpoint, TryRecvError};

/// A kind of channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Spsc,
    Mpsc,
    Broadcast,
    TypedSpsc,
    TypedMpsc,
    TypedBroadcast,
}

/// Every kind.
pub const KINDS: [Kind; 6] = [
    Kind::Spsc,
    Kind::Mpsc,
    Kind::Broadcast,
    Kind::TypedSpsc,
    Kind::TypedMpsc,
    Kind::TypedBroadcast,
];

/// One end of a channel of any kind: `S`, `M`, `B` the SPSC, MPSC and broadcast byte ends,
/// `TS`, `TM`, `TB` the typed ones.
pub enum End<S, M, B, TS, TM, TB> {
    Spsc(S),
    Mpsc(M),
    Broadcast(B),
    TypedSpsc(TS),
    TypedMpsc(TM),
    TypedBroadcast(TB),
}

/// A sending end of any kind.
pub type Tx = End<
    Sender<spsc::Spsc>,
    Sender<mpsc::Mpsc>,
    Sender<broadcast::Broadcast>,
    typed::Sender<u64>,
    typed::Sender<u64, shm_channel::mpsc::Mpsc>,
    typed::Sender<u64, shm_channel::broadcast::Broadcast>,
>;

/// A receiving end of any kind.
pub type Rx = End<
    Receiver<spsc::Spsc>,
    Receiver<mpsc::Mpsc>,
    Receiver<broadcast::Broadcast>,
    typed::Receiver<u64>,
    typed::Receiver<u64, shm_channel::mpsc::Mpsc>,
    typed::Receiver<u64, shm_channel::broadcast::Broadcast>,
>;

/// `$body` with `$end` bound to what `$value` (an [`End`]) holds, whatever its kind.
macro_rules! each {
    ($value:expr, $end:ident => $body:expr) => {
        match $value {
            End::Spsc($end) => $body,
            End::Mpsc($end) => $body,
            End::Broadcast($end) => $body,
            End::TypedSpsc($end) => $body,
            End::TypedMpsc($end) => $body,
            End::TypedBroadcast($end) => $body,
        }
    };
}

impl<S, M, B, TS, TM, TB> End<S, M, B, TS, TM, TB>
where
    S: Endpoint,
    M: Endpoint,
    B: Endpoint,
    TS: Endpoint,
    TM: Endpoint,
    TB: Endpoint,
{
    /// The end as an [`Endpoint`] (for hand-over across fork).
    pub fn endpoint(&self) -> &dyn Endpoint {
        each!(self, end => end)
    }
}

/// What a receive returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    /// A message: its tag.
    Message(u64),
    /// Nothing there.
    Empty,
    /// The error that ends the stream, as its `Debug` (`Disconnected`, `PeerDied`, ...),
    /// or a `Lagged` count, or a message that did not check out.
    Error(String),
}

/// A fresh channel of `kind` with `capacity` bytes (broadcast: back-pressure).
pub fn channel(kind: Kind, capacity: usize) -> (Tx, Rx) {
    let bp = Policy::BackPressure;
    match kind {
        Kind::Spsc => {
            let (tx, rx) = spsc::channel(capacity).unwrap();
            (End::Spsc(tx), End::Spsc(rx))
        }
        Kind::Mpsc => {
            let (tx, rx) = mpsc::channel(capacity).unwrap();
            (End::Mpsc(tx), End::Mpsc(rx))
        }
        Kind::Broadcast => {
            let (tx, rx) = broadcast::channel(capacity, bp).unwrap();
            (End::Broadcast(tx), End::Broadcast(rx))
        }
        Kind::TypedSpsc => {
            let (tx, rx) = typed::channel::<u64>(capacity).unwrap();
            (End::TypedSpsc(tx), End::TypedSpsc(rx))
        }
        Kind::TypedMpsc => {
            let (tx, rx) =
                typed::pair::<u64, _, typed::DefaultCodec>(mpsc::channel(capacity).unwrap())
                    .unwrap();
            (End::TypedMpsc(tx), End::TypedMpsc(rx))
        }
        Kind::TypedBroadcast => {
            let (tx, rx) = typed::pair::<u64, _, typed::DefaultCodec>(
                broadcast::channel(capacity, bp).unwrap(),
            )
            .unwrap();
            (End::TypedBroadcast(tx), End::TypedBroadcast(rx))
        }
    }
}

/// The bytes of the message tagged `tag`: the tag, then `tag % 24` bytes of its low byte.
pub fn bytes_of(tag: u64) -> Vec<u8> {
    let mut m = tag.to_le_bytes().to_vec();
    m.resize(8 + (tag % 24) as usize, tag as u8);
    m
}

/// The tag of a byte message, if it is one [`bytes_of`] made.
fn tag_of(m: &[u8]) -> Option<u64> {
    let tag = u64::from_le_bytes(m.get(..8)?.try_into().ok()?);
    (bytes_of(tag) == m).then_some(tag)
}

impl Tx {
    /// Sends the message tagged `tag`, waiting for room; `Err` says why it failed.
    pub fn send(&mut self, tag: u64) -> Result<(), String> {
        let m = bytes_of(tag);
        let failed = |e: &dyn fmt::Debug| format!("{e:?}");
        match self {
            End::Spsc(tx) => tx.send(&m).map_err(|e| failed(&e)),
            End::Mpsc(tx) => tx.send(&m).map_err(|e| failed(&e)),
            End::Broadcast(tx) => tx.send(&m).map_err(|e| failed(&e)),
            End::TypedSpsc(tx) => tx.send(tag).map_err(|e| failed(&e)),
            End::TypedMpsc(tx) => tx.send(tag).map_err(|e| failed(&e)),
            End::TypedBroadcast(tx) => tx.send(tag).map_err(|e| failed(&e)),
        }
    }

    /// Another sender of the same MPSC channel.
    pub fn try_clone(&self) -> Option<Tx> {
        match self {
            End::Mpsc(tx) => Some(End::Mpsc(tx.try_clone().unwrap())),
            End::TypedMpsc(tx) => Some(End::TypedMpsc(tx.try_clone().unwrap())),
            _ => None,
        }
    }

    /// Another receiver of the same broadcast channel.
    pub fn subscribe(&self) -> Option<Rx> {
        match self {
            End::Broadcast(tx) => Some(End::Broadcast(tx.subscribe().unwrap())),
            End::TypedBroadcast(tx) => Some(End::TypedBroadcast(tx.subscribe().unwrap())),
            _ => None,
        }
    }
}

impl Rx {
    /// The end as a select sees it.
    pub fn selectable(&mut self) -> &mut dyn Selectable {
        each!(self, rx => rx)
    }

    /// A non-blocking receive.
    pub fn try_recv(&mut self) -> Got {
        match self {
            End::Spsc(rx) => bytes(rx.try_recv()),
            End::Mpsc(rx) => bytes(rx.try_recv()),
            End::Broadcast(rx) => bytes(rx.try_recv()),
            End::TypedSpsc(rx) => value(rx.try_recv()),
            End::TypedMpsc(rx) => value(rx.try_recv()),
            End::TypedBroadcast(rx) => value(rx.try_recv()),
        }
    }
}

fn bytes<E: fmt::Debug>(got: Result<Vec<u8>, TryRecvError<E>>) -> Got {
    match got {
        Ok(m) => tag_of(&m).map_or_else(|| Got::Error(format!("bad bytes {m:?}")), Got::Message),
        Err(TryRecvError::Empty) => Got::Empty,
        Err(TryRecvError::Recv(e)) => Got::Error(format!("{e:?}")),
    }
}

fn value<E: fmt::Debug>(got: Result<u64, TryRecvError<E>>) -> Got {
    match got {
        Ok(tag) => Got::Message(tag),
        Err(TryRecvError::Empty) => Got::Empty,
        Err(TryRecvError::Recv(e)) => Got::Error(format!("{e:?}")),
    }
}
