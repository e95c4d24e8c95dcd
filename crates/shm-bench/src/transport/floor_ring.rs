//! `floor-ring`: the floor of a stream, the minimal ring a message of the scenario's size
//! can go through, measured as a transport: same loop, pinning and budget as the rest,
//! alternated with them in every repetition. Every stream row's `vs ring floor` divides
//! by it.
//!
//! A ring per direction, as every transport has (the stream pattern uses the child's):
//! fixed slots of exactly the scenario's message size in an anonymous `MAP_SHARED`
//! mapping, a power of two of them (1 MiB worth, at least four), after a page holding the
//! two indices on lines of their own. Each side keeps its own index in private memory and
//! caches the other's, re-reading the shared one only when its cache says the ring is full
//! (producer) or empty (consumer); each message costs its side one Release store of its
//! index; waiting is spinning, with no wake-up. It is the ring of `anchors.c xcopy` (the C reference of the guide's
//! performance section), written here against the harness's endpoints:
//!
//! - the producer writes every byte of the message straight into its slot (the payload
//!   template and the stamps, through a [`MsgOut`] over the slot's raw pointer);
//! - the consumer copies every byte of the slot out into private memory (as the copying
//!   rings' `recv_into` does) and checks it there.
//!
//! Synchronisation. The producer writes slot `i`, then stores `head = i + 1` with Release;
//! the consumer loads `head` with Acquire before it reads the slot (SYNC: floor-ring
//! published). The consumer copies slot `i` out, then stores `tail = i + 1` with Release;
//! the producer loads `tail` with Acquire before it writes that slot again (SYNC: floor-ring
//! released). An owner's drop stores its side's `closed` word after its last index store;
//! the peer loads it, then its index again, so that what was published before the close
//! is still delivered (SYNC: floor-ring closed).
//!
//! An index the peer wrote is loaded once and validated (the producer at most one ring
//! ahead of the consumer) before it is used (docs/architecture.md, rule 2).

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use shm_core::liveness::ProcessIdentity;

use super::watch::{BoundedWait, Owner};
use super::{
    check_exact, check_fits, Checker, Endpoint, MsgIn, MsgOut, Outgoing, Owned, Pair, Transport,
    TransportError,
};
use crate::config::Pattern;
use crate::shm::{SharedMap, LINE};

/// The bytes of message slots a ring holds, at least (the reference's 16384 slots of 64 B);
/// also the least capacity of the library's rings in the harness (`ring::ring_capacity`),
/// so that a stream row and the floor it is divided by buffer as much.
pub(crate) const RING_BYTES: usize = 1 << 20;

/// The fewest slots a ring has (for messages larger than a quarter of [`RING_BYTES`]).
const MIN_SLOTS: usize = 4;

/// The producer's line: its published index (messages written), then its closed word.
const HEAD_AT: usize = 0;
/// The consumer's line: its published index (messages read), then its closed word.
const TAIL_AT: usize = LINE;
/// Where a side's closed word sits on its line.
const CLOSED: usize = 8;
/// Where the slots start: a page after the indices.
const SLOTS_AT: usize = 4096;

/// The transport.
#[derive(Debug)]
pub(crate) struct FloorRing;

/// `floor-ring`: the minimal ring, fixed slots, cached indices, spinning.
pub(crate) static FLOOR_RING: FloorRing = FloorRing;

/// Slots of a ring for `size`-byte messages: [`RING_BYTES`] worth, at least
/// [`MIN_SLOTS`], rounded down to a power of two.
fn slots_for(size: usize) -> usize {
    let n = (RING_BYTES / size.max(1)).max(MIN_SLOTS);
    1 << n.ilog2()
}

impl Transport for FloorRing {
    fn name(&self) -> &'static str {
        super::RING_FLOOR
    }

    /// Streams only: its round trip is the cache-line floor's.
    fn supports(&self, pattern: Pattern, size: usize) -> bool {
        pattern == Pattern::Stream && size > 0
    }

    fn connect(&self, max_msg: usize) -> Result<Pair, TransportError> {
        let size = max_msg.max(1);
        Ok(Pair::crosswise(ring(size)?, ring(size)?, |out, inbox| {
            FloorRingEnd::new(out, inbox, size)
        }))
    }
}

