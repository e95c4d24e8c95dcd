//! Regressions of the defects that three copies of the endpoint machinery let in (found in
//! the review that merged them into the one endpoint core), each named after what broke,
//! and each run for every flavor it applies to: the fix now lives once, in the endpoint
//! core or the ring, and these prove every flavor has it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shm_channel::broadcast::{self, Broadcast, Policy};
use shm_channel::mpsc::{self, Mpsc};
use shm_channel::spsc::{self, Spsc};
use shm_channel::{
    typed, Builder, ChannelError, Flavor, OwnershipError, Receiver, RecvError, RecvIntoError,
    RecvTimeoutError, Sender, TryRecvError, TrySendError,
};
use shm_core::liveness::ProcessIdentity;
use shm_core::{HeapRegion, SharedMemory};
use shm_testkit::{fork_child, fork_lock};

/// A call that takes longer than this has hung (generous: the machine is shared).
const BOUND: Duration = Duration::from_secs(10);

mod support;
use support::adopted_by_idle_child;

use shm_channel::CallError;
use shm_channel::Endpoint;
use shm_channel::SendError;
/// Control block offsets, from the test kit (checked against live channels by
/// `kit_layout.rs`).
use shm_testkit::layout::broadcast::{
    DATA as BCAST_DATA, NEXT_SEQ as BCAST_NEXT_SEQ, OLDEST as BCAST_OLDEST, TAIL as BCAST_TAIL,
};
use shm_testkit::layout::mpsc::{
    slot as mpsc_slot, SENDERS as MPSC_SENDERS, SLOT_HEAD as MPSC_HEAD, SLOT_TAIL as MPSC_TAIL,
};

fn poke(memory: &dyn SharedMemory, offset: usize, value: u64) {
    memory
        .atomic_u64(offset)
        .unwrap()
        .store(value, Ordering::SeqCst);
}

// ---------------------------------------------------------------------------------------
// A full ring whose receiver died: the non-blocking send must find out (before the merge,
// the broadcast sender never checked liveness on its own, and `try_send` stayed `Full`).
// ---------------------------------------------------------------------------------------

/// Fills the ring with `try_send`, kills the process that owns the receiver, then polls
/// `try_send` until it says something other than `Full`.
fn try_send_after_receiver_killed<F: Flavor>(
    (mut tx, rx): (Sender<F>, Receiver<F>),
) -> Result<(), TrySendError<()>> {
    let child = adopted_by_idle_child(rx);
    let mut sent = 0;
    while tx.try_send(&[7; 8]).is_ok() {
        sent += 1;
        assert!(sent <= tx.capacity(), "a full ring kept taking messages");
    }
    child.kill();
    child.wait();
    let start = Instant::now();
    loop {
        match tx.try_send(&[8; 8]) {
            Err(TrySendError::Full(())) if start.elapsed() < BOUND => {
                std::thread::sleep(Duration::from_millis(1))
            }
            other => return other,
        }
    }
}

#[test]
fn try_send_on_a_full_ring_reports_a_dead_receiver_spsc() {
    let result = try_send_after_receiver_killed(spsc::channel(256).unwrap());
    assert_eq!(result, Err(TrySendError::Send(SendError::PeerDied(()))));
}

#[test]
fn try_send_on_a_full_ring_reports_a_dead_receiver_mpsc() {
    let result = try_send_after_receiver_killed(mpsc::channel(256).unwrap());
    assert_eq!(result, Err(TrySendError::Send(SendError::PeerDied(()))));
}

#[test]
fn broadcast_try_send_recovers_from_a_dead_reader() {
    // With its only reader dead, a back-pressure channel has room again (nobody is left to
    // read, so messages are dropped, as with no reader at all).
    let channel = broadcast::channel(256, Policy::BackPressure).unwrap();
    assert_eq!(try_send_after_receiver_killed(channel), Ok(()));
}

// ---------------------------------------------------------------------------------------
// Peer-written values that made an MPSC receiver wait for ever.
// ---------------------------------------------------------------------------------------

/// An MPSC channel on the heap, with its memory.
fn heap_mpsc(capacity: usize) -> (Sender<Mpsc>, Receiver<Mpsc>, Arc<HeapRegion>) {
    let builder = Builder::<Mpsc>::new(capacity);
    let heap = Arc::new(HeapRegion::new(builder.region_len().unwrap()).unwrap());
    let (tx, rx) = builder.create_in(heap.clone()).unwrap();
    (tx, rx, heap)
}

