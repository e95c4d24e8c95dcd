//! Cross-process notification: a shared futex, an event count that skips the wake syscall
//! when nobody sleeps, and the wait strategies built on them.
//!
//! Everything here lives in shared memory and works between processes: the futex calls do
//! not use `FUTEX_PRIVATE_FLAG`, so the kernel keys the wait queue on the physical page and
//! a process that maps the same page can wake us.
//!
//! Publishing and sleeping meet in a handshake ([`Handshake`], in [`handshake`]) that makes
//! sure no wake-up is lost: either both sides pay a full barrier ([`Handshake::SeqCst`]:
//! [`Event::notify`] or [`Event::notify_after_seqcst`] with [`Event::wait_until`]), or only
//! the side about to sleep does, through `membarrier` ([`Handshake::Membarrier`]:
//! [`Event::notify_relaxed`] with [`Event::wait_until_with`]).
//!
//! # Examples
//!
//! A waiter parks until a flag is set by another thread (or process):
//!
//! ```
//! use std::sync::atomic::{AtomicBool, Ordering};
//! use std::time::{Duration, Instant};
//! use shm_ipc::core::notify::{Event, WaitStrategy};
//!
//! let event = Event::new();
//! let flag = AtomicBool::new(false);
//! std::thread::scope(|s| {
//!     s.spawn(|| {
//!         std::thread::sleep(Duration::from_millis(10));
//!         flag.store(true, Ordering::SeqCst);
//!         event.notify();
//!     });
//!     let deadline = Instant::now() + Duration::from_secs(10);
//!     let seen = event.wait_until(&WaitStrategy::default(), Some(deadline), |_| {
//!         flag.load(Ordering::SeqCst).then_some(())
//!     });
//!     assert!(seen.is_ok());
//! });
//! ```

use std::io;
use std::sync::atomic::{compiler_fence, fence, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod adaptive;
mod doorbell;
mod futex;
pub mod handshake;
mod machine;
mod many;
#[cfg(test)]
mod stress_tests;
mod throttle;
mod wait;

pub use adaptive::SpinBudget;
pub use doorbell::{Doorbell, DoorbellError, Ticker};
pub use futex::{Futex, FutexError, FutexWake, MAX_WAIT_ANY};
pub use handshake::{
    membarrier_available, membarrier_failures, register_process, Handshake, MembarrierError,
    UnknownHandshake, HANDSHAKE_ENV,
};
pub use machine::{available_cores, OVERSUBSCRIBED_LATENCY, OVERSUBSCRIBED_MAX_SPIN};
pub use many::WaitAnyError;
pub use throttle::{Lookout, Throttle, LOOK_EVERY, MAX_STRIDE};

/// How a waiter waits for a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitStrategy {
    /// Spin-then-park whose spin budget follows the peer (the default): it grows, up to
    /// `max`, while messages keep arriving soon after a wait gave up spinning (a peer busy
    /// copying a large message), and falls back to `min` after a wait that slept long (an
    /// idle peer). So a message already on its way is not slept through, and an idle
    /// waiter parks after at most `max` of polling. The budget is learned per waiting
    /// endpoint ([`SpinBudget`]); a wait without one spins for `min`.
    Adaptive {
        /// The budget of a waiter that has learned nothing, or whose peer went idle.
        min: Duration,
        /// The longest budget.
        max: Duration,
    },
    /// Busy-poll (with `pause`) until the condition holds or the deadline passes. Lowest
    /// latency; burns a core, and starves the peer when both share one.
    Spin,
    /// Poll for up to `spin` (with exponential backoff, then yielding), then sleep on the
    /// futex: near-spin latency for a busy peer, no CPU burnt by an idle one.
    SpinThenPark {
        /// How long to poll before parking.
        spin: Duration,
    },
    /// Sleep on the futex at once: lowest CPU use, a wake-up syscall on every message.
    Park,
    /// Poll for up to `spin`, yielding the CPU between polls (no busy phase), then sleep on
    /// the futex.
    YieldThenPark {
        /// How long to poll (and yield) before parking.
        spin: Duration,
    },
    /// Sleep on the futex at once, and ask the other side to wake this waiter in batches
    /// only: a receiver once a quarter of its ring is filled, a sender once a quarter is
    /// free (or its frame fits), or sooner when the other side flushes, has to wait itself,
    /// or closes. The waiter re-checks at least every `latency` all the same, so a message
    /// sent just before its sender went idle waits at most that long. For processes that
    /// far outnumber their cores (see [`WaitStrategy::for_processes`]), where every wake-up
    /// costs a context switch: one per batch, as a pipe's reader gets one per buffer.
    Batched {
        /// The longest a waiter sleeps before it looks again.
        latency: Duration,
    },
}

