//! The wake handshake: how a publisher and a waiter about to sleep make sure that one of
//! them sees the other's write, so that no wake-up is lost (docs/architecture.md, rule 6).
//!
//! The publisher stores its index, then loads the waiter count; the waiter increments the
//! waiter count, then re-checks the index. Each side needs its store ordered before its
//! load (StoreLoad), which on x86 only a locked instruction or `mfence` gives. Two
//! protocols, chosen once per channel and recorded in its shared header:
//!
//! - [`Handshake::SeqCst`]: both sides pay. The publisher's store is `SeqCst` (an `xchg`),
//!   or it fences, on every message ([`Event::notify_after_seqcst`], [`Event::notify`]).
//! - [`Handshake::Membarrier`]: only the sleeper pays. The publisher does a `Release` store
//!   and a `Relaxed` load behind a compiler fence ([`Event::notify_relaxed`]); the side
//!   about to sleep calls `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` between its
//!   increment and its re-check, which runs a full barrier on every CPU that is running a
//!   process registered with `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED` (every other CPU is
//!   not running the publisher, and the scheduler's own barriers cover a process that is
//!   switched out). After the call returns, either the publisher's store was visible before
//!   that barrier, and the re-check sees it, or the publisher's later load of the waiter
//!   count comes after the barrier, and sees the increment. Both processes must be
//!   registered ([`register_process`]): each side publishes in one direction.
//!
//! The second protocol sits outside the Rust memory model (which has no notion of a barrier
//! run on another thread's behalf); it rests on the kernel's documented guarantee, the way
//! liburcu and folly's `asymmetricLightBarrier` do.
//!
//! Registration state belongs to the address space (`mm->membarrier_state`): `fork` copies
//! it to the child (`dup_mm` copies the whole `mm_struct` and `mm_init` does not reset the
//! field; checked on Linux 6.18 with `PRIVATE_EXPEDITED`, which fails with `EPERM` in an
//! unregistered process and succeeds in the child of a registered one), and `execve` starts
//! from a fresh, unregistered one. [`register_process`] caches its success with the pid,
//! like [`ProcessIdentity::current`](crate::liveness::ProcessIdentity::current), so a
//! forked child registers again (a cheap no-op in the kernel when inherited).
//!
//! # Examples
//!
//! One side waits with the handshake the channel chose, the other publishes to match:
//!
//! ```
//! use std::sync::atomic::{AtomicBool, Ordering};
//! use std::time::{Duration, Instant};
//! use shm_ipc::core::notify::{Event, Handshake, WaitStrategy};
//!
//! let handshake = Handshake::preferred(); // decided once, recorded in the header
//! let (event, flag) = (Event::new(), AtomicBool::new(false));
//! std::thread::scope(|s| {
//!     s.spawn(|| {
//!         std::thread::sleep(Duration::from_millis(10));
//!         match handshake {
//!             Handshake::Membarrier => {
//!                 flag.store(true, Ordering::Release);
//!                 event.notify_relaxed();
//!             }
//!             Handshake::SeqCst => {
//!                 flag.store(true, Ordering::SeqCst);
//!                 event.notify_after_seqcst();
//!             }
//!         }
//!     });
//!     let deadline = Instant::now() + Duration::from_secs(10);
//!     let strategy = WaitStrategy::Park;
//!     let seen = event.wait_until_with(handshake, &strategy, Some(deadline), |_| {
//!         flag.load(Ordering::Acquire).then_some(())
//!     });
//!     assert!(seen.is_ok());
//! });
//! ```
//!
//! [`Event::notify`]: super::Event::notify
//! [`Event::notify_after_seqcst`]: super::Event::notify_after_seqcst
//! [`Event::notify_relaxed`]: super::Event::notify_relaxed

use std::ffi::OsStr;
use std::io;
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicU8, Ordering};

use crate::sys;

/// The environment variable that forces [`Handshake::preferred`] to the fallback: set it to
/// `seqcst` (any case). Any other value, or none, leaves the choice to the machine.
pub const HANDSHAKE_ENV: &str = "SHM_IPC_HANDSHAKE";

