//! The wake handshake of every flavor: chosen at creation (the builder's option, else
//! `Handshake::preferred`, which `SHM_IPC_HANDSHAKE=seqcst` forces to the fallback),
//! recorded in the header, followed by whoever attaches (a garbage word is `Corrupted`, a
//! process that cannot register is refused with a typed error), inherited across `fork` —
//! and no wake-up lost across `fork`, in either mode, for any flavor.
//!
//! # The lost-wake-up stress
//!
//! Two processes exchange messages through a channel pair (ping-pong: the data events of
//! both directions) or stream through a one-message ring (the space event: the sender
//! parks on a full ring before nearly every message). Waits are parked
//! (`WaitStrategy::Park`), except one in four that spins so that its answer comes within a
//! microsecond; each side pauses at random (0–20 µs) before it waits. Together they make
//! the peer's publication land before, inside or after a waiter's way into its sleep
//! (announce, fence, `membarrier`, re-check, futex): the window the handshake guards.
//!
//! A wake-up the channel loses costs a delay, not a hang: the sleeper re-checks after its
//! 10 ms slice. So each side waits for the answer to what it just published with a bounded
//! wait (`BOUND`, 5 ms: well under the slice, well over a parked round trip). A wait that
//! ends without the answer is classified, without looking at a clock:
//!
//! - *lost* if the peer may have slept waiting for our message (its `try_*` call found
//!   nothing and it parked; it says so in its answer) and our publication made no wake
//!   syscall (`stats()`: it found no waiter announced). With a correct handshake a peer that
//!   announced itself is seen by our check, and one not yet announced sees our message in
//!   its re-check: that combination ending in a slice-long sleep is exactly a lost
//!   wake-up. Asserted 0.
//! - *late* otherwise: the peer was woken (or never slept) and the machine was slow to run
//!   it. Counted and printed, not asserted (tests never assert timings).
//!
//! Each side also counts how the peer met its publication: *woken* (a wake syscall) or
//! *raced* (the peer was on its way into the sleep, nobody announced: the re-check
//! decided). In a debug build on the reference machine a 400 ms configuration runs ~20,000
//! rounds, ~100–300 of them raced per direction in ping-pong and 500–4,000 in the stream.
//!
//! What this can and cannot show: a missing, misplaced or misdirected wake check (no
//! notification, the waiter count loaded before the index is stored, the wrong event) shows
//! at once and in bulk — with the SPSC publisher's wake check removed, one run counted 55
//! lost. That every process follows the header's mode, and that a forked child is
//! registered, is checked directly (`handshake()` in the child, the registration test). The
//! hardware reordering the barrier exists for is rare even when provoked (see `shm_core`'s
//! own stress tests): a clean run is evidence, not proof. A *late* round is miscounted as
//! *lost* only if the peer is preempted for more than `BOUND` in the few instructions
//! between its empty `try_*` and its announcement, with our publication landing in that
//! gap.

use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shm_channel::broadcast::Broadcast;
use shm_channel::mpsc::Mpsc;
use shm_channel::spsc::Spsc;
use shm_channel::{
    Builder, CallError, ChannelError, Flavor, Receiver, SendTimeoutError, Sender, TrySendError,
};
use shm_core::liveness::ProcessIdentity;
use shm_core::notify::{register_process, Handshake, MembarrierError, WaitStrategy, HANDSHAKE_ENV};
use shm_core::{Region, SharedMemory};
use shm_testkit::{fork_child, fork_lock, TestChild};

/// The bounded wait for an answer: a lost wake-up delays it by a 10 ms slice.
const BOUND: Duration = Duration::from_millis(5);
/// The wait after a bounded one ran out, and every other wait: only a hang exceeds it.
const PATIENCE: Duration = Duration::from_secs(20);
/// Wall time per stress configuration, at most (flavors × scenarios × modes: ~5 s).
const BUDGET: Duration = Duration::from_millis(400);
/// Rounds per stress configuration, at most.
const MAX_ROUNDS: u64 = 50_000;
/// The last message's sequence number: tells the child to stop.
const STOP: u64 = u64::MAX;

/// Exit codes of the stress children.
const CHILD_OK: i32 = 0;
const CHILD_WRONG_HANDSHAKE: i32 = 2;
const CHILD_PEER_GONE: i32 = 3;
const CHILD_OUT_OF_ORDER: i32 = 4;
const CHILD_NOT_ADOPTED: i32 = 5;

/// Offsets in the stress's control page: what the child counted.
const CHILD_ROUNDS: usize = 0;
const CHILD_WOKEN: usize = 8;
const CHILD_RACED: usize = 16;
const CHILD_LATE: usize = 24;
const CHILD_LOST: usize = 32;

