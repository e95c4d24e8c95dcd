//! What a scenario sends and how its receiver checks it.
//!
//! Message `seq` of a scenario is [`Outgoing`]: for a byte transport, `size` bytes of the
//! position-dependent template (so that misplaced or reordered chunks are caught) with the
//! sequence number stamped in its first 8 bytes and, for messages of 16 bytes or more,
//! `seq ^ TAIL_MIX` in its last 8 bytes (so that a torn or truncated message is caught);
//! messages shorter than 8 bytes carry the low bytes of the sequence number. For a
//! transport of typed values, it is the [`Value`] made from `seq`.
//!
//! The sender writes every byte (a copy of the template plus the stamps). The receiver
//! hands each message to its [`Checker`], which checks either the stamps only (cheap: two
//! words, the default) or every byte (verify mode) — for a typed value, its sequence number
//! or the whole value — and counts the bytes it verified. Messages are reached through
//! [`MsgOut`]/[`MsgIn`], never as slices of shared memory.

use crate::msg::{MsgIn, MsgOut};

/// Mixed into the tail stamp so that head and tail differ even for `seq == 0`.
const TAIL_MIX: u64 = 0xA5A5_5A5A_DEAD_BEEF;

/// The byte at `i` of the template: a multiplicative hash of the position, so that a
/// chunk moved by any offset that is not a multiple of 2^32 reads differently.
fn template_byte(i: usize) -> u8 {
    ((i as u32).wrapping_mul(0x9E37_79B1) >> 24) as u8
}

/// The payload template of the largest message size, shared by senders and receivers.
#[derive(Clone, Debug)]
pub struct Payload {
    template: Vec<u8>,
}

impl Payload {
    /// A template for messages of up to `max_len` bytes.
    pub fn new(max_len: usize) -> Payload {
        Payload {
            template: (0..max_len).map(template_byte).collect(),
        }
    }

    /// The largest message this template covers.
    pub(crate) fn max_len(&self) -> usize {
        self.template.len()
    }

    /// Writes message `seq` into `out`: every byte, each once (the stamps as words, the
    /// template between them).
    #[inline(always)]
    fn write(&self, out: &mut MsgOut<'_>, seq: u64) {
        let len = out.len();
        // The template between the stamps (none in a message of 8 or 16 bytes).
        let between = 8..if len >= 16 { len - 8 } else { len };
        if !between.is_empty() {
            out.write_at(8, &self.template[between]);
        }
        self.write_stamps(out, seq);
    }

    /// Writes the stamps of message `seq` alone: all that differs between two messages of
    /// one size, for a buffer that holds the template already.
    #[inline(always)]
    fn write_stamps(&self, out: &mut MsgOut<'_>, seq: u64) {
        let len = out.len();
        let head = seq.to_le_bytes();
        if len < 8 {
            out.write_at(0, &head[..len]);
            return;
        }
        out.write_at(0, &head);
        if len >= 16 {
            out.write_at(len - 8, &(seq ^ TAIL_MIX).to_le_bytes());
        }
    }

    /// Checks the stamps of message `seq` (one or two words, copied out).
    #[inline(always)]
    fn check_stamps(&self, msg: &MsgIn<'_>, seq: u64) -> bool {
        let len = msg.len();
        if len >= 16 {
            return msg.read_u64_at(0) == seq && msg.read_u64_at(len - 8) == seq ^ TAIL_MIX;
        }
        if len >= 8 {
            return msg.read_u64_at(0) == seq;
        }
        let mut word = [0u8; 8];
        msg.read_at(0, &mut word[..len]);
        word[..len] == seq.to_le_bytes()[..len]
    }

    /// Checks every byte of message `seq`. A message in shared memory is copied out in
    /// chunks into private memory before it is compared (docs/architecture.md, rule 1).
    fn check_every_byte(&self, msg: &MsgIn<'_>, seq: u64) -> bool {
        let len = msg.len();
        if !self.check_stamps(msg, seq) {
            return false;
        }
        let lo = len.min(8);
        let hi = if len >= 16 { len - 8 } else { len };
        if let Some(buf) = msg.as_private() {
            return buf[lo..hi] == self.template[lo..hi];
        }
        let mut chunk = [0u8; 4096];
        let mut at = lo;
        while at < hi {
            let n = (hi - at).min(chunk.len());
            msg.read_at(at, &mut chunk[..n]);
            if chunk[..n] != self.template[at..at + n] {
                return false;
            }
            at += n;
        }
        true
    }
}