/// The default spin budget: about half a cross-core futex round trip on the reference
/// machine (~84 µs, docs/benchmarks.md), so spinning never costs more than parking would save.
/// The adaptive default starts there.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(50);

/// The longest spin of the adaptive default: an idle waiter parks after at most this.
pub const DEFAULT_MAX_SPIN: Duration = Duration::from_millis(1);

/// Tight polls between two clock reads in the hot phase of a spinning wait.
const POLLS_PER_CLOCK_READ: u32 = 64;

/// How long a spinning wait polls tightly before backing off: a few round trips of a cache
/// line between cores (~110 ns on the reference machine, docs/benchmarks.md), long enough for a peer
/// that is in the middle of writing a message.
const HOT_SPIN: Duration = Duration::from_micros(5);

/// How often a long wait re-checks slow conditions ([`Check::Slow`]): peer liveness, say.
/// It bounds how long a dead peer can go unnoticed by a blocked call.
pub const SLOW_CHECK_INTERVAL: Duration = Duration::from_millis(10);

/// How long a [`Handshake::Membarrier`] waiter sleeps at most when the kernel refused its
/// `membarrier` call: without the barrier a wake-up may be missed, so the waiter re-checks
/// this often instead. 1 ms caps the delay a missed wake-up can cause at well under the
/// 10 ms slow-check slice, for ~1000 extra wake-ups a second of a waiter that only sleeps
/// this way in a sandbox that revoked the call after the channel chose its handshake.
const BARRIER_REFUSED_SLICE: Duration = Duration::from_millis(1);

impl Default for WaitStrategy {
    fn default() -> Self {
        WaitStrategy::Adaptive {
            min: DEFAULT_SPIN,
            max: DEFAULT_MAX_SPIN,
        }
    }
}

/// Which kind of check a wait loop asks its condition for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// A hot poll: check only cheap shared state.
    Fast,
    /// Called at least every [`SLOW_CHECK_INTERVAL`] of waiting, and once before sleeping:
    /// also check what costs a syscall (for example, whether the peer is alive).
    Slow,
}

/// The deadline of a [`Event::wait_until`] passed before the condition held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out waiting for the condition")]
pub struct WaitTimeout;

/// An event count in shared memory: a futex sequence word plus a count of sleepers, so that
/// [`notify`](Event::notify) makes a syscall only when somebody sleeps; and a mark, with which
/// a sleeper asks to be woken only once enough has happened ([`set_mark`](Event::set_mark)).
///
/// All-zero bytes are a valid, idle `Event`.
#[repr(C, align(8))]
#[derive(Debug, Default)]
pub struct Event {
    /// Bumped by every notification that finds a sleeper; sleepers wait on it.
    seq: Futex,
    /// Number of waiters that are about to sleep or sleeping.
    waiters: AtomicU32,
    /// What a sleeper waits for before a wake-up is worth it (its meaning is the
    /// notifiers'); 0: any notification.
    mark: AtomicU64,
}

/// The part of [`Event`]'s waiter count that counts futex sleepers; async waiters count in
/// units of [`ASYNC_WAITER`] above it.
const SYNC_WAITERS: u32 = ASYNC_WAITER - 1;

