//! Waiting that knows the machine: how long a waiter spins depends on whether the
//! processes that wait on each other have a core each.
//!
//! # The rule
//!
//! A spinning waiter holds a core. When every process of a group (a pipeline's source,
//! stages and sink; a fan-in's producers and consumer) has a core of its own, spinning
//! costs nobody anything and catches a peer's next message within nanoseconds: keep the
//! default spin-then-park ([`DEFAULT_SPIN`](super::DEFAULT_SPIN), 50 µs). When more
//! processes wait than there are cores to run them, every microsecond a waiter spins is
//! taken from a process that has work, quite possibly the very one it waits for: then a
//! waiter polls only for [`OVERSUBSCRIBED_SPIN`] (a peer in the middle of writing) and
//! parks. Cores are those of the process's affinity mask (`sched_getaffinity`), not of the
//! machine: a process pinned to two CPUs of a 64-CPU host has two.

use std::time::Duration;

use super::{WaitStrategy, HOT_SPIN};

/// The spin budget of a waiter in a group of processes that outnumbers the cores: the hot
/// phase only (a few cache-line round trips, for a peer that is writing right now), no
/// yielding phase.
pub const OVERSUBSCRIBED_SPIN: Duration = HOT_SPIN;

/// The cores the calling process may run on (its affinity mask); 1 if the kernel will not
/// say.
///
/// ```
/// assert!(shm_core::notify::available_cores() >= 1);
/// ```
pub fn available_cores() -> usize {
    crate::sys::affinity_cpus().unwrap_or(1)
}

impl WaitStrategy {
    /// The strategy for each of `processes` processes that wait on each other, on this
    /// machine: [`WaitStrategy::for_processes_on`] with [`available_cores`].
    ///
    /// ```
    /// use shm_core::notify::WaitStrategy;
    /// // Two processes can always share one core at least as well as they spin on it.
    /// let strategy = WaitStrategy::for_processes(2);
    /// assert!(matches!(strategy, WaitStrategy::SpinThenPark { .. }));
    /// ```
    pub fn for_processes(processes: usize) -> WaitStrategy {
        WaitStrategy::for_processes_on(processes, available_cores())
    }

    /// The strategy for each of `processes` processes that wait on each other, with `cores`
    /// cores to run on (see the [module rule](self)): the default spin-then-park while
    /// there is a core per process, a spin of [`OVERSUBSCRIBED_SPIN`] then park beyond.
    ///
    /// ```
    /// use shm_core::notify::{WaitStrategy, OVERSUBSCRIBED_SPIN};
    /// assert_eq!(WaitStrategy::for_processes_on(2, 2), WaitStrategy::default());
    /// assert_eq!(
    ///     WaitStrategy::for_processes_on(5, 2),
    ///     WaitStrategy::SpinThenPark { spin: OVERSUBSCRIBED_SPIN }
    /// );
    /// ```
    pub fn for_processes_on(processes: usize, cores: usize) -> WaitStrategy {
        if processes > cores.max(1) {
            WaitStrategy::SpinThenPark {
                spin: OVERSUBSCRIBED_SPIN,
            }
        } else {
            WaitStrategy::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_processes_than_cores_park_early() {
        let short = WaitStrategy::SpinThenPark {
            spin: OVERSUBSCRIBED_SPIN,
        };
        assert_eq!(WaitStrategy::for_processes_on(3, 2), short);
        assert_eq!(WaitStrategy::for_processes_on(2, 0), short);
        assert_eq!(
            WaitStrategy::for_processes_on(1, 1),
            WaitStrategy::default()
        );
        assert_eq!(
            WaitStrategy::for_processes_on(4, 8),
            WaitStrategy::default()
        );
    }

    #[test]
    fn available_cores_match_the_affinity_mask() {
        let cores = available_cores();
        assert!(cores >= 1);
        // A `cpu_set_t` holds `CPU_SETSIZE` CPUs.
        assert!(cores <= libc::CPU_SETSIZE as usize);
    }
}