/// Offset of the handshake word: the status line's, plus 32.
const STATUS_SPSC: usize = 384;
const STATUS_MPSC: usize = 384;
const STATUS_BROADCAST: usize = 256;
const HANDSHAKE_WORD: usize = 32;

/// Whether this process can take part in the membarrier handshake; says so if not.
fn membarrier_usable() -> bool {
    match register_process() {
        Ok(()) => true,
        Err(err) => {
            eprintln!("membarrier handshake unavailable here ({err}): not tested");
            false
        }
    }
}

/// Both handshakes this machine can run.
fn usable_handshakes() -> Vec<Handshake> {
    let mut modes = vec![Handshake::SeqCst];
    if membarrier_usable() {
        modes.push(Handshake::Membarrier);
    }
    modes
}

/// A channel of flavor `F` with `capacity`, parked endpoints and the handshake given (or
/// the default).
fn channel<F: Flavor>(capacity: usize, handshake: Option<Handshake>) -> (Sender<F>, Receiver<F>) {
    let builder = Builder::<F>::new(capacity).wait_strategy(WaitStrategy::Park);
    let builder = match handshake {
        Some(handshake) => builder.handshake(handshake),
        None => builder,
    };
    builder.create().expect("create")
}

// ---------------------------------------------------------------------------------------
// Recording, reporting, attaching.

fn builder_option_is_recorded<F: Flavor>(handshake: Handshake) {
    let (tx, rx) = channel::<F>(1 << 12, Some(handshake));
    assert_eq!(tx.handshake(), handshake, "{}", F::NAME);
    assert_eq!(rx.handshake(), handshake, "{}", F::NAME);
    assert!(format!("{tx:?}").contains(&format!("{handshake:?}")));
}

#[test]
fn the_builder_option_is_the_handshake_of_every_endpoint() {
    for handshake in usable_handshakes() {
        builder_option_is_recorded::<Spsc>(handshake);
        builder_option_is_recorded::<Mpsc>(handshake);
        builder_option_is_recorded::<Broadcast>(handshake);
    }
}

#[test]
fn by_default_a_channel_takes_the_preferred_handshake() {
    let preferred = Handshake::preferred();
    assert_eq!(channel::<Spsc>(1 << 12, None).0.handshake(), preferred);
    assert_eq!(channel::<Mpsc>(1 << 12, None).1.handshake(), preferred);
    assert_eq!(channel::<Broadcast>(1 << 12, None).1.handshake(), preferred);
    // Endpoints made later from a channel's own memory follow it too.
    let (tx, rx) = channel::<Mpsc>(1 << 12, Some(Handshake::SeqCst));
    assert_eq!(tx.try_clone().unwrap().handshake(), Handshake::SeqCst);
    drop(rx);
    let (tx, rx) = channel::<Broadcast>(1 << 12, Some(Handshake::SeqCst));
    assert_eq!(tx.subscribe().unwrap().handshake(), Handshake::SeqCst);
    assert_eq!(rx.try_clone().unwrap().handshake(), Handshake::SeqCst);
}

/// A region for a channel of flavor `F` and 4 KiB capacity, with the calling process's
/// sender created in it (MPSC: the receiver, since senders attach there).
fn region_for<F: Flavor>() -> Arc<dyn SharedMemory> {
    let len = Builder::<F>::new(1 << 12).region_len().unwrap();
    Arc::new(Region::anonymous(len).unwrap())
}

fn attach_follows_the_header<F: Flavor>(handshake: Handshake) {
    // The side that attaches differs by flavor: SPSC and broadcast receivers, MPSC senders.
    let memory = region_for::<F>();
    let builder = Builder::<F>::new(1 << 12).handshake(handshake);
    if F::NAME == "mpsc" {
        let rx = builder.create_receiver_in(memory.clone()).unwrap();
        let tx = Sender::<F>::attach(memory).unwrap();
        assert_eq!((tx.handshake(), rx.handshake()), (handshake, handshake));
    } else {
        let tx = builder.create_sender_in(memory.clone()).unwrap();
        let rx = Receiver::<F>::attach(memory).unwrap();
        assert_eq!((tx.handshake(), rx.handshake()), (handshake, handshake));
    }
}

#[test]
fn attach_follows_the_recorded_handshake() {
    for handshake in usable_handshakes() {
        attach_follows_the_header::<Spsc>(handshake);
        attach_follows_the_header::<Mpsc>(handshake);
        attach_follows_the_header::<Broadcast>(handshake);
    }
}

