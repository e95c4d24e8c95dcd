//! Pinning processes to CPUs: the parent of a scenario pins itself for the scenario's
//! length ([`AffinityGuard`]), each child pins itself before its loop ([`pin_to`]).

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

use crate::error::BenchError;

/// Pins the calling process (all of it, if single-threaded; else the calling thread) to
/// one CPU.
pub(crate) fn pin_to(cpu: usize) -> nix::Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu)?;
    sched_setaffinity(Pid::from_raw(0), &set)
}

/// The CPUs this process may run on (its affinity mask).
pub fn allowed_cpus() -> Vec<usize> {
    match sched_getaffinity(Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Restores the calling thread's affinity mask when dropped.
pub(crate) struct AffinityGuard {
    saved: Option<CpuSet>,
}

impl AffinityGuard {
    /// Saves the current mask and pins to `cpu`.
    pub(crate) fn pin(cpu: usize) -> Result<AffinityGuard, BenchError> {
        let saved = sched_getaffinity(Pid::from_raw(0)).ok();
        pin_to(cpu).map_err(|e| BenchError::nix("sched_setaffinity (parent)", e))?;
        Ok(AffinityGuard { saved })
    }
}

impl Drop for AffinityGuard {
    fn drop(&mut self) {
        if let Some(set) = &self.saved {
            let _ = sched_setaffinity(Pid::from_raw(0), set);
        }
    }
}
