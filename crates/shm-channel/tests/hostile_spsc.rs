//! A hostile peer against the SPSC channel: garbage in the header's magic, version,
//! capacity and region length, every word of the control block (tail, head, both owners,
//! both closed flags, both events) and the frame header at the head and before the tail ×
//! the kit's garbage set — between our operations (in this process on a heap region, and
//! across `fork`), racing them, while the victim is blocked in a receive or a send (in this
//! process and across `fork`), and anywhere at random. The scenarios are written once, over
//! the flavor, in `support/hostile/`; this file names what is SPSC's own.
//!
//! Every call ends in `Ok` or a typed error: never a panic, a fault, a call past its bound
//! or a wait no live process can end (GUIDE §3 rule 13).

use shm_channel::spsc::Spsc;
use shm_testkit::garbage::values;
use shm_testkit::layout::{header, spsc as lay, Ring};
use shm_testkit::Garbage;

mod support;
use support::hostile::{hostile_tests, Subject, Target, CAP};

impl Subject for Spsc {
    const NAME: &'static str = "spsc";
    const RING: Ring = lay::RING;

    fn targets() -> Vec<Target> {
        let words = [0, 1, 3, 5].map(|i| header::WORDS[i]);
        let frames = [
            Target::at_head("frame at head", 0),
            Target::before_tail("last frame", 8),
        ];
        Target::list([&words[..], &lay::WORDS].concat(), &frames)
    }

    fn values() -> Vec<Garbage> {
        values(CAP)
    }
}

hostile_tests!(Spsc);
