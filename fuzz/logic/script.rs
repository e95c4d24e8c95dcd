//! The hostile-peer script, written once over the flavor: our operations on every endpoint
//! interleaved with hostile writes, model-checked while no hostile write happened (each
//! receiver gets every message sent to it, in order, none lost, reordered or partial).
//! A flavor ([`Scripted`]: `spsc.rs`, `mpsc.rs`, `broadcast.rs`) says how its input opens
//! a channel, which of its shared words are interesting, and what its own operation (op 8)
//! does; everything else is here.
//!
//! # Input
//!
//! `data[0]` is the flavor's ([`Scripted::open`]); then each operation is one byte of
//! opcode, for a flavor with a side of several endpoints ([`Scripted::MANY`]) one byte that
//! picks one of them, a `u16` length, then the operation's arguments (see [`run`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use shm_channel::{Builder, Flavor, Receiver, Sender};
use shm_core::SharedMemory;
use shm_testkit::layout::Word;

use super::{
    contents, load_u64, poke_special, poke_u32, poke_u64, timed, Classify, Failure, Input,
    MakeMemory,
};

/// Endpoints a script keeps at most on a side of several.
pub const MANY_ENDPOINTS: usize = 4;

/// A side of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Send,
    Recv,
}

/// A channel a script opened: its memory and its first endpoints.
pub struct Opened<F: Scripted> {
    pub capacity: usize,
    pub memory: Arc<dyn SharedMemory>,
    pub tx: Sender<F>,
    pub rx: Receiver<F>,
    /// Receivers may lag (broadcast under overwrite).
    pub lags: bool,
}

impl<F: Scripted> Opened<F> {
    /// A channel of `capacity` made by `builder` in `len` bytes of new memory.
    pub fn create(capacity: usize, make: MakeMemory, builder: Builder<F>, lags: bool) -> Opened<F> {
        let len = F::region_len(capacity);
        let memory = make(len);
        let (tx, rx) = builder.create_in(memory.clone()).unwrap();
        Opened {
            capacity,
            memory,
            tx,
            rx,
            lags,
        }
    }
}

/// What the script needs of a flavor beyond the endpoint core.
pub trait Scripted: Flavor<RecvError: Classify> {
    /// Frame header bytes (the largest message is the capacity less one header).
    const FRAME_HEADER: usize;
    /// The side with several endpoints (MPSC: senders; broadcast: receivers), if any.
    const MANY: Option<Side>;
    /// A send fails with `Disconnected` once no receiver is left (broadcast: never).
    const SENDS_DISCONNECT: bool = true;
    /// A receiver that joins starts at the tail: it gets only what is sent after.
    const JOINS_AT_TAIL: bool = false;

    /// Region bytes of a channel of `capacity` (from the kit's layout).
    fn region_len(capacity: usize) -> usize;
    /// Opens a channel as the first input byte says: by default, `first` picks the
    /// capacity (16 << n, n < 8).
    fn open(first: u8, make: MakeMemory) -> Opened<Self> {
        let capacity = 16usize << (first % 8);
        Opened::create(capacity, make, Builder::new(capacity), false)
    }
    /// An interesting shared word, picked by the input (the flavor reads its own bytes).
    fn word(s: &Script<Self>, input: &mut Input) -> Word;
    /// The lane `tx` writes: messages of one lane arrive in the order they were sent,
    /// lanes interleave (MPSC: one per sender slot; the others: one).
    fn lane(_tx: &Sender<Self>) -> usize {
        0
    }
    /// The flavor's own operation (op 8): `k` picks an endpoint, `len` a length.
    fn own_op(s: &mut Script<Self>, op: u8, k: usize, len: usize, input: &mut Input);
}

/// What one receiver has still to get: each message with the lane it was sent in.
pub type Expected = VecDeque<(usize, Vec<u8>)>;

/// The state of a script: our endpoints, and what we expect while nobody tampered.
pub struct Script<F: Scripted> {
    pub memory: Arc<dyn SharedMemory>,
    pub capacity: usize,
    /// Receivers may lag (broadcast under overwrite).
    pub lags: bool,
    pub senders: Vec<Option<Sender<F>>>,
    pub receivers: Vec<Option<Receiver<F>>>,
    /// Per receiver, the messages it has still to get (each with the lane it was sent
    /// in), while only our endpoints wrote the memory; `None` from the first hostile write
    /// on.
    pub model: Option<Vec<Expected>>,
    /// Messages made so far (their contents derive from this counter).
    pub made: u64,
}

impl<F: Scripted> Script<F> {
    pub fn message(&mut self, len: usize) -> Vec<u8> {
        self.made += 1;
        contents(self.made, len)
    }