/// Creates a channel of `F`, overwrites its handshake word (at `status` + 32) with `raw`,
/// and attaches both ways.
fn attach_with_word<F: Flavor>(status: usize, raw: u32) -> [Result<Handshake, ChannelError>; 2] {
    let memory = region_for::<F>();
    let (tx, rx) = Builder::<F>::new(1 << 12)
        .create_in(memory.clone())
        .unwrap();
    memory
        .atomic_u32(status + HANDSHAKE_WORD)
        .unwrap()
        .store(raw, Ordering::SeqCst);
    // Free the sides so that attaching is not refused for being owned here.
    drop((tx, rx));
    [
        Sender::<F>::attach(memory.clone()).map(|tx| tx.handshake()),
        Receiver::<F>::attach(memory).map(|rx| rx.handshake()),
    ]
}

fn garbage_words_are_corrupted<F: Flavor>(status: usize) {
    for raw in [0, 3, 0x100, 0x8000_0001, u32::MAX] {
        for attached in attach_with_word::<F>(status, raw) {
            match attached {
                Err(ChannelError::Corrupted(c)) => {
                    assert_eq!(c.what, "wake handshake word", "{}", F::NAME);
                    assert_eq!(c.value, u64::from(raw));
                }
                other => panic!("{} word {raw:#x}: {other:?}", F::NAME),
            }
        }
    }
    // The offset is right: a valid value attaches and is followed.
    for attached in attach_with_word::<F>(status, Handshake::SeqCst.to_u32()) {
        assert_eq!(attached.unwrap(), Handshake::SeqCst, "{}", F::NAME);
    }
}

#[test]
fn attaching_to_a_garbage_handshake_word_is_corrupted() {
    garbage_words_are_corrupted::<Spsc>(STATUS_SPSC);
    garbage_words_are_corrupted::<Mpsc>(STATUS_MPSC);
    garbage_words_are_corrupted::<Broadcast>(STATUS_BROADCAST);
}

/// `membarrier(MEMBARRIER_CMD_GET_REGISTRATIONS)` (Linux 6.3): the registrations of the
/// calling process, `None` where the kernel does not know the command.
fn membarrier_registrations() -> Option<i64> {
    const MEMBARRIER_CMD_GET_REGISTRATIONS: libc::c_int = 1 << 9;
    // SAFETY: a plain syscall with integer arguments; it touches no memory of ours.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            MEMBARRIER_CMD_GET_REGISTRATIONS,
            0 as libc::c_uint,
            0 as libc::c_int,
        )
    };
    (ret >= 0).then_some(ret)
}

#[test]
fn membarrier_registration_is_inherited_by_a_forked_child() {
    // What `adopt` relies on to do nothing for the handshake: a child forked from a process
    // that uses a membarrier channel is registered without asking.
    const MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED: i64 = 1 << 2;
    if !membarrier_usable() {
        return;
    }
    let Some(here) = membarrier_registrations() else {
        eprintln!("MEMBARRIER_CMD_GET_REGISTRATIONS unsupported (Linux < 6.3): not checked");
        return;
    };
    assert_ne!(
        here & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED,
        0,
        "{here:#x}"
    );
    let (tx, rx) = channel::<Spsc>(1 << 12, Some(Handshake::Membarrier));
    let lock = fork_lock();
    let child = fork_child(&lock, || {
        // Nothing registers here: no `Handshake::prepare`, no attach.
        match membarrier_registrations() {
            Some(mask) if mask & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED != 0 => 0,
            Some(_) => 1,
            None => 2,
        }
    });
    assert_eq!(child.wait(), 0, "the forked child is not registered");
    drop((tx, rx));
}

/// Makes every later `membarrier` call of this process fail with `EPERM`, as a sandbox
/// would. Irreversible: call it in a forked child only.
fn refuse_membarrier() -> bool {
    let statement = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    // Offset 0 of `struct seccomp_data` is the syscall number. (No architecture check: a
    // filter in a test child, not a security boundary.)
    let filter = [
        statement(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, 0),
        statement(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            0,
            1,
            libc::SYS_membarrier as u32,
        ),
        statement(
            libc::BPF_RET | libc::BPF_K,
            0,
            0,
            libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        ),
        statement(libc::BPF_RET | libc::BPF_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ];
    let program = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: plain prctl calls; `program` points to a valid filter on our stack, which the
    // kernel copies before returning.
    unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
            && libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &program as *const libc::sock_fprog,
            ) == 0
    }
}

/// Child exit codes of the refusal test.
const NO_SECCOMP: i32 = 10;
const ATTACH_NOT_REFUSED: i32 = 11;
const CREATE_NOT_REFUSED: i32 = 12;
const FALLBACK_FAILED: i32 = 13;
const SEQCST_ATTACH_FAILED: i32 = 14;

