//! The hostile-peer harness, written once over the flavor: a [`Subject`] names the shared
//! words of its control block (offsets from `shm_testkit::layout`), brings a fresh channel
//! into an interesting state and lists the calls of its own; the scenarios here write the
//! kit's garbage values into those words and drive every call:
//!
//! - [`matrix`]: every word × every value while the victim is blocked in a receive, in a
//!   select over its receiver, or in a send on a full ring, in this process (timed calls)
//!   and across `fork` ([`forked`]: calls without a deadline, which an honest peer's next
//!   step or close must end);
//! - [`between`]: every word × every value between our operations, in this process on a
//!   heap region and across `fork`, and garbage racing our operations;
//! - [`anywhere`]: random words anywhere in the region, between operations.
//!
//! [`hostile_tests!`] writes the tests of every scenario for one flavor; each flavor's file
//! (`hostile_spsc.rs`, `hostile_mpsc.rs`, `hostile_broadcast.rs`) holds only its
//! [`Subject`] and that one line.
//!
//! Every outcome is tallied by kind ([`Kinds`]); what must never happen — a panic, a call
//! past its bound, a blocked call that an honest peer's send or close cannot end, a fault
//! or a panic in a forked victim — is collected as a finding ([`Findings`]) naming the word,
//! the value and what happened, and the test fails listing them all.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shm_channel::{Builder, CallError, ChannelError, Endpoint, Flavor, Receiver, Sender};
use shm_core::{Region, SharedMemory};
use shm_testkit::garbage::{frame_extras, values};
use shm_testkit::layout::{Ring, Word};
use shm_testkit::{Garbage, Words};

use super::Mem;

