//! Message payloads: what the sender writes and how the receiver checks it.
//!
//! Every message of `len` bytes is the position-dependent template (so that misplaced or
//! reordered chunks are caught) with the sequence number stamped in its first 8 bytes and,
//! for messages of 16 bytes or more, `seq ^ TAIL_MIX` in its last 8 bytes (so that a
//! torn or truncated message is caught). Messages shorter than 8 bytes carry the low
//! bytes of the sequence number.
//!
//! The sender writes every byte (a memcpy of the template plus the stamps). The receiver
//! checks, per message, either the stamps only (cheap: two words, the default) or every
//! byte (verify mode), and counts the bytes it verified. Messages are reached through
//! [`MsgOut`]/[`MsgIn`], never as slices of shared memory.

use crate::msg::{MsgIn, MsgOut};

/// Mixed into the tail stamp so that head and tail differ even for `seq == 0`.
const TAIL_MIX: u64 = 0xA5A5_5A5A_DEAD_BEEF;

/// The byte at `i` of the template: a multiplicative hash of the position, so that a
/// chunk moved by any offset that is not a multiple of 2^32 reads differently.
fn template_byte(i: usize) -> u8 {
    ((i as u32).wrapping_mul(0x9E37_79B1) >> 24) as u8
}

/// A template of the largest message size, shared by senders and receivers.
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
    pub fn max_len(&self) -> usize {
        self.template.len()
    }

    /// Writes message `seq` into `out` (every byte).
    pub fn fill(&self, out: &mut MsgOut<'_>, seq: u64) {
        let len = out.len();
        out.write_at(0, &self.template[..len]);
        let head = seq.to_le_bytes();
        let n = len.min(8);
        out.write_at(0, &head[..n]);
        if len >= 16 {
            out.write_at(len - 8, &(seq ^ TAIL_MIX).to_le_bytes());
        }
    }

    /// Writes message `seq` into a private buffer (every byte).
    pub fn fill_slice(&self, buf: &mut [u8], seq: u64) {
        self.fill(&mut MsgOut::private(buf), seq);
    }

    /// Checks the stamps of message `seq` (two words, copied out).
    pub fn check_sample(&self, msg: &MsgIn<'_>, seq: u64) -> bool {
        let len = msg.len();
        let n = len.min(8);
        let mut word = [0u8; 8];
        msg.read_at(0, &mut word[..n]);
        if word[..n] != seq.to_le_bytes()[..n] {
            return false;
        }
        if len < 16 {
            return true;
        }
        msg.read_at(len - 8, &mut word);
        word == (seq ^ TAIL_MIX).to_le_bytes()
    }

    /// Checks every byte of message `seq`. A message in shared memory is copied out in
    /// chunks into private memory before it is compared (docs/architecture.md, rule 1).
    pub fn check_full(&self, msg: &MsgIn<'_>, seq: u64) -> bool {
        let len = msg.len();
        if !self.check_sample(msg, seq) {
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

/// The receiver's side: checks each message in sequence and counts what it verified.
#[derive(Debug)]
pub struct Checker<'a> {
    payload: &'a Payload,
    full: bool,
    /// The sequence number the next message must carry.
    pub next_seq: u64,
    /// Bytes checked one by one (verify mode only).
    pub verified_bytes: u64,
    /// Sequence number of the first bad message, if any.
    pub first_bad: Option<u64>,
}

impl<'a> Checker<'a> {
    /// A checker expecting sequence number 0 first; `full` checks every byte.
    pub fn new(payload: &'a Payload, full: bool) -> Checker<'a> {
        Checker {
            payload,
            full,
            next_seq: 0,
            verified_bytes: 0,
            first_bad: None,
        }
    }

    /// Checks the next message; returns whether it was good. A stamps-only message (see
    /// [`MsgIn::is_whole`]) gets the stamp check even in full mode, and counts no bytes.
    #[inline]
    pub fn check(&mut self, buf: &MsgIn<'_>) -> bool {
        let seq = self.next_seq;
        self.next_seq += 1;
        let ok = if self.full && buf.is_whole() {
            let ok = self.payload.check_full(buf, seq);
            if ok {
                self.verified_bytes += buf.len() as u64;
            }
            ok
        } else {
            self.payload.check_sample(buf, seq)
        };
        if !ok && self.first_bad.is_none() {
            self.first_bad = Some(seq);
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filled_message_passes_both_checks() {
        let p = Payload::new(4096);
        for len in [1, 7, 8, 9, 15, 16, 17, 64, 4096] {
            let mut b = vec![0u8; len];
            p.fill_slice(&mut b, 12345);
            let m = MsgIn::private(&b);
            assert!(p.check_sample(&m, 12345), "len {len}");
            assert!(p.check_full(&m, 12345), "len {len}");
            assert!(!p.check_full(&m, 12346) || len == 0, "len {len}");
        }
    }

    #[test]
    fn flipped_middle_byte_fails_full_check_only() {
        let p = Payload::new(64);
        let mut b = vec![0u8; 64];
        p.fill_slice(&mut b, 3);
        b[30] ^= 1;
        assert!(p.check_sample(&MsgIn::private(&b), 3));
        assert!(!p.check_full(&MsgIn::private(&b), 3));
        // SAFETY: `b` is valid for 64 bytes and not otherwise borrowed meanwhile.
        let shared = unsafe { MsgIn::shared(b.as_ptr(), 64) };
        assert!(!p.check_full(&shared, 3));
    }

    #[test]
    fn checker_counts_verified_bytes_and_catches_reorder() {
        let p = Payload::new(100);
        let mut c = Checker::new(&p, true);
        let mut b = vec![0u8; 100];
        p.fill_slice(&mut b, 0);
        assert!(c.check(&MsgIn::private(&b)));
        p.fill_slice(&mut b, 2);
        assert!(!c.check(&MsgIn::private(&b)));
        assert_eq!(c.verified_bytes, 100);
        assert_eq!(c.first_bad, Some(1));
    }
}
