//! Lost-wake-up stress across `fork`, for both handshakes.
//!
//! Two processes ping-pong a counter through a `MAP_SHARED` region, each waking the other
//! through an [`Event`]. The waits sleep in slices longer than their deadline, so a lost
//! wake-up cannot hide behind the 10 ms slow-check slice (which would end the sleep and
//! find the value): it shows as a timed-out wait, and is counted. Publishers jitter a
//! little before each store, so that stores land at every point of the peer's way into
//! its sleep (increment, fence, barrier, re-check, futex call).
//!
//! A second test runs single rounds in lockstep instead: the sleeper starts its wait just as
//! the publisher publishes, after writing a payload, so the index store lands right at the
//! sleeper's increment and re-check (the window the handshake protects), and a round whose
//! publisher found no waiter while the re-check missed the value is a lost wake-up.
//!
//! What they can and cannot show: they catch logic errors in the handshake (a missing
//! increment, a re-check before the barrier, a wrong sequence number) in every run. The
//! hardware reordering the barrier exists for is rare even when provoked: with the
//! sleeper's `membarrier` removed, the lockstep test found it about twice per 100,000
//! rounds in a release build on the reference machine, and not at all in 900,000 rounds
//! of a debug build (too slow to hit the window), which is how `cargo test` runs.
//!
//! These live inside the crate, not under `tests/`, to reach the private `wait_sliced`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use shm_testkit::{fork_child, fork_lock};

use super::adaptive::Waited;
use super::{membarrier_failures, register_process, Event, Handshake, WaitStrategy};
use crate::{Region, SharedMemory};

/// Round trips per configuration, at most ...
const ROUND_TRIPS: u32 = 20_000;
/// ... and wall time per configuration, at most (two strategies per handshake, two
/// handshakes: with the lockstep test, ~10 s in all on a 2-core box).
const BUDGET: Duration = Duration::from_millis(1500);
/// A wait that has not seen its value after this long lost its wake-up: the peer answers
/// within microseconds unless the wake-up went missing.
const LOST_AFTER: Duration = Duration::from_secs(2);
/// Longer than `LOST_AFTER`, so the deadline, not the slice, ends an unwoken sleep.
const LONG_SLICE: Duration = Duration::from_secs(60);
/// Bound on the wait that follows a lost wake-up (with the normal slice, so it ends as soon
/// as the value is there); failing it means the peer is gone.
const RECOVERY: Duration = Duration::from_secs(10);
/// The parent's last ping: tells the child to stop.
const STOP: u32 = u32::MAX;

/// Offsets in the region: each word and event on its own cache line.
const PING: usize = 0;
const PING_EVENT: usize = 128;
const PONG: usize = 256;
const PONG_EVENT: usize = 384;
/// What the child reports: its lost wake-ups and refused barriers.
const CHILD_LOST: usize = 512;
const CHILD_BARRIER_FAILURES: usize = 516;

/// Exit codes of the child.
const CHILD_OK: i32 = 0;
const CHILD_NOT_REGISTERED: i32 = 2;
const CHILD_PEER_GONE: i32 = 3;

/// One side of the ping-pong: the word it publishes and the event it notifies, the word
/// and event it waits on.
struct Side<'a> {
    handshake: Handshake,
    strategy: WaitStrategy,
    out_word: &'a AtomicU32,
    out_event: &'a Event,
    in_word: &'a AtomicU32,
    in_event: &'a Event,
    rng: u64,
    lost: u32,
}

