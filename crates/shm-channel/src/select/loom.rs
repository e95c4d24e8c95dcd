//! loom model of a select's wake handshake over two channels (an SPSC and an MPSC one, on
//! heap regions): the select announces itself in both channels' events, re-checks both
//! receivers, sleeps on both sequence words at once, withdraws; each sender publishes,
//! then notifies its channel's event as `Event::notify` does. A lost wake-up leaves the
//! select asleep with both senders done, which loom reports as a deadlock. One sender
//! first ends a sleep without a notification (a slice timing out), so the announcement
//! that outlives a slice is checked too.
//!
//! What is real and what is modelled: the rings, the receivers and the readiness hook
//! (`Ready::poll_ready`, through the select's own `scan`) are the crate's code, with loom's
//! atomics (`shared/primitive.rs`). The events, `futex_waitv` and `FUTEX_WAKE` are not:
//! `shm_core::notify::Event` uses std atomics and syscalls, which loom cannot see, so
//! `ModelEvent` is the event's two words in loom atomics, with the same steps and orderings
//! as `notify/wait.rs` (`park`) and `Event::notify`, and `Kernel` is the futex queue: a sleep
//! checks every word and waits unless one changed, and a wake-up between the two is kept. The notifier fences as `Event::notify` does (the SeqCst
//! handshake of MPSC commits and of closes); loom treats SeqCst loads and stores as
//! AcqRel, so the SPSC publisher's fence-free form (a SeqCst store, then a SeqCst load) is
//! not checked here, and `membarrier` cannot be modelled at all: both are covered by the
//! multi-process stress tests (`tests/handshake_stress.rs`).
//!
//! The last model removes the select's fence and must fail: loom finds the lost wake-up.
//! `scripts/loom` runs them (`LOOM_MAX_PREEMPTIONS=2`).

use std::mem::ManuallyDrop;
use std::sync::Arc;

use loom::sync::atomic::{fence, AtomicU32, Ordering};
use loom::sync::Notify;
use loom::thread;
use shm_core::HeapRegion;

use super::scan;
use crate::endpoint::{Probe, Ready};
use crate::{mpsc, spsc, Builder, Flavor, TryRecvError};

const CAPACITY: usize = 64;

/// A channel's data event: the futex sequence word and the waiter count.
#[derive(Default)]
struct ModelEvent {
    seq: AtomicU32,
    waiters: AtomicU32,
}

impl ModelEvent {
    /// `Event::notify`: after publishing, a full fence, then a syscall only if a waiter is
    /// counted (SYNC: waiter flag).
    fn notify(&self, kernel: &Kernel) {
        fence(Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) != 0 {
            // Release: as `wake_all`.
            self.seq.fetch_add(1, Ordering::Release);
            kernel.wake();
        }
    }
}

/// The kernel's futex queue, for one sleeper: a sleep checks every word and waits for a
/// wake-up unless one changed; a wake-up that comes between the check and the wait is kept
/// (loom's `Notify` holds one permit), as the kernel's queue lock keeps it.
struct Kernel {
    sleeper: Notify,
}

impl Kernel {
    fn new() -> Kernel {
        Kernel {
            sleeper: Notify::new(),
        }
    }

    /// `futex_waitv`: sleeps if every word still holds its value.
    fn wait_any(&self, words: &[(&AtomicU32, u32)]) {
        // Relaxed: the kernel's own ordering (its queue lock) is modelled by `Notify`.
        if words.iter().all(|(w, v)| w.load(Ordering::Relaxed) == *v) {
            self.sleeper.wait();
        }
    }

    /// `FUTEX_WAKE` of the sleeper.
    fn wake(&self) {
        self.sleeper.notify();
    }
}

fn heap_for<F: Flavor>(builder: &crate::Builder<F>) -> Arc<HeapRegion> {
    Arc::new(HeapRegion::new(builder.region_len().unwrap()).unwrap())
}