/// A typed message: made from a sequence number, checked against it.
pub(crate) trait Value: Sized + PartialEq {
    /// Value number `seq`.
    fn make(seq: u64) -> Self;
    /// Its sequence number.
    fn seq(&self) -> u64;
}

/// The next message a sender sends: message `seq` of `size` bytes.
///
/// An endpoint writes it with [`write_to`](Outgoing::write_to) (every byte); a transport of
/// typed values sends the value made from its sequence number instead.
#[derive(Clone, Copy, Debug)]
pub struct Outgoing<'a> {
    payload: &'a Payload,
    size: usize,
    seq: u64,
}

impl<'a> Outgoing<'a> {
    /// Message 0 of `size` bytes.
    pub(crate) fn first(payload: &'a Payload, size: usize) -> Outgoing<'a> {
        debug_assert!(size <= payload.max_len());
        Outgoing {
            payload,
            size,
            seq: 0,
        }
    }

    /// Moves on to the next message.
    #[inline]
    pub(crate) fn advance(&mut self) {
        self.seq += 1;
    }

    /// Its sequence number.
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// Its size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Writes the message into `out`, every byte of it.
    ///
    /// # Panics
    ///
    /// If `out` is not [`size`](Outgoing::size) bytes long.
    #[inline(always)]
    pub fn write_to(&self, out: &mut MsgOut<'_>) {
        assert_eq!(out.len(), self.size, "a buffer of the message's size");
        self.payload.write(out, self.seq);
    }

    /// [`write_to`](Outgoing::write_to) into a buffer that holds an earlier message of the
    /// same size, written by `write_to`: only the stamps change.
    #[inline(always)]
    pub(crate) fn rewrite_in(&self, out: &mut MsgOut<'_>) {
        assert_eq!(out.len(), self.size, "a buffer of the message's size");
        self.payload.write_stamps(out, self.seq);
    }

    /// The typed value of this message.
    pub(crate) fn value<V: Value>(&self) -> V {
        V::make(self.seq)
    }
}

/// The receiver's side: checks each message in sequence and counts what it verified.
#[derive(Debug)]
pub struct Checker<'a> {
    payload: &'a Payload,
    size: usize,
    full: bool,
    /// The sequence number the next message must carry.
    pub(crate) next_seq: u64,
    /// Bytes checked one by one (verify mode only).
    pub(crate) verified_bytes: u64,
    /// Sequence number of the first bad message, if any.
    pub(crate) first_bad: Option<u64>,
}