pub mod anywhere;
pub mod between;
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
    /// The kind of a call error: of the blocking call's error inside it, if that is why the
    /// call failed (`TryRecvError::Recv(e)`, broadcast's `RecvError::Recv(e)`, …).
    pub fn of(error: &(impl CallError + fmt::Debug)) -> Kind {
        if error.corruption().is_some() {
            return Kind::Corrupted;
        }
        let mut error: &dyn CallError = error;
        while let Some(inner) = error.blocking_error() {
            error = inner;
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

    /// Calls that ended in an error other than a corruption.
    pub fn refused(&self) -> u64 {
        self.calls() - self.get(Kind::Ok) - self.get(Kind::Corrupted)
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
    /// A frame word `plus` bytes on from the victim's read position.
    pub const fn at_head(name: &'static str, plus: usize) -> Target {
        Target::AtHead { name, plus }
    }

    /// A word `back` bytes before the tail.
    pub const fn before_tail(name: &'static str, back: usize) -> Target {
        Target::BeforeTail { name, back }
    }

    /// The fixed `words`, then the frame words `frames`.
    pub fn list(words: Vec<Word>, frames: &[Target]) -> Vec<Target> {
        words
            .into_iter()
            .map(Target::Fixed)
            .chain(frames.iter().copied())
            .collect()
    }

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

impl Case {
    /// A case of a scenario that pokes no one target (random words).
    pub fn loose<F: Subject>(mode: &'static str, index: usize) -> Case {
        Case {
            flavor: <F as Subject>::NAME,
            mode,
            index,
            target: Target::Fixed(Word::u64("random words", 0)),
            garbage: Garbage::Value(0),
        }
    }
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

/// The endpoints a case keeps besides the victim's pair (MPSC: a second sender;
/// broadcast: a second receiver): honest peers that use the channel too.
pub struct Others<F: Flavor> {
    /// Other senders.
    pub senders: Vec<Sender<F>>,
    /// Other receivers.
    pub receivers: Vec<Receiver<F>>,
}

impl<F: Subject> Others<F> {
    /// No other endpoint.
    pub fn none() -> Others<F> {
        Others::of(Vec::new(), Vec::new())
    }

    /// These other endpoints.
    pub fn of(senders: Vec<Sender<F>>, receivers: Vec<Receiver<F>>) -> Others<F> {
        Others { senders, receivers }
    }

    /// The other receivers read what is pending (honest peers; errors ignored).
    pub fn drain(&mut self) {
        for rx in &mut self.receivers {
            for _ in 0..2 * CAP {
                if rx.try_recv().is_err() {
                    break;
                }
            }
        }
    }

    /// Each other endpoint makes a timed call, counted.
    pub fn drive(&mut self, kinds: &mut Kinds, check: &mut Bounded) {
        for tx in &mut self.senders {
            count::<F, _, _>(
                kinds,
                check.call("other send_timeout", || tx.send_timeout(&[2; 300], TIMEOUT)),
            );
        }
        for rx in &mut self.receivers {
            for _ in 0..2 {
                count::<F, _, _>(
                    kinds,
                    check.call("other recv_timeout", || rx.recv_timeout(TIMEOUT)),
                );
            }
        }
    }
}

/// A flavor under attack: what is its own; the scenarios are written once, over it.
pub trait Subject: Flavor {
    /// For messages.
    const NAME: &'static str;
    /// Where the ring is (`shm_testkit::layout`): [`Target::AtHead`] is relative to the
    /// position the victim receiver reads next, [`Target::BeforeTail`] to the tail.
    const RING: Ring;
    /// The kinds of outcome, besides `Ok`, that the forked matrices must have seen of the
    /// blocked receive and the blocked send (the in-process ones: `Corrupted`).
    const FORKED_EXPECT: [Kind; 2] = [Kind::Corrupted, Kind::Corrupted];

    /// The builder of a fresh channel of [`CAP`] (`case` may vary its options; `for_send`:
    /// one whose sender can block on a full ring).
    fn builder(case: usize, for_send: bool) -> Builder<Self> {
        let _ = (case, for_send);
        Builder::new(CAP)
    }
    /// The other endpoints of a fresh channel (none by default).
    fn others(tx: &Sender<Self>, rx: &Receiver<Self>) -> Others<Self> {
        let _ = (tx, rx);
        Others::none()
    }
    /// The words a hostile peer writes.
    fn targets() -> Vec<Target>;
    /// The garbage values: the kit's set and its frame extras.
    fn values() -> Vec<Garbage> {
        let mut v = values(CAP);
        v.extend(frame_extras(CAP));
        v
    }
    /// The garbage values of the forked matrices (each case costs a fork).
    fn fork_values() -> Vec<Garbage> {
        values(CAP)
    }
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
    fn own_calls(tx: &mut Sender<Self>, rx: &mut Receiver<Self>, calls: &mut Calls) {
        let _ = (tx, rx, calls);
    }
}

/// Region bytes of a channel of `F` of [`CAP`].
pub fn layout_len<F: Subject>() -> usize {
    F::RING.region_len(CAP)
}

/// A fresh channel of `F` in `memory` (see [`Subject::builder`]).
pub fn fresh<F: Subject>(
    memory: &Arc<dyn SharedMemory>,
    case: usize,
    for_send: bool,
) -> Result<(Sender<F>, Receiver<F>), ChannelError> {
    F::builder(case, for_send).create_in(memory.clone())
}

/// The word `target` stands for now in the channel of `F` in `mem`.
pub fn resolve<F: Subject>(mem: Mem<'_>, target: Target) -> Word {
    let mask = CAP as u64 - 1;
    let at = |pos: u64| F::RING.data + ((pos & mask) & !7) as usize;
    match target {
        Target::Fixed(word) => word,
        Target::AtHead { name, plus } => Word::u64(
            name,
            at(mem
                .load_u64(F::RING.read_position)
                .wrapping_add(plus as u64)),
        ),
        Target::BeforeTail { name, back } => Word::u64(
            name,
            at(mem
                .load_u64(F::RING.write_position)
                .wrapping_sub(back as u64)),
        ),
    }
}

/// Brings a fresh channel into an interesting state: messages through every endpoint, each
/// receiver getting exactly what was sent, the indices past a wrap of the ring (`skew`
/// varying it); leaves the ring empty, the last message of 8 bytes.
pub fn warm_up<F: Subject>(
    tx: &mut Sender<F>,
    rx: &mut Receiver<F>,
    others: &mut Others<F>,
    skew: usize,
) {
    let mut round = |first: Vec<u8>| {
        tx.try_send(&first).unwrap();
        let mut expected = vec![first];
        for tx2 in &mut others.senders {
            tx2.try_send(&[9; 24]).unwrap();
            expected.push(vec![9; 24]);
        }
        // One message per sender: receivers may take them in any order of senders (MPSC
        // reads its senders' lanes in turn).
        expected.sort();
        for rx in std::iter::once(&mut *rx).chain(&mut others.receivers) {
            let mut got: Vec<Vec<u8>> = expected.iter().map(|_| rx.try_recv().unwrap()).collect();
            got.sort();
            assert_eq!(got, expected);
        }
    };
    for i in 0..(5 + skew % 7) {
        round(vec![i as u8; 100 + 13 * i]);
    }
    round(vec![3; 8]);
}

/// A fresh channel of `F` in `memory`, warmed up, with its other endpoints.
pub fn warmed<F: Subject>(
    memory: &Arc<dyn SharedMemory>,
    case: usize,
    for_send: bool,
) -> (Sender<F>, Receiver<F>, Others<F>) {
    let (mut tx, mut rx) = fresh::<F>(memory, case, for_send).unwrap();
    let mut others = F::others(&tx, &rx);
    warm_up(&mut tx, &mut rx, &mut others, case);
    (tx, rx, others)
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

/// Counts a call's outcome; a message must fit the ring of `F`.
pub fn count<F: Subject, T: Received, E: CallError + fmt::Debug>(
    kinds: &mut Kinds,
    result: Result<T, E>,
) {
    match result {
        Ok(value) => {
            let max = CAP - F::RING.frame_header;
            assert!(value.len() <= max, "a {}-byte message", value.len());
            kinds.count(Kind::Ok);
        }
        Err(error) => kinds.count(Kind::of(&error)),
    }
}

/// The flavor's own calls of a case, bounded and counted.
pub struct Calls<'a, 'b> {
    /// The tally.
    pub kinds: &'a mut Kinds,
    /// The bound.
    pub check: &'a mut Bounded<'b>,
}

impl Calls<'_, '_> {
    /// A call that makes a new endpoint (a clone, a subscription): made, or refused.
    pub fn join<T, E>(&mut self, what: &str, f: impl FnOnce() -> Result<T, E>) {
        let made = self.check.call(what, f).is_ok();
        self.kinds.count(if made { Kind::Ok } else { Kind::Other });
    }
}

/// Counts an attach: refused as corrupt, refused otherwise (owned by us, a bad header, no
/// free slot), or taking over where the poke named a dead owner.
pub fn count_attach<T>(kinds: &mut Kinds, result: Result<T, ChannelError>) {
    kinds.count(match result {
        Ok(_) => Kind::Ok,
        Err(ChannelError::Corrupted(_)) => Kind::Corrupted,
        Err(_) => Kind::Other,
    });
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
        Region::options(layout_len::<F>())
            .guard_pages(true)
            .anonymous()
            .unwrap(),
    )
}

/// Writes `garbage` into `target` of the channel in `memory`; the value written.
pub fn poke<F: Subject>(memory: &dyn SharedMemory, target: Target, garbage: Garbage) -> u64 {
    let mem = Mem(memory);
    mem.poke(resolve::<F>(mem, target), garbage)
}

/// Every call of the endpoint core, `rounds` times, on a possibly poisoned channel; then a
/// send as large as most of the ring, the flavor's own calls and a new endpoint of each
/// side.
pub fn drive<F: Subject>(
    tx: &mut Sender<F>,
    rx: &mut Receiver<F>,
    memory: &Arc<dyn SharedMemory>,
    rounds: u8,
    kinds: &mut Kinds,
    check: &mut Bounded,
) {
    for round in 0..rounds {
        count::<F, _, _>(kinds, check.call("try_send", || tx.try_send(&[round; 40])));
        count::<F, _, _>(kinds, check.call("try_recv", || rx.try_recv()));
        count::<F, _, _>(
            kinds,
            check.call("send_timeout", || tx.send_timeout(&[1; 300], TIMEOUT)),
        );
        count::<F, _, _>(
            kinds,
            check.call("recv_timeout", || rx.recv_timeout(TIMEOUT)),
        );
        match check.call("try_reserve", || tx.try_reserve(100)) {
            Ok(mut grant) => {
                grant.write_at(0, &[2; 100]).unwrap();
                grant.commit(60).unwrap();
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
        count::<F, _, _>(
            kinds,
            check.call("read_timeout", || {
                rx.read_timeout(TIMEOUT).map(|grant| {
                    let mut msg = vec![0u8; grant.len()];
                    grant.copy_to(&mut msg);
                    msg
                })
            }),
        );
    }
    count::<F, _, _>(
        kinds,
        check.call("send_timeout", || tx.send_timeout(&[3; 900], TIMEOUT)),
    );
    F::own_calls(tx, rx, &mut Calls { kinds, check });
    // What the type line says (garbage there only bends the text, never its length).
    for end in [&*tx as &dyn Endpoint, &*rx] {
        let said = check.call("type_fingerprint", || {
            end.type_fingerprint().map(|f| f.to_string())
        });
        assert!(
            said.is_none_or(|text| text.len() < 1024),
            "a bounded description"
        );
        kinds.count(Kind::Ok);
    }
    // A new endpoint on the poisoned memory: refused (owned by us, a bad header, a corrupt
    // index, no free slot) or, where the poke named a dead owner, taking over.
    let attached = check.call("Sender::attach", || Sender::<F>::attach(memory.clone()));
    count_attach(kinds, attached);
    let attached = check.call("Receiver::attach", || Receiver::<F>::attach(memory.clone()));
    count_attach(kinds, attached);
}

/// Every target × every value of `values`, numbered, as cases of `mode`.
pub fn cases<F: Subject>(mode: &'static str, values: &[Garbage]) -> Vec<Case> {
    let mut cases = Vec::new();
    for target in F::targets() {
        for &garbage in values {
            cases.push(Case {
                flavor: <F as Subject>::NAME,
                mode,
                index: cases.len(),
                target,
                garbage,
            });
        }
    }
    cases
}

/// Cases of an in-process matrix run at once, each on its own memory: their calls mostly
/// wait out timeouts, so overlapping them saves the suite's time, not its coverage.
pub const PARALLEL: usize = 8;

/// Runs `run` for every case, [`PARALLEL`] at a time, each under [`no_panic`]; the tallies
/// and findings of all.
pub fn in_parallel(
    cases: &[Case],
    run: impl Fn(Case, &mut Kinds, &mut Findings) + Sync,
) -> (Kinds, Findings) {
    let (mut kinds, mut findings) = (Kinds::default(), Findings::default());
    let results: Vec<(Kinds, Findings)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..PARALLEL)
            .map(|first| {
                let run = &run;
                s.spawn(move || {
                    let (mut kinds, mut findings) = (Kinds::default(), Findings::default());
                    for case in cases.iter().skip(first).step_by(PARALLEL) {
                        no_panic(&mut findings, case, |findings| {
                            run(*case, &mut kinds, findings)
                        });
                    }
                    (kinds, findings)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    for (k, mut f) in results {
        kinds.add(&k);
        findings.0.append(&mut f.0);
    }
    (kinds, findings)
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

/// Writes the hostile tests of every scenario for the flavor `$flavor` (a [`Subject`]):
/// the one place the list of scenarios is written.
#[allow(unused_macros)] // used by the hostile test binaries only
macro_rules! hostile_tests {
    ($flavor:ty) => {
        $crate::support::hostile::hostile_tests!(@each $flavor:
            garbage_in_every_word_while_blocked_in_recv_timeout_is_an_error_never_a_crash
                = matrix::run(matrix::Mode::Recv, false);
            garbage_in_every_word_while_blocked_in_send_timeout_is_an_error_never_a_crash
                = matrix::run(matrix::Mode::Send, false);
            garbage_in_every_word_never_keeps_a_blocked_recv_from_returning
                = matrix::run(matrix::Mode::Recv, true);
            garbage_in_every_word_never_keeps_a_blocked_send_from_returning
                = matrix::run(matrix::Mode::Send, true);
            garbage_in_every_word_while_blocked_in_select_timeout_is_an_error_never_a_crash
                = matrix::run(matrix::Mode::Select, false);
            garbage_in_every_word_never_keeps_a_blocked_select_from_returning
                = matrix::run(matrix::Mode::Select, true);
            garbage_between_operations_on_a_heap_region_is_an_error_never_a_crash
                = between::on_heap();
            garbage_from_another_process_between_operations_never_faults_the_victim
                = between::across_fork();
            garbage_racing_our_operations_never_faults_the_victim = between::racing();
            garbage_anywhere_between_operations_is_an_error_never_a_crash = anywhere::run();
        );
    };
    (@each $flavor:ty: $($test:ident = $module:ident::$run:ident($($arg:expr),*);)*) => {
        $(
            #[test]
            fn $test() {
                use $crate::support::hostile::*;
                $module::$run::<$flavor>($($arg),*);
            }
        )*
    };
}
#[allow(unused_imports)]
pub(crate) use hostile_tests;
