//! A hostile peer against the MPSC channel: garbage in every shared word — tail, head,
//! receiver owner, sender count, receiver closed, both events, each field of the producer
//! slots (the victim's, another live sender's, a free one), the frame header words at the
//! head and before the tail, the header's magic and capacity — × the kit's garbage set,
//! written while the victim is blocked in a receive on an empty ring or in a send on a
//! full one, in this process (timed calls, then every call) and across `fork` (calls
//! without a deadline, which an honest peer's next send, receive or close must end), on
//! mappings between guard pages, in a debug build. Then garbage anywhere, at random.
//!
//! Every call ends in `Ok` or a typed error: never a panic, a fault, a call past its bound
//! or a wait no live process can end (GUIDE §3 rule 13).

use std::sync::Arc;

use shm_channel::mpsc::{self, Mpsc};
use shm_channel::{Receiver, Sender};
use shm_core::{Region, SharedMemory};
use shm_testkit::garbage::{frame_extras, values};
use shm_testkit::layout::{header, mpsc as lay, Word};
use shm_testkit::{Garbage, Rng, Words};

mod support;
use support::hostile::anywhere::{bounded, in_child, scatter};
use support::hostile::matrix::{run, Mode};
use support::hostile::{Bounded, Kind, Kinds, Subject, Target, CAP, TIMEOUT};
use support::Mem;

impl Subject for Mpsc {
    const NAME: &'static str = "mpsc";
    type Others = mpsc::Sender;

    fn layout_len() -> usize {
        lay::region_len(CAP)
    }

    fn fresh(
        memory: &Arc<dyn SharedMemory>,
        _case: usize,
        _for_send: bool,
    ) -> (Sender<Mpsc>, Receiver<Mpsc>) {
        mpsc::Builder::new(CAP).create_in(memory.clone()).unwrap()
    }

    fn others(tx: &mpsc::Sender, _rx: &mpsc::Receiver) -> mpsc::Sender {
        let tx2 = tx.try_clone().unwrap();
        assert_eq!((tx.slot(), tx2.slot()), (0, 1));
        tx2
    }

    fn warm_up(
        tx: &mut mpsc::Sender,
        rx: &mut mpsc::Receiver,
        tx2: &mut mpsc::Sender,
        skew: usize,
    ) {
        for i in 0..(4 + skew % 7) {
            tx.try_send(&vec![i as u8; 100 + 13 * i]).unwrap();
            tx2.try_send(&[9; 24]).unwrap();
            assert_eq!(rx.try_recv().unwrap().len(), 100 + 13 * i);
            assert_eq!(rx.try_recv().unwrap(), [9; 24]);
        }
        tx.try_send(&[3; 8]).unwrap();
        rx.try_recv().unwrap();
    }

    fn targets() -> Vec<Target> {
        let mut words: Vec<Word> = lay::WORDS.to_vec();
        words.extend(lay::slot_words(0)); // the victim sender's slot
        words.extend(lay::slot_words(1)); // another live sender's
        let [free_owner, _, free_end] = lay::slot_words(5);
        words.extend([free_owner, free_end]);
        words.extend([header::WORDS[0], header::WORDS[3]]);
        let mut targets: Vec<Target> = words.into_iter().map(Target::Fixed).collect();
        targets.extend([
            Target::AtHead {
                name: "frame word at head",
                plus: 0,
            },
            Target::AtHead {
                name: "frame word after a 100-byte frame at head",
                plus: 112,
            },
            Target::BeforeTail {
                name: "word before the tail",
                back: 8,
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
                Word::u64(name, at(mem.load_u64(lay::HEAD).wrapping_add(plus as u64)))
            }
            Target::BeforeTail { name, back } => {
                Word::u64(name, at(mem.load_u64(lay::TAIL).wrapping_sub(back as u64)))
            }
        }
    }

    fn drain_others(_tx2: &mut mpsc::Sender) {}

    fn own_calls(
        tx: &mut mpsc::Sender,
        rx: &mut mpsc::Receiver,
        kinds: &mut Kinds,
        check: &mut Bounded,
    ) {
        let clone = check.call("try_clone", || tx.try_clone());
        kinds.count(if clone.is_ok() { Kind::Ok } else { Kind::Other });
        drop(clone);
        let _ = (rx.sender_count(), rx.dead_senders(), rx.abandoned_frames());
    }
}

#[test]
fn garbage_in_every_word_while_blocked_in_recv_timeout_is_an_error_never_a_crash() {
    let kinds = run::<Mpsc>(Mode::Recv, false);
    assert!(kinds.get(Kind::Ok) > 0 && kinds.get(Kind::Corrupted) > 0);
}

#[test]
fn garbage_in_every_word_while_blocked_in_send_timeout_is_an_error_never_a_crash() {
    let kinds = run::<Mpsc>(Mode::Send, false);
    assert!(kinds.get(Kind::Ok) > 0 && kinds.get(Kind::Corrupted) > 0);
}

#[test]
fn garbage_in_every_word_never_keeps_a_blocked_recv_from_returning() {
    let kinds = run::<Mpsc>(Mode::Recv, true);
    assert!(kinds.get(Kind::Ok) > 0 && kinds.get(Kind::Corrupted) > 0);
}

#[test]
fn garbage_in_every_word_never_keeps_a_blocked_send_from_returning() {
    let kinds = run::<Mpsc>(Mode::Send, true);
    assert!(kinds.get(Kind::Ok) > 0 && kinds.get(Kind::Disconnected) > 0);
}

#[test]
fn garbage_anywhere_between_operations_is_an_error_never_a_crash() {
    in_child(|| {
        let len = mpsc::Builder::new(CAP).region_len().unwrap();
        let memory: Arc<dyn SharedMemory> =
            Arc::new(Region::options(len).guard_pages(true).anonymous().unwrap());
        let mut rng = Rng::new(0x7777_1234_5678_9abc);
        let mut errors = 0;
        for round in 0..400usize {
            let (mut tx, mut rx) = mpsc::Builder::new(CAP).create_in(memory.clone()).unwrap();
            let mut tx2 = tx.try_clone().unwrap();
            for i in 0..(3 + round % 5) {
                tx.try_send(&vec![i as u8; 40 + 30 * i]).unwrap();
                tx2.try_send(&[9; 24]).unwrap();
                rx.try_recv().unwrap();
            }
            scatter(&*memory, len, 1 + round % 4, &mut rng);
            for _ in 0..3 {
                if bounded("try_send", || tx.try_send(&[1; 100])).is_err() {
                    errors += 1;
                }
                if bounded("send_timeout", || tx2.send_timeout(&[2; 300], TIMEOUT)).is_err() {
                    errors += 1;
                }
                if let Ok(mut grant) = bounded("try_reserve", || tx.try_reserve(64)) {
                    grant.write_at(0, &[3; 64]).unwrap();
                    grant.commit(50);
                }
                for _ in 0..3 {
                    match bounded("recv_timeout", || rx.recv_timeout(TIMEOUT)) {
                        Ok(msg) => assert!(msg.len() <= CAP),
                        Err(_) => errors += 1,
                    }
                }
                if let Ok(grant) = bounded("try_read", || rx.try_read()) {
                    let _ = grant.to_vec();
                }
            }
            let _ = bounded("attach", || mpsc::Sender::attach(memory.clone()));
            let _ = bounded("attach", || mpsc::Receiver::attach(memory.clone()));
        }
        errors
    });
}
