//! Target `hostile_mpsc`: a script of MPSC operations — several senders (clones, attaches,
//! drops), grants committed or dropped, every receive call — interleaved with hostile
//! writes of arbitrary and interesting words, model-checked while no hostile write
//! happened (messages arrive in claim order, none lost, reordered or partial).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use shm_channel::mpsc::{Builder, Receiver, Sender, MAX_SENDERS};
use shm_core::SharedMemory;
use shm_testkit::layout::{header, mpsc as lay, Word};

use super::{
    check_received, contents, load_u64, max_payload, poke_special, poke_u32, poke_u64, timed,
    Classify, Failure, Input, MakeMemory,
};

/// Most senders a script keeps at once.
const SENDERS: usize = 4;

struct Script {
    memory: Arc<dyn SharedMemory>,
    capacity: usize,
    senders: Vec<Option<Sender>>,
    rx: Option<Receiver>,
    /// Messages committed and not yet received, in claim order (one thread: claim order is
    /// call order), while only our endpoints wrote the memory; `None` once tampered.
    model: Option<VecDeque<Vec<u8>>>,
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

    fn no_sender(&self) -> bool {
        self.senders.iter().all(Option::is_none)
    }

    fn sent(&mut self, msg: Vec<u8>) {
        if let Some(model) = self.model.as_mut() {
            model.push_back(msg);
        }
    }

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

    fn check_recv(&mut self, result: Result<Vec<u8>, impl Classify>) {
        check_received(&result, self.capacity);
        let no_sender = self.no_sender();
        let Some(model) = self.model.as_mut() else {
            return;
        };
        match result.map_err(|e| e.classify()) {
            Ok(msg) => {
                let expected = model.pop_front();
                assert_eq!(Some(msg), expected, "reordered, lost or partial message");
            }
            Err(Failure::NotNow) => assert!(model.is_empty(), "{} messages not seen", model.len()),
            Err(Failure::Disconnected) => {
                assert!(model.is_empty() && no_sender, "disconnected too early")
            }
            Err(Failure::TooSmall(needed)) => {
                assert_eq!(Some(needed), model.front().map(Vec::len))
            }
            Err(err) => panic!("{err:?} while clean"),
        }
    }

    /// An interesting shared word: header, indices, status, events, producer slots, frame
    /// words around the head and tail.
    fn word(&self, pick: u8, slot: u8) -> Word {
        let mask = self.capacity as u64 - 1;
        let head = load_u64(&*self.memory, lay::HEAD);
        let tail = load_u64(&*self.memory, lay::TAIL);
        let frame = |pos: u64| Word::u64("frame", lay::DATA + ((pos & mask) & !7) as usize);
        match pick % 20 {
            0 => header::WORDS[0],
            1 => header::WORDS[3],
            n @ 2..=10 => lay::WORDS[n as usize - 2],
            n @ 11..=13 => lay::slot_words(usize::from(slot) % MAX_SENDERS)[n as usize - 11],
            14..=16 => frame(head),
            17 => frame(tail),
            _ => frame(tail.wrapping_sub(8)),
        }
    }
}

/// Runs a script decoded from `data`: our operations interleaved with hostile writes.
///
/// `data[0]` picks the capacity (16 << n, n < 8); then each operation is one byte of
/// opcode, a sender number and a length, then its arguments (see the `match` below).
pub fn script(data: &[u8], make: MakeMemory) {
    let mut input = Input(data);
    let capacity = 16usize << (input.u8() % 8);
    let memory = make(lay::region_len(capacity));
    let (tx, rx) = Builder::new(capacity).create_in(memory.clone()).unwrap();
    let mut s = Script {
        memory,
        capacity,
        senders: vec![Some(tx)],
        rx: Some(rx),
        model: Some(VecDeque::new()),
        made: 0,
    };
    let tiny = |input: &mut Input| Duration::from_micros(u64::from(input.u8()) * 4);
    let mut steps = 0;
    while !input.is_empty() && steps < 256 {
        steps += 1;
        let op = input.u8();
        let k = usize::from(input.u8()) % SENDERS;
        let len = usize::from(input.u16()) % (max_payload(capacity) + 16);
        if s.senders.len() <= k {
            s.senders.resize_with(k + 1, || None);
        }
        match op % 16 {
            0 | 1 => {
                let timeout = if op % 16 == 1 {
                    Some(tiny(&mut input))
                } else {
                    None
                };
                let msg = s.message(len);
                if let Some(tx) = s.senders[k].as_mut() {
                    match timeout {
                        None => {
                            let result = timed("try_send", || tx.try_send(&msg));
                            s.check_send(result, msg);
                        }
                        Some(t) => {
                            let result = timed("send_timeout", || tx.send_timeout(&msg, t));
                            s.check_send(result, msg);
                        }
                    }
                }
            }
            2 | 3 => {
                // Reserve, write, commit `written` bytes (or drop the grant: a skip frame).
                let written = usize::from(input.u16());
                let msg = s.message(len);
                if let Some(tx) = s.senders[k].as_mut() {
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
                if let Some(rx) = s.rx.as_mut() {
                    let result = timed("try_read", || {
                        rx.try_read().map(|grant| {
                            assert!(grant.read_at(grant.len(), &mut [0]).is_err());
                            grant.to_vec()
                        })
                    });
                    s.check_recv(result);
                }
            }
            7 => {
                // `recv_into` waits without a deadline: only while the model has a message.
                let ready = s.model.as_ref().is_some_and(|m| !m.is_empty());
                if let (true, Some(rx)) = (ready, s.rx.as_mut()) {
                    let mut buf = vec![0u8; len];
                    let result = timed("recv_into", || rx.recv_into(&mut buf));
                    s.check_recv(result.map(|n| buf[..n].to_vec()));
                }
            }
            8 => {
                // A new sender: a clone of one we hold, or an attach.
                let clean = s.clean();
                let result = match s.senders.iter().flatten().next() {
                    Some(tx) if op & 0x10 == 0 => timed("try_clone", || tx.try_clone()),
                    _ => timed("Sender::attach", || Sender::attach(s.memory.clone())),
                };
                match result {
                    Ok(tx) if s.senders[k].is_none() => s.senders[k] = Some(tx),
                    Ok(_) => {}
                    Err(err) => assert!(!clean, "a new sender refused: {err}"),
                }
            }
            9 => {
                // Drop a sender (it leaves), or the receiver, or attach a new receiver.
                if op & 0x10 == 0 {
                    s.senders[k] = None;
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
                // A second receiver is refused while ours is alive.
                if s.rx.is_some() {
                    let second = Receiver::attach(s.memory.clone());
                    assert!(!s.clean() || second.is_err(), "two receivers");
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
    drop(s.senders);
    drop(s.rx.take());
}