/// One async waiter in [`Event`]'s waiter count.
const ASYNC_WAITER: u32 = 1 << 16;

/// [`Event`]'s mark once a notifier woke the sleepers for it: no further wake-up until a
/// sleeper sets a mark again.
const WOKEN: u64 = u64::MAX;

const _: () = {
    assert!(std::mem::size_of::<Event>() == 16);
    assert!(std::mem::offset_of!(Event, waiters) == 4);
    assert!(std::mem::offset_of!(Event, mark) == 8);
};

impl Event {
    /// An idle event.
    pub const fn new() -> Event {
        Event {
            seq: Futex::new(0),
            waiters: AtomicU32::new(0),
            mark: AtomicU64::new(0),
        }
    }

    /// Views 16 aligned bytes of shared memory as an event.
    ///
    /// # Safety
    ///
    /// `ptr` must be 8-byte aligned and valid for reads and writes of 16 bytes for `'a`,
    /// reached by everyone only as atomics.
    pub unsafe fn from_ptr<'a>(ptr: *mut u8) -> &'a Event {
        // SAFETY: the caller guarantees alignment and validity; `Event` is two atomic u32s
        // and an atomic u64, valid for any bit pattern and for concurrent writers.
        unsafe { &*ptr.cast::<Event>() }
    }

    /// Wakes every sleeper, if there is one. Call it after publishing the state change
    /// the waiters wait for. Returns whether a wake syscall was made.
    ///
    /// Costs a full fence, plus a syscall only when a waiter has announced itself. Where
    /// the publishing store can itself be `SeqCst`, [`notify_after_seqcst`] is cheaper.
    ///
    /// [`notify_after_seqcst`]: Event::notify_after_seqcst
    pub fn notify(&self) -> bool {
        // SYNC: waiter flag. This SeqCst fence orders the caller's publishing store before
        // the load of `waiters`; it pairs with the SeqCst fence in `wait_until` between the
        // waiter's increment of `waiters` and its re-check of the condition. One of the two
        // sides must see the other's write, so a wake-up is never lost.
        fence(Ordering::SeqCst);
        self.wake_if_waiting()
    }

    /// [`notify`](Event::notify) for a caller whose publishing store was `SeqCst`: no fence.
    ///
    /// A `SeqCst` store (an `xchg` on x86) and the `SeqCst` load of the waiter count here
    /// are ordered in the single total order of `SeqCst` operations, which also holds the
    /// waiter's `SeqCst` increment and fence; so as with [`notify`](Event::notify), either
    /// the waiter's re-check sees the published state or this load sees the waiter. On
    /// x86 this saves the `mfence`, which costs several times a locked store there.
    #[inline]
    pub fn notify_after_seqcst(&self) -> bool {
        self.wake_if_waiting()
    }

    /// [`notify`](Event::notify) for a channel using [`Handshake::Membarrier`]: no fence and
    /// no locked instruction, so the caller's publishing store can be a plain `Release`.
    /// Makes a syscall only when a waiter has announced itself.
    ///
    /// The calling process must be registered ([`register_process`], or
    /// [`Handshake::prepare`]), and waiters must wait with
    /// [`wait_until_with(Handshake::Membarrier, ..)`](Event::wait_until_with): it is their
    /// `membarrier` call that orders this side's store before this load.
    ///
    /// See the [`handshake`] module for an example.
    #[inline]
    pub fn notify_relaxed(&self) -> bool {
        // SYNC: waiter flag (membarrier). Only keeps the compiler from moving the load below
        // above the caller's publishing store; the CPU may still let the load pass the store
        // (x86 store buffer). The waiter's `membarrier` in `wait_until_with` repairs that: it
        // runs a full barrier here, so either the store was visible before it (the waiter's
        // re-check sees the state) or this load comes after it (and sees the waiter).
        compiler_fence(Ordering::SeqCst);
        // Relaxed: ordered by the handshake above, not by this load; it only has to see an
        // increment that the waiter's barrier made visible.
        if self.waiters.load(Ordering::Relaxed) == 0 {
            return false;
        }
        self.wake_all()
    }

