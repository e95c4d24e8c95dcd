//! Message buffers: private memory, or shared memory that is reached only through a raw
//! pointer.
//!
//! A zero-copy transport lets the sender write, and the receiver read, a message in place,
//! in memory the peer process can write at any time. docs/architecture.md, rule 1 forbids
//! forming a `&mut [u8]` or `&[u8]` over such bytes, so an endpoint hands the payload code
//! ([`Outgoing::write_to`], [`Checker::check`]) a [`MsgOut`] / [`MsgIn`], not a slice: their
//! API only copies bytes in ([`MsgOut::write_at`]) or out ([`MsgIn::read_at`]) through the
//! raw pointer, bounds checked. Transports that copy through private buffers (pipes,
//! sockets, the copying rings) wrap their private slice, and [`MsgIn::private`] keeps a fast
//! path for them.
//!
//! A third kind serves the "stamps only" zero-copy measurement: a buffer that keeps only
//! the two sequence stamps (the first and last 8 bytes) of what is written, so a 1 MiB
//! message costs the ring what an 8 B one does; see `transport::ring`.
//!
//! [`Outgoing::write_to`]: crate::transport::Outgoing::write_to
//! [`Checker::check`]: crate::transport::Checker::check

use std::marker::PhantomData;

/// Which bytes of a buffer are real.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Extent {
    /// Every byte.
    Whole,
    /// Only `[0, 8)` and `[len - 8, len)`: writes elsewhere are dropped, reads there are
    /// meaningless.
    Stamps,
}

/// Where a message's payload is written: `len` bytes, private or shared.
///
/// Invariant: `ptr` is valid for writes (and reads, of what this process wrote) of `len`
/// bytes for `'a`; when the memory is shared, nothing in this process holds a reference to
/// it.
pub struct MsgOut<'a> {
    ptr: *mut u8,
    len: usize,
    extent: Extent,
    _buf: PhantomData<&'a mut [u8]>,
}

impl<'a> MsgOut<'a> {
    /// A message in private memory.
    pub fn private(buf: &'a mut [u8]) -> MsgOut<'a> {
        MsgOut {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
            extent: Extent::Whole,
            _buf: PhantomData,
        }
    }

    /// A message in shared memory, written through `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for writes and reads of `len` bytes for `'a` (a write grant of
    /// the ring, say), and the caller must form no reference over those bytes meanwhile.
    pub(crate) unsafe fn shared(ptr: *mut u8, len: usize) -> MsgOut<'a> {
        MsgOut {
            ptr,
            len,
            extent: Extent::Whole,
            _buf: PhantomData,
        }
    }

    /// Like [`shared`](MsgOut::shared), but only the first and last 8 bytes are written:
    /// every other byte written is dropped.
    ///
    /// # Safety
    ///
    /// As for [`shared`](MsgOut::shared).
    pub(crate) unsafe fn shared_stamps_only(ptr: *mut u8, len: usize) -> MsgOut<'a> {
        MsgOut {
            ptr,
            len,
            extent: Extent::Stamps,
            _buf: PhantomData,
        }
    }

    /// Length of the message.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Copies `bytes` into the message at `offset`.
    ///
    /// # Panics
    ///
    /// If `offset + bytes.len()` exceeds the message (a bug of the caller, not of a peer).
    #[inline(always)]
    pub(crate) fn write_at(&mut self, offset: usize, bytes: &[u8]) {
        let end = offset
            .checked_add(bytes.len())
            .filter(|&e| e <= self.len)
            .expect("write inside the message");
        match self.extent {
            Extent::Whole => self.copy_in(offset, bytes),
            Extent::Stamps => self.write_stamps(offset, end, bytes),
        }
    }

    /// [`write_at`](MsgOut::write_at) of a stamps-only buffer: only what falls on the
    /// stamps is written. Out of line: the per-message path of every other buffer stays
    /// small enough to inline.
    #[inline(never)]
    fn write_stamps(&mut self, offset: usize, end: usize, bytes: &[u8]) {
        let head_end = self.len.min(8);
        if offset < head_end {
            let n = head_end.min(end) - offset;
            self.copy_in(offset, &bytes[..n]);
        }
        let tail_start = self.len.saturating_sub(8);
        if end > tail_start {
            let from = offset.max(tail_start);
            self.copy_in(from, &bytes[from - offset..]);
        }
    }

    #[inline(always)]
    fn copy_in(&mut self, offset: usize, bytes: &[u8]) {
        debug_assert!(offset + bytes.len() <= self.len);
        // SAFETY: `offset + bytes.len() <= len` (checked by the callers), so the
        // destination lies inside the `len` writable bytes of the invariant; `bytes` is
        // private memory, so the ranges do not overlap.
        unsafe { copy_bytes(bytes.as_ptr(), self.ptr.add(offset), bytes.len()) };
    }
}

/// A received message: `len` bytes, private or shared, read only by copying out.
///
/// Invariant: `ptr` is valid for reads of `len` bytes for `'a`; when the memory is shared,
/// nothing in this process holds a reference to it.
pub struct MsgIn<'a> {
    ptr: *const u8,
    len: usize,
    extent: Extent,
    private: Option<&'a [u8]>,
}

impl<'a> MsgIn<'a> {
    /// A message in private memory.
    pub fn private(buf: &'a [u8]) -> MsgIn<'a> {
        MsgIn {
            ptr: buf.as_ptr(),
            len: buf.len(),
            extent: Extent::Whole,
            private: Some(buf),
        }
    }

    /// A message in shared memory, read through `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for reads of `len` bytes for `'a` (a read grant of the ring,
    /// say), and the caller must form no reference over those bytes meanwhile.
    pub(crate) unsafe fn shared(ptr: *const u8, len: usize) -> MsgIn<'a> {
        MsgIn {
            ptr,
            len,
            extent: Extent::Whole,
            private: None,
        }
    }

