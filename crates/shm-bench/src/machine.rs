//! What machine the run is on, and whether it is busy.

use std::fs;
use std::thread::sleep;
use std::time::Duration;

use serde::Serialize;
use shm_core::notify::{available_cores, Handshake, WaitStrategy};

/// The machine description written into the reports.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// CPU model name (`/proc/cpuinfo`).
    pub cpu: String,
    /// Online CPUs.
    pub cores: usize,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// The wake handshake new channels use here: `membarrier`, or `seqcst` (the
    /// fallback, where membarrier is unavailable or `SHM_IPC_HANDSHAKE=seqcst`).
    pub handshake: String,
    /// Cores in this process's affinity mask, which the waiting rule counts.
    pub affinity_cores: usize,
    /// How each of the bench's two processes waits by that rule
    /// (`WaitStrategy::for_processes(2)`).
    pub wait_rule: String,
}

impl Machine {
    /// Reads the description of this machine.
    pub(crate) fn detect() -> Machine {
        let cpu = fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".to_string());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".to_string());
        let handshake = match Handshake::preferred() {
            Handshake::Membarrier => "membarrier",
            Handshake::SeqCst => "seqcst",
        }
        .to_string();
        Machine {
            cpu,
            cores,
            kernel,
            handshake,
            affinity_cores: available_cores(),
            wait_rule: format!("{:?}", WaitStrategy::for_processes(2)),
        }
    }
}

/// The 1-minute load average above which the run warns.
const LOAD_WARN: f64 = 0.5;
/// CPU use by others (in cores, over the sampling window) above which the run warns.
const BUSY_WARN_CORES: f64 = 0.10;
/// How long `/proc/stat` is sampled.
const BUSY_WINDOW: Duration = Duration::from_millis(200);

/// Jiffies (busy, total) over all CPUs from `/proc/stat`'s first line.
fn cpu_jiffies() -> Option<(u64, u64)> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal [guest guest_nice, included in user]
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// Checks whether the machine is busy: the 1-minute load average, and CPU time used over
/// a 200 ms sample of `/proc/stat` (while this process sleeps, so any use is someone
/// else's). Returns one warning per symptom; empty when the machine looks idle.
pub(crate) fn busy_check() -> Vec<String> {
    let mut warnings = Vec::new();
    if let Some(load) = fs::read_to_string("/proc/loadavg").ok().and_then(|s| {
        s.split_whitespace()
            .next()
            .and_then(|x| x.parse::<f64>().ok())
    }) {
        if load > LOAD_WARN {
            warnings.push(format!(
                "machine busy: 1-min load average {load:.2} > {LOAD_WARN}; figures will be noisy"
            ));
        }
    }
    if let Some((b0, t0)) = cpu_jiffies() {
        sleep(BUSY_WINDOW);
        if let Some((b1, t1)) = cpu_jiffies() {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
            let dt = t1.saturating_sub(t0).max(1) as f64;
            let busy_cores = b1.saturating_sub(b0) as f64 / dt * cores;
            if busy_cores > BUSY_WARN_CORES {
                warnings.push(format!(
                    "machine busy: other processes used {busy_cores:.2} cores during a {} ms sample; figures will be noisy",
                    BUSY_WINDOW.as_millis()
                ));
            }
        }
    }
    warnings
}