/// Runs a blocking `recv` on another thread; its result, or `None` if it did not return
/// within the bound.
fn blocking_recv(mut rx: Receiver<Mpsc>) -> Option<Result<Vec<u8>, RecvError>> {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(rx.recv());
    });
    done_rx.recv_timeout(BOUND).ok()
}

#[test]
fn mpsc_garbage_sender_count_does_not_keep_recv_waiting() {
    for garbage in [1, 7, u64::from(u32::MAX)] {
        let (tx, mut rx, heap) = heap_mpsc(1024);
        drop(tx); // no sender process is left ...
        poke(&*heap, MPSC_SENDERS, garbage); // ... whatever the count says
        let timed = rx.recv_timeout(BOUND);
        assert_eq!(
            timed,
            Err(RecvTimeoutError::Recv(RecvError::Disconnected)),
            "count {garbage}"
        );
        let blocked = blocking_recv(rx).expect("recv blocked for ever on a garbage count");
        assert_eq!(blocked, Err(RecvError::Disconnected), "count {garbage}");
    }
}

// ---------------------------------------------------------------------------------------
// Index arithmetic near the end of the u64 space (panicked in debug builds in MPSC and
// broadcast; SPSC has its own test in index_overflow.rs).
// ---------------------------------------------------------------------------------------

/// Attaches a sender and a receiver of `F` to `heap` (a channel whose endpoints were
/// dropped, its positions since poked near `u64::MAX`) and sends through the wrap.
fn wraps_past_u64_max<F: Flavor>(heap: Arc<HeapRegion>) {
    let memory: Arc<dyn SharedMemory> = heap;
    let mut tx = Sender::<F>::attach(memory.clone()).unwrap();
    let mut rx = Receiver::<F>::attach(memory).unwrap();
    for i in 0..40u8 {
        tx.try_send(&[i; 24]).unwrap();
        assert_eq!(rx.try_recv().unwrap(), [i; 24], "{}", F::NAME);
    }
}

#[test]
fn mpsc_positions_near_u64_max_wrap_without_panicking() {
    let (tx, rx, heap) = heap_mpsc(256);
    drop((tx, rx));
    let near_end = u64::MAX - 63;
    // Lane 0, which the attaching sender takes.
    poke(&*heap, mpsc_slot(0) + MPSC_TAIL, near_end);
    poke(&*heap, mpsc_slot(0) + MPSC_HEAD, near_end);
    wraps_past_u64_max::<Mpsc>(heap);
}

#[test]
fn broadcast_positions_near_u64_max_wrap_without_panicking() {
    let heap = Arc::new(HeapRegion::new(BCAST_DATA + 256).unwrap());
    let (tx, rx) = Builder::<Broadcast>::new(256)
        .create_in(heap.clone())
        .unwrap();
    drop((tx, rx));
    let near_end = u64::MAX - 63;
    poke(&*heap, BCAST_TAIL, near_end);
    poke(&*heap, BCAST_OLDEST, near_end);
    poke(&*heap, BCAST_NEXT_SEQ, 1000);
    wraps_past_u64_max::<Broadcast>(heap);
}

// ---------------------------------------------------------------------------------------
// Ownership is checked on use, not only on drop.
// ---------------------------------------------------------------------------------------

/// Hands both endpoints to init (pid 1, alive for the whole test): this process's copies
/// are then stale, and every use must say so.
fn stale_copies_are_refused<F: Flavor>((mut tx, mut rx): (Sender<F>, Receiver<F>)) {
    let init = ProcessIdentity::of_pid(1).unwrap();
    tx.hand_over(init).unwrap();
    rx.hand_over(init).unwrap();
    assert_eq!(
        tx.try_send(b"stale"),
        Err(TrySendError::Send(SendError::NotOwner(())))
    );
    assert!(matches!(
        tx.send_timeout(b"stale", Duration::from_millis(1)),
        Err(shm_channel::SendTimeoutError::Send(SendError::NotOwner(())))
    ));
    assert!(matches!(
        tx.try_reserve(8),
        Err(TrySendError::Send(SendError::NotOwner(())))
    ));
    let refused = rx.try_recv().map_err(|e| e.to_string());
    assert_eq!(
        refused,
        Err("this process does not own the receiving endpoint".into())
    );
    assert!(!tx.is_owned_here() && !rx.is_owned_here());
}

