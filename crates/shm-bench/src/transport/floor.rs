//! The machine's round-trip floors, run as transports so that they are measured exactly
//! as the transports they bound: same harness loop, same clock reads, same pinning,
//! warm-up and budget, and alternated with the transports in every repetition.
//!
//! | name | how a message crosses |
//! |---|---|
//! | `floor-cacheline` | the payload and a counter in one 128-byte line of a `MAP_SHARED` page, one line per direction; the receiver spins on the counter |
//! | `floor-futex` | the same, but the receiver sleeps in `FUTEX_WAIT` (shared, no `FUTEX_PRIVATE_FLAG`) and every message is followed by a `FUTEX_WAKE` |
//!
//! No SPSC ring can make a round trip faster than `floor-cacheline` (each message is one
//! line written on one core and read on the other), and no transport that parks its
//! waiter faster than `floor-futex`. They carry at most [`MAX_PAYLOAD`] bytes and only
//! the ping-pong pattern: a line holds one message at a time ([`Transport::supports`]).
//!
//! Synchronisation: the sender copies the payload into its line, then stores the next
//! counter value with `Release`; the receiver loads the counter with `Acquire` until it
//! changes, then copies the payload out (SYNC: floor line). A sender writes its line
//! again only after the echo came back, so the two never touch the payload at once.

use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use shm_core::liveness::ProcessIdentity;

use super::watch::Owner;
use super::{Checker, Endpoint, MsgIn, MsgOut, Outgoing, Owned, Pair, Transport, TransportError};
use crate::config::Pattern;
use crate::shm::{futex_wait, futex_wake, SharedMap, LINE};

/// The largest message a floor carries: what fits in its line after the counter.
pub(crate) const MAX_PAYLOAD: usize = 64;

/// Where the payload starts in a line (after the counter word, 8-aligned).
const PAYLOAD_AT: usize = 8;

/// The counter value that tells the peer its sender is gone.
const STOP: u32 = u32::MAX;

/// How long one `FUTEX_WAIT` sleeps at most before the waiter re-checks its peer.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// How the receiver waits for the counter to move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    /// Busy spinning (`spin_loop`), yielding when both sides share one CPU.
    Spin,
    /// `FUTEX_WAIT` on the counter's low 32 bits, woken by the sender's `FUTEX_WAKE`.
    Futex,
}

/// A floor: a way of waiting, over one line per direction.
#[derive(Debug)]
pub(crate) struct Floor {
    name: &'static str,
    wait: Wait,
}

/// `floor-cacheline`: the cache-line round trip, spinning.
pub(crate) static FLOOR_CACHELINE: Floor = Floor {
    name: "floor-cacheline",
    wait: Wait::Spin,
};

/// `floor-futex`: the shared-futex WAIT/WAKE round trip.
pub(crate) static FLOOR_FUTEX: Floor = Floor {
    name: "floor-futex",
    wait: Wait::Futex,
};

impl Transport for Floor {
    fn name(&self) -> &'static str {
        self.name
    }

    fn supports(&self, pattern: Pattern, size: usize) -> bool {
        pattern == Pattern::PingPong && size <= MAX_PAYLOAD
    }

    fn connect(&self, max_msg: usize) -> Result<Pair, TransportError> {
        super::check_fits(max_msg, MAX_PAYLOAD)?;
        // Line 0 carries parent -> child, line 1 child -> parent.
        let map = Rc::new(SharedMap::new(4096)?);
        let end = |out_line: usize, in_line: usize| FloorEnd {
            map: Rc::clone(&map),
            out_at: out_line * LINE,
            in_at: in_line * LINE,
            wait: self.wait,
            sent: 0,
            seen: 0,
            owner: Owner::here(),
        };
        Ok(Pair::new(end(0, 1), end(1, 0)))
    }
}

/// One side: writes its `out` line, reads the peer's `in` line.
struct FloorEnd {
    map: Rc<SharedMap>,
    out_at: usize,
    in_at: usize,
    wait: Wait,
    /// Counter of the last message sent.
    sent: u32,
    /// Counter of the last message received.
    seen: u32,
    /// Whose drop tells the peer this side is gone.
    owner: Owner,
}

impl FloorEnd {
    /// The line's counter, also the futex word of `floor-futex`.
    fn counter(&self, line_at: usize) -> &AtomicU32 {
        self.map.u32_at(line_at)
    }

