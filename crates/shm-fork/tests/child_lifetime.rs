//! How long a child lives: what dropping its handle does ([`OnDrop`]), and that a child dies
//! with its parent unless told otherwise.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{
    block_forever, block_until_set, eventually, flag, gated_child, not_our_child, shared_page,
    word, Gate,
};
use shm_core::liveness::{Liveness, PeerWatch, ProcessIdentity};
use shm_fork::{fork, ChildOptions, ExitStatus, OnDrop};

fn main() {
    common::run(&[
        (
            "dropped_handle_kills_and_reaps_child",
            dropped_handle_kills_and_reaps_child,
        ),
        (
            "on_drop_wait_lets_child_finish",
            on_drop_wait_lets_child_finish,
        ),
        (
            "on_drop_detach_leaves_child_running",
            on_drop_detach_leaves_child_running,
        ),
        (
            "killed_parent_takes_child_down",
            killed_parent_takes_child_down,
        ),
        (
            "orphan_lives_on_without_kill_on_parent_death",
            orphan_lives_on_without_kill_on_parent_death,
        ),
    ]);
}

fn dropped_handle_kills_and_reaps_child() {
    let child = fork(|| block_forever()).unwrap();
    assert_eq!(child.on_drop(), OnDrop::Kill);
    let pid = child.pid();
    drop(child);
    // Reaped: no zombie is left, the pid is no child of ours any more.
    assert!(not_our_child(pid));
}

fn on_drop_wait_lets_child_finish() {
    let page = shared_page();
    let done = flag(&page, 0);
    let child = ChildOptions::new()
        .on_drop(OnDrop::Wait)
        .fork(|| {
            // Give a kill-on-drop every chance to win; with `Wait` it must not happen.
            std::thread::sleep(Duration::from_millis(20));
            done.store(1, Ordering::SeqCst);
            0
        })
        .unwrap();
    let pid = child.pid();
    drop(child);
    assert_eq!(done.load(Ordering::SeqCst), 1, "the child ran to its end");
    assert!(not_our_child(pid));
}

fn on_drop_detach_leaves_child_running() {
    let go = Gate::new();
    let mut child = gated_child(&go, 5);
    child.set_on_drop(OnDrop::Detach);
    let pid = child.pid();
    drop(child);
    // Still running (it cannot exit before `go`), and still ours to reap.
    let mut status = 0;
    // SAFETY: `status` is a valid int; WNOHANG never blocks.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) }, 0);
    go.open();
    // SAFETY: as above; this blocks until the detached child exits.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status));
    assert_eq!(libc::WEXITSTATUS(status), 5);
}

/// Forks an intermediate child that forks a grandchild with `options`, publishes the
/// grandchild's identity and blocks; returns the intermediate's handle and that identity.
fn intermediate_with_grandchild(
    page: &shm_core::Region,
    options: ChildOptions,
    grandchild_body: fn(&shm_core::Region) -> i32,
) -> (shm_fork::Child, ProcessIdentity) {
    let slot = word(page, 1);
    let intermediate = fork(|| {
        let grandchild = options
            .fork(|| grandchild_body(page))
            .expect("fork the grandchild");
        slot.store(grandchild.identity().to_raw(), Ordering::SeqCst);
        // Never returns, so the grandchild's handle is never dropped: only the death of
        // this process can end the grandchild.
        block_forever()
    })
    .unwrap();
    assert!(eventually(|| slot.load(Ordering::SeqCst) != 0));
    let identity = ProcessIdentity::from_raw(slot.load(Ordering::SeqCst)).unwrap();
    (intermediate, identity)
}

fn killed_parent_takes_child_down() {
    let page = shared_page();
    let (mut intermediate, grandchild) =
        intermediate_with_grandchild(&page, ChildOptions::new(), |_| block_forever());
    let mut watch = PeerWatch::new();
    assert_eq!(watch.check(grandchild), Liveness::Alive);
    intermediate.kill().unwrap();
    assert_eq!(
        intermediate.wait().unwrap(),
        ExitStatus::Signaled(libc::SIGKILL)
    );
    assert!(
        eventually(|| watch.check(grandchild) == Liveness::Dead),
        "grandchild {} outlived its killed parent",
        grandchild.pid()
    );
}

fn orphan_lives_on_without_kill_on_parent_death() {
    let page = shared_page();
    let options = ChildOptions::new().kill_on_parent_death(false);
    let (mut intermediate, grandchild) = intermediate_with_grandchild(&page, options, |page| {
        block_until_set(flag(page, 0));
        0
    });
    let mut watch = PeerWatch::new();
    intermediate.kill().unwrap();
    intermediate.wait().unwrap();
    // The grandchild cannot exit before the flag is set: its parent's death did not kill it.
    assert_eq!(watch.check(grandchild), Liveness::Alive);
    flag(&page, 0).store(1, Ordering::SeqCst);
    assert!(eventually(|| watch.check(grandchild) == Liveness::Dead));
}
