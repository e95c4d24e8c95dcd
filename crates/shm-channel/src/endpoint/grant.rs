//! Zero-copy grants, for every flavor: a [`WriteGrant`] is room reserved in the ring to
//! write a message in place; a [`ReadGrant`] is a received message still in the ring (or,
//! in broadcast, in the receiver's private checked copy). Also the calls that hand them
//! out: [`Sender::reserve`] and [`Receiver::read`] with their non-blocking and timed forms.
//!
//! Use them when a copy in or out is too many: a large message written in place by an
//! encoder or a `read(2)`, or checksummed where it lies. Otherwise `send` and `recv` are
//! simpler and as fast.
//!
//! In place without `unsafe`: [`WriteGrant::as_volatile_slice`] and
//! [`ReadGrant::as_volatile_slice`] hand the bytes out as a
//! [`VolatileSlice`] of rust-vmm's `vm-memory` (the crate Firecracker and cloud-hypervisor
//! use for guest memory, shared with a party they do not trust either): volatile reads and
//! writes of any `ByteValued` value at a checked offset, bulk copies, sub-slices, atomics —
//! never a `&[u8]` over memory a peer can write. For a checksum over a large message, copy
//! it through a small private buffer (`copy_to` a few KiB at a time): that runs at the speed
//! of a raw-pointer loop, where element-by-element volatile loads do not (figures in
//! `docs/safety.md`, measured by `benches/grant_checksum.rs`).

use std::time::Duration;

use vm_memory::VolatileSlice;

use super::failure::{until_done, SendFatal};
use super::sender::{Publish, Sender};
use super::{Deadline, Flavor, Frame, Receiver, Slot};
use crate::shared::ring::{RecvRing, SendRing};
use crate::{
    GrantBounds, RecvIntoError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};

impl<F: Flavor> Sender<F> {
    /// Reserves room for a message of up to `max_len` bytes, to be written in place and
    /// committed with [`WriteGrant::commit`]. Waits for room as long as it takes.
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ipc::channel::spsc::channel(4096)?;
    /// let mut grant = tx.reserve(64)?;
    /// grant.write_at(0, b"in place")?;
    /// grant.commit(8)?;
    /// assert_eq!(rx.recv()?, b"in place");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reserve(&mut self, max_len: usize) -> Result<WriteGrant<'_, F>, SendError<()>> {
        let slot = until_done(|| self.reserve_slot(max_len, Deadline::Never))
            .map_err(|fatal| fatal.with(()))?;
        Ok(WriteGrant::new(self, slot, Publish::Now))
    }

    /// [`reserve`](Sender::reserve), without waiting.
    pub fn try_reserve(&mut self, max_len: usize) -> Result<WriteGrant<'_, F>, TrySendError<()>> {
        let slot = self
            .reserve_slot(max_len, Deadline::Now)
            .map_err(|failure| {
                failure.call_error((), TrySendError::Full, TrySendError::Send, SendFatal::with)
            })?;
        Ok(WriteGrant::new(self, slot, Publish::Now))
    }

    /// [`reserve`](Sender::reserve), waiting at most `timeout`.
    pub fn reserve_timeout(
        &mut self,
        max_len: usize,
        timeout: Duration,
    ) -> Result<WriteGrant<'_, F>, SendTimeoutError<()>> {
        let slot = self
            .reserve_slot(max_len, Deadline::after(timeout))
            .map_err(|failure| {
                failure.call_error(
                    (),
                    SendTimeoutError::Timeout,
                    SendTimeoutError::Send,
                    SendFatal::with,
                )
            })?;
        Ok(WriteGrant::new(self, slot, Publish::Now))
    }
}

impl<F: Flavor> Receiver<F> {
    /// Waits for the next message and returns a grant over it: copy or decode it, then drop
    /// the grant to free its space.
    #[inline(always)]
    pub fn read(&mut self) -> Result<ReadGrant<'_, F>, F::RecvError> {
        let frame = self.frame::<F::RecvError>(Deadline::Never)?;
        Ok(ReadGrant::new(self, frame))
    }

    /// [`read`](Receiver::read), if a message is there now.
    pub fn try_read(&mut self) -> Result<ReadGrant<'_, F>, TryRecvError<F::RecvError>> {
        let frame = self.frame(Deadline::Now)?;
        Ok(ReadGrant::new(self, frame))
    }

    /// [`read`](Receiver::read), waiting at most `timeout`.
    pub fn read_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<ReadGrant<'_, F>, RecvTimeoutError<F::RecvError>> {
        let frame = self.frame(Deadline::after(timeout))?;
        Ok(ReadGrant::new(self, frame))
    }
}

/// Copies `bytes` to `offset` of the `len` bytes at `base`, if they fit.
fn write_within(base: *mut u8, len: usize, offset: usize, bytes: &[u8]) -> Result<(), GrantBounds> {
    check_within(offset, bytes.len(), len)?;
    // SAFETY: `offset + bytes.len() <= len` (checked), so the destination lies inside the
    // grant's `len` writable bytes; `bytes` is private memory.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), base.add(offset), bytes.len()) };
    Ok(())
}

