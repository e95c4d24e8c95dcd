//! Zero-copy grants, for every flavor: a [`WriteGrant`] is room reserved in the ring to
//! write a message in place; a [`ReadGrant`] is a received message still in the ring (or,
//! in broadcast, in the receiver's private checked copy); a [`Batch`] publishes several
//! messages at once.

use super::sender::Sender;
use super::{Flavor, Receiver};
use crate::ring::{RecvRing, SendRing};
use crate::{GrantBounds, RecvIntoError, SendError};

type Slot<F> = <<F as Flavor>::Writer as SendRing>::Slot;
type Frame<F> = <<F as Flavor>::Reader as RecvRing>::Frame;

/// When a committed frame is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Publish {
    /// At once.
    Now,
    /// Once an eighth of the ring is pending (deferred sends).
    WhenPending,
    /// When the batch it belongs to ends.
    WithBatch,
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

    /// The reserved bytes, for writing in place (by an encoder, a `read(2)`, …): valid for
    /// [`len`](WriteGrant::len) bytes until the grant is committed or dropped.
    ///
    /// This is shared memory: write through the pointer, never form a `&mut [u8]` over it
    /// that a peer could see changing.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.sender.ring.payload_ptr(&self.slot)
    }

    /// Publishes the first `len` bytes (at most [`len`](WriteGrant::len)) as one message.
    pub fn commit(mut self, len: usize) {
        self.committed = true;
        let len = len.min(self.len);
        self.sender.commit_slot(self.slot, len, self.publish);
    }
}

impl<F: Flavor> Drop for WriteGrant<'_, F> {
    fn drop(&mut self) {
        if !self.committed {
            self.sender.ring.abandon(self.slot);
        }
    }
}

/// Messages sent through a batch are published together when it is dropped (or when the
/// ring fills).
pub struct Batch<'a, F: Flavor> {
    sender: &'a mut Sender<F>,
}

impl<'a, F: Flavor> Batch<'a, F> {
    pub(crate) fn new(sender: &'a mut Sender<F>) -> Self {
        Batch { sender }
    }

    /// Adds `msg` to the batch, waiting for room (which publishes the batch so far).
    pub fn send(&mut self, msg: &[u8]) -> Result<(), SendError<()>> {
        super::sender::until_done(|| {
            self.sender
                .send_bytes(msg, super::Deadline::Never, Publish::WithBatch)
        })
        .map_err(|fatal| SendError::fatal(fatal, ()))
    }

    /// Reserves room for a message in the batch; commit it with [`BatchGrant::commit`].
    pub fn reserve(&mut self, max_len: usize) -> Result<BatchGrant<'_, F>, SendError<()>> {
        let slot =
            super::sender::until_done(|| self.sender.reserve_slot(max_len, super::Deadline::Never))
                .map_err(|fatal| SendError::fatal(fatal, ()))?;
        Ok(BatchGrant(WriteGrant::new(
            self.sender,
            slot,
            Publish::WithBatch,
        )))
    }
}

impl<F: Flavor> Drop for Batch<'_, F> {
    fn drop(&mut self) {
        self.sender.flush();
    }
}

/// A write grant inside a [`Batch`]: committed messages are published with the batch.
pub struct BatchGrant<'a, F: Flavor>(WriteGrant<'a, F>);

impl<F: Flavor> BatchGrant<'_, F> {
    /// Bytes reserved.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether zero bytes were reserved.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The grant's bytes, as in [`WriteGrant::as_mut_ptr`].
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.0.as_mut_ptr()
    }

    /// Copies `bytes` in at `offset`, as in [`WriteGrant::write_at`].
    pub fn write_at(&mut self, offset: usize, bytes: &[u8]) -> Result<(), GrantBounds> {
        self.0.write_at(offset, bytes)
    }

    /// Adds the first `len` bytes to the batch as one message.
    pub fn commit(self, len: usize) {
        self.0.commit(len);
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
    #[inline]
    pub fn copy_to(&self, buf: &mut [u8]) -> usize {
        let n = self.len.min(buf.len());
        // SAFETY: the frame's `len` bytes are readable until release (validated by the
        // ring's peek); `buf` is private memory, so no overlap.
        unsafe { std::ptr::copy_nonoverlapping(self.as_ptr(), buf.as_mut_ptr(), n) };
        n
    }

    /// Copies `buf.len()` bytes starting at `offset` of the message into `buf`.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<(), GrantBounds> {
        read_within(self.as_ptr(), self.len, offset, buf)
    }

    /// The message copied into a new `Vec`.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.len];
        self.copy_to(&mut out);
        out
    }

    /// The message's bytes, valid for [`len`](ReadGrant::len) bytes while the grant lives.
    /// In the ring, a hostile peer could change them at any time: copy before you
    /// validate, and never form a `&[u8]` over them.
    #[inline]
    pub fn as_ptr(&self) -> *const u8 {
        self.receiver.ring.payload_ptr(&self.frame)
    }

    /// Copies the whole message into `buf` and consumes it, or leaves it in the channel if
    /// `buf` is too short.
    pub(crate) fn copy_whole_into<E>(mut self, buf: &mut [u8]) -> Result<usize, RecvIntoError<E>> {
        if self.len > buf.len() {
            self.keep = true;
            return Err(RecvIntoError::BufferTooSmall { needed: self.len });
        }
        Ok(self.copy_to(buf))
    }
}

impl<F: Flavor> Drop for ReadGrant<'_, F> {
    fn drop(&mut self) {
        if !self.keep {
            self.receiver.ring.release(self.frame);
        }
    }
}