    pub fn clean(&self) -> bool {
        self.model.is_some()
    }

    /// Largest message of the ring.
    pub fn max_payload(&self) -> usize {
        self.capacity - F::FRAME_HEADER
    }

    /// The ring word that holds position `pos`.
    pub fn frame_word(&self, data: usize, pos: u64) -> Word {
        let mask = self.capacity as u64 - 1;
        Word::u64("frame", data + ((pos & mask) & !7) as usize)
    }

    /// The u64 at `offset` of the channel's memory.
    pub fn load(&self, offset: usize) -> u64 {
        load_u64(&*self.memory, offset)
    }

    /// Whether the model says receiver `k` has nothing to get.
    pub fn model_empty(&self, k: usize) -> bool {
        self.model.as_ref().is_some_and(|m| m[k].is_empty())
    }

    fn endpoints(&self, side: Side) -> usize {
        match side {
            Side::Send => self.senders.len(),
            Side::Recv => self.receivers.len(),
        }
    }

    fn present(&self, side: Side, k: usize) -> bool {
        match side {
            Side::Send => self.senders[k].is_some(),
            Side::Recv => self.receivers[k].is_some(),
        }
    }

    /// `len`, or 1 where an empty message could not be told from one already pending in
    /// another lane: a receiver that gets an empty message then does not say which lane
    /// it came from, and a model that guessed the wrong one would report the next message
    /// of that lane as reordered (an input of `hostile_mpsc` did exactly that).
    pub fn unambiguous(&self, len: usize) -> usize {
        let several_lanes = F::MANY == Some(Side::Send);
        let empty_pending = self
            .model
            .as_ref()
            .is_some_and(|m| m.iter().flatten().any(|(_, msg)| msg.is_empty()));
        if len == 0 && several_lanes && empty_pending {
            1
        } else {
            len
        }
    }

    /// A message sent in `lane`.
    pub fn sent(&mut self, lane: usize, msg: Vec<u8>) {
        if let Some(model) = self.model.as_mut() {
            for (queue, rx) in model.iter_mut().zip(&self.receivers) {
                if rx.is_some() || !F::JOINS_AT_TAIL {
                    queue.push_back((lane, msg.clone()));
                }
            }
        }
    }

    /// A new receiver in place `k` (kept only if the place is free).
    pub fn joined(&mut self, k: usize, rx: Receiver<F>) {
        if self.receivers[k].is_none() {
            self.receivers[k] = Some(rx);
            if let (true, Some(model)) = (F::JOINS_AT_TAIL, self.model.as_mut()) {
                model[k].clear();
            }
        }
    }

    /// Checks the outcome of a send in `lane`; while clean, an error must be one a sane
    /// channel gives.
    pub fn check_send(&mut self, lane: usize, result: Result<(), impl Classify>, msg: Vec<u8>) {
        let no_receiver = self.receivers.iter().all(Option::is_none);
        match result.map_err(|e| e.classify()) {
            Ok(()) => self.sent(lane, msg),
            Err(Failure::NotNow | Failure::TooLarge) => {}
            Err(Failure::Disconnected) if F::SENDS_DISCONNECT => {
                assert!(!self.clean() || no_receiver, "disconnected while clean")
            }
            Err(err) => assert!(!self.clean(), "{err:?} while clean"),
        }
    }

    /// Checks receiver `k`'s outcome against the model while clean.
    pub fn check_recv(&mut self, k: usize, result: Result<Vec<u8>, impl Classify>) {
        if let Ok(msg) = &result {
            assert!(msg.len() <= self.max_payload(), "{} bytes", msg.len());
        }
        let no_sender = self.senders.iter().all(Option::is_none);
        let may_lag = self.lags;
        let Some(model) = self.model.as_mut() else {
            return;
        };
        let queue = &mut model[k];
        match result.map_err(|e| e.classify()) {
            Ok(msg) => {
                let expected = take_next(queue, |next| *next == msg);
                assert!(
                    expected.is_some(),
                    "receiver {k}: reordered, lost or partial message {msg:?}"
                );
            }
            Err(Failure::NotNow) => {
                assert!(queue.is_empty(), "receiver {k}: {} unseen", queue.len())
            }
            Err(Failure::Disconnected) => {
                assert!(
                    queue.is_empty() && no_sender,
                    "receiver {k}: disconnected too early"
                )
            }
            Err(Failure::Lagged(n)) if may_lag => {
                assert!(
                    n > 0 && n as usize <= queue.len(),
                    "receiver {k}: lagged {n} of {}",
                    queue.len()
                );
                queue.drain(..n as usize);
            }
            Err(Failure::TooSmall(needed)) => {
                assert!(
                    next_of_lanes(queue).any(|next| next.len() == needed),
                    "receiver {k}: no message of {needed} bytes is next"
                )
            }
            Err(err) => panic!("receiver {k}: {err:?} while clean"),
        }
    }

