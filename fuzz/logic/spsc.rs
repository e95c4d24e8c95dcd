//! Target `hostile_peer`: a hostile peer's script against an SPSC channel.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use shm_channel::spsc::{Builder, Receiver, Sender};
use shm_core::SharedMemory;
use shm_testkit::layout::{header, spsc, Word};

use super::{
    check_received, contents, load_u64, max_payload, poke_special, poke_u32, poke_u64, timed,
    Classify, Failure, Input, MakeMemory,
};

use spsc::{DATA, HEAD, TAIL};

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
        contents(self.made, len)
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

    /// An interesting shared word: the header's, the indices, owners, flags, events, or a
    /// frame header around the current head or tail.
    fn word(&self, pick: u8) -> Word {
        let mask = self.capacity as u64 - 1;
        let head = load_u64(&*self.memory, HEAD);
        let tail = load_u64(&*self.memory, TAIL);
        let frame = |pos: u64| Word::u64("frame", DATA + ((pos & mask) & !7) as usize);
        match pick % 20 {
            n @ 0..=5 => header::WORDS[n as usize],
            n @ 6..=15 => spsc::WORDS[n as usize - 6],
            16 | 17 => frame(head),
            18 => frame(tail),
            _ => frame(tail.wrapping_sub(8)),
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
                    for msg in &msgs {
                        results.push(timed("send_deferred", || tx.send_deferred(msg)));
                    }
                    tx.flush();
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
                let word = s.word(input.u8());
                poke_special(&*s.memory, word, input.u8(), s.capacity);
                s.tamper();
            }
        }
    }
    // Whatever the peer did, our drops are clean.
    drop(s.tx.take());
    drop(s.rx.take());
}
