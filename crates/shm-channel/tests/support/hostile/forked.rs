//! The forked matrices: the victim in a child, blocked in a call without a deadline when
//! the parent — the hostile peer, which also holds the other side of the channel — writes
//! the garbage. The parent then acts as an honest peer would, and the child must come
//! back (GUIDE §3 rule 13: no wait a peer can make endless):
//!
//! - *step, then close*: one honest step (a message for a blocked receiver; everything
//!   pending read, for a blocked sender), and if that did not let the victim return, a
//!   close (every endpoint the parent holds dropped);
//! - *close*: the close at once, without the step.
//!
//! Victims run [`BATCH`] at a time, each on its own guarded mapping, so that the waits
//! (the victim must see the garbage in at least one slow check) overlap; a victim still
//! blocked a while after the close is kept aside, and all of them get [`HANG`] together at
//! the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use shm_channel::{Receiver, Sender};
use shm_core::SharedMemory;
use std::sync::MutexGuard;

use shm_core::liveness::{Liveness, PeerWatch, ProcessIdentity};
use shm_testkit::{fork_lock, ControlPage, TestChild};

use super::matrix::{prepare, select_then_recv, Mode};
use super::{
    guarded, poke, Bounded, Case, Findings, Kind, Kinds, Others, Subject, Target, BLOCK, CAP,
    POKE_AFTER,
};
use crate::support::faults::fork_owner;

/// Victims in flight at once.
const BATCH: usize = 16;
/// How long the parent waits for a victim after an honest step or a close before it moves
/// on (the victim normally returns within one slow check, 10 ms, of either).
const SETTLE: Duration = Duration::from_millis(200);
/// How long a victim that has not returned after the close gets, at the end of the
/// matrix, before it is called a hang: far beyond any scheduling delay.
const HANG: Duration = Duration::from_secs(5);

/// One victim in flight, and what the parent holds of its channel.
struct Flight<F: Subject> {
    case: Case,
    close_only: bool,
    /// The value the garbage wrote.
    value: u64,
    slot: usize,
    memory: Arc<dyn SharedMemory>,
    child: Option<TestChild>,
    tx: Option<Sender<F>>,
    rx: Option<Receiver<F>>,
    others: Option<Others<F>>,
}

/// Control page word where victim `slot` says it is about to block.
fn ready(slot: usize) -> usize {
    16 * slot
}

/// Control page word where victim `slot` records how its call ended.
fn done(slot: usize) -> usize {
    16 * slot + 8
}

/// Every case of `F`'s matrix, each with both endings (step then close, close), with the
/// victim in a forked child. `kinds` counts how the victims' blocked calls ended.
pub fn across_fork<F: Subject>(mode: Mode) -> (Kinds, Findings) {
    let (mut kinds, mut findings) = (Kinds::default(), Findings::default());
    let mut cases = Vec::new();
    for case in super::cases::<F>(mode.name(true), &F::fork_values()) {
        for close_only in [false, true] {
            let mode = match (mode, close_only) {
                (_, false) => case.mode,
                (Mode::Recv, true) => "blocked in recv() across fork, then closed",
                (Mode::Send, true) => "blocked in send() on a full ring across fork, then closed",
                (Mode::Select, true) => "blocked in select() across fork, then closed",
            };
            let index = cases.len();
            cases.push((
                Case {
                    mode,
                    index,
                    ..case
                },
                close_only,
            ));
        }
    }
    // Slots of the control page: victims in flight, then those kept for the hang check.
    let control = ControlPage::with_len(16 * cases.len() + 16);
    let lock = fork_lock();
    let (mut after_close, mut suspects) = (0, Vec::new());
    for batch in cases.chunks(BATCH) {
        let mut flights: Vec<Flight<F>> = batch
            .iter()
            .map(|&(case, close_only)| launch::<F>(&lock, &control, mode, case, close_only))
            .collect();
        for flight in &flights {
            if !control.wait_for(ready(flight.slot), 1, HANG) {
                findings.push(&flight.case, "the victim never started");
            }
        }
        std::thread::sleep(POKE_AFTER);
        for flight in &mut flights {
            flight.value = poke::<F>(&*flight.memory, flight.case.target, flight.case.garbage);
        }
        std::thread::sleep(BLOCK);
        // The honest step where the case has one; the close where it has not, or where
        // the step did not let the victim return.
        let mut stepped = Vec::new();
        for flight in &mut flights {
            if control.get(done(flight.slot)) != 0 {
                continue;
            }
            let mut check = Bounded {
                case: flight.case,
                findings: &mut findings,
            };
            if !flight.close_only && honest_step(flight, &mut check) {
                stepped.push(flight.slot);
            } else {
                after_close += 1;
                close(flight);
            }
        }
        let settle = Instant::now() + SETTLE;
        for flight in &mut flights {
            if stepped.contains(&flight.slot) {
                let left = settle.saturating_duration_since(Instant::now());
                if !control.wait_for(done(flight.slot), 1, left) {
                    after_close += 1;
                    close(flight);
                }
            }
        }
        let settle = Instant::now() + SETTLE;
        for mut flight in flights {
            let left = settle.saturating_duration_since(Instant::now());
            close(&mut flight);
            if control.wait_for(done(flight.slot), 1, left) {
                reap(flight, &control, &mut kinds, &mut findings);
            } else {
                suspects.push(flight);
            }
        }
    }
    // The victims still blocked after the close get a long time; then each is a hang, a
    // wait on an owner the kernel says is alive (a live process can end it), or a known
    // defect of the flavor.
    let deadline = Instant::now() + HANG;
    let (mut live_owner, mut known) = (0, 0);
    for flight in suspects {
        let left = deadline.saturating_duration_since(Instant::now());
        if control.wait_for(done(flight.slot), 1, left) {
            reap(flight, &control, &mut kinds, &mut findings);
            continue;
        }
        if names_live_process(flight.case.target, flight.value) {
            live_owner += 1;
        } else if let Some(defect) = F::known_hang(&flight.case, flight.close_only, flight.value) {
            eprintln!("known defect reproduced, {}: {defect}", flight.case);
            known += 1;
        } else {
            findings.push(
                &flight.case,
                format!(
                    "the blocked call outlived the honest peer's close (hang; value {:#x})",
                    flight.value
                ),
            );
        }
        flight.child.unwrap().kill();
    }
    eprintln!(
        "{} {}: {} victims, {after_close} came back only after the honest peer closed, \
         {live_owner} still wait on an owner word naming a live process, {known} hang by a \
         known defect",
        <F as Subject>::NAME,
        mode.name(true),
        cases.len()
    );
    if let Some(defect) = F::expect_known_hang(mode) {
        assert!(
            known > 0,
            "{} {}: the known defect no longer reproduces ({defect}): remove it from \
             `known_hang`",
            <F as Subject>::NAME,
            mode.name(true)
        );
    }
    (kinds, findings)
}

