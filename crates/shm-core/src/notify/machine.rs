//! Waiting that knows the machine: whether a waiter may busy-spin depends on whether the
//! processes that wait on each other have a core each.
//!
//! # The rule
//!
//! A busy-spinning waiter holds a core. When every process of a group (a pipeline's
//! source, stages and sink; a fan-in's producers and consumer) has a core of its own,
//! spinning costs nobody anything and catches a peer's next message within nanoseconds:
//! keep the default, adaptive spin-then-park. Its spin is short and mostly yields, so it
//! stays the better choice while the processes outnumber the cores by a little, with its
//! learned spin capped at [`OVERSUBSCRIBED_MAX_SPIN`] instead of 1 ms: a waiter that has
//! learned a long spin otherwise keeps a core its peers need. When they
//! outnumber them by far (more than two processes a core, plus one), every microsecond a
//! waiter spins or polls is taken from a process that has work, quite possibly the very one
//! it waits for: then a waiter sleeps at once, and asks to be woken in batches
//! ([`WaitStrategy::Batched`]): a receiver once a quarter of its ring is filled, a sender
//! once a quarter is free, as a pipe's reader is woken once per buffer. A waiter woken per
//! message would make its peer pay a wake-up (and a context switch) for every message.
//!
//! Measured on the 2-core VM (2026-12-07, shm-channel's receive path free of its
//! store-forwarding stall), spin-then-park against batched: 3 to 5 processes ran faster
//! spinning (fan-in of 3 and 4 producers 71–77 against 45–66 and 70–72 against 43–48 M
//! messages a second; fan-out to 2 readers 20–24 against 12–21 M a reader; the pipeline's
//! 256-byte records 5.5–5.8 against 3.9–4.4 M a second), 6 to 9 processes slower (fan-in of
//! 5, 6 and 8 producers 35–36 against 38–45, 32–36 against 41–43, 33–35 against 35–41 M).
//! The threshold for other core counts is an extrapolation of those two cores.
//!
//! The cap on the spin comes with the spin budget that learns from waits that parked for up
//! to eight budgets (`notify/adaptive.rs`): without the cap, that budget cost the pipeline
//! example a little (four alternations, 2026-12-07: u64 131–132 against 132–163 M items a
//! second, serde 53–59 against 54–63 M). With it, against the uncapped 1 ms and the
//! four-budget rule, alternated: the pipeline's u64 134–148 against 133–134 M items a
//! second, serde 55–66 against 56–60 M, 256-byte records 4.8–5.0 against 4.7–4.8 M (three
//! alternations); fan-out to 2 readers 19–21 against 20 M a reader (two); fan-in of 2
//! producers 76–77 against 60–68 M messages a second in one sitting (two), 55–62 against
//! 54–68 M in a later one on a slower host (three) — no gain that holds, and no loss. Caps of
//! 50 and 100 µs did no better.
//!
//! The wake handshake follows its own rule
//! ([`Handshake::for_processes`]): with a core per process a sleeper is rare and its
//! `membarrier` is worth the fences it saves every publisher; beyond, sleepers park every
//! few hundred messages and each `membarrier` interrupts every other CPU (measured on the
//! 2-core VM, 3 processes: 1 in 4 CPU cycles went to it), so the channel takes the `SeqCst`
//! handshake, whose fence a batched publisher pays once per batch. Cores are those of the
//! process's affinity mask
//! (`sched_getaffinity`), not of the machine: a process pinned to two CPUs of a 64-CPU
//! host has two.

use std::time::Duration;

use super::{Handshake, WaitStrategy};

/// The longest a waiter in a group of processes that far outnumbers the cores sleeps before it
/// looks again ([`WaitStrategy::Batched`]): what a message sent just before its sender went
/// idle may wait.
pub const OVERSUBSCRIBED_LATENCY: Duration = Duration::from_millis(1);

/// The longest an adaptive waiter spins before it parks when the processes that wait on
/// each other outnumber the cores by a little (up to two a core, plus one): the default's
/// `max` there ([`WaitStrategy::for_processes_on`]).
pub const OVERSUBSCRIBED_MAX_SPIN: Duration = Duration::from_micros(200);

/// The cores the calling process may run on (its affinity mask); 1 if the kernel will not
/// say.
///
/// ```
/// assert!(shm_ipc::core::notify::available_cores() >= 1);
/// ```
pub fn available_cores() -> usize {
    crate::sys::affinity_cpus().unwrap_or(1)
}

impl WaitStrategy {
    /// The strategy for each of `processes` processes that wait on each other, on this
    /// machine: [`WaitStrategy::for_processes_on`] with [`available_cores`].
    ///
    /// ```
    /// use shm_ipc::core::notify::WaitStrategy;
    /// let strategy = WaitStrategy::for_processes(1);
    /// assert_eq!(strategy, WaitStrategy::default());
    /// ```
    pub fn for_processes(processes: usize) -> WaitStrategy {
        WaitStrategy::for_processes_on(processes, available_cores())
    }