fn refused_attach<F: Flavor>(membarrier: &Arc<dyn SharedMemory>) -> bool {
    let attached = if F::NAME == "mpsc" {
        Sender::<F>::attach(membarrier.clone()).map(drop)
    } else {
        Receiver::<F>::attach(membarrier.clone()).map(drop)
    };
    matches!(
        attached,
        Err(ChannelError::Handshake(MembarrierError::Refused(_)))
    )
}

/// A region holding a channel of `F` with `handshake` whose attaching side is free.
fn waiting_for_attach<F: Flavor>(handshake: Handshake) -> (Arc<dyn SharedMemory>, TestHalf<F>) {
    let memory = region_for::<F>();
    let builder = Builder::<F>::new(1 << 12).handshake(handshake);
    let half = if F::NAME == "mpsc" {
        TestHalf::Receiver(builder.create_receiver_in(memory.clone()).unwrap())
    } else {
        TestHalf::Sender(builder.create_sender_in(memory.clone()).unwrap())
    };
    (memory, half)
}

/// The creator's half of a channel waiting for the other to attach.
#[allow(dead_code)] // held only to keep the creator's side owned
enum TestHalf<F: Flavor> {
    Sender(Sender<F>),
    Receiver(Receiver<F>),
}

#[test]
fn a_process_that_cannot_register_is_refused_with_a_typed_error() {
    if !membarrier_usable() {
        return;
    }
    let channels = (
        waiting_for_attach::<Spsc>(Handshake::Membarrier),
        waiting_for_attach::<Mpsc>(Handshake::Membarrier),
        waiting_for_attach::<Broadcast>(Handshake::Membarrier),
        waiting_for_attach::<Spsc>(Handshake::SeqCst),
    );
    let lock = fork_lock();
    let child = fork_child(&lock, || {
        if !refuse_membarrier() {
            return NO_SECCOMP;
        }
        // The child inherited the registration, but the kernel now refuses the calls that
        // confirm it: attaching to a membarrier channel must fail, and say why.
        if !(refused_attach::<Spsc>(&channels.0 .0)
            && refused_attach::<Mpsc>(&channels.1 .0)
            && refused_attach::<Broadcast>(&channels.2 .0))
        {
            return ATTACH_NOT_REFUSED;
        }
        let forced = Builder::<Spsc>::new(1 << 12)
            .handshake(Handshake::Membarrier)
            .create();
        if !matches!(
            forced,
            Err(ChannelError::Handshake(MembarrierError::Refused(_)))
        ) {
            return CREATE_NOT_REFUSED;
        }
        // By default a channel falls back, and a SeqCst channel can be joined.
        match Builder::<Spsc>::new(1 << 12).create() {
            Ok((tx, _rx)) if tx.handshake() == Handshake::SeqCst => {}
            _ => return FALLBACK_FAILED,
        }
        match Receiver::<Spsc>::attach(channels.3 .0.clone()) {
            Ok(rx) if rx.handshake() == Handshake::SeqCst => 0,
            _ => SEQCST_ATTACH_FAILED,
        }
    });
    match child.wait() {
        0 => {}
        NO_SECCOMP => eprintln!("seccomp filters refused here: refusal not tested"),
        code => panic!("child failed with {code}"),
    }
    drop(channels);
}

/// Messages of the attach-across-fork test.
const ATTACHED_MESSAGES: u64 = 200;