    /// Like [`shared`](MsgIn::shared), for a message of which only the first and last 8
    /// bytes were written (see [`MsgOut::shared_stamps_only`]).
    ///
    /// # Safety
    ///
    /// As for [`shared`](MsgIn::shared).
    pub(crate) unsafe fn shared_stamps_only(ptr: *const u8, len: usize) -> MsgIn<'a> {
        MsgIn {
            ptr,
            len,
            extent: Extent::Stamps,
            private: None,
        }
    }

    /// Length of the message.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether every byte of the message is real: false for a stamps-only message of 16
    /// bytes or more (shorter ones are all stamp).
    pub(crate) fn is_whole(&self) -> bool {
        self.extent == Extent::Whole || self.len < 16
    }

    /// The message as a slice, if it lives in private memory.
    pub(crate) fn as_private(&self) -> Option<&'a [u8]> {
        self.private
    }

    /// Copies `buf.len()` bytes at `offset` of the message into `buf`.
    ///
    /// # Panics
    ///
    /// If the range exceeds the message (a bug of the caller: lengths are known to both
    /// sides in advance, never read from the peer).
    #[inline(always)]
    pub(crate) fn read_at(&self, offset: usize, buf: &mut [u8]) {
        offset
            .checked_add(buf.len())
            .filter(|&e| e <= self.len)
            .expect("read inside the message");
        // SAFETY: inside the `len` readable bytes of the invariant; `buf` is private, so
        // the ranges do not overlap. A peer writing the shared bytes meanwhile changes
        // what we copy, never where.
        unsafe { copy_bytes(self.ptr.add(offset), buf.as_mut_ptr(), buf.len()) };
    }

    /// The little-endian word at `offset` (copied out).
    ///
    /// # Panics
    ///
    /// If `offset + 8` exceeds the message.
    #[inline(always)]
    pub(crate) fn read_u64_at(&self, offset: usize) -> u64 {
        let mut word = [0u8; 8];
        self.read_at(offset, &mut word);
        u64::from_le_bytes(word)
    }
}

/// Copies `n` bytes from `src` to `dst`. A copy of 8 to 64 bytes (a stamp, the template of
/// a small message) is two fixed-size moves, the second one overlapping the first in
/// `dst` when `n` is not twice their size: inline, as `memcpy` itself does such copies,
/// without the call, which the harness's per-message cost notices. Longer and shorter
/// copies are `ptr::copy_nonoverlapping`'s.
///
/// # Safety
///
/// `src` must be valid for reads and `dst` for writes of `n` bytes, and the two ranges must
/// not overlap.
#[inline(always)]
unsafe fn copy_bytes(src: *const u8, dst: *mut u8, n: usize) {
    /// Copies `[0, K)` and `[n - K, n)`, which together cover `[0, n)` for `K <= n <= 2K`.
    ///
    /// # Safety
    ///
    /// As for `copy_bytes`, with `K <= n`.
    #[inline(always)]
    unsafe fn ends<const K: usize>(src: *const u8, dst: *mut u8, n: usize) {
        // SAFETY: `K <= n`: both ranges lie inside the `n` bytes the caller vouches for.
        unsafe {
            std::ptr::copy_nonoverlapping(src, dst, K);
            std::ptr::copy_nonoverlapping(src.add(n - K), dst.add(n - K), K);
        }
    }
    // SAFETY: the caller's guarantee; each arm's `K` is at most `n`.
    unsafe {
        match n {
            32..=64 => ends::<32>(src, dst, n),
            16..=31 => ends::<16>(src, dst, n),
            8..=15 => ends::<8>(src, dst, n),
            _ => std::ptr::copy_nonoverlapping(src, dst, n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_only_buffer_keeps_head_and_tail() {
        let mut mem = vec![0u8; 32];
        {
            // SAFETY: `mem` is valid for 32 bytes and not otherwise used while `out` lives.
            let mut out = unsafe { MsgOut::shared_stamps_only(mem.as_mut_ptr(), 32) };
            out.write_at(0, &[1u8; 32]);
            out.write_at(4, &[2u8; 8]);
            out.write_at(20, &[3u8; 12]);
        }
        let mut want = vec![0u8; 32];
        want[..4].fill(1);
        want[4..8].fill(2);
        want[24..].fill(3);
        assert_eq!(mem, want);
    }

    #[test]
    fn short_copies_move_exactly_their_bytes() {
        let src: Vec<u8> = (1..=80).collect();
        for n in 0..=80 {
            let mut dst = vec![0u8; 80];
            // SAFETY: both buffers hold 80 bytes, `n <= 80`, and they are distinct.
            unsafe { copy_bytes(src.as_ptr(), dst.as_mut_ptr(), n) };
            assert_eq!(dst[..n], src[..n], "{n}");
            assert!(dst[n..].iter().all(|&b| b == 0), "{n}");
        }
    }

    #[test]
    fn private_message_round_trips() {
        let mut buf = vec![0u8; 16];
        MsgOut::private(&mut buf).write_at(3, b"abc");
        buf[8..].copy_from_slice(&7u64.to_le_bytes());
        let msg = MsgIn::private(&buf);
        let mut back = [0u8; 3];
        msg.read_at(3, &mut back);
        assert_eq!(&back, b"abc");
        assert_eq!(msg.read_u64_at(8), 7);
        assert!(msg.is_whole());
    }
}
