//! The hand-over protocol across a real fork, with a mock value that records every call
//! (which process made it, and in what order) in a shared page.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use common::{not_our_child, shared_page, word};
use shm_core::liveness::ProcessIdentity;
use shm_core::Region;
use shm_fork::{fork_with, ExitStatus, ForkError, Inherit, InheritError};

fn main() {
    common::run(&[
        (
            "hand_over_in_parent_then_adopt_in_child",
            hand_over_in_parent_then_adopt_in_child,
        ),
        (
            "parent_drops_its_copy_after_hand_over",
            parent_drops_its_copy_after_hand_over,
        ),
        (
            "containers_hand_over_every_element",
            containers_hand_over_every_element,
        ),
        (
            "failed_hand_over_kills_child_before_closure",
            failed_hand_over_kills_child_before_closure,
        ),
        (
            "failed_adopt_is_reported_and_closure_never_runs",
            failed_adopt_is_reported_and_closure_never_runs,
        ),
    ]);
}

/// Words of one probe's record (8 words per probe slot).
const HANDED_TO: usize = 0; // raw identity passed to hand_over
const HANDED_BY: usize = 1; // pid that called hand_over
const ADOPTED_BY: usize = 2; // pid that called adopt
const ADOPT_SAW_HAND_OVER: usize = 3; // 1 if hand_over had already happened at adopt
const USED_BY: usize = 4; // pid whose closure received the value
const PARENT_DROP_AFTER_HAND_OVER: usize = 5; // 1 if the parent dropped after hand_over
const CHILD_DROPS: usize = 6; // drops in the child (where the value is owned)
const RECORD_WORDS: usize = 8;

/// A stand-in for a channel endpoint: records the protocol in `page`, slot `slot`.
struct Probe<'a> {
    page: &'a Region,
    slot: usize,
    fail_hand_over: bool,
    fail_adopt: bool,
}

impl<'a> Probe<'a> {
    fn new(page: &'a Region, slot: usize) -> Probe<'a> {
        Probe {
            page,
            slot,
            fail_hand_over: false,
            fail_adopt: false,
        }
    }

    fn field(&self, index: usize) -> &AtomicU64 {
        word(self.page, self.slot * RECORD_WORDS + index)
    }

    fn mark_used(&self) {
        self.field(USED_BY)
            .store(std::process::id().into(), Ordering::SeqCst);
    }
}

fn record(page: &Region, slot: usize, index: usize) -> u64 {
    word(page, slot * RECORD_WORDS + index).load(Ordering::SeqCst)
}

impl Inherit for Probe<'_> {
    fn hand_over(&self, child: ProcessIdentity) -> Result<(), InheritError> {
        if self.fail_hand_over {
            return Err(InheritError::new("probe refuses the hand-over"));
        }
        self.field(HANDED_BY)
            .store(std::process::id().into(), Ordering::SeqCst);
        self.field(HANDED_TO)
            .store(child.to_raw(), Ordering::SeqCst);
        Ok(())
    }

    fn adopt(&self) -> Result<(), InheritError> {
        let handed = self.field(HANDED_TO).load(Ordering::SeqCst) != 0;
        self.field(ADOPT_SAW_HAND_OVER)
            .store(handed.into(), Ordering::SeqCst);
        self.field(ADOPTED_BY)
            .store(std::process::id().into(), Ordering::SeqCst);
        if self.fail_adopt {
            Err(InheritError::new("probe refuses adoption"))
        } else {
            Ok(())
        }
    }
}

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        let me = u64::from(std::process::id());
        if me == self.field(ADOPTED_BY).load(Ordering::SeqCst) {
            self.field(CHILD_DROPS).fetch_add(1, Ordering::SeqCst);
        } else if self.field(HANDED_BY).load(Ordering::SeqCst) == me {
            self.field(PARENT_DROP_AFTER_HAND_OVER)
                .store(1, Ordering::SeqCst);
        }
    }
}

