//! The matrices: every target × every value, with the victim blocked in a receive, in a
//! select over its receiver, or in a send on a full ring when the garbage lands, in this
//! process (a thread pokes while the victim waits in a timed call) or across `fork` (the
//! parent pokes while the child waits in a call without a deadline, and then acts as an
//! honest peer would: one send or one receive, then a close; the child must come back).

use std::sync::Arc;

use shm_channel::select::{Select, SelectTimeoutError};
use shm_channel::{spsc, CallError, Receiver, Sender, TryRecvError};
use shm_core::SharedMemory;

use super::{
    cases, count, drive, guarded, in_parallel, poke, warmed, Bounded, Findings, Kind, Kinds,
    Others, Subject, BLOCK, CAP, POKE_AFTER,
};

/// Where the victim is when the garbage lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Blocked in a receive on an empty ring.
    Recv,
    /// Blocked in a send on a full ring.
    Send,
    /// Blocked in a select over the receiver (and, in process, a quiet second channel) on
    /// an empty ring, then receiving from what it names.
    Select,
}

impl Mode {
    pub(super) fn name(self, forked: bool) -> &'static str {
        match (self, forked) {
            (Mode::Recv, false) => "blocked in recv_timeout",
            (Mode::Send, false) => "blocked in send_timeout on a full ring",
            (Mode::Select, false) => "blocked in select_timeout",
            (Mode::Recv, true) => "blocked in recv() across fork",
            (Mode::Send, true) => "blocked in send() on a full ring across fork",
            (Mode::Select, true) => "blocked in select() across fork",
        }
    }
}

/// A select over `rx` without a deadline, then the receive from it, again while the select
/// names it but the receive finds nothing (which an honest ring never does: after at most
/// `MAX_EMPTY` rounds, the empty receive is what is counted).
pub(super) fn select_then_recv<F: Subject>(rx: &mut Receiver<F>) -> Kind {
    const MAX_EMPTY: u32 = 10_000;
    let mut empty = 0;
    loop {
        let mut sel = Select::new();
        sel.recv(rx);
        if sel.select().is_err() {
            // Only a set it refuses (none, or too many): never one receiver.
            return Kind::Other;
        }
        match rx.try_recv() {
            Err(TryRecvError::Empty) if empty < MAX_EMPTY => empty += 1,
            received => return kind_of_receive(received),
        }
    }
}

/// How the receive that follows a select ended: the receive's own error, not its
/// non-blocking wrapper (as a blocked receive would have said it).
fn kind_of_receive<E: CallError + std::fmt::Debug>(
    received: Result<Vec<u8>, TryRecvError<E>>,
) -> Kind {
    match received {
        Ok(msg) if msg.len() <= CAP => Kind::Ok,
        Ok(_) => Kind::Other,
        Err(TryRecvError::Empty) => Kind::NotNow,
        Err(TryRecvError::Recv(error)) => Kind::of(&error),
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
                Mode::Select => {
                    let ready = check.call("blocked select_timeout", || {
                        select_with_a_quiet_channel(&mut rx)
                    });
                    match ready {
                        Ok(0) => kinds.count(kind_of_receive(rx.try_recv())),
                        Ok(_) => check.findings.push(&case, "a quiet channel was ready"),
                        Err(SelectTimeoutError::Timeout) => kinds.count(Kind::NotNow),
                        Err(error) => check.findings.push(&case, format!("{error:?}")),
                    }
                }
            }
        });
        drive(&mut tx, &mut rx, &memory, 2, kinds, &mut check);
        drop(others);
    })
}

/// A select for [`BLOCK`] over `rx` (index 0) and the receiver of a fresh channel whose
/// sender stays alive and silent (index 1, never ready).
fn select_with_a_quiet_channel<F: Subject>(
    rx: &mut Receiver<F>,
) -> Result<usize, SelectTimeoutError> {
    let (_quiet_tx, mut quiet_rx) = spsc::channel(64).unwrap();
    let mut sel = Select::new();
    sel.recv(rx);
    sel.recv(&mut quiet_rx);
    sel.select_timeout(BLOCK)
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
        (true, Mode::Recv | Mode::Select) => F::FORKED_EXPECT[0],
        (true, Mode::Send) => F::FORKED_EXPECT[1],
    };
    assert!(
        kinds.get(Kind::Ok) > 0 && kinds.get(expected) > 0,
        "{test}: no Ok or no {expected:?}: {kinds}"
    );
}
