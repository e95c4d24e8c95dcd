//! Target `hostile_broadcast`: a script of broadcast operations — several receivers
//! (subscribes, clones, attaches, drops), the sender dropped and re-attached, grants
//! committed or dropped, either policy — interleaved with hostile writes of arbitrary and
//! interesting words, model-checked while no hostile write happened (each receiver gets
//! every message sent since it joined, in order; under overwrite, `Lagged(n)` skips exactly
//! the `n` oldest it had not read).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use shm_channel::broadcast::{Builder, Policy, Receiver, Sender, MAX_READERS};
use shm_core::SharedMemory;
use shm_testkit::layout::{broadcast as lay, header, Word};

use super::{
    contents, load_u64, poke_special, poke_u32, poke_u64, timed, Classify, Failure, Input,
    MakeMemory,
};

/// Most receivers a script keeps at once.
const RECEIVERS: usize = 4;

struct Script {
    memory: Arc<dyn SharedMemory>,
    capacity: usize,
    policy: Policy,
    tx: Option<Sender>,
    receivers: Vec<Option<Receiver>>,
    /// Per receiver, the messages it has still to get, while only our endpoints wrote the
    /// memory; `None` once tampered.
    model: Option<Vec<VecDeque<Vec<u8>>>>,
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

    fn max_payload(&self) -> usize {
        self.capacity - lay::FRAME_HEADER
    }

    fn sent(&mut self, msg: Vec<u8>) {
        if let Some(model) = self.model.as_mut() {
            for (queue, rx) in model.iter_mut().zip(&self.receivers) {
                if rx.is_some() {
                    queue.push_back(msg.clone());
                }
            }
        }
    }

    fn joined(&mut self, k: usize, rx: Receiver) {
        if self.receivers[k].is_none() {
            self.receivers[k] = Some(rx);
            if let Some(model) = self.model.as_mut() {
                model[k].clear();
            }
        }
    }

    fn check_send(&mut self, result: Result<(), impl Classify>, msg: Vec<u8>) {
        match result.map_err(|e| e.classify()) {
            Ok(()) => self.sent(msg),
            Err(Failure::NotNow | Failure::TooLarge) => {}
            Err(err) => assert!(!self.clean(), "{err:?} while clean"),
        }
    }

    fn check_recv(&mut self, k: usize, result: Result<Vec<u8>, impl Classify>) {
        if let Ok(msg) = &result {
            assert!(msg.len() <= self.max_payload(), "{} bytes", msg.len());
        }
        let (overwrite, sender_gone) = (self.policy == Policy::Overwrite, self.tx.is_none());
        let Some(model) = self.model.as_mut() else {
            return;
        };
        let queue = &mut model[k];
        match result.map_err(|e| e.classify()) {
            Ok(msg) => {
                let expected = queue.pop_front();
                assert_eq!(
                    Some(msg),
                    expected,
                    "receiver {k}: reordered, lost or partial"
                );
            }
            Err(Failure::NotNow) => {
                assert!(queue.is_empty(), "receiver {k}: {} unseen", queue.len())
            }
            Err(Failure::Disconnected) => {
                assert!(
                    queue.is_empty() && sender_gone,
                    "receiver {k}: disconnected too early"
                )
            }
            Err(Failure::Lagged(n)) => {
                assert!(overwrite, "receiver {k}: lagged under back-pressure");
                assert!(
                    n > 0 && n as usize <= queue.len(),
                    "receiver {k}: lagged {n} of {}",
                    queue.len()
                );
                queue.drain(..n as usize);
            }
            Err(Failure::TooSmall(needed)) => {
                assert_eq!(Some(needed), queue.front().map(Vec::len))
            }
            Err(err) => panic!("receiver {k}: {err:?} while clean"),
        }
    }

    /// An interesting shared word: header, writer line, status, events, reader slots,
    /// frame stamps and words at a reader's cursor and before the tail.
    fn word(&self, pick: u8, slot: u8) -> Word {
        let mask = self.capacity as u64 - 1;
        let slot = usize::from(slot) % MAX_READERS;
        let cursor = load_u64(&*self.memory, lay::reader(slot) + lay::READER_CURSOR);
        let tail = load_u64(&*self.memory, lay::TAIL);
        let at = |pos: u64| Word::u64("frame", lay::DATA + ((pos & mask) & !7) as usize);
        match pick % 20 {
            0 => header::WORDS[0],
            1 => header::WORDS[3],
            n @ 2..=10 => lay::WORDS[n as usize - 2],
            n @ 11..=12 => lay::reader_words(slot)[n as usize - 11],
            13 | 14 => at(cursor),
            15 | 16 => at(cursor + 8),
            17 => at(tail.wrapping_sub(16)),
            _ => at(tail.wrapping_sub(8)),
        }
    }
}

