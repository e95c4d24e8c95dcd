//! A hostile peer against the broadcast channel: garbage in every shared word — tail,
//! oldest, sender owner, sender closed, policy, both events, each field of the reader slots
//! (the victim's, another live reader's, a free one), the frame stamp and frame word at the
//! victim's cursor and of the last frame, the header's magic and capacity — × the kit's
//! garbage set, written while the victim is blocked in a receive on an empty ring (either
//! policy) or in a send on a full one (back-pressure), in this process (timed calls, then
//! every call) and across `fork` (calls without a deadline, which an honest peer's next
//! send, receive or close must end), on mappings between guard pages, in a debug build.
//! Then garbage anywhere, at random.
//!
//! Every call ends in `Ok` or a typed error: never a panic, a fault, a call past its bound
//! or a wait no live process can end (GUIDE §3 rule 13).

use std::sync::Arc;

use shm_channel::broadcast::{self, Broadcast, Policy};
use shm_channel::{Receiver, Sender};
use shm_core::{Region, SharedMemory};
use shm_testkit::garbage::{frame_extras, values};
use shm_testkit::layout::{broadcast as lay, header, Word};
use shm_testkit::{Garbage, Rng, Words};

mod support;
use support::hostile::anywhere::{bounded, in_child, scatter};
use support::hostile::matrix::{run, Mode};
use support::hostile::{Bounded, Kind, Kinds, Subject, Target, CAP, TIMEOUT};
use support::Mem;

impl Subject for Broadcast {
    const NAME: &'static str = "broadcast";
    type Others = broadcast::Receiver;

    fn layout_len() -> usize {
        lay::region_len(CAP)
    }

    fn fresh(
        memory: &Arc<dyn SharedMemory>,
        case: usize,
        for_send: bool,
    ) -> (Sender<Broadcast>, Receiver<Broadcast>) {
        let policy = if for_send || case % 2 == 0 {
            Policy::BackPressure
        } else {
            Policy::Overwrite
        };
        broadcast::Builder::new(CAP)
            .policy(policy)
            .create_in(memory.clone())
            .unwrap()
    }

    fn others(tx: &broadcast::Sender, _rx: &broadcast::Receiver) -> broadcast::Receiver {
        tx.subscribe().unwrap()
    }

    fn warm_up(
        tx: &mut broadcast::Sender,
        rx: &mut broadcast::Receiver,
        rx2: &mut broadcast::Receiver,
        skew: usize,
    ) {
        for i in 0..(4 + skew % 7) {
            let msg = vec![i as u8; 100 + 13 * i];
            tx.try_send(&msg).unwrap();
            assert_eq!(rx.try_recv().unwrap(), msg);
            assert_eq!(rx2.try_recv().unwrap(), msg);
        }
        tx.try_send(&[3; 8]).unwrap();
        rx.try_recv().unwrap();
        rx2.try_recv().unwrap();
    }

    fn targets() -> Vec<Target> {
        let mut words: Vec<Word> = lay::WORDS.to_vec();
        words.extend(lay::reader_words(0)); // the victim receiver's slot
        words.extend(lay::reader_words(1)); // another live receiver's
        words.push(lay::reader_words(7)[0]); // a free slot's owner
        words.extend([header::WORDS[0], header::WORDS[3]]);
        let mut targets: Vec<Target> = words.into_iter().map(Target::Fixed).collect();
        targets.extend([
            Target::AtHead {
                name: "frame stamp at the cursor",
                plus: 0,
            },
            Target::AtHead {
                name: "frame word at the cursor",
                plus: 8,
            },
            Target::BeforeTail {
                name: "last frame's stamp",
                back: 32,
            },
            Target::BeforeTail {
                name: "last frame's word",
                back: 24,
            },
        ]);
        targets
    }

    fn values() -> Vec<Garbage> {
        let mut v = values(CAP);
        v.extend(frame_extras(CAP));
        v
    }

    fn fork_values() -> Vec<Garbage> {
        values(CAP)
    }

