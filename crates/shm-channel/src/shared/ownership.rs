//! Which process owns an endpoint, and whether the peer's owner is alive.
//!
//! Each endpoint has an owner slot in shared memory holding a packed
//! [`ProcessIdentity`] (pid + start time), 0 when unclaimed. Only the process recorded there
//! owns the endpoint: its drop disconnects the peer. A copy of the endpoint left in another
//! process (the parent's copy after `fork`, say) finds someone else in the slot and its
//! drop does nothing. `shm-fork` moves an endpoint to a child with
//! [`hand_over`] in the parent and [`adopt`] in the child.

use std::sync::atomic::Ordering;

use shm_core::liveness::{fork_generation, Liveness, PeerWatch, ProcessIdentity};

use super::primitive::AtomicU64;
use crate::OwnershipError;

/// The calling process's identity.
pub(crate) fn me() -> Result<ProcessIdentity, OwnershipError> {
    ProcessIdentity::current().map_err(OwnershipError::Identity)
}

/// Whether the calling process owns the endpoint whose slot this is.
pub(crate) fn owned_here(slot: &AtomicU64) -> bool {
    // Acquire: pairs with the Release of the store that recorded the owner.
    let owner = slot.load(Ordering::Acquire);
    me().is_ok_and(|me| me.to_raw() == owner)
}

/// Records the calling process as owner of an unclaimed slot, or of a slot whose owner is
/// dead (a restarted peer taking over). Refuses a slot owned by a live process — this one
/// included: two endpoints of one side would break the single-producer/consumer contract.
pub(crate) fn claim(slot: &AtomicU64, watch: &mut PeerWatch) -> Result<(), OwnershipError> {
    let me = me()?;
    // Acquire: see `owned_here`.
    let current = slot.load(Ordering::Acquire);
    if let Some(owner) = ProcessIdentity::from_raw(current) {
        if owner == me {
            return Err(OwnershipError::OwnedHere);
        }
        if watch.check(owner) == Liveness::Alive {
            return Err(OwnershipError::OwnedElsewhere { pid: owner.pid() });
        }
    }
    swap_owner(slot, current, me.to_raw())
}

/// Gives up ownership when the owning endpoint is dropped, so a new endpoint may attach.
pub(crate) fn release(slot: &AtomicU64) {
    // Release: the endpoint's last writes happen before a new owner's claim sees 0.
    slot.store(0, Ordering::Release);
}

/// In the process that owns the endpoint: records `to` as its owner from now on.
pub(crate) fn hand_over(slot: &AtomicU64, to: ProcessIdentity) -> Result<(), OwnershipError> {
    let me = me()?;
    // Acquire: see `owned_here`.
    let current = slot.load(Ordering::Acquire);
    if current == to.to_raw() {
        return Ok(());
    }
    if current != me.to_raw() {
        return Err(OwnershipError::OwnedElsewhere {
            pid: ProcessIdentity::from_raw(current).map_or(0, ProcessIdentity::pid),
        });
    }
    swap_owner(slot, current, to.to_raw())
}

/// In a child created by `fork`: takes the endpoint over from the parent that forked it.
pub(crate) fn adopt(slot: &AtomicU64) -> Result<(), OwnershipError> {
    let me = me()?;
    // Acquire: see `owned_here`.
    let current = slot.load(Ordering::Acquire);
    if current == me.to_raw() {
        return Ok(());
    }
    let parent = std::os::unix::process::parent_id() as i32;
    match ProcessIdentity::from_raw(current) {
        Some(owner) if owner.pid() == parent => swap_owner(slot, current, me.to_raw()),
        None => swap_owner(slot, current, me.to_raw()),
        Some(owner) => Err(OwnershipError::OwnedElsewhere { pid: owner.pid() }),
    }
}

/// Compare-and-swap of the owner; losing to a concurrent change that already made the
/// slot hold `new` counts as success (the parent's `hand_over` and the child's `adopt`
/// race to write the same value).
fn swap_owner(slot: &AtomicU64, current: u64, new: u64) -> Result<(), OwnershipError> {
    // SYNC: owner recorded. AcqRel: publishes the new owner to `owned_here`/peer checks and
    // observes the previous owner's writes.
    match slot.compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Ok(()),
        Err(now) if now == new => Ok(()),
        Err(now) => Err(OwnershipError::OwnedElsewhere {
            pid: ProcessIdentity::from_raw(now).map_or(0, ProcessIdentity::pid),
        }),
    }
}

/// Asks the kernel about the owner of each slot in `slots` (one watch per slot): calls
/// `dead(index)` for each slot whose owner is dead, and returns whether any slot has a live
/// owner. Free slots (0) are skipped.
pub(crate) fn scan_owners<'a>(
    slots: impl Iterator<Item = &'a AtomicU64>,
    watches: &mut [PeerWatch],
    mut dead: impl FnMut(usize, u64),
) -> bool {
    let mut live = false;
    for ((index, slot), watch) in slots.enumerate().zip(watches.iter_mut()) {
        // Acquire: see `owned_here`.
        let owner = slot.load(Ordering::Acquire);
        let Some(identity) = ProcessIdentity::from_raw(owner) else {
            continue;
        };
        match watch.check(identity) {
            Liveness::Alive => live = true,
            Liveness::Dead => dead(index, owner),
        }
    }
    live
}