/// A ring for `size`-byte messages: its producer's half and its consumer's.
fn ring(size: usize) -> Result<(Outbox, Inbox), TransportError> {
    let slots = slots_for(size);
    let ring = Rc::new(Ring {
        map: SharedMap::new(SLOTS_AT + slots * size)?,
        slots,
        size,
    });
    let out = Outbox {
        ring: Rc::clone(&ring),
        head: 0,
        tail_seen: 0,
    };
    let inbox = Inbox {
        ring,
        tail: 0,
        head_seen: 0,
    };
    Ok((out, inbox))
}

/// One ring: its mapping and its shape.
struct Ring {
    map: SharedMap,
    /// Number of slots, a power of two; the mapping was made to hold them.
    slots: usize,
    /// Bytes of a slot: the scenario's message size.
    size: usize,
}

impl Ring {
    /// The producer's published index.
    fn head(&self) -> &AtomicU64 {
        self.map.u64_at(HEAD_AT)
    }

    /// The consumer's published index.
    fn tail(&self) -> &AtomicU64 {
        self.map.u64_at(TAIL_AT)
    }

    /// The closed word of the side whose index is at `line`.
    fn closed(&self, line: usize) -> &AtomicU64 {
        self.map.u64_at(line + CLOSED)
    }

    /// The slot of message `i` (bounds checked by the mapping).
    #[inline]
    fn slot(&self, i: u64) -> *mut u8 {
        let at = (i as usize & (self.slots - 1)) * self.size;
        self.map.bytes_at(SLOTS_AT + at, self.size)
    }

    /// Validates an index the peer wrote against ours: the producer's `head` is at most
    /// one ring ahead of the consumer's `tail`, and never behind it.
    fn check_gap(&self, head: u64, tail: u64) -> Result<(), TransportError> {
        match head.checked_sub(tail) {
            Some(gap) if gap <= self.slots as u64 => Ok(()),
            _ => Err(TransportError::Failed(format!(
                "floor-ring: indices {head} (written) and {tail} (read) do not fit a ring of {} slots",
                self.slots
            ))),
        }
    }
}

/// The producer's half of a ring: writes messages into the slots.
struct Outbox {
    ring: Rc<Ring>,
    /// Messages written (our index; published in the shared `head`).
    head: u64,
    /// The consumer's index as last loaded.
    tail_seen: u64,
}

impl Outbox {
    /// The slot of the next message, once the consumer has read what it held before.
    #[inline]
    fn next_slot(&mut self, bound: &Owner) -> Result<*mut u8, TransportError> {
        if self.head - self.tail_seen == self.ring.slots as u64 {
            self.wait_for_room(bound)?;
        }
        Ok(self.ring.slot(self.head))
    }

    fn wait_for_room(&mut self, owner: &Owner) -> Result<(), TransportError> {
        let mut bound: Option<BoundedWait> = None;
        loop {
            // Acquire pairs with the consumer's Release store of `tail` once it copied the
            // slot out (SYNC: floor-ring released).
            let tail_untrusted = self.ring.tail().load(Ordering::Acquire);
            self.ring.check_gap(self.head, tail_untrusted)?;
            self.tail_seen = tail_untrusted;
            if self.head - self.tail_seen < self.ring.slots as u64 {
                return Ok(());
            }
            // SYNC: floor-ring closed (the consumer stores it after its last `tail`).
            if self.ring.closed(TAIL_AT).load(Ordering::SeqCst) != 0 {
                return Err(TransportError::Disconnected);
            }
            bound.get_or_insert_with(|| owner.wait()).spin()?;
        }
    }

    /// Publishes the message written into [`next_slot`](Outbox::next_slot).
    #[inline]
    fn publish(&mut self) {
        self.head += 1;
        // Release pairs with the consumer's Acquire load of `head` (SYNC: floor-ring
        // published): the slot written before is visible once `head` is.
        self.ring.head().store(self.head, Ordering::Release);
    }
}

/// The consumer's half of a ring: copies messages out of the slots.
struct Inbox {
    ring: Rc<Ring>,
    /// Messages read (our index; published in the shared `tail`).
    tail: u64,
    /// The producer's index as last loaded.
    head_seen: u64,
}