/// Waits (sleeping, at most `PATIENCE`) until `flag` is set by the child.
fn wait_for(flag: &std::sync::atomic::AtomicU64) {
    let deadline = Instant::now() + PATIENCE;
    while flag.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A forked child attaches to a channel of `F` created with `handshake` (not adopting the
/// parent's endpoint: reading the header afresh) and exchanges messages with the parent,
/// parked, every other message after a pause long enough for the waiter to sleep.
fn attached_child_follows_the_header<F: Flavor>(handshake: Handshake)
where
    F::RecvTimeoutError: CallError,
{
    let memory = region_for::<F>();
    let control = Region::anonymous(4096).unwrap();
    let joined = control.atomic_u64(0).unwrap();
    let builder = Builder::<F>::new(1 << 12)
        .handshake(handshake)
        .wait_strategy(WaitStrategy::Park);
    let nap = || std::thread::sleep(Duration::from_micros(200));
    let lock = fork_lock();
    if F::NAME == "mpsc" {
        // The attaching side is a sender: the child sends, the parent receives.
        let mut rx = builder.create_receiver_in(memory.clone()).unwrap();
        let child = fork_child(&lock, || {
            let Ok(mut tx) = Sender::<F>::attach(memory.clone()) else {
                return CHILD_NOT_ADOPTED;
            };
            joined.store(1, Ordering::SeqCst);
            if tx.handshake() != handshake {
                return CHILD_WRONG_HANDSHAKE;
            }
            for seq in 0..ATTACHED_MESSAGES {
                if seq % 2 == 0 {
                    nap();
                }
                if tx.send_timeout(&encode(seq, false), PATIENCE).is_err() {
                    return CHILD_PEER_GONE;
                }
            }
            CHILD_OK
        });
        // With no sender attached yet, the receiver would be told "disconnected".
        wait_for(joined);
        let mut buf = [0u8; 16];
        for seq in 0..ATTACHED_MESSAGES {
            let len = rx.recv_into_timeout(&mut buf, PATIENCE).unwrap();
            assert_eq!(decode(&buf[..len]).map(|m| m.0), Some(seq), "{}", F::NAME);
        }
        assert_eq!(child.wait(), CHILD_OK, "{} {handshake:?}", F::NAME);
    } else {
        // The attaching side is a receiver: the parent sends, the child receives.
        let mut tx = builder.create_sender_in(memory.clone()).unwrap();
        let child = fork_child(&lock, || {
            let Ok(mut rx) = Receiver::<F>::attach(memory.clone()) else {
                return CHILD_NOT_ADOPTED;
            };
            rx.set_wait_strategy(WaitStrategy::Park);
            joined.store(1, Ordering::SeqCst);
            if rx.handshake() != handshake {
                return CHILD_WRONG_HANDSHAKE;
            }
            let mut buf = [0u8; 16];
            for seq in 0..ATTACHED_MESSAGES {
                match rx.recv_into_timeout(&mut buf, PATIENCE) {
                    Ok(len) if decode(&buf[..len]).map(|m| m.0) == Some(seq) => {}
                    Ok(_) => return CHILD_OUT_OF_ORDER,
                    Err(_) => return CHILD_PEER_GONE,
                }
            }
            CHILD_OK
        });
        // A broadcast receiver sees only what is sent after it joined.
        wait_for(joined);
        for seq in 0..ATTACHED_MESSAGES {
            if seq % 2 == 0 {
                nap();
            }
            tx.send_timeout(&encode(seq, false), PATIENCE).unwrap();
        }
        assert_eq!(child.wait(), CHILD_OK, "{} {handshake:?}", F::NAME);
    }
}

#[test]
fn a_forked_child_that_attaches_follows_the_header() {
    for handshake in usable_handshakes() {
        attached_child_follows_the_header::<Spsc>(handshake);
        attached_child_follows_the_header::<Mpsc>(handshake);
        attached_child_follows_the_header::<Broadcast>(handshake);
    }
}

// ---------------------------------------------------------------------------------------
// The lost-wake-up stress.

/// What one side saw: rounds done; how the peer met our publication: woken by its wake
/// syscall, or on its way into the sleep with nobody announced (`raced`: the handshake's
/// re-check decides); waits that ended without the answer.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    rounds: u64,
    woken: u64,
    raced: u64,
    late: u64,
    lost: u64,
}

impl Tally {
    /// Counts how the peer, which waited for our publication if `peer_waited`, met it.
    fn met(&mut self, woke: bool, peer_waited: bool) {
        if woke {
            self.woken += 1;
        } else if peer_waited {
            self.raced += 1;
        }
    }
}

/// xorshift64: parent and child each have their own, cheap and allocation-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// The strategy of our next wait: parked, except one time in four spinning, so that
    /// our answer comes within a microsecond of the peer's message, just as the peer
    /// heads for its own sleep (the window the handshake guards).
    fn strategy(&mut self) -> WaitStrategy {
        match self.next() % 4 {
            0 => WaitStrategy::Spin,
            _ => WaitStrategy::Park,
        }
    }

    /// Busy-waits 0–20 µs (nothing, one time in four): the scale of the peer's way into its
    /// sleep after its own publication, so that ours lands all over that way.
    fn pause(&mut self) {
        let r = self.next();
        if r % 4 == 0 {
            return;
        }
        let until = Instant::now() + Duration::from_nanos((r >> 8) % 20_000);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
    }
}

/// A message: its sequence number, and whether its sender had to wait for the message it
/// answers (its `try_*` found nothing: it went to sleep, or was about to).
fn encode(seq: u64, waited: bool) -> [u8; 16] {
    let mut msg = [0u8; 16];
    msg[..8].copy_from_slice(&seq.to_le_bytes());
    msg[8] = u8::from(waited);
    msg
}

fn decode(msg: &[u8]) -> Option<(u64, bool)> {
    let seq = u64::from_le_bytes(msg.get(..8)?.try_into().ok()?);
    Some((seq, *msg.get(8)? != 0))
}