/// Runs a script decoded from `data`: our operations interleaved with hostile writes.
///
/// `data[0]` picks the capacity (32 << n, n < 7) and, in bit 7, the policy (overwrite);
/// then each operation is one byte of opcode, a receiver number and a length, then its
/// arguments (see the `match` below).
pub fn script(data: &[u8], make: MakeMemory) {
    let mut input = Input(data);
    let first = input.u8();
    let capacity = 32usize << (first % 7);
    let policy = if first & 0x80 != 0 {
        Policy::Overwrite
    } else {
        Policy::BackPressure
    };
    let memory = make(lay::region_len(capacity));
    let (tx, rx) = Builder::new(capacity)
        .policy(policy)
        .create_in(memory.clone())
        .unwrap();
    let mut s = Script {
        memory,
        capacity,
        policy,
        tx: Some(tx),
        receivers: (0..RECEIVERS).map(|_| None).collect(),
        model: Some(vec![VecDeque::new(); RECEIVERS]),
        made: 0,
    };
    s.receivers[0] = Some(rx);
    let tiny = |input: &mut Input| Duration::from_micros(u64::from(input.u8()) * 4);
    let mut steps = 0;
    while !input.is_empty() && steps < 256 {
        steps += 1;
        let op = input.u8();
        let k = usize::from(input.u8()) % RECEIVERS;
        let len = usize::from(input.u16()) % (s.max_payload() + 32);
        match op % 16 {
            0 | 1 => {
                let timeout = (op % 16 == 1).then(|| tiny(&mut input));
                let msg = s.message(len);
                if let Some(tx) = s.tx.as_mut() {
                    let result = match timeout {
                        None => timed("try_send", || tx.try_send(&msg)).map_err(|e| e.classify()),
                        Some(t) => timed("send_timeout", || tx.send_timeout(&msg, t))
                            .map_err(|e| e.classify()),
                    };
                    s.check_send(result.map_err(Classified), msg);
                }
            }
            2 | 3 => {
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
                        // Under overwrite, a grant dropped after it announced an overwrite
                        // loses the messages it would have overwritten, reported as `Lagged`
                        // (regression: tests/hostile_regressions.rs).
                        Ok(None) => {}
                        Err(err) => s.check_send(Err(err), Vec::new()),
                    }
                }
            }
            4 => {
                if let Some(rx) = s.receivers[k].as_mut() {
                    let result = timed("try_recv", || rx.try_recv());
                    s.check_recv(k, result);
                }
            }
            5 => {
                let timeout = tiny(&mut input);
                if let Some(rx) = s.receivers[k].as_mut() {
                    let result = timed("recv_timeout", || rx.recv_timeout(timeout));
                    s.check_recv(k, result);
                }
            }
            6 => {
                if let Some(rx) = s.receivers[k].as_mut() {
                    let result = timed("try_read", || {
                        rx.try_read().map(|grant| {
                            assert!(grant.read_at(grant.len(), &mut [0]).is_err());
                            grant.to_vec()
                        })
                    });
                    s.check_recv(k, result);
                }
            }
            7 => {
                // `recv_into` waits without a deadline: only while the model has a message.
                let ready = s.model.as_ref().is_some_and(|m| !m[k].is_empty());
                if let (true, Some(rx)) = (ready, s.receivers[k].as_mut()) {
                    let mut buf = vec![0u8; len];
                    let result = timed("recv_into", || rx.recv_into(&mut buf));
                    s.check_recv(k, result.map(|n| buf[..n].to_vec()));
                }
            }
            8 => {
                // A new receiver: subscribe, clone, or attach; it starts at the tail.
                let clean = s.clean();
                let result = match (op >> 4) % 3 {
                    0 if s.tx.is_some() => {
                        timed("subscribe", || s.tx.as_ref().unwrap().subscribe())
                    }
                    1 if s.receivers.iter().any(Option::is_some) => timed("try_clone", || {
                        s.receivers.iter().flatten().next().unwrap().try_clone()
                    }),
                    _ => timed("Receiver::attach", || Receiver::attach(s.memory.clone())),
                };
                match result {
                    Ok(rx) => s.joined(k, rx),
                    Err(err) => assert!(!clean, "a new receiver refused: {err}"),
                }
            }
            9 => {
                // Drop a receiver, or the sender, or attach a new sender.
                if op & 0x10 == 0 {
                    s.receivers[k] = None;
                } else if s.tx.is_some() {
                    s.tx = None;
                } else {
                    let result = timed("Sender::attach", || Sender::attach(s.memory.clone()));
                    match result {
                        // A re-attached sender keeps the back-pressure of unread messages
                        // (regression: tests/hostile_regressions.rs).
                        Ok(tx) => s.tx = Some(tx),
                        Err(err) => assert!(!s.clean(), "re-attach refused: {err}"),
                    }
                }
            }
            10 => {
                // A second sender is refused while ours is alive.
                if s.tx.is_some() {
                    let second = Sender::attach(s.memory.clone());
                    assert!(!s.clean() || second.is_err(), "two senders");
                }
            }
            11 | 12 => {
                let offset = usize::from(input.u16()) % s.memory.len();
                poke_u64(&*s.memory, offset, input.u64());
                s.model = None;
            }
            13 => {
                let offset = usize::from(input.u16()) % s.memory.len();
                poke_u32(&*s.memory, offset, input.u32());
                s.model = None;
            }
            _ => {
                let word = s.word(input.u8(), input.u8());
                poke_special(&*s.memory, word, input.u8(), s.capacity);
                s.model = None;
            }
        }
    }
    drop(s.tx.take());
    drop(s.receivers);
}

/// An outcome already classified (the two send calls have different error types).
#[derive(Debug)]
struct Classified(Failure);

impl Classify for Classified {
    fn classify(&self) -> Failure {
        match &self.0 {
            Failure::NotNow => Failure::NotNow,
            Failure::Disconnected => Failure::Disconnected,
            Failure::TooLarge => Failure::TooLarge,
            Failure::TooSmall(n) => Failure::TooSmall(*n),
            Failure::Lagged(n) => Failure::Lagged(*n),
            Failure::Other(s) => Failure::Other(s.clone()),
        }
    }
}
