//! The wake handshake of every flavor: chosen at creation (the builder's option, else
//! `Handshake::preferred`, which `SHM_IPC_HANDSHAKE=seqcst` forces to the fallback),
//! recorded in the header, followed by whoever attaches (a garbage word is `Corrupted`, a
//! process that cannot register is refused with a typed error), inherited across `fork`.
//! The lost-wake-up stress of both modes is in `handshake_stress.rs`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shm_channel::broadcast::Broadcast;
use shm_channel::mpsc::Mpsc;
use shm_channel::spsc::Spsc;
use shm_channel::Endpoint;
use shm_channel::{Builder, ChannelError, Flavor, Receiver, Sender};
use shm_core::notify::{Handshake, MembarrierError, WaitStrategy};
use shm_core::{Region, SharedMemory};
use shm_testkit::{fork_child, fork_lock};

mod support;
use support::handshake::{
    channel, decode, encode, membarrier_usable, CHILD_NOT_ADOPTED, CHILD_OK, CHILD_OUT_OF_ORDER,
    CHILD_PEER_GONE, CHILD_WRONG_HANDSHAKE, PATIENCE,
};

/// Offset of the handshake word: the status line's, plus 32.
const STATUS_SPSC: usize = 384;
const STATUS_MPSC: usize = 128;
const STATUS_BROADCAST: usize = 256;
const HANDSHAKE_WORD: usize = 32;

/// Runs `$check::<F>(handshake)` for every flavor `F` with every handshake this machine
/// can run.
macro_rules! for_every_flavor_and_usable_handshake {
    ($check:ident) => {
        for handshake in usable_handshakes() {
            $check::<Spsc>(handshake);
            $check::<Mpsc>(handshake);
            $check::<Broadcast>(handshake);
        }
    };
}

/// Both handshakes this machine can run.
fn usable_handshakes() -> Vec<Handshake> {
    let mut modes = vec![Handshake::SeqCst];
    if membarrier_usable() {
        modes.push(Handshake::Membarrier);
    }
    modes
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
    for_every_flavor_and_usable_handshake!(builder_option_is_recorded);
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
    for_every_flavor_and_usable_handshake!(attach_follows_the_header);
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
        if !shm_testkit::refuse_membarrier() {
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
fn attached_child_follows_the_header<F: Flavor>(handshake: Handshake) {
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
            let len = rx
                .read_timeout(PATIENCE)
                .map(|grant| grant.copy_to(&mut buf))
                .unwrap();
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
                match rx
                    .read_timeout(PATIENCE)
                    .map(|grant| grant.copy_to(&mut buf))
                {
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
    for_every_flavor_and_usable_handshake!(attached_child_follows_the_header);
}