impl Inbox {
    /// Copies the next message out into `buf` (its length the message's) and frees its
    /// slot.
    #[inline]
    fn take(&mut self, buf: &mut [u8], owner: &Owner) -> Result<(), TransportError> {
        if self.head_seen == self.tail {
            self.wait_for_message(owner)?;
        }
        let slot = self.ring.slot(self.tail);
        // SAFETY: the slot is `buf.len() == size` bytes inside the live mapping; the
        // producer wrote it before its Release store of `head` that we acquired, and
        // writes it again only after our `tail` passes it (below); read through the
        // pointer only, no reference formed over it.
        unsafe { MsgIn::shared(slot, buf.len()) }.read_at(0, buf);
        self.tail += 1;
        // Release pairs with the producer's Acquire load of `tail` (SYNC: floor-ring
        // released): our copy out of the slot is complete before the slot is reused.
        self.ring.tail().store(self.tail, Ordering::Release);
        Ok(())
    }

    fn wait_for_message(&mut self, owner: &Owner) -> Result<(), TransportError> {
        let mut bound: Option<BoundedWait> = None;
        loop {
            // Acquire pairs with the producer's Release store of `head` (SYNC: floor-ring
            // published).
            let head_untrusted = self.ring.head().load(Ordering::Acquire);
            self.ring.check_gap(head_untrusted, self.tail)?;
            self.head_seen = head_untrusted;
            if self.head_seen != self.tail {
                return Ok(());
            }
            // SYNC: floor-ring closed (the producer stores it after its last `head`): one
            // more load of `head`, so that a message published before the close is read.
            if self.ring.closed(HEAD_AT).load(Ordering::SeqCst) != 0 {
                if self.ring.head().load(Ordering::Acquire) == self.tail {
                    return Err(TransportError::Disconnected);
                }
                continue;
            }
            bound.get_or_insert_with(|| owner.wait()).spin()?;
        }
    }
}

/// One side: the producer's half of one ring, the consumer's half of the other.
struct FloorRingEnd {
    out: Outbox,
    inbox: Inbox,
    /// The private copy of the message last received.
    buf: Vec<u8>,
    /// Whose drop closes this side.
    owner: Owner,
}

impl FloorRingEnd {
    fn new(out: Outbox, inbox: Inbox, size: usize) -> FloorRingEnd {
        FloorRingEnd {
            out,
            inbox,
            buf: vec![0; size],
            owner: Owner::here(),
        }
    }

    /// A message of `len` bytes is what the rings' slots hold.
    fn check_len(&self, len: usize) -> Result<(), TransportError> {
        check_fits(len, self.buf.len())?;
        check_exact(self.buf.len(), len)
    }
}

/// `send` and `recv` are inlined into the default batch loops: the floor's per-message
/// path is one function, as the minimal ring's is.
impl Endpoint for FloorRingEnd {
    #[inline(always)]
    fn send(&mut self, msg: &Outgoing<'_>) -> Result<(), TransportError> {
        let len = msg.size();
        self.check_len(len)?;
        let slot = self.out.next_slot(&self.owner)?;
        // SAFETY: the slot is `len` bytes inside the live mapping; the consumer reads it
        // only after `publish` and stopped reading it before its `tail` passed it
        // (`next_slot`); no reference is formed over it.
        msg.write_to(&mut unsafe { MsgOut::shared(slot, len) });
        self.out.publish();
        Ok(())
    }

    #[inline(always)]
    fn recv(&mut self, check: &mut Checker<'_>) -> Result<(), TransportError> {
        self.check_len(check.size())?;
        self.inbox.take(&mut self.buf, &self.owner)?;
        check.check(&MsgIn::private(&self.buf));
        Ok(())
    }

    fn echo(&mut self, check: &mut Checker<'_>) -> Result<(), TransportError> {
        self.recv(check)?;
        let slot = self.out.next_slot(&self.owner)?;
        // SAFETY: as in `send`, the slot is ours for `buf.len()` bytes until `publish`,
        // written through the pointer only.
        unsafe { MsgOut::shared(slot, self.buf.len()) }.write_at(0, &self.buf);
        self.out.publish();
        Ok(())
    }

    fn hand_over(&self, child: ProcessIdentity) -> Result<(), TransportError> {
        Owned::Record(&self.owner).hand_over(child)
    }
}

