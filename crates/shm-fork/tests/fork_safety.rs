//! The safe entry points refuse to fork a multi-threaded process; the unsafe one does not.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use shm_fork::{fork, fork_with_unchecked, ExitStatus, ForkError};

fn main() {
    common::run(&[
        (
            "single_threaded_process_may_fork",
            single_threaded_process_may_fork,
        ),
        (
            "threads_make_the_safe_fork_refuse",
            threads_make_the_safe_fork_refuse,
        ),
    ]);
}

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

fn single_threaded_process_may_fork() {
    assert_eq!(thread_count(), 1);
    assert!(fork(|| 0).unwrap().wait().unwrap().success());
}

fn threads_make_the_safe_fork_refuse() {
    let stop = Arc::new(AtomicBool::new(false));
    let parked = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                std::thread::park();
            }
        })
    };
    match fork(|| 0) {
        Err(ForkError::MultiThreaded { threads }) => assert!(threads >= 2, "{threads}"),
        Err(other) => panic!("expected MultiThreaded, got {other}"),
        Ok(mut child) => {
            let _ = child.wait();
            panic!("the safe fork forked a process with two threads");
        }
    }
    let message = fork(|| 0).unwrap_err().to_string();
    assert!(message.contains("threads"), "{message}");

    // SAFETY: the other thread is parked in a loop that takes no lock; the child only
    // returns 0 (this crate then flushes stdout, which that thread never touches).
    let mut child = unsafe { fork_with_unchecked((), |()| 6) }.unwrap();
    assert_eq!(child.wait().unwrap(), ExitStatus::Exited(6));

    stop.store(true, Ordering::SeqCst);
    parked.thread().unpark();
    parked.join().unwrap();
    // A joined thread leaves /proc/self/task a moment after `join` returns.
    assert!(common::eventually(|| thread_count() == 1));
    assert!(fork(|| 0).unwrap().wait().unwrap().success());
}