    /// The strategy for each of `processes` processes that wait on each other, with `cores`
    /// cores to run on: the default while there is a core per process; the default with its
    /// learned spin capped at [`OVERSUBSCRIBED_MAX_SPIN`] up to two processes a core plus
    /// one; beyond,
    /// [`WaitStrategy::Batched`] with [`OVERSUBSCRIBED_LATENCY`] (a waiter that spins there
    /// takes the core of a process that has work, quite possibly the one it waits for, and
    /// one woken per message costs its peer a wake-up per message). See the module docs for
    /// the measurements behind the threshold.
    ///
    /// ```
    /// use shm_ipc::core::notify::{
    ///     WaitStrategy, DEFAULT_SPIN, OVERSUBSCRIBED_LATENCY, OVERSUBSCRIBED_MAX_SPIN,
    /// };
    /// assert_eq!(WaitStrategy::for_processes_on(2, 2), WaitStrategy::default());
    /// assert_eq!(
    ///     WaitStrategy::for_processes_on(5, 2),
    ///     WaitStrategy::Adaptive { min: DEFAULT_SPIN, max: OVERSUBSCRIBED_MAX_SPIN }
    /// );
    /// assert_eq!(
    ///     WaitStrategy::for_processes_on(6, 2),
    ///     WaitStrategy::Batched { latency: OVERSUBSCRIBED_LATENCY }
    /// );
    /// ```
    pub fn for_processes_on(processes: usize, cores: usize) -> WaitStrategy {
        if processes > 2 * cores.max(1) + 1 {
            WaitStrategy::Batched {
                latency: OVERSUBSCRIBED_LATENCY,
            }
        } else if processes > cores.max(1) {
            WaitStrategy::Adaptive {
                min: super::DEFAULT_SPIN,
                max: OVERSUBSCRIBED_MAX_SPIN,
            }
        } else {
            WaitStrategy::default()
        }
    }
}

impl Handshake {
    /// The wake handshake for a channel between `processes` processes that wait on each
    /// other, on this machine: [`Handshake::for_processes_on`] with [`available_cores`].
    ///
    /// ```
    /// use shm_ipc::core::notify::Handshake;
    /// assert_eq!(Handshake::for_processes(1), Handshake::preferred());
    /// ```
    pub fn for_processes(processes: usize) -> Handshake {
        Handshake::for_processes_on(processes, available_cores())
    }

    /// The wake handshake for a channel between `processes` processes that wait on each
    /// other, with `cores` cores to run on: the [`preferred`](Handshake::preferred) one
    /// while there is a core per process; [`SeqCst`](Handshake::SeqCst) beyond (see the
    /// module docs: the processes then sleep often, and a sleeper's `membarrier` costs
    /// every other CPU an interrupt).
    ///
    /// ```
    /// use shm_ipc::core::notify::Handshake;
    /// assert_eq!(Handshake::for_processes_on(5, 2), Handshake::SeqCst);
    /// assert_eq!(Handshake::for_processes_on(2, 2), Handshake::preferred());
    /// ```
    pub fn for_processes_on(processes: usize, cores: usize) -> Handshake {
        if processes > cores.max(1) {
            Handshake::SeqCst
        } else {
            Handshake::preferred()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn far_more_processes_than_cores_never_busy_spin() {
        let batched = WaitStrategy::Batched {
            latency: OVERSUBSCRIBED_LATENCY,
        };
        let spin_then_park = WaitStrategy::default();
        let capped = WaitStrategy::Adaptive {
            min: super::super::DEFAULT_SPIN,
            max: OVERSUBSCRIBED_MAX_SPIN,
        };
        let cases = [
            ((6, 2), batched),
            ((9, 2), batched),
            ((4, 0), batched),
            ((5, 2), capped),
            ((3, 2), capped),
            ((3, 1), capped),
            ((2, 2), spin_then_park),
            ((1, 1), spin_then_park),
            ((4, 8), spin_then_park),
        ];
        for ((processes, cores), expected) in cases {
            assert_eq!(
                WaitStrategy::for_processes_on(processes, cores),
                expected,
                "{processes} processes on {cores} cores"
            );
        }
    }

    #[test]
    fn more_processes_than_cores_take_the_seqcst_handshake() {
        assert_eq!(Handshake::for_processes_on(3, 2), Handshake::SeqCst);
        assert_eq!(Handshake::for_processes_on(2, 0), Handshake::SeqCst);
        assert_eq!(Handshake::for_processes_on(2, 2), Handshake::preferred());
        assert_eq!(Handshake::for_processes_on(4, 8), Handshake::preferred());
    }

    #[test]
    fn available_cores_match_the_affinity_mask() {
        let cores = available_cores();
        assert!(cores >= 1);
        // A `cpu_set_t` holds `CPU_SETSIZE` CPUs.
        assert!(cores <= libc::CPU_SETSIZE as usize);
    }
}