/// Copies `buf.len()` bytes from `offset` of the `len` bytes at `base`, if they exist.
fn read_within(
    base: *const u8,
    len: usize,
    offset: usize,
    buf: &mut [u8],
) -> Result<(), GrantBounds> {
    check_within(offset, buf.len(), len)?;
    // SAFETY: `offset + buf.len() <= len` (checked): inside the grant's readable bytes;
    // `buf` is private memory, so no overlap.
    unsafe { std::ptr::copy_nonoverlapping(base.add(offset), buf.as_mut_ptr(), buf.len()) };
    Ok(())
}

fn check_within(offset: usize, len: usize, grant_len: usize) -> Result<(), GrantBounds> {
    match offset.checked_add(len) {
        Some(end) if end <= grant_len => Ok(()),
        _ => Err(GrantBounds {
            offset,
            len,
            grant_len,
        }),
    }
}

/// Room reserved in the ring for one message, written in place.
///
/// Dropping it without [`commit`](WriteGrant::commit) delivers nothing and does not hold
/// the ring up.
pub struct WriteGrant<'a, F: Flavor> {
    sender: &'a mut Sender<F>,
    slot: Slot<F>,
    len: usize,
    publish: Publish,
    /// Committed: nothing to abandon on drop.
    committed: bool,
}

impl<'a, F: Flavor> WriteGrant<'a, F> {
    pub(crate) fn new(sender: &'a mut Sender<F>, slot: Slot<F>, publish: Publish) -> Self {
        WriteGrant {
            len: F::Writer::slot_len(&slot),
            sender,
            slot,
            publish,
            committed: false,
        }
    }

    /// Bytes reserved.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether zero bytes were reserved.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `bytes` into the grant at `offset`.
    pub fn write_at(&mut self, offset: usize, bytes: &[u8]) -> Result<(), GrantBounds> {
        write_within(self.as_mut_ptr(), self.len, offset, bytes)
    }

    /// The reserved bytes: valid for [`len`](WriteGrant::len) bytes until the grant is
    /// committed or dropped. (Users reach them through
    /// [`as_volatile_slice`](WriteGrant::as_volatile_slice).)
    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.sender.ring().payload_ptr(&self.slot)
    }

    /// The reserved bytes as a [`VolatileSlice`] of rust-vmm's `vm-memory` (re-exported as
    /// [`vm_memory`](crate::vm_memory)): write the message in place without `unsafe` —
    /// volatile writes at checked offsets, bulk copies — then
    /// [`commit`](WriteGrant::commit). Code that must write through a raw pointer (an
    /// encoder of its own, a `read(2)` into the grant) takes it from the slice's
    /// `ptr_guard_mut()`: it is shared memory, so never form a `&mut [u8]` over it.
    ///
    /// ```
    /// use vm_memory::Bytes;
    /// let (mut tx, mut rx) = shm_ipc::channel::spsc::channel(4096)?;
    /// let mut grant = tx.reserve(16)?;
    /// let bytes = grant.as_volatile_slice();
    /// bytes.write_obj(7u64, 0)?;
    /// bytes.copy_from(b"in place");
    /// grant.commit(8)?;
    /// assert_eq!(rx.recv()?, b"in place");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn as_volatile_slice(&mut self) -> VolatileSlice<'_> {
        let len = self.len;
        // SAFETY: the reserved bytes are valid for `len` bytes of the mapping (kept alive by
        // the sender we borrow) until the grant is committed or dropped, which the slice's
        // borrow of `self` outlives none of; the slice reaches them through volatile
        // accesses and copies only, never a reference.
        unsafe { VolatileSlice::new(self.as_mut_ptr(), len) }
    }

    /// Publishes the first `len` bytes as one message.
    ///
    /// # Errors
    ///
    /// [`GrantBounds`] if `len` is larger than the grant ([`len`](WriteGrant::len)): never
    /// silently clamped; the grant is dropped then, and nothing is published.
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ipc::channel::spsc::channel(4096)?;
    /// let grant = tx.reserve(8)?;
    /// assert!(grant.commit(9).is_err());
    /// assert!(rx.try_recv().is_err(), "nothing was sent");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn commit(self, len: usize) -> Result<(), GrantBounds> {
        let publish = self.publish;
        self.commit_checked(len, publish)
    }

    /// Commits the first `len` bytes as one message but may leave it unpublished, as
    /// [`Sender::send_deferred`] does: it becomes visible at the latest at the next
    /// [`flush`](Sender::flush) or ordinary send.
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ipc::channel::spsc::channel(4096)?;
    /// let mut grant = tx.reserve(8)?;
    /// grant.write_at(0, b"deferred")?;
    /// grant.commit_deferred(8)?;
    /// assert!(rx.try_recv().is_err());
    /// tx.flush();
    /// assert_eq!(rx.try_recv()?, b"deferred");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`commit`](WriteGrant::commit), if `len` is larger than the grant.
    pub fn commit_deferred(self, len: usize) -> Result<(), GrantBounds> {
        self.commit_checked(len, Publish::WhenPending)
    }

    /// Commits the first `len` bytes if the grant holds them, else drops it.
    fn commit_checked(self, len: usize, publish: Publish) -> Result<(), GrantBounds> {
        check_within(0, len, self.len)?;
        self.commit_as(len, publish);
        Ok(())
    }

    /// Commits the first `len <= self.len` bytes.
    fn commit_as(mut self, len: usize, publish: Publish) {
        self.committed = true;
        self.sender.commit_slot(self.slot, len, publish);
    }
}