#[test]
fn stale_copy_after_hand_over_is_refused_in_every_flavor() {
    stale_copies_are_refused(spsc::channel(256).unwrap());
    stale_copies_are_refused(mpsc::channel(256).unwrap());
    stale_copies_are_refused(broadcast::channel(256, Policy::BackPressure).unwrap());
}

/// A child uses the parent's endpoints without adopting them: every call is refused, and
/// nothing it tried to send reaches the parent's receiver.
fn child_copy_without_adopt_is_refused<F: Flavor>((mut tx, mut rx): (Sender<F>, Receiver<F>)) {
    let lock = fork_lock();
    let child = fork_child(&lock, || {
        let sent = (0..100u8).filter(|i| tx.try_send(&[*i; 8]).is_ok()).count();
        let not_owner = matches!(
            tx.try_send(b"x"),
            Err(TrySendError::Send(SendError::NotOwner(())))
        );
        let recv_refused = matches!(rx.try_recv().map_err(|e| e.to_string()), Err(e) if e.contains("does not own"));
        i32::from(!(sent == 0 && not_owner && recv_refused))
    });
    assert_eq!(child.wait(), 0, "the child's stale copies were usable");
    // The parent's own copies still work, and saw nothing from the child.
    tx.try_send(b"parent").unwrap();
    let first = rx.try_recv().map_err(|e| e.to_string());
    assert_eq!(first, Ok(b"parent".to_vec()));
}

#[test]
fn endpoint_copied_into_a_child_without_adopt_is_refused_in_every_flavor() {
    child_copy_without_adopt_is_refused(spsc::channel(1024).unwrap());
    child_copy_without_adopt_is_refused(mpsc::channel(1024).unwrap());
    child_copy_without_adopt_is_refused(broadcast::channel(1024, Policy::BackPressure).unwrap());
}

// ---------------------------------------------------------------------------------------
// Capacity and slot errors, the same for every flavor.
// ---------------------------------------------------------------------------------------

fn refused_before_mapping<F: Flavor>() {
    match Builder::<F>::new(1 << 40).create() {
        Err(ChannelError::InvalidCapacity { capacity, .. }) => assert_eq!(capacity, 1 << 40),
        Err(other) => panic!("{}: {other}", std::any::type_name::<F>()),
        Ok(_) => panic!("a 1 TiB channel was created"),
    }
    assert!(matches!(
        Builder::<F>::new(1000).create(),
        Err(ChannelError::InvalidCapacity { .. })
    ));
}

#[test]
fn huge_capacity_is_refused_before_mapping_in_every_flavor() {
    refused_before_mapping::<Spsc>();
    refused_before_mapping::<Mpsc>();
    refused_before_mapping::<Broadcast>();
}

/// Makes endpoints with `join` until the channel's `max` slots are taken: the next is
/// `NoFreeSlot` naming `what` and `max`; the ones made are handed back.
fn join_until_no_slot<T>(
    join: impl Fn() -> Result<T, ChannelError>,
    what: &str,
    max: usize,
) -> Vec<T> {
    let held: Vec<T> = (1..max).map(|_| join().unwrap()).collect();
    match join() {
        Err(ChannelError::NoFreeSlot { what: w, max: m }) => assert_eq!((w, m), (what, max)),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a {what} beyond {max}"),
    }
    held
}

#[test]
fn running_out_of_slots_is_its_own_error() {
    let (tx, _rx) = mpsc::channel(256).unwrap();
    drop(join_until_no_slot(
        || tx.try_clone(),
        "sender",
        mpsc::DEFAULT_MAX_SENDERS,
    ));
    let (tx, _rx) = Builder::<Mpsc>::new(256).max_senders(64).create().unwrap();
    drop(join_until_no_slot(|| tx.try_clone(), "sender", 64));
    assert_eq!(mpsc::MAX_SENDERS, 64);
    let (tx, _rx) = broadcast::channel(256, Policy::Overwrite).unwrap();
    let readers = join_until_no_slot(|| tx.subscribe(), "receiver", 16);
    assert_eq!(broadcast::MAX_READERS, 16);
    assert_eq!(tx.receiver_count(), broadcast::MAX_READERS);
    drop(readers);
    assert_eq!(tx.receiver_count(), 1);
}

