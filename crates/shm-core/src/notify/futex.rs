//! A futex word in shared memory: wait and wake across processes (no
//! `FUTEX_PRIVATE_FLAG`, so the kernel keys the queue on the physical page).

use std::io;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use crate::sys::{self, FutexWait};

/// A 32-bit futex word that may live in memory shared between processes.
///
/// `#[repr(transparent)]` over `AtomicU32`: any aligned `u32` in a mapping can be viewed as
/// one with [`Futex::from_atomic`].
#[repr(transparent)]
#[derive(Debug, Default)]
pub struct Futex(AtomicU32);

/// How a [`Futex::wait`] returned without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FutexWake {
    /// Woken by [`Futex::wake`], by a signal, or spuriously: re-check the condition.
    Woken,
    /// The word no longer held the expected value, so the call did not sleep.
    ValueChanged,
}

/// Why a [`Futex::wait`] failed.
#[derive(Debug, thiserror::Error)]
pub enum FutexError {
    /// The deadline passed (possibly before the call).
    #[error("the wait's deadline passed")]
    TimedOut,
    /// The kernel refused the call.
    #[error("futex call failed: {0}")]
    Os(#[from] io::Error),
}

impl Futex {
    /// A futex holding `value`.
    pub const fn new(value: u32) -> Futex {
        Futex(AtomicU32::new(value))
    }

    /// Views an atomic word (for example one returned by
    /// [`SharedMemory::atomic_u32`](crate::SharedMemory::atomic_u32)) as a futex.
    pub fn from_atomic(word: &AtomicU32) -> &Futex {
        // SAFETY: `Futex` is `repr(transparent)` over `AtomicU32`, so the cast keeps size,
        // alignment and validity, and the lifetime is carried over unchanged.
        unsafe { &*(word as *const AtomicU32).cast::<Futex>() }
    }

    /// The word as an atomic.
    pub fn word(&self) -> &AtomicU32 {
        &self.0
    }

    /// Sleeps while the word holds `expected`, until woken or until `deadline` (monotonic).
    /// A deadline that has already passed returns [`FutexError::TimedOut`] at once.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use shm_ipc::core::notify::{Futex, FutexError, FutexWake};
    /// let futex = Futex::new(5);
    /// assert!(matches!(futex.wait(4, None), Ok(FutexWake::ValueChanged)));
    /// let soon = Instant::now() + Duration::from_millis(1);
    /// assert!(matches!(futex.wait(5, Some(soon)), Err(FutexError::TimedOut)));
    /// ```
    pub fn wait(&self, expected: u32, deadline: Option<Instant>) -> Result<FutexWake, FutexError> {
        let timeout = time_left(deadline)?;
        match sys::futex_wait(&self.0, expected, timeout)? {
            FutexWait::Woken => Ok(FutexWake::Woken),
            FutexWait::ValueChanged => Ok(FutexWake::ValueChanged),
            FutexWait::TimedOut => Err(FutexError::TimedOut),
        }
    }

    /// Sleeps while each futex of `futexes` holds its expected value, until one of them is
    /// woken or `deadline` (monotonic) passes: `futex_waitv` (Linux 5.16+), shared futexes
    /// of 32 bits. 1 to [`MAX_WAIT_ANY`] futexes; any other number, a kernel without the
    /// call (`ENOSYS`) or a sandbox refusing it is [`FutexError::Os`]. A deadline that has
    /// already passed returns [`FutexError::TimedOut`] at once.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use shm_core::notify::{Futex, FutexError, FutexWake};
    /// let (a, b) = (Futex::new(1), Futex::new(2));
    /// // `b` no longer holds 7: no sleep.
    /// assert!(matches!(Futex::wait_any(&[(&a, 1), (&b, 7)], None), Ok(FutexWake::ValueChanged)));
    /// let soon = Instant::now() + Duration::from_millis(1);
    /// assert!(matches!(Futex::wait_any(&[(&a, 1), (&b, 2)], Some(soon)), Err(FutexError::TimedOut)));
    /// ```
    pub fn wait_any(
        futexes: &[(&Futex, u32)],
        deadline: Option<Instant>,
    ) -> Result<FutexWake, FutexError> {
        if futexes.is_empty() || futexes.len() > MAX_WAIT_ANY {
            return Err(FutexError::Os(io::Error::from_raw_os_error(libc::EINVAL)));
        }
        let timeout = time_left(deadline)?;
        let mut entries = [sys::WaitvEntry::UNUSED; MAX_WAIT_ANY];
        for (entry, (futex, expected)) in entries.iter_mut().zip(futexes) {
            *entry = sys::WaitvEntry::new(&futex.0, *expected);
        }
        match sys::futex_waitv(&entries[..futexes.len()], timeout)? {
            FutexWait::Woken => Ok(FutexWake::Woken),
            FutexWait::ValueChanged => Ok(FutexWake::ValueChanged),
            FutexWait::TimedOut => Err(FutexError::TimedOut),
        }
    }

    /// Wakes up to `count` waiters, in any process; returns how many were woken.
    pub fn wake(&self, count: u32) -> Result<usize, FutexError> {
        let count = i32::try_from(count).unwrap_or(i32::MAX);
        Ok(sys::futex_wake(&self.0, count)?)
    }
}

/// The most futexes [`Futex::wait_any`] sleeps on at once: the kernel's `FUTEX_WAITV_MAX`.
pub const MAX_WAIT_ANY: usize = sys::FUTEX_WAITV_MAX;

/// The time left until `deadline` (`None`: no deadline), or `TimedOut` if it has passed.
fn time_left(deadline: Option<Instant>) -> Result<Option<Duration>, FutexError> {
    match deadline {
        Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(Some(left)),
            _ => Err(FutexError::TimedOut),
        },
        None => Ok(None),
    }
}
