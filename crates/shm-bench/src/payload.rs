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
//! byte (verify mode), and counts the bytes it verified.

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

    /// Writes message `seq` into `buf` (every byte).
    pub fn fill(&self, buf: &mut [u8], seq: u64) {
        let len = buf.len();
        buf.copy_from_slice(&self.template[..len]);
        let head = seq.to_le_bytes();
        let n = len.min(8);
        buf[..n].copy_from_slice(&head[..n]);
        if len >= 16 {
            buf[len - 8..].copy_from_slice(&(seq ^ TAIL_MIX).to_le_bytes());
        }
    }

    /// Checks the stamps of message `seq` (two words).
    pub fn check_sample(&self, buf: &[u8], seq: u64) -> bool {
        let len = buf.len();
        let n = len.min(8);
        if buf[..n] != seq.to_le_bytes()[..n] {
            return false;
        }
        len < 16 || buf[len - 8..] == (seq ^ TAIL_MIX).to_le_bytes()
    }

    /// Checks every byte of message `seq`.
    pub fn check_full(&self, buf: &[u8], seq: u64) -> bool {
        let len = buf.len();
        if !self.check_sample(buf, seq) {
            return false;
        }
        let lo = len.min(8);
        let hi = if len >= 16 { len - 8 } else { len };
        buf[lo..hi] == self.template[lo..hi]
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

    /// Checks the next message; returns whether it was good.
    #[inline]
    pub fn check(&mut self, buf: &[u8]) -> bool {
        let seq = self.next_seq;
        self.next_seq += 1;
        let ok = if self.full {
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
            p.fill(&mut b, 12345);
            assert!(p.check_sample(&b, 12345), "len {len}");
            assert!(p.check_full(&b, 12345), "len {len}");
            assert!(!p.check_full(&b, 12346) || len == 0, "len {len}");
        }
    }

    #[test]
    fn flipped_middle_byte_fails_full_check_only() {
        let p = Payload::new(64);
        let mut b = vec![0u8; 64];
        p.fill(&mut b, 3);
        b[30] ^= 1;
        assert!(p.check_sample(&b, 3));
        assert!(!p.check_full(&b, 3));
    }

    #[test]
    fn checker_counts_verified_bytes_and_catches_reorder() {
        let p = Payload::new(100);
        let mut c = Checker::new(&p, true);
        let mut b = vec![0u8; 100];
        p.fill(&mut b, 0);
        assert!(c.check(&b));
        p.fill(&mut b, 2);
        assert!(!c.check(&b));
        assert_eq!(c.verified_bytes, 100);
        assert_eq!(c.first_bad, Some(1));
    }
}
