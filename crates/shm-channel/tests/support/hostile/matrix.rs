//! The matrices: every target × every value, with the victim blocked in a receive or in a
//! send on a full ring when the garbage lands, in this process (a thread pokes while the
//! victim waits in a timed call) or across `fork` (the parent pokes while the child waits
//! in a call without a deadline, and then acts as an honest peer would: one send or one
//! receive, then a close; the child must come back).

use std::sync::Arc;

use shm_channel::{Receiver, Sender};
use shm_core::SharedMemory;

use super::{
    cases, count, drive, guarded, in_parallel, poke, warmed, Bounded, Findings, Kind, Kinds,
    Others, Subject, BLOCK, POKE_AFTER,
};

/// Where the victim is when the garbage lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Blocked in a receive on an empty ring.
    Recv,
    /// Blocked in a send on a full ring.
    Send,
}

impl Mode {
    pub(super) fn name(self, forked: bool) -> &'static str {
        match (self, forked) {
            (Mode::Recv, false) => "blocked in recv_timeout",
            (Mode::Send, false) => "blocked in send_timeout on a full ring",
            (Mode::Recv, true) => "blocked in recv() across fork",
            (Mode::Send, true) => "blocked in send() on a full ring across fork",
        }
    }
}

/// A fresh channel of `F` in `memory`, warmed up, with the ring empty (`Recv`) or full
/// (`Send`).
pub(super) fn prepare<F: Subject>(
    memory: &Arc<dyn SharedMemory>,
    index: usize,
    mode: Mode,
) -> (Sender<F>, Receiver<F>, Others<F>) {
    let (mut tx, rx, others) = warmed::<F>(memory, index, mode == Mode::Send);
    if mode == Mode::Send {
        fill(&mut tx);
    }
    (tx, rx, others)
}

/// Sends until the ring is full.
pub fn fill<F: Subject>(tx: &mut Sender<F>) {
    for len in [100, 24, 0] {
        for _ in 0..(2 * super::CAP) {
            if tx.try_send(&vec![5; len]).is_err() {
                break;
            }
        }
    }
}

/// Every case of `F`'s matrix with the victim in this process.
pub fn in_process<F: Subject>(mode: Mode) -> (Kinds, Findings) {
    let cases = cases::<F>(mode.name(false), &F::values());
    in_parallel(&cases, |case, kinds, findings| {
        let memory = guarded::<F>();
        let (mut tx, mut rx, others) = prepare::<F>(&memory, case.index, mode);
        let mut check = Bounded { case, findings };
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(POKE_AFTER);
                poke::<F>(&*memory, case.target, case.garbage);
            });
            match mode {
                Mode::Recv => count::<F, _, _>(
                    kinds,
                    check.call("blocked recv_timeout", || rx.recv_timeout(BLOCK)),
                ),
                Mode::Send => count::<F, _, _>(
                    kinds,
                    check.call("blocked send_timeout", || tx.send_timeout(&[7; 200], BLOCK)),
                ),
            }
        });
        drive(&mut tx, &mut rx, &memory, 2, kinds, &mut check);
        drop(others);
    })
}

/// Runs one matrix, prints its tallies and fails on any finding; `Ok` and the outcome the
/// flavor expects ([`Subject::expected`]) must have turned up.
pub fn run<F: Subject>(mode: Mode, forked: bool) {
    let (kinds, findings) = if forked {
        super::forked::across_fork::<F>(mode)
    } else {
        in_process::<F>(mode)
    };
    let test = format!("{} {}", <F as Subject>::NAME, mode.name(forked));
    eprintln!(
        "{test}: {} targets x {} values: {kinds}",
        F::targets().len(),
        if forked {
            F::fork_values().len()
        } else {
            F::values().len()
        }
    );
    findings.assert_none(&test);
    let expected = match (forked, mode) {
        (false, _) => Kind::Corrupted,
        (true, Mode::Recv) => F::FORKED_EXPECT[0],
        (true, Mode::Send) => F::FORKED_EXPECT[1],
    };
    assert!(
        kinds.get(Kind::Ok) > 0 && kinds.get(expected) > 0,
        "{test}: no Ok or no {expected:?}: {kinds}"
    );
}