impl Side<'_> {
    /// Publishes `value` after a random pause of 0–1023 `pause`s (up to ~25 µs).
    fn publish(&mut self, value: u32) {
        // xorshift64: a cheap, allocation-free source of jitter in the child too.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        for _ in 0..(self.rng % 1024) {
            std::hint::spin_loop();
        }
        match self.handshake {
            Handshake::Membarrier => {
                // SYNC: stress value. Release pairs with the Acquire load in `await_at_least`.
                self.out_word.store(value, Ordering::Release);
                self.out_event.notify_relaxed();
            }
            Handshake::SeqCst => {
                self.out_word.store(value, Ordering::SeqCst);
                self.out_event.notify_after_seqcst();
            }
        }
    }

    /// Waits until the incoming word is at least `at_least`; counts a lost wake-up if that
    /// takes more than `LOST_AFTER`. `None` if the peer seems gone.
    fn await_at_least(&mut self, at_least: u32) -> Option<u32> {
        let mut poll = |_| {
            // SYNC: stress value (see `publish`).
            let value = self.in_word.load(Ordering::Acquire);
            (value >= at_least).then_some(value)
        };
        let deadline = Instant::now() + LOST_AFTER;
        let first = self.in_event.wait_sliced(
            self.handshake,
            &self.strategy,
            Some(deadline),
            LONG_SLICE,
            &mut Waited::default(),
            &mut poll,
        );
        if let Ok(value) = first {
            return Some(value);
        }
        self.lost += 1;
        let deadline = Instant::now() + RECOVERY;
        self.in_event
            .wait_until_with(self.handshake, &self.strategy, Some(deadline), poll)
            .ok()
    }
}

/// Runs every strategy of the stress for `handshake`; returns lost wake-ups (parent plus
/// child) and round trips done, per strategy.
fn stress(handshake: Handshake) -> Vec<(WaitStrategy, u32, u32)> {
    let tiny_spin = WaitStrategy::SpinThenPark {
        spin: Duration::from_micros(2),
    };
    let mut results = Vec::new();
    for strategy in [WaitStrategy::Park, tiny_spin] {
        let region = Region::anonymous(4096).unwrap();
        // SAFETY: the offsets are 8-aligned and inside the 4096-byte mapping, which outlives
        // every use here; all accesses to these bytes are atomic.
        let (ping_event, pong_event) = unsafe {
            (
                Event::from_ptr(region.as_ptr().add(PING_EVENT)),
                Event::from_ptr(region.as_ptr().add(PONG_EVENT)),
            )
        };
        let word = |offset| region.atomic_u32(offset).unwrap();
        let mut parent = Side {
            handshake,
            strategy,
            out_word: word(PING),
            out_event: ping_event,
            in_word: word(PONG),
            in_event: pong_event,
            rng: 0x9e37_79b9_7f4a_7c15,
            lost: 0,
        };
        let mut child = Side {
            handshake,
            strategy,
            out_word: word(PONG),
            out_event: pong_event,
            in_word: word(PING),
            in_event: ping_event,
            rng: 0x2545_f491_4f6c_dd1d,
            lost: 0,
        };
        let lock = fork_lock();
        let handle = fork_child(&lock, || {
            if handshake == Handshake::Membarrier && register_process().is_err() {
                return CHILD_NOT_REGISTERED;
            }
            let mut next = 1;
            let code = loop {
                match child.await_at_least(next) {
                    Some(STOP) => break CHILD_OK,
                    Some(value) => {
                        child.publish(value);
                        next = value + 1;
                    }
                    None => break CHILD_PEER_GONE,
                }
            };
            word(CHILD_LOST).store(child.lost, Ordering::SeqCst);
            word(CHILD_BARRIER_FAILURES).store(membarrier_failures() as u32, Ordering::SeqCst);
            code
        });
        let started = Instant::now();
        let mut round_trips = 0;
        for value in 1..=ROUND_TRIPS {
            if started.elapsed() >= BUDGET {
                break;
            }
            parent.publish(value);
            if parent.await_at_least(value).is_none() {
                break;
            }
            round_trips = value;
        }
        parent.publish(STOP);
        let code = handle.wait();
        assert_eq!(code, CHILD_OK, "{handshake:?} {strategy:?}: child failed");
        let child_lost = word(CHILD_LOST).load(Ordering::SeqCst);
        let child_failures = word(CHILD_BARRIER_FAILURES).load(Ordering::SeqCst);
        assert_eq!(child_failures, 0, "{handshake:?}: child's barriers refused");
        results.push((strategy, parent.lost + child_lost, round_trips));
    }
    results
}

fn assert_nothing_lost(handshake: Handshake) {
    let failures = membarrier_failures();
    for (strategy, lost, round_trips) in stress(handshake) {
        eprintln!("{handshake:?} {strategy:?}: {round_trips} round trips, {lost} lost wake-ups");
        assert!(round_trips > 0, "{handshake:?} {strategy:?}: no round trip");
        assert_eq!(lost, 0, "{handshake:?} {strategy:?}: lost wake-ups");
    }
    assert_eq!(membarrier_failures(), failures, "barriers were refused");
}

