//! Forking from inside libtest's multi-threaded harness, safely enough for tests.
//!
//! libtest runs tests on several threads; a child forked while another thread holds a lock
//! (the allocator's, stdout's) inherits it locked and may deadlock. Every forking test of a
//! binary goes through [`fork_and_wait`] / [`fork_child`], which serialise on one lock, and
//! children only touch shared memory, atomics, futexes and pre-allocated state before
//! `_exit`. (`shm-fork` is the real API; this crate exists so that the lower crates can test
//! across `fork` without depending on it.)

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

/// Serialises the forking tests of one test binary.
static FORK_LOCK: Mutex<()> = Mutex::new(());

/// Exit code of a child whose closure panicked.
pub const CHILD_PANICKED: i32 = 101;

/// Takes the fork lock (ignoring poisoning by a failed test).
pub fn fork_lock() -> MutexGuard<'static, ()> {
    FORK_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A forked child, killed and reaped on drop if still running.
#[derive(Debug)]
pub struct TestChild {
    pid: Pid,
    reaped: bool,
}

impl TestChild {
    /// The child's pid.
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// Sends `SIGKILL`.
    pub fn kill(&self) {
        let _ = kill(self.pid, Signal::SIGKILL);
    }

    /// Waits for the child; its exit code, or 128 + signal number.
    pub fn wait(mut self) -> i32 {
        self.reaped = true;
        status_code(waitpid(self.pid, None).expect("waitpid"))
    }

    /// Waits at most `timeout` (polling); `None` if the child is still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)).expect("waitpid") {
                WaitStatus::StillAlive => {}
                status => {
                    self.reaped = true;
                    return Some(status_code(status));
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for TestChild {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
            let _ = waitpid(self.pid, None);
        }
    }
}

fn status_code(status: WaitStatus) -> i32 {
    match status {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, signal, _) => 128 + signal as i32,
        other => panic!("unexpected wait status {other:?}"),
    }
}

/// Forks a child that runs `child` and `_exit`s with its return value ([`CHILD_PANICKED`]
/// if it panics). Hold the guard from [`fork_lock`] for as long as the child runs.
pub fn fork_child(_lock: &MutexGuard<'static, ()>, child: impl FnOnce() -> i32) -> TestChild {
    // SAFETY: the caller holds the fork lock, so no other forking test runs; the child runs
    // only `child` (which, in these tests, touches shared memory, atomics and futexes and
    // state prepared before the fork) and then `_exit`s without returning into the harness.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child))
                .unwrap_or(CHILD_PANICKED);
            // SAFETY: ends the child at once, without running the parent's destructors or
            // atexit handlers a second time.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => TestChild {
            pid: child,
            reaped: false,
        },
    }
}

/// Forks; the child runs `child` and `_exit`s with its return value; the parent runs
/// `parent` with the child's pid, then reaps the child and returns its exit code (or
/// 128 + signal number).
pub fn fork_and_wait(child: impl FnOnce() -> i32, parent: impl FnOnce(i32)) -> i32 {
    let lock = fork_lock();
    let handle = fork_child(&lock, child);
    parent(handle.pid());
    handle.wait()
}

/// Sleeps for ever (until killed): the state of a peer stopped mid-operation.
pub fn hang() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// SIGKILLs `child` and checks it died of it.
pub fn kill_and_reap(child: TestChild) {
    child.kill();
    assert_eq!(child.wait(), 128 + libc::SIGKILL);
}

/// SIGKILLs the process `pid` after `delay`, from another thread, so that the caller can
/// be blocked in a call when it happens; joining gives the moment of the kill.
pub fn kill_later(pid: i32, delay: Duration) -> std::thread::JoinHandle<Instant> {
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        // A child not reaped yet (a zombie at worst): its pid is not reused.
        kill(Pid::from_raw(pid), Signal::SIGKILL).expect("SIGKILL");
        Instant::now()
    })
}

/// Number of random kills a fault test runs: `SHM_SOAK_KILLS`, or `default`.
pub fn kills(default: u64) -> u64 {
    std::env::var("SHM_SOAK_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Latencies (detection after a kill, say), printed as min, median and max.
#[derive(Debug, Default)]
pub struct Latencies(pub Vec<Duration>);

impl Latencies {
    /// Prints the statistics of what was recorded, under `what`.
    pub fn report(&mut self, what: &str) {
        self.0.sort();
        if let (Some(first), Some(last)) = (self.0.first(), self.0.last()) {
            eprintln!(
                "{what}: min {first:?}, median {:?}, max {last:?}",
                self.0[self.0.len() / 2]
            );
        }
    }
}
