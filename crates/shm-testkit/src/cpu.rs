//! The CPU time a process has used: for tests that bound what a sleeping call costs (a
//! resource, not a speed).

use std::time::Duration;

/// CPU time the calling process has used so far, all its threads together
/// (`CLOCK_PROCESS_CPUTIME_ID`).
///
/// ```
/// let before = shm_testkit::process_cpu_time();
/// let busy: u64 = (0..100_000u64).map(std::hint::black_box).sum();
/// assert!(busy > 0 && shm_testkit::process_cpu_time() >= before);
/// ```
pub fn process_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}
