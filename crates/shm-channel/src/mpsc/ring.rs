//! The MPSC ring algorithm: claim, commit, consume, and recovery from dead producers. The
//! claiming side is in `claim.rs`, the reading side in `consume.rs`, the ring sides the
//! endpoint core drives in `sides.rs`; all of them reach the region through its `Layout`
//! (`layout.rs`), whose frame words are the loom seam (`crate::shared::primitive`).
//!
//! # Frame header word
//!
//! The common one (`crate::shared::frame`), with all four tags: `CLAIMED(len, slot)`,
//! `DATA(len, slot)`, `SKIP(len)`, `PAD(len)`; 0 means nothing written yet (the consumer
//! zeroes every byte it releases).
//!
//! # Protocol
//!
//! 1. *Intent*: the producer records `[t, t + span)` in its own slot (`intent_start`,
//!    `intent_end`), where `t` is the tail it read.
//! 2. *Claim*: CAS of the shared `tail` from `t` to `t + span` (room checked against the
//!    consumer's `head`). A frame that would cross the ring end is preceded by its own pad
//!    claim, committed at once.
//! 3. The producer writes the header `CLAIMED(len, slot)`, then the payload.
//! 4. *Commit*: the header becomes `DATA(len, slot)` with a Release store. A commit of
//!    fewer bytes than claimed first writes a `SKIP` frame over the rest; a dropped grant
//!    commits the whole claim as `SKIP`.
//!
//! The consumer reads frames in claim order at `head`, copies out `DATA` frames, zeroes the
//! bytes it releases (so that "header 0" always means "claimed, header not written yet"),
//! then publishes `head` with Release. It never returns a frame that is not `DATA`.
//!
//! # Dead producers
//!
//! When the frame at `head` stays `CLAIMED` (or 0) and the consumer makes a *slow* check
//! (every 10 ms of waiting), it asks the kernel whether the claimer is alive: for a
//! `CLAIMED` header the slot is in the header; for a 0 header the claimer is the slot whose
//! recorded intent contains `head` (it wrote the intent before its claim). If that process
//! is dead, the consumer skips the claimed bytes (length from the header, or the intent's
//! end), zeroes them and counts an abandoned frame. Slots are recycled only once `head` has
//! passed their last intent, so the record cannot be overwritten while it is needed.
//!
//! A zero header at `head` that no producer's intent covers can never be filled: no honest
//! producer moves the tail without an intent (a producer that committed has a newer intent,
//! stored with Release after the commit, so the commit is visible too). At a slow check the
//! consumer reports it as corruption rather than waiting for ever.

use crate::shared::primitive::AtomicU64;

/// Most senders a channel can have at once (clones included): one producer slot each.
pub const MAX_SENDERS: usize = 64;

/// One producer's record in the control block: owner and last claim intent.
#[derive(Default)]
#[repr(C, align(128))]
pub(crate) struct SenderSlot {
    /// `ProcessIdentity` of the owning process; 0 = free.
    pub(crate) owner: AtomicU64,
    /// Start of the last claim this producer attempted (byte position). With
    /// `intent_end`, the interval `[start, end)`; empty once withdrawn.
    pub(crate) intent_start: AtomicU64,
    /// End of that claim.
    pub(crate) intent_end: AtomicU64,
}