#[test]
fn no_wake_up_is_lost_across_fork_with_the_membarrier_handshake() {
    let handshake = match register_process() {
        Ok(()) => Handshake::Membarrier,
        Err(err) => {
            eprintln!("membarrier handshake unavailable here ({err}): testing the fallback");
            Handshake::preferred()
        }
    };
    assert_nothing_lost(handshake);
}

#[test]
fn no_wake_up_is_lost_across_fork_with_the_seqcst_handshake() {
    assert_nothing_lost(Handshake::SeqCst);
}

/// Rounds of the lockstep race, per handshake, at most ...
const RACE_ROUNDS: u32 = 100_000;
/// ... and wall time, at most.
const RACE_BUDGET: Duration = Duration::from_millis(2000);
/// Payload lines written before each index store. The sleeper read them last round, so
/// each store needs its line back first and the index store waits behind them in the store
/// buffer, while the publisher's load of the waiter count may go ahead: the reordering the
/// handshake exists for, made wider. Eight lines, as in a 512-byte message.
const RACE_PAYLOAD_LINES: usize = 8;
/// The publisher pauses 0..8 `pause`s at random before writing; the sleeper pauses
/// `round % 9` after seeing the start signal. Together they sweep the publisher's index
/// store across the sleeper's increment, barrier and re-check (tuned on the reference
/// machine: with these, about half of all rounds put the store inside that window).
const RACE_PUBLISHER_JITTER: u64 = 8;
const RACE_SLEEPER_SWEEP: u32 = 9;

/// Offsets of the race test's words (a region of its own).
const RACE_GO: usize = 0;
const RACE_READY: usize = 128;
const RACE_INDEX: usize = 256;
const RACE_EVENT: usize = 384;
const RACE_FIRST_SLOW: usize = 512;
const RACE_PAYLOAD: usize = 1024;

/// What the sleeper's first `Check::Slow` poll (its re-check after announcing itself) saw.
const SLOW_NONE: u32 = 0;
const SLOW_SAW: u32 = 1;
const SLOW_MISSED: u32 = 2;

/// Child exit code: the payload did not match the index it was published with.
const CHILD_TORN_PAYLOAD: i32 = 4;

/// Spins (yielding every so often, the box is shared) until `word` is at least `value`;
/// `false` after `RECOVERY`.
fn spin_until(word: &AtomicU32, value: u32) -> bool {
    let deadline = Instant::now() + RECOVERY;
    let mut spins = 0u32;
    while word.load(Ordering::SeqCst) < value {
        spins = spins.wrapping_add(1);
        if spins % 1024 == 0 {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::yield_now();
        }
        std::hint::spin_loop();
    }
    true
}

/// What the lockstep race saw.
#[derive(Debug, Default)]
struct RaceOutcome {
    rounds: u32,
    /// The publisher found no waiter *and* the sleeper's re-check missed the value: a lost
    /// wake-up (the sleeper then sleeps until its `LOST_AFTER` deadline).
    lost: u32,
    /// Rounds whose re-check ran at all, that is, where the sleeper got as far as
    /// announcing itself before it saw the value.
    rechecked: u32,
    /// Rounds where the publisher found the waiter and the re-check missed the value:
    /// the store landed after the re-check, the wake-up did the work.
    woken_after_miss: u32,
}

