//! Target `hostile_peer`: the hostile-peer script ([`script`](super::script)) against an
//! SPSC channel. Its own operation is a batch of deferred sends, published together.

use shm_channel::spsc::Spsc;
use shm_testkit::layout::{header, spsc, Word};

use super::script::{Script, Scripted, Side};
use super::{timed, Input};

impl Scripted for Spsc {
    const FRAME_HEADER: usize = spsc::FRAME_HEADER;
    const MANY: Option<Side> = None;

    fn region_len(capacity: usize) -> usize {
        spsc::region_len(capacity)
    }

    /// The header's words, the indices, owners, flags, events, or a frame header around
    /// the current head or tail.
    fn word(s: &Script<Spsc>, input: &mut Input) -> Word {
        let (head, tail) = (s.load(spsc::HEAD), s.load(spsc::TAIL));
        match input.u8() % 22 {
            n @ 0..=5 => header::WORDS[n as usize],
            n @ 6..=17 => spsc::WORDS[n as usize - 6],
            18 | 19 => s.frame_word(spsc::DATA, head),
            20 => s.frame_word(spsc::DATA, tail),
            _ => s.frame_word(spsc::DATA, tail.wrapping_sub(8)),
        }
    }

    /// A batch of up to 4 messages, published together. A batch waits for room without a
    /// deadline, so only on a ring the model says is empty, with at most half the ring in
    /// the batch (one padding frame fits besides).
    fn own_op(s: &mut Script<Spsc>, _op: u8, _k: usize, len: usize, input: &mut Input) {
        let count = input.u8() % 4 + 1;
        let capacity = s.capacity;
        // Empty means nothing published and unread, padding frames included.
        let empty = s.model.as_ref().is_some_and(|m| m[0].is_empty())
            && s.load(spsc::HEAD) == s.load(spsc::TAIL);
        let Some(tx) = s.senders[0].as_mut().filter(|_| empty) else {
            return;
        };
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
            s.check_send(0, result, msg);
        }
    }
}