/// Which wake handshake a channel uses; see the [module docs](self).
///
/// Decided once, by whoever creates the channel, and recorded in its shared header as a
/// `u32` ([`to_u32`](Handshake::to_u32)); whoever attaches reads it back
/// ([`from_u32`](Handshake::from_u32)) and calls [`prepare`](Handshake::prepare) before
/// using the channel. Zero is not a valid value, so an unwritten header field is refused.
///
/// ```
/// use shm_ipc::core::notify::Handshake;
///
/// let handshake = Handshake::preferred();
/// let recorded = handshake.to_u32(); // into the shared header
/// assert_eq!(Handshake::from_u32(recorded), Some(handshake));
/// assert_eq!(Handshake::from_u32(0), None);
/// handshake.prepare()?; // what an attaching process does with the value it read
/// # Ok::<(), shm_ipc::core::notify::MembarrierError>(())
/// ```
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Handshake {
    /// `membarrier(GLOBAL_EXPEDITED)` on the sleeper's side; the publisher pays nothing.
    /// Every process using the channel must be registered ([`register_process`]).
    Membarrier = 1,
    /// A `SeqCst` store (or fence) on the publisher's side on every message; works
    /// everywhere.
    SeqCst = 2,
}

/// A shared header named a handshake this build does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown wake handshake {0}")]
pub struct UnknownHandshake(pub u32);

/// Why this process cannot take part in the [`Handshake::Membarrier`] protocol.
#[derive(Debug, thiserror::Error)]
pub enum MembarrierError {
    /// The kernel has no `membarrier`, or no `GLOBAL_EXPEDITED` command (before Linux
    /// 4.16, or built without `CONFIG_MEMBARRIER`).
    #[error("the kernel does not support membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)")]
    Unsupported,
    /// The kernel supports it but refused this process (a seccomp filter, say).
    #[error("membarrier refused for this process: {0}")]
    Refused(#[source] io::Error),
}

impl Handshake {
    /// The value recorded in a shared header.
    pub const fn to_u32(self) -> u32 {
        self as u32
    }

    /// The handshake a shared header names, or `None` for a value this build does not know
    /// (including 0, an unwritten field).
    pub const fn from_u32(raw: u32) -> Option<Handshake> {
        match raw {
            1 => Some(Handshake::Membarrier),
            2 => Some(Handshake::SeqCst),
            _ => None,
        }
    }

    /// What a new channel should use on this machine: [`Membarrier`](Handshake::Membarrier)
    /// when the kernel supports it, this process registered successfully, and
    /// [`HANDSHAKE_ENV`] does not say `seqcst`; [`SeqCst`](Handshake::SeqCst) otherwise.
    ///
    /// Reads the environment on every call (cheap next to creating a channel). A process
    /// attaching to an existing channel must follow the header, not this.
    pub fn preferred() -> Handshake {
        if env_forces_seqcst(std::env::var_os(HANDSHAKE_ENV).as_deref()) {
            return Handshake::SeqCst;
        }
        match register_process() {
            Ok(()) => Handshake::Membarrier,
            Err(_) => Handshake::SeqCst,
        }
    }

    /// Makes the calling process able to use a channel with this handshake: registers it
    /// for [`Membarrier`](Handshake::Membarrier) ([`register_process`]); nothing for
    /// [`SeqCst`](Handshake::SeqCst). A process for which this fails must not use the
    /// channel: its notifications could be missed by a sleeping peer.
    pub fn prepare(self) -> Result<(), MembarrierError> {
        match self {
            Handshake::Membarrier => register_process(),
            Handshake::SeqCst => Ok(()),
        }
    }
}

impl From<Handshake> for u32 {
    fn from(handshake: Handshake) -> u32 {
        handshake.to_u32()
    }
}

impl TryFrom<u32> for Handshake {
    type Error = UnknownHandshake;

    fn try_from(raw: u32) -> Result<Handshake, UnknownHandshake> {
        Handshake::from_u32(raw).ok_or(UnknownHandshake(raw))
    }
}

/// Whether a value of [`HANDSHAKE_ENV`] forces the `SeqCst` fallback.
fn env_forces_seqcst(value: Option<&OsStr>) -> bool {
    value
        .and_then(OsStr::to_str)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("seqcst"))
}