/// Frees `slot` if it still holds the dead owner `owner` (a concurrent reaper or a new
/// owner may have got there first); whether this call freed it.
pub(crate) fn free_dead(slot: &AtomicU64, owner: u64) -> bool {
    // SYNC: owner recorded (see `swap_owner`). Failure Relaxed: the value is not used.
    slot.compare_exchange(owner, 0, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
}

/// Watches the owner of the other side of a channel: the kernel's word on whether it is
/// alive, and whether the owner slot was emptied without the side being closed.
///
/// An honest close sets its side's closed flag before it frees the owner slot; a slot found
/// empty (or naming no process) after it once named an owner, with the closed flag still
/// clear, means a peer wrote it — the owner is gone as far as we can ever tell, and no live
/// process will close the side: reported as dead, never waited on for ever.
#[derive(Debug, Default)]
pub(crate) struct PeerMonitor {
    watch: PeerWatch,
    /// The slot named an owner once.
    seen: bool,
}

impl PeerMonitor {
    /// A monitor of `slot`, remembering whether it names an owner now.
    pub(crate) fn new(slot: &AtomicU64) -> PeerMonitor {
        PeerMonitor {
            watch: PeerWatch::new(),
            // Relaxed: a hint only (a later Acquire load decides).
            seen: ProcessIdentity::from_raw(slot.load(Ordering::Relaxed)).is_some(),
        }
    }

    /// Whether the owner in `slot` is gone: dead by the kernel's word, or vanished (see
    /// the type) while `closed` says the side was not closed.
    pub(crate) fn gone(&mut self, slot: &AtomicU64, closed: impl FnOnce() -> bool) -> bool {
        // Acquire: see `owned_here`; an honest close's flag store is ordered before the
        // Release that freed the slot, so a freed slot seen here comes with its flag.
        let owner = slot.load(Ordering::Acquire);
        match ProcessIdentity::from_raw(owner) {
            Some(identity) => {
                self.seen = true;
                // An owner that closed its side and then exited is dead by the time the
                // kernel is asked, though its slot was loaded before the release: the flag,
                // stored before that release, is read again after the kernel's answer, so a
                // close followed by an exit is never reported as a death.
                self.watch.check(identity) == Liveness::Dead && !closed()
            }
            None => self.seen && !closed(),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// The identity of a process that has exited (and been reaped).
    fn exited_process() -> ProcessIdentity {
        let mut child = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .unwrap();
        let identity = ProcessIdentity::of_pid(child.id() as i32).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        identity
    }

    #[test]
    fn a_dead_owner_is_gone_unless_its_side_was_closed_first() {
        let slot = AtomicU64::new(exited_process().to_raw());
        assert!(PeerMonitor::new(&slot).gone(&slot, || false), "died");
        assert!(
            !PeerMonitor::new(&slot).gone(&slot, || true),
            "closed, then exited"
        );
    }
}

/// The ownership check of an endpoint on use: the fork generation at which this process
/// last verified it owns the endpoint (0: not verified, check the owner slot).
///
/// Private memory: only the process holding this copy of the endpoint reads or writes it.
#[derive(Debug)]
pub(crate) struct OwnerCheck {
    verified: std::sync::atomic::AtomicU64,
}

impl OwnerCheck {
    /// A check that verifies on first use.
    pub(crate) fn new() -> OwnerCheck {
        OwnerCheck {
            verified: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// `Ok` when the calling process owns the endpoint whose owner slot is `slot`: one
    /// private load and compare while no `fork` happened since the last verification.
    #[inline]
    pub(crate) fn verify(&self, slot: &AtomicU64) -> Result<(), NotOwner> {
        let now = fork_generation();
        // Relaxed: private to this process, and only a cache of the owner slot's verdict.
        if now != 0 && self.verified.load(Ordering::Relaxed) == now {
            return Ok(());
        }
        self.verify_slow(slot, now)
    }

    #[cold]
    #[inline(never)]
    fn verify_slow(&self, slot: &AtomicU64, now: u64) -> Result<(), NotOwner> {
        if !owned_here(slot) {
            return Err(NotOwner);
        }
        // Relaxed: see `verify`.
        self.verified.store(now, Ordering::Relaxed);
        Ok(())
    }

    /// Forgets the verification (after handing the endpoint over): the next use re-reads
    /// the owner slot.
    pub(crate) fn forget(&self) {
        // Relaxed: see `verify`.
        self.verified.store(0, Ordering::Relaxed);
    }
}

/// The calling process does not own the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotOwner;