    /// Asks the notifiers that can tell ([`notify_relaxed_marked`],
    /// [`notify_after_seqcst_marked`]) to wake this event's sleepers only once `mark` is
    /// reached — a fill level, a position: what a mark means is the notifiers' — and any
    /// notifier at all with 0 (the default). A waiter sets it before it waits and clears it
    /// after; it must bound its sleeps itself (a notifier that never reaches the mark never
    /// wakes it). Sleepers of one event with different marks share the last one set.
    ///
    /// [`notify_relaxed_marked`]: Event::notify_relaxed_marked
    /// [`notify_after_seqcst_marked`]: Event::notify_after_seqcst_marked
    ///
    /// `u64::MAX` is taken: it says a notifier already woke the sleepers for their mark.
    pub fn set_mark(&self, mark: u64) {
        // Relaxed: published by the waiter's announcement that follows, a SeqCst RMW of
        // `waiters` (SYNC: waiter mark).
        self.mark.store(mark.min(WOKEN - 1), Ordering::Relaxed);
    }

    /// [`notify_relaxed`](Event::notify_relaxed) that wakes only if the sleepers' mark is 0
    /// or `reached` says the notifier reached it.
    #[inline]
    pub fn notify_relaxed_marked(&self, reached: impl FnOnce(u64) -> bool) -> bool {
        // SYNC: waiter flag (membarrier): as in `notify_relaxed`.
        compiler_fence(Ordering::SeqCst);
        // Relaxed: as in `notify_relaxed`.
        if self.waiters.load(Ordering::Relaxed) == 0 || !self.mark_reached(reached) {
            return false;
        }
        self.wake_all()
    }

    /// [`notify_after_seqcst`](Event::notify_after_seqcst) that wakes only if the
    /// sleepers' mark is 0 or `reached` says the notifier reached it.
    #[inline]
    pub fn notify_after_seqcst_marked(&self, reached: impl FnOnce(u64) -> bool) -> bool {
        // SeqCst: see `notify_after_seqcst` (SYNC: waiter flag).
        if self.waiters.load(Ordering::SeqCst) == 0 || !self.mark_reached(reached) {
            return false;
        }
        self.wake_all()
    }