/// Whether the kernel supports `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` and its
/// registration, as `MEMBARRIER_CMD_QUERY` reports (asked once per process).
pub fn membarrier_available() -> bool {
    const UNKNOWN: u8 = 0;
    const NO: u8 = 1;
    const YES: u8 = 2;
    static AVAILABLE: AtomicU8 = AtomicU8::new(UNKNOWN);
    // Relaxed: the cached answer is a fact about the running kernel, the same for every
    // thread and every forked child; racing threads compute and store the same value.
    match AVAILABLE.load(Ordering::Relaxed) {
        NO => false,
        YES => true,
        _ => {
            let available = query_global_expedited();
            AVAILABLE.store(if available { YES } else { NO }, Ordering::Relaxed);
            available
        }
    }
}

#[cfg(not(miri))]
fn query_global_expedited() -> bool {
    let needed =
        sys::MEMBARRIER_CMD_GLOBAL_EXPEDITED | sys::MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED;
    sys::membarrier(sys::MEMBARRIER_CMD_QUERY, 0).is_ok_and(|mask| mask & needed == needed)
}

/// Miri cannot make the syscall: report it unsupported, so the fallback is used.
#[cfg(miri)]
fn query_global_expedited() -> bool {
    false
}

/// Registers the calling process (all its threads: registration is per address space) to
/// receive `MEMBARRIER_CMD_GLOBAL_EXPEDITED` barriers, and checks that it may issue them,
/// since a process that waits on a channel issues them when it is about to sleep.
///
/// Done once per process: the success is cached with the pid, so a forked child (which
/// inherits the registration, see the [module docs](self)) repeats the cheap call rather
/// than trust its parent's cache. The first call costs microseconds in a single-threaded
/// process, but milliseconds in a multi-threaded one (the kernel waits for an RCU grace
/// period), so call it once at start-up or channel creation, not on a hot path.
pub fn register_process() -> Result<(), MembarrierError> {
    static REGISTERED_PID: AtomicI32 = AtomicI32::new(0);
    let pid = sys::getpid();
    // SYNC: membarrier registered. Acquire pairs with the Release store below: a thread that
    // sees this process's pid also sees that the registering thread's syscalls returned.
    if REGISTERED_PID.load(Ordering::Acquire) == pid {
        return Ok(());
    }
    if !membarrier_available() {
        return Err(MembarrierError::Unsupported);
    }
    sys::membarrier(sys::MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0)
        .map_err(MembarrierError::Refused)?;
    sys::membarrier(sys::MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0).map_err(MembarrierError::Refused)?;
    // SYNC: membarrier registered (see the load above).
    REGISTERED_PID.store(pid, Ordering::Release);
    Ok(())
}

/// Sleeper-side barriers that the kernel refused, in this process, since it started.
static BARRIER_FAILURES: AtomicU64 = AtomicU64::new(0);

/// How many times, in this process, a [`Handshake::Membarrier`] wait about to sleep had its
/// `membarrier` call refused and fell back to a short bounded sleep instead (see
/// [`Event::wait_until_with`](super::Event::wait_until_with)). Zero unless something
/// (a seccomp filter installed after the channel was set up, say) revokes the call.
pub fn membarrier_failures() -> u64 {
    // Relaxed: a statistic; it orders nothing.
    BARRIER_FAILURES.load(Ordering::Relaxed)
}