/// Receives the answer to our last publication, which made a wake syscall if `woke`,
/// waiting with `strategy`: `(sequence number, the peer waited, we waited)`. A bounded
/// wait that ends without it is counted in `tally`, as lost or late (see the module docs).
/// `None` if the channel failed.
fn receive<F: Flavor>(
    rx: &mut Receiver<F>,
    strategy: WaitStrategy,
    woke: bool,
    tally: &mut Tally,
) -> Option<(u64, bool, bool)>
where
    F::TryRecvError: CallError,
    F::RecvTimeoutError: CallError,
{
    let mut buf = [0u8; 16];
    rx.set_wait_strategy(strategy);
    // A spinning wait never sleeps, so it cannot lose a wake-up: it does not count as
    // having waited.
    let may_sleep = strategy == WaitStrategy::Park;
    let (len, we_waited) = match rx.try_recv_into(&mut buf) {
        Ok(len) => (len, false),
        Err(err) if err.is_fatal() => return None,
        Err(_empty) => match rx.recv_into_timeout(&mut buf, BOUND) {
            Ok(len) => (len, may_sleep),
            Err(err) if err.is_fatal() => return None,
            Err(_timeout) => {
                let len = rx.recv_into_timeout(&mut buf, PATIENCE).ok()?;
                let (_, peer_waited) = decode(&buf[..len])?;
                if peer_waited && !woke {
                    tally.lost += 1;
                } else {
                    tally.late += 1;
                }
                (len, may_sleep)
            }
        },
    };
    let (seq, peer_waited) = decode(&buf[..len])?;
    tally.met(woke, peer_waited);
    Some((seq, peer_waited, we_waited))
}

/// Sends `msg`; whether the send made a wake syscall.
fn send<F: Flavor>(tx: &mut Sender<F>, msg: &[u8]) -> Option<bool> {
    let before = tx.stats().wake_syscalls;
    tx.send_timeout(msg, PATIENCE).ok()?;
    Some(tx.stats().wake_syscalls != before)
}

/// The child's counts, from the control page.
fn child_tally(control: &Region) -> Tally {
    let word = |offset| control.atomic_u64(offset).unwrap().load(Ordering::SeqCst);
    Tally {
        rounds: word(CHILD_ROUNDS),
        woken: word(CHILD_WOKEN),
        raced: word(CHILD_RACED),
        late: word(CHILD_LATE),
        lost: word(CHILD_LOST),
    }
}

fn report_child_tally(control: &Region, tally: &Tally) {
    let word = |offset| control.atomic_u64(offset).unwrap();
    word(CHILD_ROUNDS).store(tally.rounds, Ordering::SeqCst);
    word(CHILD_WOKEN).store(tally.woken, Ordering::SeqCst);
    word(CHILD_RACED).store(tally.raced, Ordering::SeqCst);
    word(CHILD_LATE).store(tally.late, Ordering::SeqCst);
    word(CHILD_LOST).store(tally.lost, Ordering::SeqCst);
}

/// Hands `endpoint`s over to `child` and drops the parent's copies (not owners any more,
/// so dropping them disconnects nothing).
fn hand_over<F: Flavor>(child: &TestChild, tx: Option<Sender<F>>, rx: Option<Receiver<F>>) {
    let to = ProcessIdentity::of_pid(child.pid()).unwrap();
    if let Some(tx) = tx {
        tx.hand_over(to).unwrap();
    }
    if let Some(rx) = rx {
        rx.hand_over(to).unwrap();
    }
}

