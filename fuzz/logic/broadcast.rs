//! Target `hostile_broadcast`: the hostile-peer script ([`script`](super::script)) against
//! a broadcast channel, with up to four receivers (subscribes, clones, attaches, drops),
//! the sender dropped and re-attached, either policy. Each receiver gets every message
//! sent since it joined, in order; under overwrite, `Lagged(n)` skips exactly the `n`
//! oldest it had not read. A re-attached sender keeps the back-pressure of unread messages
//! (regression: tests/hostile_regressions.rs).

use shm_channel::broadcast::{Broadcast, Policy, MAX_READERS};
use shm_channel::{Builder, Receiver};
use shm_testkit::layout::{broadcast as lay, header, Word};

use super::script::{Opened, Script, Scripted, Side};
use super::{timed, Input, MakeMemory};

impl Scripted for Broadcast {
    const FRAME_HEADER: usize = lay::FRAME_HEADER;
    const MANY: Option<Side> = Some(Side::Recv);
    const SENDS_DISCONNECT: bool = false;
    const JOINS_AT_TAIL: bool = true;

    fn region_len(capacity: usize) -> usize {
        lay::region_len(capacity)
    }

    /// `first` picks the capacity (32 << n, n < 7) and, in bit 7, the policy (overwrite).
    fn open(first: u8, make: MakeMemory) -> Opened<Broadcast> {
        let capacity = 32usize << (first % 7);
        let policy = if first & 0x80 != 0 {
            Policy::Overwrite
        } else {
            Policy::BackPressure
        };
        let builder = Builder::<Broadcast>::new(capacity).policy(policy);
        Opened::create(capacity, make, builder, policy == Policy::Overwrite)
    }

    /// Header, writer line, status, events, reader slots, frame stamps and words at a
    /// reader's cursor and before the tail.
    fn word(s: &Script<Broadcast>, input: &mut Input) -> Word {
        let (pick, slot) = (input.u8(), usize::from(input.u8()) % MAX_READERS);
        let cursor = s.load(lay::reader(slot) + lay::READER_CURSOR);
        let tail = s.load(lay::TAIL);
        match pick % 22 {
            0 => header::WORDS[0],
            1 => header::WORDS[3],
            n @ 2..=12 => lay::WORDS[n as usize - 2],
            n @ 13..=14 => lay::reader_words(slot)[n as usize - 13],
            15 | 16 => s.frame_word(lay::DATA, cursor),
            17 | 18 => s.frame_word(lay::DATA, cursor.wrapping_add(8)),
            19 => s.frame_word(lay::DATA, tail.wrapping_sub(16)),
            _ => s.frame_word(lay::DATA, tail.wrapping_sub(8)),
        }
    }

    /// A new receiver in place `k`: subscribe, clone, or attach; it starts at the tail.
    fn own_op(s: &mut Script<Broadcast>, op: u8, k: usize, _len: usize, _input: &mut Input) {
        let clean = s.clean();
        let result = match (op >> 4) % 3 {
            0 if s.senders[0].is_some() => {
                timed("subscribe", || s.senders[0].as_ref().unwrap().subscribe())
            }
            1 if s.receivers.iter().any(Option::is_some) => timed("try_clone", || {
                s.receivers.iter().flatten().next().unwrap().try_clone()
            }),
            _ => timed("Receiver::<Broadcast>::attach", || {
                Receiver::<Broadcast>::attach(s.memory.clone())
            }),
        };
        match result {
            Ok(rx) => s.joined(k, rx),
            Err(err) => assert!(!clean, "a new receiver refused: {err}"),
        }
    }
}
