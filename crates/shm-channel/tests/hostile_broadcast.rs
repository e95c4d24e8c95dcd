//! A hostile peer against the broadcast channel: garbage in every shared word — tail,
//! oldest, sender owner, sender closed, policy, both events, each field of the reader slots
//! (the victim's, another live reader's, a free one), the frame stamp and frame word at the
//! victim's cursor and of the last frame, the header's magic and capacity — × the kit's
//! garbage set, written while the victim is blocked in a receive on an empty ring (either
//! policy) or in a send on a full one (back-pressure), in this process (timed calls, then
//! every call) and across `fork` (calls without a deadline, which an honest peer's next
//! send, receive or close must end), on mappings between guard pages, in a debug build.
//! Between our operations and racing them; then garbage anywhere, at random. The scenarios
//! are written once, over the flavor, in `support/hostile/`; this file names what is
//! broadcast's own.
//!
//! Every call ends in `Ok` or a typed error: never a panic, a fault, a call past its bound
//! or a wait no live process can end (GUIDE §3 rule 13).

use shm_channel::broadcast::{Broadcast, Policy};
use shm_channel::{Builder, Receiver, Sender};
use shm_testkit::layout::{broadcast as lay, header, Ring};

mod support;
use support::hostile::{hostile_tests, Calls, Kind, Others, Subject, Target, CAP};

impl Subject for Broadcast {
    const NAME: &'static str = "broadcast";
    const RING: Ring = lay::RING;

    /// A blocked receiver comes back `Disconnected` once the honest sender closes.
    const FORKED_EXPECT: [Kind; 2] = [Kind::Disconnected, Kind::Corrupted];

    /// Back-pressure where the sender must block on a full ring, else either policy.
    fn builder(case: usize, for_send: bool) -> Builder<Broadcast> {
        let policy = if for_send || case % 2 == 0 {
            Policy::BackPressure
        } else {
            Policy::Overwrite
        };
        Builder::<Broadcast>::new(CAP).policy(policy)
    }

    /// A second live receiver.
    fn others(tx: &Sender<Broadcast>, _rx: &Receiver<Broadcast>) -> Others<Broadcast> {
        Others::of(Vec::new(), vec![tx.subscribe().unwrap()])
    }

    /// The control block, each field of the victim receiver's slot, of another live
    /// reader's and a free slot's owner, the header's magic and capacity, the frame stamp
    /// and word at the victim's cursor and of the last frame.
    fn targets() -> Vec<Target> {
        let readers = [lay::reader_words(0), lay::reader_words(1)].concat();
        let more = [lay::reader_words(7)[0], header::WORDS[0], header::WORDS[3]];
        Target::list(
            [&lay::WORDS[..], &readers, &more].concat(),
            &[
                Target::at_head("frame stamp at the cursor", 0),
                Target::at_head("frame word at the cursor", 8),
                Target::before_tail("last frame's stamp", 32),
                Target::before_tail("last frame's word", 24),
            ],
        )
    }

    fn own_calls(tx: &mut Sender<Broadcast>, rx: &mut Receiver<Broadcast>, calls: &mut Calls) {
        calls.join("subscribe", || tx.subscribe());
        calls.join("try_clone", || rx.try_clone());
        let _ = tx.receiver_count();
    }
}

hostile_tests!(Broadcast);