impl<F: Flavor> Drop for WriteGrant<'_, F> {
    fn drop(&mut self) {
        if !self.committed {
            self.sender.ring().abandon(self.slot);
        }
    }
}

/// A received message, still in the ring (broadcast: in the receiver's private copy,
/// checked against overwriting). Copy or decode it, then drop the grant to free its space
/// for the sender.
pub struct ReadGrant<'a, F: Flavor> {
    receiver: &'a mut Receiver<F>,
    frame: Frame<F>,
    len: usize,
    /// Leave the frame in the ring on drop (it was not consumed).
    keep: bool,
}

impl<'a, F: Flavor> ReadGrant<'a, F> {
    pub(crate) fn new(receiver: &'a mut Receiver<F>, frame: Frame<F>) -> Self {
        ReadGrant {
            len: F::Reader::frame_len(&frame),
            receiver,
            frame,
            keep: false,
        }
    }

    /// Length of the message in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies the message's first `min(len, buf.len())` bytes into `buf`; returns how many.
    #[inline(always)]
    pub fn copy_to(&self, buf: &mut [u8]) -> usize {
        let n = self.len.min(buf.len());
        // SAFETY: the frame's `len` bytes are readable until release (validated by the
        // ring's peek); `buf` is private memory, so no overlap.
        unsafe { crate::shared::frame::copy_payload_out(self.as_ptr(), buf.as_mut_ptr(), n) };
        n
    }

    /// Copies `buf.len()` bytes starting at `offset` of the message into `buf`.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<(), GrantBounds> {
        read_within(self.as_ptr(), self.len, offset, buf)
    }

    /// The message as a [`VolatileSlice`] of rust-vmm's `vm-memory` (re-exported as
    /// [`vm_memory`](crate::vm_memory)): read it in place without `unsafe` — volatile reads
    /// at checked offsets, or copies through a small private buffer. For a message a peer
    /// just wrote, either runs at the speed of a raw-pointer loop (figures in
    /// `docs/safety.md`). A hostile peer could change the bytes while you read them: copy
    /// before you validate. (The slice also writes; the channel never reads such writes
    /// back.)
    ///
    /// ```
    /// use vm_memory::Bytes;
    /// let (mut tx, mut rx) = shm_ipc::channel::spsc::channel(1 << 16)?;
    /// tx.send(&[1u8; 4096])?;
    /// let grant = rx.read()?;
    /// let bytes = grant.as_volatile_slice();
    /// let (mut sum, mut chunk) = (0u64, [0u8; 1024]);
    /// for at in (0..bytes.len()).step_by(chunk.len()) {
    ///     let n = bytes.offset(at)?.copy_to(&mut chunk[..]);
    ///     sum += chunk[..n].iter().map(|&b| u64::from(b)).sum::<u64>();
    /// }
    /// assert_eq!(sum, 4096);
    /// assert_eq!(bytes.read_obj::<u32>(0)?, 0x0101_0101);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn as_volatile_slice(&self) -> VolatileSlice<'_> {
        // SAFETY: the frame's `len` bytes are valid (inside the data area, or the broadcast
        // reader's private copy) until the grant is released, which the slice's borrow of
        // `self` prevents while it lives; the slice reaches them through volatile accesses
        // and copies only. The pointer is made mutable only because `VolatileSlice` has no
        // read-only form: writes through it stay inside the frame.
        unsafe { VolatileSlice::new(self.as_ptr().cast_mut(), self.len) }
    }

    /// The message's bytes, valid for [`len`](ReadGrant::len) bytes while the grant lives.
    /// (Users reach them through [`as_volatile_slice`](ReadGrant::as_volatile_slice), whose
    /// `ptr_guard()` gives a raw pointer: in the ring, a hostile peer could change the bytes
    /// at any time, so copy before you validate and never form a `&[u8]` over them.)
    #[inline]
    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.receiver.common.ring.payload_ptr(&self.frame)
    }

    /// Copies the whole message into `buf` and consumes it, or leaves it in the channel if
    /// `buf` is too short.
    #[inline(always)]
    pub(crate) fn copy_whole_into<E>(mut self, buf: &mut [u8]) -> Result<usize, RecvIntoError<E>> {
        if self.len > buf.len() {
            self.keep = true;
            return Err(RecvIntoError::BufferTooSmall { needed: self.len });
        }
        Ok(self.copy_to(buf))
    }
}

impl<F: Flavor> Drop for ReadGrant<'_, F> {
    #[inline]
    fn drop(&mut self) {
        if !self.keep {
            self.receiver.ring().release(self.frame);
        }
    }
}