/// Ping-pong between parent and a forked child over two channels of flavor `F`, both
/// sides parked: probes the data events of both directions. Returns parent and child
/// tallies.
fn ping_pong<F: Flavor>(handshake: Option<Handshake>, expected: Handshake) -> (Tally, Tally)
where
    F::TryRecvError: CallError,
    F::RecvTimeoutError: CallError,
{
    let (mut ping_tx, ping_rx) = channel::<F>(1 << 12, handshake);
    let (pong_tx, mut pong_rx) = channel::<F>(1 << 12, handshake);
    assert_eq!(ping_tx.handshake(), expected, "{}", F::NAME);
    assert_eq!(pong_rx.handshake(), expected, "{}", F::NAME);
    let control = Region::anonymous(4096).unwrap();
    let (mut ping_rx, mut pong_tx) = (Some(ping_rx), Some(pong_tx));
    let lock = fork_lock();
    let child = fork_child(&lock, || {
        let (mut rx, mut tx) = (ping_rx.take().unwrap(), pong_tx.take().unwrap());
        if rx.adopt().is_err() || tx.adopt().is_err() {
            return CHILD_NOT_ADOPTED;
        }
        if rx.handshake() != expected || tx.handshake() != expected {
            return CHILD_WRONG_HANDSHAKE;
        }
        let (mut rng, mut tally) = (Rng(0x2545_f491_4f6c_dd1d), Tally::default());
        let mut woke = true; // nothing sent yet: nothing to classify
        let code = loop {
            rng.pause();
            let strategy = rng.strategy();
            let Some((seq, _, waited)) = receive(&mut rx, strategy, woke, &mut tally) else {
                break CHILD_PEER_GONE;
            };
            if seq == STOP {
                break CHILD_OK;
            }
            if seq != tally.rounds + 1 {
                break CHILD_OUT_OF_ORDER;
            }
            tally.rounds = seq;
            match send(&mut tx, &encode(seq, waited)) {
                Some(w) => woke = w,
                None => break CHILD_PEER_GONE,
            }
        };
        report_child_tally(&control, &tally);
        code
    });
    hand_over(&child, None, ping_rx.take());
    hand_over(&child, pong_tx.take(), None);

    let (mut rng, mut tally) = (Rng(0x9e37_79b9_7f4a_7c15), Tally::default());
    let started = Instant::now();
    let mut waited = false;
    for seq in 1..=MAX_ROUNDS {
        if started.elapsed() >= BUDGET {
            break;
        }
        let woke = send(&mut ping_tx, &encode(seq, waited)).expect("ping");
        rng.pause();
        let strategy = rng.strategy();
        let (answer, _, we_waited) =
            receive(&mut pong_rx, strategy, woke, &mut tally).expect("pong");
        assert_eq!(answer, seq, "{}: pong out of order", F::NAME);
        waited = we_waited;
        tally.rounds = seq;
    }
    send(&mut ping_tx, &encode(STOP, waited)).expect("stop");
    assert_eq!(
        child.wait(),
        CHILD_OK,
        "{} ping-pong: child failed",
        F::NAME
    );
    (tally, child_tally(&control))
}

/// A message of the one-slot stream: 8 bytes, so that one frame fills the smallest ring
/// of every flavor (SPSC and MPSC 16 bytes, broadcast 32).
fn encode_small(seq: u32, waited: bool) -> [u8; 8] {
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&seq.to_le_bytes());
    msg[4] = u8::from(waited);
    msg
}

/// Capacity of a ring that holds exactly one 8-byte message.
fn one_slot<F: Flavor>() -> usize {
    if F::NAME == "broadcast" {
        32
    } else {
        16
    }
}

/// The parent streams into a ring that holds one message; the forked child receives, so
/// the parent parks on a full ring before nearly every message: probes the space event.
/// The child's bounded waits are what time out when the parent's wake-up is lost.
fn one_slot_stream<F: Flavor>(handshake: Option<Handshake>, expected: Handshake) -> (Tally, Tally)
where
    F::TryRecvError: CallError,
    F::RecvTimeoutError: CallError,
{
    const STOP_SMALL: u32 = u32::MAX;
    let (mut tx, rx) = channel::<F>(one_slot::<F>(), handshake);
    assert_eq!(tx.handshake(), expected, "{}", F::NAME);
    let control = Region::anonymous(4096).unwrap();
    let mut rx = Some(rx);
    let lock = fork_lock();
    let child = fork_child(&lock, || {
        let mut rx = rx.take().unwrap();
        if rx.adopt().is_err() {
            return CHILD_NOT_ADOPTED;
        }
        if rx.handshake() != expected {
            return CHILD_WRONG_HANDSHAKE;
        }
        let (mut rng, mut tally) = (Rng(0x2545_f491_4f6c_dd1d), Tally::default());
        // Whether our last release woke the sender (the "publication" it waits on).
        let mut woke = true;
        let mut buf = [0u8; 8];
        let code = loop {
            rx.set_wait_strategy(rng.strategy());
            rng.pause();
            let before = rx.stats().wake_syscalls;
            // As `receive`, on 8-byte messages.
            let got = match rx.try_recv_into(&mut buf) {
                Ok(len) => Some(len),
                Err(err) if err.is_fatal() => break CHILD_PEER_GONE,
                Err(_empty) => match rx.recv_into_timeout(&mut buf, BOUND) {
                    Ok(len) => Some(len),
                    Err(err) if err.is_fatal() => break CHILD_PEER_GONE,
                    Err(_timeout) => None,
                },
            };
            let len = match got {
                Some(len) => len,
                None => {
                    let Ok(len) = rx.recv_into_timeout(&mut buf, PATIENCE) else {
                        break CHILD_PEER_GONE;
                    };
                    let sender_waited = len == 8 && buf[4] != 0;
                    if sender_waited && !woke {
                        tally.lost += 1;
                    } else {
                        tally.late += 1;
                    }
                    len
                }
            };
            if len != 8 {
                break CHILD_OUT_OF_ORDER;
            }
            tally.met(woke, buf[4] != 0);
            woke = rx.stats().wake_syscalls != before;
            let seq = u32::from_le_bytes(buf[..4].try_into().unwrap());
            if seq == STOP_SMALL {
                break CHILD_OK;
            }
            if u64::from(seq) != tally.rounds + 1 {
                break CHILD_OUT_OF_ORDER;
            }
            tally.rounds = seq.into();
        };
        report_child_tally(&control, &tally);
        code
    });
    hand_over(&child, None, rx.take());

    let (mut rng, mut tally) = (Rng(0x9e37_79b9_7f4a_7c15), Tally::default());
    let started = Instant::now();
    let mut send_one = |seq: u32| {
        match tx.try_send(&encode_small(seq, false)) {
            Ok(()) => return,
            Err(TrySendError::Full(())) => {}
            Err(err) => panic!("{}: {err}", F::NAME),
        }
        match tx.send_timeout(&encode_small(seq, true), PATIENCE) {
            Ok(()) => {}
            Err(SendTimeoutError::Timeout(())) => panic!("{}: receiver stuck", F::NAME),
            Err(err) => panic!("{}: {err}", F::NAME),
        }
    };
    for seq in 1..=MAX_ROUNDS as u32 {
        if started.elapsed() >= BUDGET {
            break;
        }
        send_one(seq);
        tally.rounds = seq.into();
        rng.pause();
    }
    send_one(STOP_SMALL);
    assert_eq!(child.wait(), CHILD_OK, "{} stream: child failed", F::NAME);
    (tally, child_tally(&control))
}