#[test]
fn attaching_a_second_endpoint_in_the_owning_process_says_so() {
    let (tx, rx) = spsc::channel(256).unwrap();
    let again = Receiver::<Spsc>::attach(rx.memory().clone());
    assert!(
        matches!(
            again,
            Err(ChannelError::Ownership(OwnershipError::OwnedHere))
        ),
        "{again:?}"
    );
    let again = Sender::<Spsc>::attach(tx.memory().clone());
    assert!(matches!(
        again,
        Err(ChannelError::Ownership(OwnershipError::OwnedHere))
    ));
}

// ---------------------------------------------------------------------------------------
// What the API lacked by flavor.
// ---------------------------------------------------------------------------------------

#[test]
fn broadcast_has_attach_capacity_memory_recv_into_and_read_grants() {
    let (mut tx, mut rx) = broadcast::channel(1024, Policy::BackPressure).unwrap();
    assert_eq!(tx.capacity(), 1024);
    let mut late = Receiver::<Broadcast>::attach(tx.memory().clone()).unwrap();
    assert_eq!(tx.receiver_count(), 2);
    tx.send(b"twelve bytes").unwrap();
    let mut small = [0u8; 4];
    assert_eq!(
        rx.recv_into(&mut small),
        Err(RecvIntoError::BufferTooSmall { needed: 12 })
    );
    let mut buf = [0u8; 32];
    assert_eq!(rx.recv_into(&mut buf), Ok(12));
    assert_eq!(&buf[..12], b"twelve bytes");
    let grant = late.try_read().unwrap();
    let mut read = [0u8; 12];
    assert_eq!(grant.copy_to(&mut read), 12);
    assert_eq!(&read, b"twelve bytes");
    drop(grant);
    // Zero-copy sends: written in place, then committed.
    let mut grant = tx.try_reserve(5).unwrap();
    grant.write_at(0, b"grant").unwrap();
    grant.commit(5).unwrap();
    assert_eq!(rx.try_recv().unwrap(), b"grant");
    assert_eq!(late.try_recv().unwrap(), b"grant");
    assert_eq!(late.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn typed_mpsc_attaches_like_the_others() {
    let (tx, mut rx) =
        typed::pair::<(u32, String), _, typed::DefaultCodec>(mpsc::channel(4096).unwrap()).unwrap();
    let mut other = typed::Sender::<(u32, String), Mpsc>::try_from(
        Sender::<Mpsc>::attach(tx.memory().clone()).unwrap(),
    )
    .unwrap();
    other.send((2, "two".into())).unwrap();
    assert_eq!(rx.recv().unwrap(), (2, "two".to_string()));
    let _: &typed::Sender<(u32, String), Mpsc, typed::DefaultCodec> = &other;
}

#[test]
fn creating_a_large_mpsc_channel_touches_no_data_page() {
    fn resident_bytes() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    }
    static KEEP: AtomicU64 = AtomicU64::new(0);
    let before = resident_bytes();
    let (tx, rx) = mpsc::channel(256 << 20).unwrap();
    let grown = resident_bytes().saturating_sub(before);
    KEEP.store(grown, Ordering::Relaxed);
    assert!(
        grown < 16 << 20,
        "creating an MPSC channel of 256 MiB lanes made {grown} bytes resident"
    );
    drop((tx, rx));
}

#[test]
fn every_call_error_says_whether_it_is_corruption() {
    let (mut tx, rx, heap) = heap_mpsc(1024);
    // A full lane makes the sender load the head.
    while tx.try_send(&[0; 100]).is_ok() {}
    poke(&*heap, mpsc_slot(0) + MPSC_HEAD, 12); // misaligned
    let err = tx.try_send(&[0; 100]).unwrap_err();
    assert!(err.corruption().is_some() && err.is_fatal(), "{err:?}");
    drop(rx);
    let err = TryRecvError::<RecvError>::Empty;
    assert!(err.corruption().is_none() && !err.is_fatal());
}