    /// After the waiter count was found non-zero: whether the sleepers' mark lets a
    /// notification that `reached` judges wake them. A mark reached is replaced by
    /// [`WOKEN`], so that the notifications that follow before the sleepers are up (a
    /// context switch away) make no wake syscall of their own.
    #[cold]
    #[inline(never)]
    fn mark_reached(&self, reached: impl FnOnce(u64) -> bool) -> bool {
        // SYNC: waiter mark. Acquire: with the load of the count before it, pairs with the
        // sleeper's SeqCst increment of `waiters`, which follows its store of the mark.
        fence(Ordering::Acquire);
        // Relaxed: ordered by the fence above.
        let mark = self.mark.load(Ordering::Relaxed);
        match mark {
            0 => true,
            WOKEN => false,
            mark if reached(mark) => {
                // Relaxed: a hint to other notifiers; the wake-up itself is ordered by the
                // sequence word. Only the mark we saw: a sleeper that set a new one since
                // keeps it (unless it set the same value: then it is woken by its next
                // slice's end at the latest).
                let _ =
                    self.mark
                        .compare_exchange(mark, WOKEN, Ordering::Relaxed, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    #[inline]
    fn wake_if_waiting(&self) -> bool {
        // SeqCst: see `notify` / `notify_after_seqcst` (SYNC: waiter flag).
        if self.waiters.load(Ordering::SeqCst) == 0 {
            return false;
        }
        self.wake_all()
    }

    #[cold]
    #[inline(never)]
    fn wake_all(&self) -> bool {
        // Release: a sleeper that sees the new sequence number does not sleep.
        self.seq.word().fetch_add(1, Ordering::Release);
        // Relaxed: only tells whether a futex sleeper may be there; the handshake's order was
        // kept by the caller's load of the same word.
        if self.waiters.load(Ordering::Relaxed) & SYNC_WAITERS != 0 {
            // A failing FUTEX_WAKE (EFAULT cannot happen on a live reference) leaves waiters
            // to their slow-check timeout, so the error is not worth surfacing.
            let _ = self.seq.wake(u32::MAX);
        }
        true
    }

    /// Announces an async waiter (one whose task waits on a [`Doorbell`] instead of the
    /// futex): from now on every notification reports a waiter, and the notifier rings the
    /// channel's doorbell ([`ring_if_async`](Event::ring_if_async)). The caller must re-check
    /// its condition after this call, and [`withdraw_async`](Event::withdraw_async) once,
    /// when it stops waiting.
    ///
    /// This is the sleeper's half of the wake handshake, as in
    /// [`wait_until_with`](Event::wait_until_with), paid once per wait rather than per
    /// sleep: `false` if the handshake is [`Handshake::Membarrier`] and the kernel refused
    /// the barrier, so a notification may be missed and the waiter should re-check often.
    pub fn announce_async(&self, handshake: Handshake) -> bool {
        self.waiters.fetch_add(ASYNC_WAITER, Ordering::SeqCst);
        // SYNC: waiter flag (see `notify`): orders the announcement before the caller's
        // re-check of its condition.
        fence(Ordering::SeqCst);
        // SYNC: waiter flag (membarrier; see `notify_relaxed`).
        handshake != Handshake::Membarrier || handshake::sleeper_barrier()
    }

    /// Withdraws an announcement made with [`announce_async`](Event::announce_async).
    pub fn withdraw_async(&self) {
        self.waiters.fetch_sub(ASYNC_WAITER, Ordering::SeqCst);
    }

    /// The event's sequence number: bumped by every notification that found a waiter.
    /// An async waiter that sees it move without its doorbell ringing knows a notifier
    /// without the doorbell is about.
    pub fn sequence(&self) -> u32 {
        // Relaxed: a hint for how often to re-check, ordering nothing.
        self.seq.word().load(Ordering::Relaxed)
    }

    /// Whether an async waiter has announced itself.
    pub fn has_async_waiters(&self) -> bool {
        // Relaxed: asked after a notification that found a waiter (whose load ordered the
        // handshake); this load only tells which kind.
        self.waiters.load(Ordering::Relaxed) >= ASYNC_WAITER
    }

    /// After a notification that found a waiter: rings `bell` if an async waiter is among
    /// them; whether it rang.
    pub fn ring_if_async(&self, bell: &Doorbell) -> io::Result<bool> {
        if !self.has_async_waiters() {
            return Ok(false);
        }
        bell.ring()?;
        Ok(true)
    }

    /// Waits until `poll` returns `Some`, following `strategy`, or until `deadline`, with
    /// the [`Handshake::SeqCst`] handshake (publishers use [`notify`](Event::notify) or
    /// [`notify_after_seqcst`](Event::notify_after_seqcst)).
    ///
    /// `poll` is called with [`Check::Fast`] on hot polls and with [`Check::Slow`] at least
    /// every [`SLOW_CHECK_INTERVAL`] and before each sleep; it may return an error value
    /// inside its `Some` (for example "peer died") to end the wait.
    pub fn wait_until<T>(
        &self,
        strategy: &WaitStrategy,
        deadline: Option<Instant>,
        poll: impl FnMut(Check) -> Option<T>,
    ) -> Result<T, WaitTimeout> {
        self.wait_until_with(Handshake::SeqCst, strategy, deadline, poll)
    }

    /// [`wait_until`](Event::wait_until) with the channel's `handshake`: with
    /// [`Handshake::Membarrier`], publishers use [`notify_relaxed`](Event::notify_relaxed)
    /// and the first sleep of a wait is preceded by a
    /// `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` call (~0.5 µs when no other registered
    /// process is running, 5–15 µs when one is, next to the futex sleep it precedes; the
    /// waiter stays announced, so the later slices of the same wait need none); spinning
    /// costs the same in both modes.
    ///
    /// If the kernel refuses that call at run time (a seccomp filter added after the
    /// channel chose its handshake), the wait cannot rule out a missed wake-up; it then
    /// sleeps at most 1 ms at a time, re-checks and tries the barrier again, so a missed
    /// wake-up costs a delay, never a hang, and [`membarrier_failures`] counts it.
    pub fn wait_until_with<T>(
        &self,
        handshake: Handshake,
        strategy: &WaitStrategy,
        deadline: Option<Instant>,
        poll: impl FnMut(Check) -> Option<T>,
    ) -> Result<T, WaitTimeout> {
        self.wait_learning(handshake, strategy, &mut SpinBudget::new(), deadline, poll)
    }

    /// [`wait_until_with`](Event::wait_until_with) for a waiter that keeps a
    /// [`SpinBudget`] between its waits: under [`WaitStrategy::Adaptive`] the wait spins
    /// for the budget learned so far, and teaches it how this wait ended.
    pub fn wait_learning<T>(
        &self,
        handshake: Handshake,
        strategy: &WaitStrategy,
        budget: &mut SpinBudget,
        deadline: Option<Instant>,
        poll: impl FnMut(Check) -> Option<T>,
    ) -> Result<T, WaitTimeout> {
        wait::wait_learning(&[(self, handshake)], strategy, budget, deadline, poll)
    }

    /// Whether some waiter has announced it is about to sleep or sleeping.
    pub fn has_waiters(&self) -> bool {
        self.waiters.load(Ordering::SeqCst) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn notify_without_waiters_makes_no_syscall() {
        let event = Event::new();
        assert!(!event.notify());
    }

    #[test]
    fn passed_deadline_times_out_without_sleeping() {
        let futex = Futex::new(0);
        let past = Instant::now() - Duration::from_millis(1);
        assert!(matches!(
            futex.wait(0, Some(past)),
            Err(FutexError::TimedOut)
        ));
    }

    #[test]
    fn wait_until_times_out_for_every_strategy() {
        let event = Event::new();
        for strategy in [
            WaitStrategy::Spin,
            WaitStrategy::default(),
            WaitStrategy::Park,
            WaitStrategy::YieldThenPark { spin: DEFAULT_SPIN },
            WaitStrategy::Batched {
                latency: Duration::from_millis(1),
            },
        ] {
            let deadline = Instant::now() + Duration::from_millis(20);
            let result: Result<(), _> = event.wait_until(&strategy, Some(deadline), |_| None);
            assert_eq!(result, Err(WaitTimeout), "{strategy:?}");
            assert!(Instant::now() >= deadline);
            assert!(!event.has_waiters());
        }
    }

    #[test]
    fn parked_waiter_is_woken_by_notify_from_another_thread() {
        let event = Event::new();
        let flag = AtomicBool::new(false);
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                event.wait_until(&WaitStrategy::Park, None, |_| {
                    flag.load(Ordering::SeqCst).then_some(7)
                })
            });
            // Wait until the waiter has announced itself, so the notify must make a syscall.
            while !event.has_waiters() {
                std::thread::yield_now();
            }
            flag.store(true, Ordering::SeqCst);
            assert!(event.notify());
            assert_eq!(waiter.join().unwrap(), Ok(7));
        });
    }

    #[test]
    fn slow_checks_happen_while_waiting() {
        let event = Event::new();
        let mut slow = 0;
        let result = event.wait_until(&WaitStrategy::Park, None, |check| {
            if check == Check::Slow {
                slow += 1;
            }
            (slow >= 3).then_some(slow)
        });
        assert_eq!(result, Ok(3));
    }
}