impl<'a> Checker<'a> {
    /// A checker of `size`-byte messages expecting sequence number 0 first; `full` checks
    /// every byte (every field of a value).
    pub(crate) fn new(payload: &'a Payload, size: usize, full: bool) -> Checker<'a> {
        Checker {
            payload,
            size,
            full,
            next_seq: 0,
            verified_bytes: 0,
            first_bad: None,
        }
    }

    /// The size in bytes of the messages it checks.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Checks the next message; returns whether it was good. A message of which only the
    /// stamps were written (the `shm-zero-copy-stamps` ring) gets the stamp check even in
    /// full mode, and counts no bytes.
    #[inline(always)]
    pub fn check(&mut self, msg: &MsgIn<'_>) -> bool {
        let seq = self.next_seq;
        let ok = if msg.len() != self.size {
            false
        } else if self.full && msg.is_whole() {
            self.payload.check_every_byte(msg, seq)
        } else {
            self.payload.check_stamps(msg, seq)
        };
        self.verdict(ok, self.full && msg.is_whole())
    }

    /// Checks the next typed value: its sequence number, or in full mode the whole value
    /// (counting the message's size as verified).
    pub(crate) fn check_value<V: Value>(&mut self, v: &V) -> bool {
        let ok = if self.full {
            *v == V::make(self.next_seq)
        } else {
            v.seq() == self.next_seq
        };
        self.verdict(ok, self.full)
    }

    /// Records the verdict on message `next_seq`; `counted`: its bytes were checked one by
    /// one.
    #[inline]
    fn verdict(&mut self, ok: bool, counted: bool) -> bool {
        if ok && counted {
            self.verified_bytes += self.size as u64;
        }
        if !ok && self.first_bad.is_none() {
            self.first_bad = Some(self.next_seq);
        }
        self.next_seq += 1;
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Message `seq` of `len` bytes, written into a private buffer.
    fn message(p: &Payload, len: usize, seq: u64) -> Vec<u8> {
        let mut out = Outgoing::first(p, len);
        (0..seq).for_each(|_| out.advance());
        let mut b = vec![0u8; len];
        out.write_to(&mut MsgOut::private(&mut b));
        b
    }

    #[test]
    fn written_message_passes_both_checks() {
        let p = Payload::new(4096);
        for len in [1, 7, 8, 9, 15, 16, 17, 64, 4096] {
            let b = message(&p, len, 12345);
            let m = MsgIn::private(&b);
            assert!(p.check_stamps(&m, 12345), "len {len}");
            assert!(p.check_every_byte(&m, 12345), "len {len}");
            assert!(!p.check_every_byte(&m, 12346), "len {len}");
        }
    }

    #[test]
    fn a_rewrite_over_the_last_message_is_the_next_message() {
        let p = Payload::new(4096);
        for len in [1, 7, 8, 9, 15, 16, 17, 64, 4096] {
            let mut out = Outgoing::first(&p, len);
            let mut b = vec![0u8; len];
            out.write_to(&mut MsgOut::private(&mut b));
            for seq in 1..4 {
                out.advance();
                out.rewrite_in(&mut MsgOut::private(&mut b));
                assert_eq!(b, message(&p, len, seq), "len {len}, message {seq}");
            }
        }
    }

    #[test]
    fn every_byte_comes_from_the_template_or_the_stamps() {
        let p = Payload::new(64);
        let b = message(&p, 64, 0);
        assert_eq!(b[..8], [0u8; 8]);
        assert_eq!(b[8..56], p.template[8..56]);
        assert_eq!(b[56..], TAIL_MIX.to_le_bytes());
    }

    #[test]
    fn flipped_middle_byte_fails_full_check_only() {
        let p = Payload::new(64);
        let mut b = message(&p, 64, 3);
        b[30] ^= 1;
        assert!(p.check_stamps(&MsgIn::private(&b), 3));
        assert!(!p.check_every_byte(&MsgIn::private(&b), 3));
        // SAFETY: `b` is valid for 64 bytes and not otherwise borrowed meanwhile.
        let shared = unsafe { MsgIn::shared(b.as_ptr(), 64) };
        assert!(!p.check_every_byte(&shared, 3));
    }

    #[test]
    fn checker_counts_verified_bytes_and_catches_reorder() {
        let p = Payload::new(100);
        let mut c = Checker::new(&p, 100, true);
        assert!(c.check(&MsgIn::private(&message(&p, 100, 0))));
        assert!(!c.check(&MsgIn::private(&message(&p, 100, 2))));
        assert_eq!(c.verified_bytes, 100);
        assert_eq!(c.first_bad, Some(1));
    }

    #[test]
    fn checker_refuses_a_message_of_another_size() {
        let p = Payload::new(100);
        let mut c = Checker::new(&p, 64, false);
        assert!(!c.check(&MsgIn::private(&message(&p, 100, 0))));
        assert_eq!(c.first_bad, Some(0));
    }

    #[derive(Debug, PartialEq)]
    struct Numbered(u64, u64);

    impl Value for Numbered {
        fn make(seq: u64) -> Numbered {
            Numbered(seq, seq * 3)
        }

        fn seq(&self) -> u64 {
            self.0
        }
    }

    #[test]
    fn checker_checks_values_by_number_or_whole() {
        let p = Payload::new(8);
        let mut stamps = Checker::new(&p, 16, false);
        assert!(stamps.check_value(&Numbered(0, 99)));
        assert_eq!(stamps.verified_bytes, 0);
        let mut full = Checker::new(&p, 16, true);
        assert!(full.check_value(&Numbered::make(0)));
        assert!(!full.check_value(&Numbered(1, 99)));
        assert_eq!((full.verified_bytes, full.first_bad), (16, Some(1)));
    }
}
