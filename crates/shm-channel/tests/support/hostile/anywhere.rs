//! Garbage anywhere: random words of a channel's memory (header, indices, slots, frame
//! headers, payloads) overwritten with values of the kit's set, between operations, in a
//! forked victim on a guarded mapping.

use shm_core::SharedMemory;
use shm_testkit::garbage::values;
use shm_testkit::layout::Word;
use shm_testkit::{fork_child, fork_lock, ControlPage, Rng, Words};

use super::{
    drive, guarded, layout_len, warmed, Bounded, Case, Findings, Kind, Kinds, Subject, CAP,
};
use crate::support::Mem;

/// Writes garbage into `count` random 8-aligned words of the first `len` bytes of
/// `memory`, biased towards the control block, where most of the interesting words are.
pub fn scatter(memory: &dyn SharedMemory, len: usize, count: usize, rng: &mut Rng) {
    let values = values(CAP);
    for _ in 0..count {
        let r = rng.next_u64();
        let span = if r % 2 == 0 { 1024.min(len) } else { len };
        let offset = ((r >> 8) as usize % span) & !7;
        let garbage = *rng.pick(&values);
        Mem(memory).poke(Word::u64("random word", offset), garbage);
    }
}

/// 400 rounds, each on a fresh channel warmed up through every endpoint: garbage in one to
/// four random words, then every call of every endpoint. The forked victim must exit
/// cleanly (no fault, no panic, no call past its bound).
pub fn run<F: Subject>() {
    let control = ControlPage::new();
    let lock = fork_lock();
    let child = fork_child(&lock, || {
        let memory = guarded::<F>();
        let mut rng = Rng::new(0x7777_1234_5678_9abc);
        let (mut kinds, mut findings) = (Kinds::default(), Findings::default());
        for round in 0..400usize {
            let (mut tx, mut rx, mut others) = warmed::<F>(&memory, round, false);
            scatter(&*memory, layout_len::<F>(), 1 + round % 4, &mut rng);
            let case = Case::loose::<F>("garbage anywhere", round);
            let mut check = Bounded {
                case,
                findings: &mut findings,
            };
            drive(&mut tx, &mut rx, &memory, 2, &mut kinds, &mut check);
            others.drive(&mut kinds, &mut check);
        }
        control.set(8, kinds.refused() + kinds.get(Kind::Corrupted));
        findings.assert_none("garbage anywhere");
        0
    });
    let status = child.wait();
    assert_eq!(
        status, 0,
        "victim exited with {status} (139 = SIGSEGV, 101 = panic or finding)"
    );
    eprintln!(
        "{}: {} typed errors from garbage",
        <F as Subject>::NAME,
        control.get(8)
    );
}
