//! A hostile peer against the MPSC channel: garbage in every shared word — receiver owner,
//! sender count, receiver closed, both events, the lane count and the lanes-used bits, each
//! word of the sender slots (owner, space event, the lane's tail and head: the victim's,
//! another live sender's, a free one), the frame header words at the victim lane's head and
//! before its tail, the header's magic and capacity — × the kit's garbage set,
//! written while the victim is blocked in a receive on an empty ring or in a send on a
//! full one, in this process (timed calls, then every call) and across `fork` (calls
//! without a deadline, which an honest peer's next send, receive or close must end), on
//! mappings between guard pages, in a debug build; between our operations and racing them;
//! then garbage anywhere, at random. The scenarios are written once, over the flavor, in
//! `support/hostile/`; this file names what is MPSC's own.
//!
//! Every call ends in `Ok` or a typed error: never a panic, a fault, a call past its bound
//! or a wait no live process can end (GUIDE §3 rule 13).

use shm_channel::mpsc::Mpsc;
use shm_channel::{Receiver, Sender};
use shm_testkit::layout::{header, mpsc as lay, Ring};

mod support;
use support::hostile::{hostile_tests, Calls, Kind, Others, Subject, Target};

impl Subject for Mpsc {
    const NAME: &'static str = "mpsc";
    const RING: Ring = lay::RING;
    /// A blocked sender comes back `Disconnected` once the honest receiver closes.
    const FORKED_EXPECT: [Kind; 2] = [Kind::Corrupted, Kind::Disconnected];

    /// A second live sender.
    fn others(tx: &Sender<Mpsc>, _rx: &Receiver<Mpsc>) -> Others<Mpsc> {
        let tx2 = tx.try_clone().unwrap();
        assert_eq!((tx.slot(), tx2.slot()), (0, 1));
        Others::of(vec![tx2], Vec::new())
    }

    /// The control block, each field of the victim sender's slot, of another live
    /// sender's and of a free one, the header's magic and capacity, the frame words at the
    /// head, after a 100-byte frame at the head, and before the tail.
    fn targets() -> Vec<Target> {
        let [free_owner, _, _, free_tail, free_head, _, _] = lay::slot_words(5);
        let slots = [lay::slot_words(0), lay::slot_words(1)].concat();
        let more = [
            free_owner,
            free_tail,
            free_head,
            header::WORDS[0],
            header::WORDS[3],
        ];
        let frames = [
            Target::at_head("frame word at head", 0),
            Target::at_head("frame word after a 100-byte frame at head", 112),
            Target::before_tail("word before the tail", 8),
        ];
        Target::list([&lay::WORDS[..], &slots, &more].concat(), &frames)
    }

    fn own_calls(tx: &mut Sender<Mpsc>, rx: &mut Receiver<Mpsc>, calls: &mut Calls) {
        calls.join("try_clone", || tx.try_clone());
        let _ = (rx.sender_count(), rx.dead_senders());
    }
}

hostile_tests!(Mpsc);
