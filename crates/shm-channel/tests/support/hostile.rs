//! The hostile-peer harness, one for every flavor: a [`Subject`] names the words of its
//! control block and frames, brings a fresh channel into an interesting state, and the
//! matrices here write every garbage value of the kit into every word while the victim is
//! blocked in a receive or a send, then drive every call.
//!
//! Every outcome is tallied by kind ([`Kinds`]); what must never happen — a panic, a call
//! past its bound, a blocked call that an honest peer's send or close cannot end, a fault
//! or a panic in a forked victim — is collected as a finding ([`Findings`]) naming the word,
//! the value and what happened, and the test fails listing them all.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shm_channel::{CallError, Flavor, Receiver, Sender};
use shm_core::{Region, SharedMemory};
use shm_testkit::layout::Word;
use shm_testkit::{Garbage, Words};

use super::Mem;

pub mod anywhere;
mod forked;
pub mod matrix;

/// Capacity of the channels under attack.
pub const CAP: usize = 1024;
/// Timeout of the call that is blocked while the garbage lands: longer than one slow check
/// (10 ms), so the victim looks at the garbage at least once while it waits.
pub const BLOCK: Duration = Duration::from_millis(15);
/// When the garbage lands, after the victim started waiting.
pub const POKE_AFTER: Duration = Duration::from_millis(2);
/// Timeout of the other timed calls.
pub const TIMEOUT: Duration = Duration::from_millis(2);
/// A call that takes longer than this has ignored its deadline (generous: the machine is
/// shared; this only has to catch a hang).
pub const BOUND: Duration = Duration::from_secs(5);

/// What a call ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A message, a send, an attach.
    Ok,
    /// A corruption was reported.
    Corrupted,
    /// The other side closed.
    Disconnected,
    /// The other side's process was found dead.
    PeerDied,
    /// This process does not own the endpoint (an owner word was overwritten).
    NotOwner,
    /// `Full`, `Empty` or `Timeout`: nothing in time.
    NotNow,
    /// Lagged (broadcast).
    Lagged,
    /// Any other typed error (too large, attach refused, ...).
    Other,
}

const KINDS: [Kind; 8] = [
    Kind::Ok,
    Kind::Corrupted,
    Kind::Disconnected,
    Kind::PeerDied,
    Kind::NotOwner,
    Kind::NotNow,
    Kind::Lagged,
    Kind::Other,
];

impl Kind {
    /// The kind of a call error.
    pub fn of(error: &(impl CallError + fmt::Debug)) -> Kind {
        if error.corruption().is_some() {
            return Kind::Corrupted;
        }
        let debug = format!("{error:?}");
        let name = debug.split(['(', ' ', '{']).next().unwrap_or("");
        match name {
            "Disconnected" => Kind::Disconnected,
            "PeerDied" => Kind::PeerDied,
            "NotOwner" => Kind::NotOwner,
            "Full" | "Empty" | "Timeout" => Kind::NotNow,
            "Lagged" => Kind::Lagged,
            _ => Kind::Other,
        }
    }

    /// A small number for the control page (across fork).
    pub fn code(self) -> u64 {
        KINDS.iter().position(|k| *k == self).unwrap() as u64 + 1
    }

    /// The kind of [`code`](Kind::code).
    pub fn from_code(code: u64) -> Option<Kind> {
        KINDS.get((code as usize).wrapping_sub(1)).copied()
    }
}

/// Calls counted by how they ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Kinds([u64; 8]);

impl Kinds {
    /// Counts one call.
    pub fn count(&mut self, kind: Kind) {
        self.0[kind.code() as usize - 1] += 1;
    }

    /// Calls that ended as `kind`.
    pub fn get(&self, kind: Kind) -> u64 {
        self.0[kind.code() as usize - 1]
    }

    /// All calls counted.
    pub fn calls(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Adds another tally.
    pub fn add(&mut self, other: &Kinds) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }
}

impl fmt::Display for Kinds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} calls:", self.calls())?;
        for kind in KINDS {
            write!(f, " {kind:?} {}", self.get(kind))?;
        }
        Ok(())
    }
}

/// What must never happen, with the case it happened in.
#[derive(Debug, Default)]
pub struct Findings(pub Vec<String>);

