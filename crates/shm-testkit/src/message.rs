//! Checked messages: sequence-numbered, checksummed, with a length and content derived from
//! the sequence number alone, so a receiver in another process rebuilds the exact bytes it
//! must get and tells a partial, corrupt, lost, duplicated or reordered message apart.
//!
//! Layout: sequence number (u64 LE), FNV-1a checksum of the rest (u32 LE), then `0 ..=
//! max_len` pseudo-random bytes. Messages of several producers carry the producer's id in
//! the top bits of the sequence number ([`tag`], [`untag`]).

use std::fmt;

use crate::Rng;

/// Bytes before the content: sequence number and checksum.
pub const PREFIX: usize = 12;

/// Producer ids live in the sequence number's bits from here up.
pub const ID_SHIFT: u32 = 40;

/// The sequence number of message `seq` of producer `id`.
pub fn tag(id: u64, seq: u64) -> u64 {
    (id << ID_SHIFT) | seq
}

/// `(id, seq)` of a tagged sequence number.
pub fn untag(tagged: u64) -> (u64, u64) {
    (tagged >> ID_SHIFT, tagged & ((1 << ID_SHIFT) - 1))
}

/// FNV-1a, 32 bits.
pub fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// Writes message `seq` into `buf` (cleared first): [`PREFIX`] bytes, then up to `max_len`
/// content bytes.
pub fn message(seq: u64, max_len: usize, buf: &mut Vec<u8>) {
    let mut rng = Rng::new(seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let len = PREFIX + rng.below(max_len as u64 + 1) as usize;
    buf.clear();
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    while buf.len() < len {
        let word = rng.next_u64().to_le_bytes();
        let take = (len - buf.len()).min(8);
        buf.extend_from_slice(&word[..take]);
    }
    let sum = checksum(&buf[PREFIX..]);
    buf[8..PREFIX].copy_from_slice(&sum.to_le_bytes());
}

/// What is wrong with a received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadMessage {
    /// Shorter than the prefix: part of a message.
    Partial(usize),
    /// The checksum does not match the content.
    Checksum(u64),
    /// Intact by its checksum, but not the message this sequence number stands for.
    Differs(u64),
}

impl fmt::Display for BadMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadMessage::Partial(len) => write!(f, "partial message of {len} bytes"),
            BadMessage::Checksum(seq) => write!(f, "checksum mismatch in message {seq}"),
            BadMessage::Differs(seq) => write!(f, "message {seq} differs from what was sent"),
        }
    }
}

impl std::error::Error for BadMessage {}

/// Checks received messages against what [`message`] makes, reusing one buffer (no
/// allocation per message, for soak loops).
#[derive(Debug, Clone)]
pub struct Checker {
    max_len: usize,
    expected: Vec<u8>,
}

impl Checker {
    /// A checker for messages made with `max_len`.
    pub fn new(max_len: usize) -> Checker {
        Checker {
            max_len,
            expected: Vec::with_capacity(PREFIX + max_len),
        }
    }

    /// The sequence number of `got` if it is intact (checksum and exact bytes).
    pub fn check(&mut self, got: &[u8]) -> Result<u64, BadMessage> {
        if got.len() < PREFIX {
            return Err(BadMessage::Partial(got.len()));
        }
        let seq = u64::from_le_bytes(got[..8].try_into().expect("8 bytes"));
        let sum = u32::from_le_bytes(got[8..PREFIX].try_into().expect("4 bytes"));
        if sum != checksum(&got[PREFIX..]) {
            return Err(BadMessage::Checksum(seq));
        }
        message(seq, self.max_len, &mut self.expected);
        if got != self.expected {
            return Err(BadMessage::Differs(seq));
        }
        Ok(seq)
    }
}

/// Checks one received message (see [`Checker`]).
pub fn verify(got: &[u8], max_len: usize) -> Result<u64, BadMessage> {
    Checker::new(max_len).check(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_verify_and_damage_is_named() {
        let mut buf = Vec::new();
        for seq in [0, 1, 77, tag(5, 123)] {
            message(seq, 300, &mut buf);
            assert!(buf.len() >= PREFIX && buf.len() <= PREFIX + 300);
            assert_eq!(verify(&buf, 300), Ok(seq));
        }
        assert_eq!(untag(tag(5, 123)), (5, 123));
        message(9, 300, &mut buf);
        assert_eq!(verify(&buf[..5], 300), Err(BadMessage::Partial(5)));
        let mut torn = buf.clone();
        *torn.last_mut().unwrap() ^= 1;
        assert_eq!(verify(&torn, 300), Err(BadMessage::Checksum(9)));
        let mut other = Vec::new();
        message(10, 300, &mut other);
        other[..8].copy_from_slice(&9u64.to_le_bytes());
        assert_eq!(verify(&other, 300), Err(BadMessage::Differs(9)));
    }
}
