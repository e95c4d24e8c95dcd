//! Target `hostile_mpsc`: the hostile-peer script ([`script`](super::script)) against an
//! MPSC channel, with up to four senders (clones, attaches, drops), each in a lane of its
//! slot. Messages of one lane arrive in the order they were sent; lanes interleave.

use shm_channel::mpsc::{Mpsc, DEFAULT_MAX_SENDERS};
use shm_channel::Sender;
use shm_testkit::layout::{header, mpsc as lay, Word};

use super::script::{Script, Scripted, Side};
use super::{timed, Input};

impl Scripted for Mpsc {
    const FRAME_HEADER: usize = lay::FRAME_HEADER;
    const MANY: Option<Side> = Some(Side::Send);

    fn region_len(capacity: usize) -> usize {
        lay::region_len(capacity)
    }

    /// Header, status, events, lanes, sender slots (owner, event, lane tail and head),
    /// frame words around a lane's head and tail.
    fn word(s: &Script<Mpsc>, input: &mut Input) -> Word {
        let (pick, slot) = (input.u8(), usize::from(input.u8()) % DEFAULT_MAX_SENDERS);
        let base = lay::slot(slot);
        let (head, tail) = (s.load(base + lay::SLOT_HEAD), s.load(base + lay::SLOT_TAIL));
        let lane = lay::DATA + slot * s.capacity;
        match pick % 23 {
            0 => header::WORDS[0],
            1 => header::WORDS[3],
            n @ 2..=12 => lay::WORDS[n as usize - 2],
            n @ 13..=16 => lay::slot_words(slot)[[0, 3, 4, 5][n as usize - 13]],
            17..=19 => s.frame_word(lane, head),
            20 => s.frame_word(lane, tail),
            _ => s.frame_word(lane, tail.wrapping_sub(8)),
        }
    }

    fn lane(tx: &Sender<Mpsc>) -> usize {
        tx.slot()
    }

    /// A new sender in place `k`: a clone of one we hold, or an attach.
    fn own_op(s: &mut Script<Mpsc>, op: u8, k: usize, _len: usize, _input: &mut Input) {
        let clean = s.clean();
        let result = match s.senders.iter().flatten().next() {
            Some(tx) if op & 0x10 == 0 => timed("try_clone", || tx.try_clone()),
            _ => timed("Sender::<Mpsc>::attach", || {
                Sender::<Mpsc>::attach(s.memory.clone())
            }),
        };
        match result {
            Ok(tx) if s.senders[k].is_none() => s.senders[k] = Some(tx),
            Ok(_) => {}
            Err(err) => assert!(!clean, "a new sender refused: {err}"),
        }
    }
}
