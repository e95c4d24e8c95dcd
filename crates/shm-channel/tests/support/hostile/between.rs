//! Garbage between our operations: every target × every value written while the victim
//! holds a warmed-up channel with messages in flight, then every call — in this process on
//! a heap region (runs where mappings cannot), and with the victim in a forked child on a
//! guarded mapping (the hostile parent writes each case's garbage when the child says it is
//! ready); and garbage racing our operations, written into random targets as fast as the
//! parent can while the child loops over fresh channels and every call.

use std::sync::Arc;
use std::time::Duration;

use shm_core::{HeapRegion, SharedMemory};
use shm_testkit::layout::header;
use shm_testkit::{fork_child, fork_lock, ControlPage, Rng};

use super::{
    cases, drive, fresh, guarded, in_parallel, layout_len, no_panic, poke, warmed, Bounded, Case,
    Findings, Kind, Kinds, Subject, Target,
};

/// One case on `memory`: a fresh channel with three messages in flight, `between` (which
/// pokes, or has the garbage poked), then every call.
fn case_between<F: Subject>(
    memory: &Arc<dyn SharedMemory>,
    case: Case,
    kinds: &mut Kinds,
    findings: &mut Findings,
    between: impl FnOnce(),
) {
    let (mut tx, mut rx, others) = warmed::<F>(memory, case.index, false);
    for i in 0..3 {
        tx.try_send(&[i; 50]).unwrap();
    }
    between();
    let mut check = Bounded { case, findings };
    drive(&mut tx, &mut rx, memory, 3, kinds, &mut check);
    drop(others);
}

/// Every case in this process, each on its own heap region: `Ok`, corruptions and other
/// refusals all turn up, and nothing else happens.
pub fn on_heap<F: Subject>() {
    let mode = "between operations on a heap region";
    let (kinds, findings) =
        in_parallel(&cases::<F>(mode, &F::values()), |case, kinds, findings| {
            let memory: Arc<dyn SharedMemory> =
                Arc::new(HeapRegion::new(layout_len::<F>()).unwrap());
            case_between::<F>(&memory, case, kinds, findings, || {
                poke::<F>(&*memory, case.target, case.garbage);
            });
        });
    let test = format!("{} {mode}", <F as Subject>::NAME);
    eprintln!("{test}: {kinds}");
    findings.assert_none(&test);
    assert!(
        kinds.get(Kind::Ok) > 0 && kinds.get(Kind::Corrupted) > 0 && kinds.refused() > 0,
        "{test}: {kinds}"
    );
}

/// Waits for the word at 0 of `control` to reach `value`; false after a long time (a dead
/// peer).
fn wait_for(control: &ControlPage, value: u64) -> bool {
    control.wait_for(0, value, Duration::from_secs(30))
}

/// Every case of the forked values ([`Subject::fork_values`]) with the victim in a forked
/// child on a guarded mapping; the parent is the hostile peer. The child must exit cleanly (no fault, no panic, no finding).
pub fn across_fork<F: Subject>() {
    let memory = guarded::<F>();
    let control = ControlPage::new();
    let lock = fork_lock();
    let mode = "between operations across fork";
    let cases = cases::<F>(mode, &F::fork_values());
    let child = fork_child(&lock, || {
        let (mut kinds, mut findings) = (Kinds::default(), Findings::default());
        for &case in &cases {
            no_panic(&mut findings, &case, |findings| {
                case_between::<F>(&memory, case, &mut kinds, findings, || {
                    let step = case.index as u64;
                    control.set(0, 2 * step + 1);
                    assert!(
                        wait_for(&control, 2 * step + 2),
                        "the hostile peer went away"
                    );
                });
            });
        }
        control.set(8, kinds.get(Kind::Corrupted));
        control.set(16, kinds.refused());
        control.set(24, kinds.get(Kind::Ok));
        findings.assert_none(mode);
        0
    });
    for case in &cases {
        let step = case.index as u64;
        assert!(
            wait_for(&control, 2 * step + 1),
            "victim stopped at case {step}"
        );
        poke::<F>(&*memory, case.target, case.garbage);
        control.set(0, 2 * step + 2);
    }
    let status = child.wait();
    assert_eq!(
        status, 0,
        "victim exited with {status} (139 = SIGSEGV, 101 = panic or finding)"
    );
    eprintln!(
        "{} {mode}: {} cases: corrupted {}, refused {}, ok {}",
        <F as Subject>::NAME,
        cases.len(),
        control.get(8),
        control.get(16),
        control.get(24)
    );
}

/// Garbage racing our operations: the victim loops over fresh channels and every call
/// while the hostile parent writes garbage into random targets as fast as it can.
pub fn racing<F: Subject>() {
    const ROUNDS: usize = 300;
    let memory = guarded::<F>();
    let control = ControlPage::new();
    let lock = fork_lock();
    let child = fork_child(&lock, || {
        let (mut kinds, mut findings) = (Kinds::default(), Findings::default());
        for round in 0..ROUNDS {
            let Ok((mut tx, mut rx)) = fresh::<F>(&memory, round, false) else {
                continue;
            };
            control.set(0, round as u64 + 1);
            let case = Case::loose::<F>("racing our operations", round);
            let mut check = Bounded {
                case,
                findings: &mut findings,
            };
            drive(&mut tx, &mut rx, &memory, 3, &mut kinds, &mut check);
        }
        control.set(0, u64::MAX);
        control.set(8, kinds.get(Kind::Corrupted));
        findings.assert_none("racing our operations");
        0
    });
    let targets = F::targets();
    let values = F::values();
    let mut rng = Rng::new(0x1234_5678_9abc_def1);
    let mut pokes = 0u64;
    while control.get(0) != u64::MAX {
        let target = *rng.pick(&targets);
        let garbage = *rng.pick(&values);
        // Leave the header alone most of the time, so the victim gets past attach checks.
        if matches!(target, Target::Fixed(word) if word.offset < header::LINE) && rng.below(8) != 0
        {
            continue;
        }
        poke::<F>(&*memory, target, garbage);
        pokes += 1;
        if pokes % 64 == 0 {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    let status = child.wait();
    assert_eq!(
        status, 0,
        "victim exited with {status} (139 = SIGSEGV, 101 = panic or finding)"
    );
    eprintln!(
        "{}: {ROUNDS} rounds, {pokes} racing pokes: {} corrupted results",
        <F as Subject>::NAME,
        control.get(8)
    );
}