/// Forks the victim of `case`, on a fresh channel in its own guarded mapping.
fn launch<F: Subject>(
    lock: &MutexGuard<'static, ()>,
    control: &ControlPage,
    mode: Mode,
    case: Case,
    close_only: bool,
) -> Flight<F> {
    let slot = case.index;
    let memory = guarded::<F>();
    control.set(ready(slot), 0);
    control.set(done(slot), 0);
    let (tx, rx, others) = prepare::<F>(&memory, case.index, mode);
    let record = |kind: Kind| {
        control.set(done(slot), kind.code());
        0
    };
    let (child, tx, rx) = match mode {
        Mode::Recv => {
            let child = fork_owner(lock, rx, |mut rx| {
                control.set(ready(slot), 1);
                record(match rx.recv() {
                    Ok(msg) if msg.len() <= CAP => Kind::Ok,
                    Ok(_) => Kind::Other,
                    Err(error) => Kind::of(&error),
                })
            });
            (child, Some(tx), None)
        }
        Mode::Select => {
            let child = fork_owner(lock, rx, |mut rx| {
                control.set(ready(slot), 1);
                record(select_then_recv(&mut rx))
            });
            (child, Some(tx), None)
        }
        Mode::Send => {
            let child = fork_owner(lock, tx, |mut tx| {
                control.set(ready(slot), 1);
                record(match tx.send(&[7; 200]) {
                    Ok(()) => Kind::Ok,
                    Err(error) => Kind::of(&error),
                })
            });
            (child, None, Some(rx))
        }
    };
    Flight {
        case,
        close_only,
        value: 0,
        slot,
        memory,
        child: Some(child),
        tx,
        rx,
        others: Some(others),
    }
}

/// Reaps a victim that returned and counts how its call ended.
fn reap<F: Subject>(
    mut flight: Flight<F>,
    control: &ControlPage,
    kinds: &mut Kinds,
    findings: &mut Findings,
) {
    let mut child = flight.child.take().unwrap();
    match child.wait_timeout(HANG) {
        Some(0) => {
            kinds.count(Kind::from_code(control.get(done(flight.slot))).unwrap_or(Kind::Other))
        }
        Some(status) => findings.push(
            &flight.case,
            format!("the victim exited with {status} (139 = SIGSEGV, 101 = panic)"),
        ),
        None => findings.push(&flight.case, "the victim never exited"),
    }
}

/// Whether `value`, written into an owner word, names a process the kernel says is alive:
/// then a wait on it is one a live process can end.
fn names_live_process(target: Target, value: u64) -> bool {
    target.name().contains("owner")
        && ProcessIdentity::from_raw(value)
            .is_some_and(|who| PeerWatch::new().check(who) == Liveness::Alive)
}

/// The honest peer's next step: a message for a blocked receiver; everything pending read,
/// for a blocked sender. Whether it went through (the victim then has something to return
/// with).
fn honest_step<F: Subject>(flight: &mut Flight<F>, check: &mut Bounded) -> bool {
    if let Some(tx) = flight.tx.as_mut() {
        return check
            .call("honest send", || {
                tx.send_timeout(b"honest", Duration::from_secs(1))
            })
            .is_ok();
    }
    let rx = flight.rx.as_mut().unwrap();
    let mut drained = check
        .call("honest recv", || rx.recv_timeout(Duration::from_secs(1)))
        .is_ok();
    while drained {
        match check.call("honest try_recv", || rx.try_recv()) {
            Ok(_) => {}
            Err(error) => {
                drained = Kind::of(&error) == Kind::NotNow;
                break;
            }
        }
    }
    if let Some(others) = flight.others.as_mut() {
        others.drain();
    }
    drained
}

/// The honest peer's close: every endpoint it holds of the channel dropped.
fn close<F: Subject>(flight: &mut Flight<F>) {
    drop((flight.tx.take(), flight.rx.take(), flight.others.take()));
}