fn hand_over_in_parent_then_adopt_in_child() {
    let page = shared_page();
    let mut child = fork_with(Probe::new(&page, 0), |probe| {
        probe.mark_used();
        0
    })
    .unwrap();
    assert!(child.wait().unwrap().success());
    let parent = u64::from(std::process::id());
    let child_pid = u64::try_from(child.pid()).unwrap();
    assert_eq!(record(&page, 0, HANDED_TO), child.identity().to_raw());
    assert_eq!(record(&page, 0, HANDED_BY), parent);
    assert_eq!(record(&page, 0, ADOPTED_BY), child_pid);
    assert_eq!(record(&page, 0, ADOPT_SAW_HAND_OVER), 1, "adopt ran first");
    assert_eq!(record(&page, 0, USED_BY), child_pid);
}

fn parent_drops_its_copy_after_hand_over() {
    let page = shared_page();
    let mut child = fork_with(Probe::new(&page, 0), |probe| {
        probe.mark_used();
        0
    })
    .unwrap();
    // The parent's copy is already gone when `fork_with` returns.
    assert_eq!(record(&page, 0, PARENT_DROP_AFTER_HAND_OVER), 1);
    assert!(child.wait().unwrap().success());
    // The child owned the value and dropped it once, at the end of the closure.
    assert_eq!(record(&page, 0, CHILD_DROPS), 1);
}

fn containers_hand_over_every_element() {
    let page = shared_page();
    let values = (
        Probe::new(&page, 0),
        vec![Probe::new(&page, 1), Probe::new(&page, 2)],
        Some(Probe::new(&page, 3)),
        [Probe::new(&page, 4)],
        None::<Probe<'_>>,
        (),
    );
    let mut child = fork_with(values, |(a, v, o, arr, _none, ())| {
        a.mark_used();
        v.iter().for_each(Probe::mark_used);
        o.iter().for_each(Probe::mark_used);
        arr.iter().for_each(Probe::mark_used);
        0
    })
    .unwrap();
    assert!(child.wait().unwrap().success());
    let child_pid = u64::try_from(child.pid()).unwrap();
    for slot in 0..5 {
        assert_eq!(
            record(&page, slot, HANDED_TO),
            child.identity().to_raw(),
            "slot {slot}"
        );
        assert_eq!(record(&page, slot, ADOPTED_BY), child_pid, "slot {slot}");
        assert_eq!(record(&page, slot, USED_BY), child_pid, "slot {slot}");
        assert_eq!(record(&page, slot, CHILD_DROPS), 1, "slot {slot}");
    }
}

fn failed_hand_over_kills_child_before_closure() {
    let page = shared_page();
    let mut probe = Probe::new(&page, 0);
    probe.fail_hand_over = true;
    let err = fork_with(probe, |probe| {
        probe.mark_used();
        0
    })
    .unwrap_err();
    let ForkError::HandOver { pid, source } = err else {
        panic!("expected HandOver, got {err}");
    };
    assert_eq!(source.to_string(), "probe refuses the hand-over");
    // The child was killed at the gate: it never adopted nor ran the closure, and was reaped.
    assert_eq!(record(&page, 0, ADOPTED_BY), 0);
    assert_eq!(record(&page, 0, USED_BY), 0);
    assert!(not_our_child(pid));
}

fn failed_adopt_is_reported_and_closure_never_runs() {
    let page = shared_page();
    let mut probe = Probe::new(&page, 0);
    probe.fail_adopt = true;
    let mut child = fork_with(probe, |probe| {
        probe.mark_used();
        0
    })
    .unwrap();
    assert_eq!(child.wait().unwrap(), ExitStatus::AdoptFailed);
    assert_eq!(
        child.failure_message().as_deref(),
        Some("probe refuses adoption")
    );
    assert_eq!(record(&page, 0, USED_BY), 0);
    // Not adopted, so not dropped in the child either.
    assert_eq!(record(&page, 0, CHILD_DROPS), 0);
}