    fn resolve(mem: Mem<'_>, target: Target) -> Word {
        let mask = CAP as u64 - 1;
        let at = |pos: u64| lay::DATA + ((pos & mask) & !7) as usize;
        match target {
            Target::Fixed(word) => word,
            Target::AtHead { name, plus } => {
                let cursor = mem.load_u64(lay::reader(0) + lay::READER_CURSOR);
                Word::u64(name, at(cursor.wrapping_add(plus as u64)))
            }
            Target::BeforeTail { name, back } => {
                Word::u64(name, at(mem.load_u64(lay::TAIL).wrapping_sub(back as u64)))
            }
        }
    }

    fn drain_others(rx2: &mut broadcast::Receiver) {
        for _ in 0..2 * CAP {
            if rx2.try_recv().is_err() {
                break;
            }
        }
    }

    fn own_calls(
        tx: &mut broadcast::Sender,
        rx: &mut broadcast::Receiver,
        kinds: &mut Kinds,
        check: &mut Bounded,
    ) {
        let joined = check.call("subscribe", || tx.subscribe());
        kinds.count(if joined.is_ok() {
            Kind::Ok
        } else {
            Kind::Other
        });
        drop(joined);
        let joined = check.call("try_clone", || rx.try_clone());
        kinds.count(if joined.is_ok() {
            Kind::Ok
        } else {
            Kind::Other
        });
        drop(joined);
        let _ = (tx.receiver_count(), tx.policy());
    }
}

#[test]
fn garbage_in_every_word_while_blocked_in_recv_timeout_is_an_error_never_a_crash() {
    let kinds = run::<Broadcast>(Mode::Recv, false);
    assert!(kinds.get(Kind::Ok) > 0 && kinds.get(Kind::Corrupted) > 0);
}

#[test]
fn garbage_in_every_word_while_blocked_in_send_timeout_is_an_error_never_a_crash() {
    let kinds = run::<Broadcast>(Mode::Send, false);
    assert!(kinds.get(Kind::Ok) > 0 && kinds.get(Kind::Corrupted) > 0);
}

#[test]
fn garbage_in_every_word_never_keeps_a_blocked_recv_from_returning() {
    let kinds = run::<Broadcast>(Mode::Recv, true);
    assert!(kinds.get(Kind::Ok) > 0 && kinds.get(Kind::Disconnected) > 0);
}

#[test]
fn garbage_in_every_word_never_keeps_a_blocked_send_from_returning() {
    let kinds = run::<Broadcast>(Mode::Send, true);
    assert!(kinds.get(Kind::Ok) > 0 && kinds.get(Kind::Corrupted) > 0);
}

#[test]
fn garbage_anywhere_between_operations_is_an_error_never_a_crash() {
    in_child(|| {
        let len = broadcast::Builder::new(CAP).region_len().unwrap();
        let memory: Arc<dyn SharedMemory> =
            Arc::new(Region::options(len).guard_pages(true).anonymous().unwrap());
        let mut rng = Rng::new(0x4242_dead_beef_0101);
        let mut errors = 0;
        for round in 0..400usize {
            let policy = if round % 2 == 0 {
                Policy::BackPressure
            } else {
                Policy::Overwrite
            };
            let (mut tx, mut rx) = broadcast::Builder::new(CAP)
                .policy(policy)
                .create_in(memory.clone())
                .unwrap();
            let mut rx2 = tx.subscribe().unwrap();
            for i in 0..(3 + round % 5) {
                tx.try_send(&vec![i as u8; 40 + 30 * i]).unwrap();
                rx.try_recv().unwrap();
                rx2.try_recv().unwrap();
            }
            scatter(&*memory, len, 1 + round % 4, &mut rng);
            for _ in 0..3 {
                if bounded("try_send", || tx.try_send(&[1; 100])).is_err() {
                    errors += 1;
                }
                if bounded("send_timeout", || tx.send_timeout(&[2; 300], TIMEOUT)).is_err() {
                    errors += 1;
                }
                for rx in [&mut rx, &mut rx2] {
                    for _ in 0..2 {
                        match bounded("recv_timeout", || rx.recv_timeout(TIMEOUT)) {
                            Ok(msg) => assert!(msg.len() <= CAP),
                            Err(_) => errors += 1,
                        }
                    }
                }
            }
            let _ = bounded("subscribe", || tx.subscribe());
        }
        errors
    });
}
