//! Forking from a test: one fork at a time, children that only touch shared memory and
//! `_exit`, and a parent that reaps them.

use std::sync::Mutex;

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};

/// Serialises the forking tests of this binary: libtest runs tests on several threads, and a
/// child forked while another test thread holds a lock (the allocator's, stdout's) would
/// inherit it locked. Every test in this binary that forks takes this lock first.
pub static FORK_LOCK: Mutex<()> = Mutex::new(());

/// Forks; the child runs `child` and `_exit`s with its return value (never unwinding into
/// the harness); the parent runs `parent` with the child's pid, then reaps the child and
/// returns its exit code (or 128 + signal number).
pub fn fork_and_wait(child: impl FnOnce() -> i32, parent: impl FnOnce(i32)) -> i32 {
    let _guard = FORK_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // SAFETY: the lock keeps other forking tests out; the child runs only `child`, which in
    // these tests touches shared memory, atomics and futexes, then `_exit`s without running
    // destructors or returning into the test harness.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(101);
            // SAFETY: `_exit` ends the child at once, skipping atexit handlers and the parent's
            // destructors, which must not run twice.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            parent(child.as_raw());
            match waitpid(child, None).expect("waitpid") {
                WaitStatus::Exited(_, code) => code,
                WaitStatus::Signaled(_, signal, _) => 128 + signal as i32,
                other => panic!("unexpected wait status {other:?}"),
            }
        }
    }
}