/// One select over `receivers`: the index of a ready one, sleeping until there is one.
/// As `park` does it: announced once, then slices (load the sequence words, re-check,
/// sleep) until a re-check finds one; a slice may end without a notification (the timer).
/// `fenced: false` leaves out the fence between the announcement and the re-checks.
fn select(
    receivers: &mut [&mut dyn Ready],
    start: usize,
    events: &[&ModelEvent; 2],
    kernel: &Kernel,
    fenced: bool,
) -> usize {
    if let Some(index) = scan(receivers.len(), start, Probe::Fast, |i, p| {
        receivers[i].poll_ready(p)
    }) {
        return index;
    }
    for event in events {
        event.waiters.fetch_add(1, Ordering::SeqCst);
    }
    if fenced {
        // SYNC: waiter flag.
        fence(Ordering::SeqCst);
    }
    let ready = loop {
        let mut seqs = [0u32; 2];
        for (event, seq) in events.iter().zip(&mut seqs) {
            // Acquire: pairs with the Release bump of a notifier.
            *seq = event.seq.load(Ordering::Acquire);
        }
        if let Some(index) = scan(receivers.len(), start, Probe::Fast, |i, p| {
            receivers[i].poll_ready(p)
        }) {
            break index;
        }
        kernel.wait_any(&[(&events[0].seq, seqs[0]), (&events[1].seq, seqs[1])]);
    };
    for event in events {
        event.waiters.fetch_sub(1, Ordering::SeqCst);
    }
    ready
}

/// Two senders (SPSC, MPSC) each send one message and drop their end, notifying after
/// each; selects (each followed by the receive, as a user writes them) must receive both
/// messages and both ends.
fn model(fenced: bool) {
    loom::model(move || {
        let spsc_builder = Builder::<spsc::Spsc>::new(CAPACITY);
        let mpsc_builder = Builder::<mpsc::Mpsc>::new(CAPACITY);
        let (mut tx1, rx1) = spsc_builder.create_in(heap_for(&spsc_builder)).unwrap();
        let (mut tx2, rx2) = mpsc_builder.create_in(heap_for(&mpsc_builder)).unwrap();
        // What this thread holds of loom's objects is dropped only at the end of a run
        // that passed: a run loom ends by a deadlock unwinds this thread after the model
        // stopped, when touching them would panic again and abort the test.
        let (mut rx1, mut rx2) = (ManuallyDrop::new(rx1), ManuallyDrop::new(rx2));
        let kernel = ManuallyDrop::new(Arc::new(Kernel::new()));
        let events = ManuallyDrop::new(Arc::new([ModelEvent::default(), ModelEvent::default()]));
        let first = {
            let (kernel, events) = (Arc::clone(&kernel), Arc::clone(&events));
            thread::spawn(move || {
                tx1.try_send(b"spsc").unwrap();
                events[0].notify(&kernel);
                drop(tx1); // the select must see the end too
                events[0].notify(&kernel);
            })
        };
        let second = {
            let (kernel, events) = (Arc::clone(&kernel), Arc::clone(&events));
            thread::spawn(move || {
                // A slice's end: the select wakes with nothing notified, and sleeps again
                // without announcing itself again.
                kernel.wake();
                tx2.try_send(b"mpsc").unwrap();
                events[1].notify(&kernel);
                drop(tx2);
                events[1].notify(&kernel);
            })
        };
        let mut got: [Vec<Vec<u8>>; 2] = Default::default();
        let mut ended = [false; 2];
        let mut start = 0;
        while ended != [true, true] {
            // A receiver whose stream ended is left out (it would always be ready).
            let index = {
                let mut receivers: Vec<&mut dyn Ready> = Vec::new();
                let mut which = Vec::new();
                if !ended[0] {
                    receivers.push(&mut *rx1);
                    which.push(0);
                }
                if !ended[1] {
                    receivers.push(&mut *rx2);
                    which.push(1);
                }
                let start = start % receivers.len();
                which[select(
                    &mut receivers,
                    start,
                    &[&events[0], &events[1]],
                    &kernel,
                    fenced,
                )]
            };
            start += 1;
            let received = match index {
                0 => rx1.try_recv().map_err(drop),
                _ => rx2.try_recv().map_err(drop),
            };
            match received {
                Ok(message) => got[index].push(message),
                Err(()) => ended[index] = true,
            }
        }
        first.join().unwrap();
        second.join().unwrap();
        assert_eq!(got, [vec![b"spsc".to_vec()], vec![b"mpsc".to_vec()]]);
        assert!(matches!(rx1.try_recv(), Err(TryRecvError::Recv(_))));
        drop(ManuallyDrop::into_inner(rx1));
        drop(ManuallyDrop::into_inner(rx2));
        drop(ManuallyDrop::into_inner(kernel));
        drop(ManuallyDrop::into_inner(events));
    });
}

#[test]
fn loom_select_over_two_channels_never_loses_a_wake_up() {
    model(true);
}

#[test]
#[should_panic(expected = "deadlock")]
fn loom_select_without_its_fence_loses_a_wake_up() {
    model(false);
}