/// The sleeper's half of the membarrier handshake: a full barrier on every CPU running a
/// registered process. `false` (and counted) if the kernel refused it.
pub(crate) fn sleeper_barrier() -> bool {
    match sys::membarrier(sys::MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0) {
        Ok(_) => true,
        Err(_) => {
            // Relaxed: a statistic; it orders nothing.
            BARRIER_FAILURES.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_round_trips_through_u32() {
        for handshake in [Handshake::Membarrier, Handshake::SeqCst] {
            let raw = u32::from(handshake);
            assert_eq!(raw, handshake.to_u32());
            assert_eq!(Handshake::from_u32(raw), Some(handshake));
            assert_eq!(Handshake::try_from(raw), Ok(handshake));
        }
        assert_ne!(Handshake::Membarrier.to_u32(), Handshake::SeqCst.to_u32());
    }

    #[test]
    fn unknown_handshake_values_are_refused() {
        for raw in [0, 3, 0x8000_0000, u32::MAX] {
            assert_eq!(Handshake::from_u32(raw), None);
            assert_eq!(Handshake::try_from(raw), Err(UnknownHandshake(raw)));
        }
    }

    #[test]
    fn only_seqcst_in_the_environment_forces_the_fallback() {
        for forcing in ["seqcst", "SeqCst", " SEQCST\n"] {
            assert!(env_forces_seqcst(Some(OsStr::new(forcing))), "{forcing:?}");
        }
        for other in ["", "membarrier", "seq_cst", "0", "auto"] {
            assert!(!env_forces_seqcst(Some(OsStr::new(other))), "{other:?}");
        }
        assert!(!env_forces_seqcst(None));
    }

    #[test]
    fn preferred_follows_availability_and_registration() {
        let forced = env_forces_seqcst(std::env::var_os(HANDSHAKE_ENV).as_deref());
        let registered = register_process();
        if !membarrier_available() {
            eprintln!("membarrier GLOBAL_EXPEDITED unsupported here: only the fallback runs");
            assert!(matches!(registered, Err(MembarrierError::Unsupported)));
        }
        let expected = if !forced && registered.is_ok() {
            Handshake::Membarrier
        } else {
            Handshake::SeqCst
        };
        assert_eq!(Handshake::preferred(), expected);
        assert!(Handshake::SeqCst.prepare().is_ok());
        assert_eq!(
            Handshake::Membarrier.prepare().is_ok(),
            registered.is_ok(),
            "prepare is register_process"
        );
    }

    /// Child exit codes of `refused_membarrier_falls_back_without_hanging`.
    const NO_SECCOMP: i32 = 10;
    const STILL_PREFERRED: i32 = 11;
    const NOT_REFUSED: i32 = 12;
    const WAIT_FAILED: i32 = 13;
    const NOT_COUNTED: i32 = 14;

    #[test]
    fn refused_membarrier_falls_back_without_hanging() {
        use crate::notify::{Event, WaitStrategy};
        use std::time::{Duration, Instant};

        if register_process().is_err() {
            eprintln!("membarrier unavailable here: no run-time refusal to simulate");
            return;
        }
        let lock = shm_testkit::fork_lock();
        let child = shm_testkit::fork_child(&lock, || {
            if !shm_testkit::refuse_membarrier() {
                return NO_SECCOMP;
            }
            // The pid cache misses in the child, so these ask the (now refusing) kernel.
            if Handshake::preferred() != Handshake::SeqCst {
                return STILL_PREFERRED;
            }
            if !matches!(register_process(), Err(MembarrierError::Refused(_))) {
                return NOT_REFUSED;
            }
            // A condition that turns true with nobody notifying: a missed wake-up. The
            // wait must still end (re-checking in short slices), and count the refusal.
            let event = Event::new();
            let failures = membarrier_failures();
            let true_from = Instant::now() + Duration::from_millis(20);
            let deadline = Instant::now() + Duration::from_secs(10);
            let seen = event.wait_until_with(
                Handshake::Membarrier,
                &WaitStrategy::Park,
                Some(deadline),
                |_| (Instant::now() >= true_from).then_some(()),
            );
            if seen.is_err() {
                return WAIT_FAILED;
            }
            if membarrier_failures() <= failures {
                return NOT_COUNTED;
            }
            0
        });
        match child.wait() {
            0 => {}
            NO_SECCOMP => eprintln!("seccomp filters refused here: fallback path not run"),
            code => panic!("child failed with {code}"),
        }
    }

    #[test]
    fn sleeper_barrier_succeeds_once_registered() {
        if register_process().is_err() {
            eprintln!("membarrier unavailable here: nothing to check");
            return;
        }
        let failures = membarrier_failures();
        assert!(sleeper_barrier());
        assert_eq!(membarrier_failures(), failures);
    }
}
