//! A futex word in shared memory: wait and wake across processes (no
//! `FUTEX_PRIVATE_FLAG`, so the kernel keys the queue on the physical page).

use std::io;
use std::sync::atomic::AtomicU32;
use std::time::Instant;

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
        let timeout = match deadline {
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return Err(FutexError::TimedOut),
            },
            None => None,
        };
        match sys::futex_wait(&self.0, expected, timeout)? {
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
