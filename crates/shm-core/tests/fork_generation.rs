//! Regression: a child forked while another thread makes the process's first
//! `fork_generation()` call must not hang on its own first call.
//!
//! The first call registers a `pthread_atfork` handler; with a `OnceLock` around that, a
//! fork in another thread while the initialiser ran (it blocks in `pthread_atfork` while
//! the fork holds libc's handler lock) left the child a "running" `OnceLock` nobody would
//! finish: every endpoint call in the child waited for ever (seen as a hung broadcast test
//! whose reader children sat in `fork_generation`).
//!
//! The first call happens once per process, so each attempt runs in a fresh process: this
//! test binary runs itself again, once per attempt.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shm_core::liveness::fork_generation;
use shm_testkit::rerun_alone;

/// Set in the re-executed process.
const RERUN: &str = "SHM_CORE_TEST_FORK_GENERATION_RERUN";
const THIS_TEST: &str = "a_child_forked_during_the_first_call_does_not_hang";
/// Fresh processes tried. With the `OnceLock`, every run of this test hung children on
/// the reference machine.
const ATTEMPTS: usize = 8;
/// A child that has not exited after this long is hung (it only calls `fork_generation`).
const HUNG_AFTER: Duration = Duration::from_secs(5);

/// Waits for `pid` until `deadline`; kills and reaps it if it is still running then.
/// Whether it exited with status 0.
fn reap(pid: libc::pid_t, deadline: Instant) -> bool {
    loop {
        let mut status = 0;
        // SAFETY: plain waitpid on our own child, with a valid pointer to `status`.
        let ret = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if ret == pid {
            return libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
        }
        if ret < 0 || Instant::now() >= deadline {
            // SAFETY: signalling and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// One attempt, in a fresh process: a thread forks children back to back (each makes its
/// first `fork_generation` call and exits), so that libc's fork lock is held most of the
/// time, while the main thread makes the process's first call. Returns the number of
/// children that hung.
fn attempt() -> usize {
    static STOP: AtomicBool = AtomicBool::new(false);
    let forker = std::thread::spawn(|| {
        let mut children = Vec::with_capacity(4096);
        while !STOP.load(Ordering::SeqCst) || children.len() < 20 {
            // SAFETY: the child only calls `fork_generation` (atomics and, at most, a
            // `pthread_atfork` registration) and `_exit`s; it never returns into Rust code
            // that could touch locks another thread held at the fork.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                let generation = fork_generation();
                // SAFETY: ends the child at once, running no destructors or atexit handlers.
                unsafe { libc::_exit(if generation > 0 { 0 } else { 1 }) };
            }
            assert!(pid > 0, "fork failed");
            children.push(pid);
        }
        let deadline = Instant::now() + HUNG_AFTER;
        children
            .into_iter()
            .filter(|&pid| !reap(pid, deadline))
            .count()
    });
    std::thread::sleep(Duration::from_millis(2));
    let first = fork_generation();
    STOP.store(true, Ordering::SeqCst);
    let hung = forker.join().unwrap();
    assert!(first > 0, "fork handler not registered");
    hung
}

#[test]
fn a_child_forked_during_the_first_call_does_not_hang() {
    if std::env::var_os(RERUN).is_some() {
        assert_eq!(
            attempt(),
            0,
            "children hung in their first fork_generation call"
        );
        return;
    }
    for attempt in 0..ATTEMPTS {
        rerun_alone(
            THIS_TEST,
            &[(RERUN, Some("1"))],
            &format!("attempt {attempt}"),
        );
    }
}