    /// Drops endpoint `k` of `side`; on a side of one endpoint, attaches a new one where
    /// there is none (refused only once tampered).
    fn drop_or_attach(&mut self, side: Side, k: usize) {
        if self.present(side, k) {
            match side {
                Side::Send => self.senders[k] = None,
                Side::Recv => self.receivers[k] = None,
            }
            return;
        }
        if F::MANY == Some(side) {
            return;
        }
        let memory = self.memory.clone();
        let refused = match side {
            Side::Send => match timed("Sender::attach", || Sender::attach(memory)) {
                Ok(tx) => {
                    self.senders[k] = Some(tx);
                    None
                }
                Err(err) => Some(err),
            },
            Side::Recv => match timed("Receiver::attach", || Receiver::attach(memory)) {
                Ok(rx) => {
                    self.joined(k, rx);
                    None
                }
                Err(err) => Some(err),
            },
        };
        if let Some(err) = refused {
            assert!(!self.clean(), "re-attach refused: {err}");
        }
    }

    /// A second endpoint of a side of one is refused while ours is alive.
    fn second_is_refused(&self, side: Side) {
        if F::MANY == Some(side) || !self.present(side, 0) {
            return;
        }
        let second = match side {
            Side::Send => Sender::<F>::attach(self.memory.clone()).map(drop),
            Side::Recv => Receiver::<F>::attach(self.memory.clone()).map(drop),
        };
        assert!(
            !self.clean() || second.is_err(),
            "two endpoints on {side:?}"
        );
    }
}