impl Drop for FloorRingEnd {
    fn drop(&mut self) {
        if self.owner.is_current() {
            // The peer's next look at either ring sees that this side is gone (SYNC:
            // floor-ring closed; SeqCst, so each also orders after our last index store).
            self.out.ring.closed(HEAD_AT).store(1, Ordering::SeqCst);
            self.inbox.ring.closed(TAIL_AT).store(1, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::Payload;

    #[test]
    fn slots_hold_a_mebibyte_or_four_messages() {
        let sizes = [8, 64, 100, 65_539, 1 << 20];
        assert_eq!(sizes.map(slots_for), [131_072, 16384, 8192, 8, 4]);
        for size in [1, 15, 4096, 300_000] {
            let n = slots_for(size);
            assert!(n.is_power_of_two() && n >= MIN_SLOTS, "{size}");
        }
    }

    #[test]
    fn the_ring_floor_runs_streams_only() {
        assert!(FLOOR_RING.supports(Pattern::Stream, 64));
        assert!(FLOOR_RING.supports(Pattern::Stream, 1 << 20));
        assert!(!FLOOR_RING.supports(Pattern::PingPong, 64));
        assert!(!FLOOR_RING.supports(Pattern::TypedStream, 64));
    }

    /// A pair's two sides, typed: (parent's, child's).
    fn sides(size: usize) -> (FloorRingEnd, FloorRingEnd) {
        let (down, up) = (ring(size).unwrap(), ring(size).unwrap());
        let ((down_tx, down_rx), (up_tx, up_rx)) = (down, up);
        (
            FloorRingEnd::new(down_tx, up_rx, size),
            FloorRingEnd::new(up_tx, down_rx, size),
        )
    }

    #[test]
    fn messages_go_through_in_order_and_back_pressure_holds() {
        let payload = Payload::new(64);
        let (mut parent, mut child) = sides(64);
        let mut out = Outgoing::first(&payload, 64);
        let mut check = Checker::new(&payload, 64, true);
        // A full ring, then one message read and one more written.
        for _ in 0..slots_for(64) {
            child.send(&out).unwrap();
            out.advance();
        }
        parent.recv(&mut check).unwrap();
        child.send(&out).unwrap();
        for _ in 0..slots_for(64) {
            parent.recv(&mut check).unwrap();
        }
        assert_eq!(check.first_bad, None);
        assert_eq!(check.verified_bytes, 64 * (slots_for(64) as u64 + 1));
    }

    #[test]
    fn an_echo_sends_back_the_bytes_received() {
        let payload = Payload::new(100);
        let (mut parent, mut child) = sides(100);
        let mut check_child = Checker::new(&payload, 100, true);
        let mut check_parent = Checker::new(&payload, 100, true);
        parent.send(&Outgoing::first(&payload, 100)).unwrap();
        child.echo(&mut check_child).unwrap();
        parent.recv(&mut check_parent).unwrap();
        assert_eq!(
            (check_child.first_bad, check_parent.first_bad),
            (None, None)
        );
        assert_eq!(check_parent.verified_bytes, 100);
    }

    #[test]
    fn a_closed_producer_is_seen_after_its_last_message() {
        let payload = Payload::new(8);
        let (mut parent, mut child) = sides(8);
        child.send(&Outgoing::first(&payload, 8)).unwrap();
        drop(child);
        let mut check = Checker::new(&payload, 8, false);
        parent.recv(&mut check).unwrap();
        assert!(matches!(
            parent.recv(&mut check),
            Err(TransportError::Disconnected)
        ));
    }

    #[test]
    fn a_closed_consumer_stops_a_producer_at_a_full_ring() {
        let payload = Payload::new(8);
        let (parent, mut child) = sides(8);
        drop(parent);
        let mut out = Outgoing::first(&payload, 8);
        let sent = (0..slots_for(8) + 1)
            .take_while(|_| {
                let r = child.send(&out);
                out.advance();
                r.is_ok()
            })
            .count();
        assert_eq!(sent, slots_for(8));
    }

    #[test]
    fn an_index_out_of_the_ring_is_an_error() {
        let payload = Payload::new(8);
        let (mut parent, _child) = sides(8);
        // A peer claiming more messages than the ring holds.
        parent.inbox.ring.head().store(u64::MAX, Ordering::SeqCst);
        let mut check = Checker::new(&payload, 8, false);
        assert!(matches!(
            parent.recv(&mut check),
            Err(TransportError::Failed(_))
        ));
    }
}