impl Findings {
    /// Records a finding.
    pub fn push(&mut self, case: &Case, what: impl fmt::Display) {
        let finding = format!("{case}: {what}");
        eprintln!("FINDING {finding}");
        self.0.push(finding);
    }

    /// Fails the test if anything was found.
    pub fn assert_none(&self, test: &str) {
        assert!(
            self.0.is_empty(),
            "{test}: {} findings:\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

/// A word to poke: fixed, or found from the channel's state when the poke lands.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// A fixed word.
    Fixed(Word),
    /// A frame header word relative to the victim's read position (`plus` bytes on).
    AtHead { name: &'static str, plus: usize },
    /// A word of the last frame published (`back` bytes before the tail).
    BeforeTail { name: &'static str, back: usize },
}

impl Target {
    /// The name of the target, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Target::Fixed(word) => word.name,
            Target::AtHead { name, .. } | Target::BeforeTail { name, .. } => name,
        }
    }
}

/// One case of a matrix.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// The flavor.
    pub flavor: &'static str,
    /// How the victim was caught.
    pub mode: &'static str,
    /// Its number in the matrix.
    pub index: usize,
    /// The word poked.
    pub target: Target,
    /// The value written.
    pub garbage: Garbage,
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} case {}: {:?} into {}",
            self.flavor,
            self.mode,
            self.index,
            self.garbage,
            self.target.name()
        )
    }
}

/// A flavor under attack.
pub trait Subject: Flavor {
    /// For messages.
    const NAME: &'static str;
    /// Endpoints besides the victim's pair that the case keeps (MPSC: a second sender;
    /// broadcast: a second receiver).
    type Others: Send;

    /// Region bytes of a channel of [`CAP`].
    fn layout_len() -> usize;
    /// A fresh channel in `memory` (`case` may vary its options; `for_send`: one whose
    /// sender can block on a full ring).
    fn fresh(
        memory: &Arc<dyn SharedMemory>,
        case: usize,
        for_send: bool,
    ) -> (Sender<Self>, Receiver<Self>);
    /// The other endpoints of a fresh channel.
    fn others(tx: &Sender<Self>, rx: &Receiver<Self>) -> Self::Others;
    /// Brings a fresh channel into an interesting state (messages through every endpoint,
    /// indices past a wrap of the ring, `skew` varying it), and leaves the ring empty, the
    /// last message of 1 to 16 bytes.
    fn warm_up(
        tx: &mut Sender<Self>,
        rx: &mut Receiver<Self>,
        others: &mut Self::Others,
        skew: usize,
    );
    /// The words a hostile peer writes.
    fn targets() -> Vec<Target>;
    /// The garbage values.
    fn values() -> Vec<Garbage>;
    /// The garbage values of the forked matrices (each case costs a fork).
    fn fork_values() -> Vec<Garbage> {
        Self::values()
    }
    /// The word `target` stands for now.
    fn resolve(mem: Mem<'_>, target: Target) -> Word;
    /// The other endpoints read what is pending (honest peers; errors ignored).
    fn drain_others(others: &mut Self::Others);
    /// A known defect of the flavor that makes the victim of `case` hang after the honest
    /// peer's close (`value`: what the garbage wrote), if this is one: documented here and
    /// in the test, until the channel is fixed.
    fn known_hang(case: &Case, close_only: bool, value: u64) -> Option<&'static str> {
        let _ = (case, close_only, value);
        None
    }
    /// The known defect that must still reproduce in `mode`'s forked matrix (so that a fix
    /// is noticed and the entry removed).
    fn expect_known_hang(mode: matrix::Mode) -> Option<&'static str> {
        let _ = mode;
        None
    }
    /// Calls of the flavor's own (MPSC `try_clone`, broadcast `subscribe`), counted.
    fn own_calls(
        tx: &mut Sender<Self>,
        rx: &mut Receiver<Self>,
        kinds: &mut Kinds,
        check: &mut Bounded,
    );
}

/// Checks each call against [`BOUND`] and records the ones past it.
pub struct Bounded<'a> {
    /// The case, for findings.
    pub case: Case,
    /// Where findings go.
    pub findings: &'a mut Findings,
}

impl Bounded<'_> {
    /// Runs `f`, recording a finding if it outlives [`BOUND`].
    pub fn call<R>(&mut self, what: &str, f: impl FnOnce() -> R) -> R {
        let start = Instant::now();
        let result = f();
        let took = start.elapsed();
        if took >= BOUND {
            self.findings.push(
                &self.case,
                format!("{what} took {took:?} (bound {BOUND:?})"),
            );
        }
        result
    }
}