/// Runs both scenarios for every flavor with `handshake` (`None`: the default) and checks
/// every endpoint used `expected` and nothing was lost.
fn assert_nothing_lost(handshake: Option<Handshake>, expected: Handshake) {
    let mut lost = Vec::new();
    let mut check = |what: &str, (parent, child): (Tally, Tally)| {
        eprintln!("{expected:?} {what}: parent {parent:?}, child {child:?}");
        assert!(parent.rounds > 0 && child.rounds > 0, "{what}: no round");
        if parent.lost + child.lost > 0 {
            lost.push(format!("{what}: {} lost", parent.lost + child.lost));
        }
    };
    check("spsc ping-pong", ping_pong::<Spsc>(handshake, expected));
    check("mpsc ping-pong", ping_pong::<Mpsc>(handshake, expected));
    check(
        "broadcast ping-pong",
        ping_pong::<Broadcast>(handshake, expected),
    );
    check("spsc stream", one_slot_stream::<Spsc>(handshake, expected));
    check("mpsc stream", one_slot_stream::<Mpsc>(handshake, expected));
    check(
        "broadcast stream",
        one_slot_stream::<Broadcast>(handshake, expected),
    );
    assert!(lost.is_empty(), "{expected:?}: lost wake-ups: {lost:?}");
}

#[test]
fn no_wake_up_is_lost_across_fork_with_the_membarrier_handshake() {
    if !membarrier_usable() {
        return;
    }
    assert_nothing_lost(Some(Handshake::Membarrier), Handshake::Membarrier);
}

#[test]
fn no_wake_up_is_lost_across_fork_with_the_seqcst_handshake_forced_by_the_builder() {
    assert_nothing_lost(Some(Handshake::SeqCst), Handshake::SeqCst);
}

/// Set in the re-executed test process.
const RERUN: &str = "SHM_CHANNEL_TEST_HANDSHAKE_RERUN";
const ENV_TEST: &str =
    "no_wake_up_is_lost_across_fork_with_the_seqcst_handshake_forced_by_the_environment";

#[test]
fn no_wake_up_is_lost_across_fork_with_the_seqcst_handshake_forced_by_the_environment() {
    if std::env::var_os(RERUN).is_some() {
        // The re-executed process, with `SHM_IPC_HANDSHAKE=seqcst`: default builders.
        assert_nothing_lost(None, Handshake::SeqCst);
        return;
    }
    // Run this binary again with the variable set, so the harness's own environment is
    // never changed (`set_var` in a multi-threaded process races every `getenv`).
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", ENV_TEST, "--test-threads=1", "--nocapture"])
        .env(RERUN, "1")
        .env(HANDSHAKE_ENV, "seqcst")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stderr}");
    assert!(output.status.success(), "re-run failed\n{stdout}\n{stderr}");
    // The filter must have matched the test, or the run proves nothing.
    assert!(stdout.contains("1 passed"), "{stdout}");
}
