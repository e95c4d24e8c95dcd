//! How a child ended, as the parent sees it: exit codes, signals, panics; `wait`,
//! `try_wait`, `wait_timeout`; waiting on a child someone else reaped.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{block_forever, gated_child, shared_page, Gate};
use shm_fork::{fork, ChildError, ExitStatus};

fn main() {
    common::run(&[
        ("exit_code_is_reported", exit_code_is_reported),
        ("zero_is_success", zero_is_success),
        (
            "out_of_range_codes_are_255_not_truncated",
            out_of_range_codes_are_255_not_truncated,
        ),
        ("signal_death_is_reported", signal_death_is_reported),
        ("kill_is_reported_as_sigkill", kill_is_reported_as_sigkill),
        ("panicking_child_is_panicked", panicking_child_is_panicked),
        ("returning_101_is_not_a_panic", returning_101_is_not_a_panic),
        (
            "try_wait_is_none_before_exit_and_some_after",
            try_wait_is_none_before_exit_and_some_after,
        ),
        (
            "wait_timeout_times_out_then_succeeds",
            wait_timeout_times_out_then_succeeds,
        ),
        (
            "wait_after_foreign_reap_is_already_reaped",
            wait_after_foreign_reap_is_already_reaped,
        ),
        ("wait_is_repeatable", wait_is_repeatable),
        (
            "child_writes_are_visible_after_wait",
            child_writes_are_visible_after_wait,
        ),
    ]);
}

fn exit_code_is_reported() {
    let mut child = fork(|| 3).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status, ExitStatus::Exited(3));
    assert_eq!(status.code(), Some(3));
    assert_eq!(status.signal(), None);
    assert!(!status.success());
    assert_eq!(child.status(), Some(status));
}

fn zero_is_success() {
    let mut child = fork(|| 0).unwrap();
    assert!(child.wait().unwrap().success());
}

fn out_of_range_codes_are_255_not_truncated() {
    // `_exit(256)` would read as 0, a success.
    assert_eq!(
        fork(|| 256).unwrap().wait().unwrap(),
        ExitStatus::Exited(255)
    );
    assert_eq!(
        fork(|| -1).unwrap().wait().unwrap(),
        ExitStatus::Exited(255)
    );
}

fn signal_death_is_reported() {
    let mut child = fork(|| {
        // SAFETY: raising SIGTERM with its default action ends this child process.
        unsafe { libc::raise(libc::SIGTERM) };
        0
    })
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status, ExitStatus::Signaled(libc::SIGTERM));
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    assert_eq!(status.code(), None);
}

fn kill_is_reported_as_sigkill() {
    let mut child = fork(|| block_forever()).unwrap();
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap(), ExitStatus::Signaled(libc::SIGKILL));
    // Killing a reaped child is a no-op, not an error.
    child.kill().unwrap();
}

fn panicking_child_is_panicked() {
    let mut child = fork(|| panic!("boom {}", 7)).unwrap();
    assert_eq!(child.failure_message(), None, "no message before reaping");
    let status = child.wait().unwrap();
    assert_eq!(status, ExitStatus::Panicked);
    assert!(status.panicked());
    assert_eq!(status.code(), None);
    assert_eq!(child.failure_message().as_deref(), Some("boom 7"));
}

fn returning_101_is_not_a_panic() {
    let mut child = fork(|| shm_fork::PANIC_EXIT_CODE).unwrap();
    assert_eq!(child.wait().unwrap(), ExitStatus::Exited(101));
    assert_eq!(child.failure_message(), None);
}

fn try_wait_is_none_before_exit_and_some_after() {
    let go = Gate::new();
    let mut child = gated_child(&go, 4);
    // The child cannot exit before `go` is set.
    assert_eq!(child.try_wait().unwrap(), None);
    assert_eq!(child.status(), None);
    go.open();
    assert_eq!(child.wait().unwrap(), ExitStatus::Exited(4));
    assert_eq!(child.try_wait().unwrap(), Some(ExitStatus::Exited(4)));
}

fn wait_timeout_times_out_then_succeeds() {
    let go = Gate::new();
    let mut child = gated_child(&go, 5);
    // The child cannot exit before `go` is set, so the short wait must time out.
    assert_eq!(child.wait_timeout(Duration::from_millis(30)).unwrap(), None);
    assert_eq!(child.wait_timeout(Duration::ZERO).unwrap(), None);
    go.open();
    assert_eq!(
        child.wait_timeout(common::DEADLINE).unwrap(),
        Some(ExitStatus::Exited(5))
    );
    // An unbounded timeout falls back to a plain wait.
    assert_eq!(
        child.wait_timeout(Duration::MAX).unwrap(),
        Some(ExitStatus::Exited(5))
    );
}

fn wait_after_foreign_reap_is_already_reaped() {
    let mut child = fork(|| 0).unwrap();
    let pid = child.pid();
    let mut status = 0;
    // SAFETY: `status` is a valid int; this reaps our own child behind the handle's back.
    let reaped = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(reaped, pid);
    match child.wait() {
        Err(ChildError::AlreadyReaped { pid: p }) => assert_eq!(p, pid),
        other => panic!("expected AlreadyReaped, got {other:?}"),
    }
    assert!(matches!(
        child.try_wait(),
        Err(ChildError::AlreadyReaped { .. })
    ));
    let message = child.wait().unwrap_err().to_string();
    assert!(message.contains("already reaped"), "{message}");
    // Dropping the handle now must not panic either.
    drop(child);
}

fn wait_is_repeatable() {
    let mut child = fork(|| 9).unwrap();
    assert_eq!(child.wait().unwrap(), ExitStatus::Exited(9));
    assert_eq!(child.wait().unwrap(), ExitStatus::Exited(9));
    assert!(common::not_our_child(child.pid()));
}

fn child_writes_are_visible_after_wait() {
    let page = shared_page();
    let value = common::word(&page, 1);
    let mut child = fork(|| {
        value.store(0xfeed, Ordering::SeqCst);
        0
    })
    .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(value.load(Ordering::SeqCst), 0xfeed);
}