    fn payload(&self, line_at: usize, len: usize) -> *mut u8 {
        self.map.bytes_at(line_at + PAYLOAD_AT, len)
    }

    fn check_len(len: usize) -> Result<(), TransportError> {
        super::check_fits(len, MAX_PAYLOAD)
    }

    /// Publishes message `sent + 1`, whose payload is already in the out line.
    fn publish(&mut self) -> Result<(), TransportError> {
        self.sent = self.sent.wrapping_add(1) % STOP;
        // Release pairs with the peer's Acquire load in `wait_for_message` (SYNC: floor
        // line): the payload copied in before is visible once the counter is.
        self.counter(self.out_at)
            .store(self.sent, Ordering::Release);
        if self.wait == Wait::Futex {
            futex_wake(self.counter(self.out_at), 1)?;
        }
        Ok(())
    }

    /// Waits until the peer's counter moves past the last one seen.
    fn wait_for_message(&mut self) -> Result<(), TransportError> {
        let mut bound = self.owner.wait();
        loop {
            // Acquire pairs with the peer's Release store in `publish` (SYNC: floor line).
            let v = self.counter(self.in_at).load(Ordering::Acquire);
            if v == STOP {
                return Err(TransportError::Disconnected);
            }
            if v != self.seen {
                self.seen = v;
                return Ok(());
            }
            match self.wait {
                Wait::Spin => bound.spin()?,
                Wait::Futex => {
                    // A store of the next counter changes the word, so the wait returns
                    // (or does not start).
                    futex_wait(self.counter(self.in_at), v, WAIT_SLICE)?;
                    bound.check()?;
                }
            }
        }
    }
}

impl Endpoint for FloorEnd {
    fn send(&mut self, msg: &Outgoing<'_>) -> Result<(), TransportError> {
        let len = msg.size();
        Self::check_len(len)?;
        // SAFETY: the out line's payload bytes are valid for `len <= MAX_PAYLOAD` bytes
        // while `self.map` lives; the peer reads them only after the counter store in
        // `publish` and writes only its own line; no reference is formed over them.
        msg.write_to(&mut unsafe { MsgOut::shared(self.payload(self.out_at, len), len) });
        self.publish()
    }

    fn recv(&mut self, check: &mut Checker<'_>) -> Result<(), TransportError> {
        let len = check.size();
        Self::check_len(len)?;
        self.wait_for_message()?;
        // SAFETY: the peer wrote these bytes before its Release store of the counter we
        // acquired, and writes them again only after our reply; raw-pointer reads only.
        check.check(&unsafe { MsgIn::shared(self.payload(self.in_at, len), len) });
        Ok(())
    }

    fn echo(&mut self, check: &mut Checker<'_>) -> Result<(), TransportError> {
        self.recv(check)?;
        let len = check.size();
        let (src, dst) = (
            self.payload(self.in_at, len),
            self.payload(self.out_at, len),
        );
        // SAFETY: two distinct lines of the mapping, each valid for `len` bytes; the
        // peer does not write its line until it has our reply.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, len) };
        self.publish()
    }

    fn hand_over(&self, child: ProcessIdentity) -> Result<(), TransportError> {
        Owned::Record(&self.owner).hand_over(child)
    }
}

impl Drop for FloorEnd {
    fn drop(&mut self) {
        if !self.owner.is_current() {
            return;
        }
        // The peer's next load sees that this side is gone (SeqCst: no pairing needed
        // beyond the word itself).
        self.counter(self.out_at).store(STOP, Ordering::SeqCst);
        if self.wait == Wait::Futex {
            let _ = futex_wake(self.counter(self.out_at), 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floors_run_only_small_round_trips() {
        for f in [&FLOOR_CACHELINE, &FLOOR_FUTEX] {
            assert!(f.supports(Pattern::PingPong, 8));
            assert!(f.supports(Pattern::PingPong, MAX_PAYLOAD));
            assert!(!f.supports(Pattern::PingPong, MAX_PAYLOAD + 1));
            assert!(!f.supports(Pattern::Stream, 8));
            assert!(matches!(
                f.connect(MAX_PAYLOAD + 1),
                Err(TransportError::TooLarge { .. })
            ));
        }
    }
}