/// Rounds in lockstep: the publisher publishes one index while the sleeper starts one
/// `Park` wait for it, so the store lands at the sleeper's increment and re-check.
fn race(handshake: Handshake) -> RaceOutcome {
    let region = Region::anonymous(4096).unwrap();
    // SAFETY: 8-aligned offset inside the mapping, which outlives every use; atomics only.
    let event = unsafe { Event::from_ptr(region.as_ptr().add(RACE_EVENT)) };
    let word = |offset| region.atomic_u32(offset).unwrap();
    let payload: [&AtomicU32; RACE_PAYLOAD_LINES] =
        std::array::from_fn(|line| word(RACE_PAYLOAD + 64 * line));
    let lock = fork_lock();
    let handle = fork_child(&lock, || {
        if handshake == Handshake::Membarrier && register_process().is_err() {
            return CHILD_NOT_REGISTERED;
        }
        let mut round = 0;
        loop {
            round += 1;
            if !spin_until(word(RACE_GO), round) {
                return CHILD_PEER_GONE;
            }
            if word(RACE_GO).load(Ordering::SeqCst) == STOP {
                return CHILD_OK;
            }
            for _ in 0..round % RACE_SLEEPER_SWEEP {
                std::hint::spin_loop();
            }
            let mut first_slow = SLOW_NONE;
            let seen = event.wait_sliced(
                handshake,
                &WaitStrategy::Park,
                Some(Instant::now() + LOST_AFTER),
                LONG_SLICE,
                &mut Waited::default(),
                |check| {
                    // SYNC: stress value (see `Side::publish`).
                    let seen = word(RACE_INDEX).load(Ordering::Acquire) >= round;
                    if check == super::Check::Slow && first_slow == SLOW_NONE {
                        first_slow = if seen { SLOW_SAW } else { SLOW_MISSED };
                    }
                    seen.then_some(())
                },
            );
            if seen.is_err() && !spin_until(word(RACE_INDEX), round) {
                return CHILD_PEER_GONE;
            }
            // Relaxed: ordered by the Acquire load of the index (SYNC: stress value).
            if payload.iter().any(|w| w.load(Ordering::Relaxed) != round) {
                return CHILD_TORN_PAYLOAD;
            }
            word(RACE_FIRST_SLOW).store(first_slow, Ordering::SeqCst);
            word(RACE_READY).store(round, Ordering::SeqCst);
        }
    });
    let mut outcome = RaceOutcome::default();
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let started = Instant::now();
    for round in 1..=RACE_ROUNDS {
        if started.elapsed() >= RACE_BUDGET {
            break;
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        word(RACE_GO).store(round, Ordering::SeqCst);
        for _ in 0..rng % RACE_PUBLISHER_JITTER {
            std::hint::spin_loop();
        }
        for w in &payload {
            // Relaxed: published by the index store below (SYNC: stress value).
            w.store(round, Ordering::Relaxed);
        }
        let woke = match handshake {
            Handshake::Membarrier => {
                // SYNC: stress value (see `Side::publish`).
                word(RACE_INDEX).store(round, Ordering::Release);
                event.notify_relaxed()
            }
            Handshake::SeqCst => {
                word(RACE_INDEX).store(round, Ordering::SeqCst);
                event.notify_after_seqcst()
            }
        };
        if !spin_until(word(RACE_READY), round) {
            break;
        }
        let first_slow = word(RACE_FIRST_SLOW).load(Ordering::SeqCst);
        outcome.rechecked += u32::from(first_slow != SLOW_NONE);
        outcome.lost += u32::from(!woke && first_slow == SLOW_MISSED);
        outcome.woken_after_miss += u32::from(woke && first_slow == SLOW_MISSED);
        outcome.rounds = round;
    }
    word(RACE_GO).store(STOP, Ordering::SeqCst);
    assert_eq!(handle.wait(), CHILD_OK, "{handshake:?}: child failed");
    outcome
}

fn assert_race_loses_nothing(handshake: Handshake) {
    let outcome = race(handshake);
    eprintln!("{handshake:?} lockstep race: {outcome:?}");
    assert!(outcome.rounds > 0, "{handshake:?}: no round");
    assert_eq!(outcome.lost, 0, "{handshake:?}: lost wake-ups");
}

#[test]
fn publish_racing_the_sleepers_recheck_loses_no_wake_up_with_membarrier() {
    match register_process() {
        Ok(()) => assert_race_loses_nothing(Handshake::Membarrier),
        Err(err) => {
            eprintln!("membarrier handshake unavailable here ({err}): testing the fallback");
            assert_race_loses_nothing(Handshake::preferred());
        }
    }
}

#[test]
fn publish_racing_the_sleepers_recheck_loses_no_wake_up_with_seqcst() {
    assert_race_loses_nothing(Handshake::SeqCst);
}