/// Runs a script decoded from `data`: our operations interleaved with hostile writes.
pub fn run<F: Scripted>(data: &[u8], make: MakeMemory) {
    let mut input = Input(data);
    let Opened {
        capacity,
        memory,
        tx,
        rx,
        lags,
    } = F::open(input.u8(), make);
    let places = |side| match F::MANY {
        Some(many) if many == side => MANY_ENDPOINTS,
        _ => 1,
    };
    let mut senders: Vec<Option<Sender<F>>> = (0..places(Side::Send)).map(|_| None).collect();
    let mut receivers: Vec<Option<Receiver<F>>> = (0..places(Side::Recv)).map(|_| None).collect();
    senders[0] = Some(tx);
    receivers[0] = Some(rx);
    let mut s = Script {
        memory,
        capacity,
        lags,
        model: Some(vec![VecDeque::new(); receivers.len()]),
        senders,
        receivers,
        made: 0,
    };
    let tiny = |input: &mut Input| Duration::from_micros(u64::from(input.u8()) * 4);
    let mut steps = 0;
    while !input.is_empty() && steps < 256 {
        steps += 1;
        let op = input.u8();
        let k = match F::MANY {
            Some(_) => usize::from(input.u8()) % MANY_ENDPOINTS,
            None => 0,
        };
        let len = usize::from(input.u16()) % (s.max_payload() + 2 * F::FRAME_HEADER);
        let len = s.unambiguous(len);
        // The sender and the receiver `k` names (on a side of one, the one).
        let (ks, kr) = (k % s.senders.len(), k % s.receivers.len());
        match op % 16 {
            0 => {
                let msg = s.message(len);
                if let Some(tx) = s.senders[ks].as_mut() {
                    let lane = F::lane(tx);
                    let result = timed("try_send", || tx.try_send(&msg));
                    s.check_send(lane, result, msg);
                }
            }
            1 => {
                let timeout = tiny(&mut input);
                let msg = s.message(len);
                if let Some(tx) = s.senders[ks].as_mut() {
                    let lane = F::lane(tx);
                    let result = timed("send_timeout", || tx.send_timeout(&msg, timeout));
                    s.check_send(lane, result, msg);
                }
            }
            2 | 3 => {
                // Reserve, write, commit `written` bytes (or drop the grant uncommitted:
                // nothing is delivered; under overwrite, a grant dropped after it announced
                // an overwrite loses what it would have overwritten, reported as `Lagged`,
                // regression: tests/hostile_regressions.rs).
                let written = usize::from(input.u16());
                let msg = s.message(len);
                if let Some(tx) = s.senders[ks].as_mut() {
                    let lane = F::lane(tx);
                    let outcome = match timed("try_reserve", || tx.try_reserve(len)) {
                        Ok(mut grant) => {
                            assert_eq!(grant.len(), len);
                            assert!(grant.write_at(0, &msg).is_ok());
                            assert!(grant.write_at(len, &[1]).is_err());
                            let committed = (op % 16 == 2).then(|| written % (len + 1));
                            if let Some(n) = committed {
                                assert!(grant.commit(n).is_ok(), "a commit within the grant");
                            }
                            Ok(committed)
                        }
                        Err(err) => Err(err),
                    };
                    match outcome {
                        Ok(Some(n)) => s.sent(lane, msg[..n].to_vec()),
                        Ok(None) => {}
                        Err(err) => s.check_send(lane, Err(err), Vec::new()),
                    }
                }
            }
            4 => {
                if let Some(rx) = s.receivers[kr].as_mut() {
                    let result = timed("try_recv", || rx.try_recv());
                    s.check_recv(kr, result);
                }
            }
            5 => {
                let timeout = tiny(&mut input);
                if let Some(rx) = s.receivers[kr].as_mut() {
                    let result = timed("recv_timeout", || rx.recv_timeout(timeout));
                    s.check_recv(kr, result);
                }
            }
            6 => {
                // A read grant, read in part, then released.
                if let Some(rx) = s.receivers[kr].as_mut() {
                    let result = timed("try_read", || {
                        rx.try_read().map(|grant| {
                            let mut head = vec![0u8; grant.len().min(len)];
                            grant.read_at(0, &mut head).unwrap();
                            assert!(grant.read_at(grant.len(), &mut [0]).is_err());
                            let mut all = vec![0u8; grant.len()];
                            assert_eq!(grant.copy_to(&mut all), all.len());
                            assert_eq!(&all[..head.len()], &head[..]);
                            all
                        })
                    });
                    s.check_recv(kr, result);
                }
            }
            7 => {
                // `recv_into` blocks without a deadline, so only while the model says a
                // message is there; a buffer too small keeps the message in the ring.
                let ready = s.model.as_ref().is_some_and(|m| !m[kr].is_empty());
                if let (true, Some(rx)) = (ready, s.receivers[kr].as_mut()) {
                    let mut buf = vec![0u8; len];
                    let result = timed("recv_into", || rx.recv_into(&mut buf));
                    s.check_recv(kr, result.map(|n| buf[..n].to_vec()));
                }
            }
            8 => F::own_op(&mut s, op, k, len, &mut input),
            9 => {
                // Drop an endpoint (clean close) of the side of several (SPSC: the
                // sender), or of the other side; a side of one attaches a new endpoint
                // where it has none.
                let first = F::MANY.unwrap_or(Side::Send);
                let (side, index) = match (op & 0x10 == 0, first) {
                    (true, Side::Send) => (Side::Send, ks),
                    (true, Side::Recv) => (Side::Recv, kr),
                    (false, Side::Send) => (Side::Recv, 0),
                    (false, Side::Recv) => (Side::Send, 0),
                };
                debug_assert!(index < s.endpoints(side));
                s.drop_or_attach(side, index);
            }
            10 => {
                // A second endpoint of a side of one is refused (we are alive).
                s.second_is_refused(Side::Send);
                s.second_is_refused(Side::Recv);
            }
            11 | 12 => {
                // Hostile: an arbitrary u64 at an arbitrary aligned offset.
                let offset = usize::from(input.u16()) % s.memory.len();
                poke_u64(&*s.memory, offset, input.u64());
                s.model = None;
            }
            13 => {
                // Hostile: an arbitrary u32.
                let offset = usize::from(input.u16()) % s.memory.len();
                poke_u32(&*s.memory, offset, input.u32());
                s.model = None;
            }
            _ => {
                // Hostile: an interesting value in an interesting word.
                let word = F::word(&s, &mut input);
                poke_special(&*s.memory, word, input.u8(), s.capacity);
                s.model = None;
            }
        }
    }
    // Whatever the peer did, our drops are clean.
    drop(std::mem::take(&mut s.senders));
    drop(std::mem::take(&mut s.receivers));
}

/// The messages of `queue` that may come next: the first of each lane.
fn next_of_lanes(queue: &Expected) -> impl Iterator<Item = &Vec<u8>> {
    let mut seen = Vec::new();
    queue
        .iter()
        .filter(move |(lane, _)| {
            let first = !seen.contains(lane);
            seen.push(*lane);
            first
        })
        .map(|(_, msg)| msg)
}

/// Takes from `queue` the first message that may come next (the first of its lane) and
/// that `wanted` accepts.
fn take_next(queue: &mut Expected, wanted: impl Fn(&Vec<u8>) -> bool) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let at = queue.iter().position(|(lane, msg)| {
        let first = !seen.contains(lane);
        seen.push(*lane);
        first && wanted(msg)
    })?;
    queue.remove(at).map(|(_, msg)| msg)
}