/// Counts a call's outcome; a message must fit the ring.
pub fn count<T: Received, E: CallError + fmt::Debug>(kinds: &mut Kinds, result: Result<T, E>) {
    match result {
        Ok(value) => {
            assert!(value.len() <= CAP, "a {}-byte message", value.len());
            kinds.count(Kind::Ok);
        }
        Err(error) => kinds.count(Kind::of(&error)),
    }
}

/// What a successful call returned: a message (its length is checked) or nothing.
pub trait Received {
    /// Bytes received.
    fn len(&self) -> usize;
}

impl Received for () {
    fn len(&self) -> usize {
        0
    }
}

impl Received for Vec<u8> {
    fn len(&self) -> usize {
        Vec::len(self)
    }
}

/// A shared mapping between `PROT_NONE` guard pages, for a channel of flavor `F`.
pub fn guarded<F: Subject>() -> Arc<dyn SharedMemory> {
    Arc::new(
        Region::options(F::layout_len())
            .guard_pages(true)
            .anonymous()
            .unwrap(),
    )
}

/// Writes `garbage` into `target` of the channel in `memory`; the value written.
pub fn poke<F: Subject>(memory: &dyn SharedMemory, target: Target, garbage: Garbage) -> u64 {
    let mem = Mem(memory);
    mem.poke(F::resolve(mem, target), garbage)
}

/// Every call of the endpoint core, a few times, on a possibly poisoned channel; then the
/// flavor's own calls and a new endpoint of each side.
pub fn drive<F: Subject>(
    tx: &mut Sender<F>,
    rx: &mut Receiver<F>,
    memory: &Arc<dyn SharedMemory>,
    kinds: &mut Kinds,
    check: &mut Bounded,
) {
    for round in 0..2u8 {
        count(kinds, check.call("try_send", || tx.try_send(&[round; 40])));
        count(kinds, check.call("try_recv", || rx.try_recv()));
        count(
            kinds,
            check.call("send_timeout", || tx.send_timeout(&[1; 300], TIMEOUT)),
        );
        count(
            kinds,
            check.call("recv_timeout", || rx.recv_timeout(TIMEOUT)),
        );
        match check.call("try_reserve", || tx.try_reserve(100)) {
            Ok(mut grant) => {
                grant.write_at(0, &[2; 100]).unwrap();
                grant.commit(60);
                kinds.count(Kind::Ok);
            }
            Err(error) => kinds.count(Kind::of(&error)),
        }
        match check.call("try_read", || rx.try_read()) {
            Ok(grant) => {
                let mut buf = vec![0; grant.len()];
                grant.read_at(0, &mut buf).unwrap();
                kinds.count(Kind::Ok);
            }
            Err(error) => kinds.count(Kind::of(&error)),
        }
        let mut buf = [0u8; 64];
        match check.call("try_read", || {
            rx.try_read().map(|grant| grant.copy_to(&mut buf))
        }) {
            Ok(n) => {
                assert!(n <= buf.len());
                kinds.count(Kind::Ok);
            }
            Err(error) => kinds.count(Kind::of(&error)),
        }
    }
    F::own_calls(tx, rx, kinds, check);
    // A new endpoint on the poisoned memory: refused (owned by us, a bad header, a corrupt
    // index, no free slot) or, where the poke named a dead owner, taking over.
    let attached = check.call("Sender::attach", || Sender::<F>::attach(memory.clone()));
    kinds.count(if attached.is_ok() {
        Kind::Ok
    } else {
        Kind::Other
    });
    drop(attached);
    let attached = check.call("Receiver::attach", || Receiver::<F>::attach(memory.clone()));
    kinds.count(if attached.is_ok() {
        Kind::Ok
    } else {
        Kind::Other
    });
}

/// Runs `f`, recording a panic as a finding (with its message) instead of unwinding.
pub fn no_panic(findings: &mut Findings, case: &Case, f: impl FnOnce(&mut Findings)) {
    let mut inner = Findings::default();
    let result = catch_unwind(AssertUnwindSafe(|| f(&mut inner)));
    findings.0.append(&mut inner.0);
    if let Err(panic) = result {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        findings.push(case, format!("panicked: {message}"));
    }
}
