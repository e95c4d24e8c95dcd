//! Waiting without blocking a thread (feature `tokio`): how every async operation of every
//! flavor waits, written once.
//!
//! An async operation is the endpoint's non-blocking attempt, retried until it stops
//! saying "not now". In between, the task sleeps in the reactor:
//!
//! 1. a few tight polls (a busy peer's message is often ~100 ns away), then, as the
//!    endpoint's [`WaitStrategy`] says, polls that yield to the runtime between them
//!    (the task wakes itself: other tasks run, no thread is held) for up to its spin
//!    budget — 50 µs by default; [`WaitStrategy::Park`] skips both and sleeps at once;
//! 2. the endpoint announces itself in the channel's event as an *async* waiter
//!    ([`Event::announce_async`]: the sleeper's half of the wake handshake, once per wait),
//!    then re-checks;
//! 3. it waits for the channel's [`Doorbell`] — its end of a unix datagram socket pair,
//!    which the peer rings when it notifies an event with an async waiter announced,
//!    registered with tokio through
//!    [`AsyncFd`] — or for its [`Ticker`], a timerfd that makes the slow checks (a peer
//!    that died, a corrupt index) every [`SLOW_CHECK_INTERVAL`];
//! 4. it withdraws the announcement when the operation completes or its future is dropped;
//!    a future dropped while it waits (cancelled) also deregisters its descriptors, so that
//!    no later ring — meant for another waiter of the channel in this process — wakes its
//!    task again (the next wait registers afresh).
//!
//! A poll-based use (`Stream`, `Sink`, `AsyncRead`, `AsyncWrite`) left pending and not
//! polled again keeps its announcement until it is polled again or dropped: meanwhile the
//! peer rings the doorbell for each publish (a syscall), as for any pending wait.
//!
//! Operations take what they return in the same poll that returns it, so a future dropped
//! before completing has taken nothing: cancellation loses no message.
//!
//! Without doorbells (a channel built with `doorbells(false)`, or attached to memory
//! without them) the ticker re-checks every [`UNRUNG_INTERVAL`] instead; so does a wait
//! that sees the event notified with no ring (a peer attached without the doorbells, which
//! cannot ring them). Outside a tokio runtime the task re-polls cooperatively (it wakes
//! itself, without announcing): slower, never stuck. Inside one, the runtime must have its
//! IO driver enabled, as for every tokio IO type (tokio panics otherwise). A wait moved to
//! another runtime registers again there.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use shm_core::liveness::fork_generation;
use shm_core::notify::{Doorbell, Handshake, Ticker, WaitStrategy, SLOW_CHECK_INTERVAL};
use std::os::fd::AsRawFd;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::common::{Common, Endpoint};
use crate::shared::doorbells::{Doorbells, End};
use crate::shared::ring::RingSide;
use crate::shared::view::EventRef;

/// How often an async wait without a doorbell re-checks its condition.
pub(crate) const UNRUNG_INTERVAL: Duration = Duration::from_millis(1);

/// Tight polls before an async wait announces itself.
const HOT_POLLS: u32 = 64;

/// The descriptors of an async wait, registered with the reactor of the runtime that made
/// them.
struct Registered {
    bell: Option<AsyncFd<Doorbell>>,
    ticker: AsyncFd<Ticker>,
    /// The fork generation they were made in: a forked child must not touch them (their
    /// registrations live in the parent's epoll instance, which the child shares).
    generation: u64,
    /// The runtime whose reactor they are registered with: polled from another one, they
    /// would be woken only if that one is driven.
    runtime: tokio::runtime::Id,
}

/// An endpoint's async wait: the event it announces itself in, and its registered
/// descriptors, made at its first wait.
pub(crate) struct AsyncWait {
    event: EventRef,
    /// The channel's doorbells, and the end that rings for `event`: a duplicate of it is
    /// registered with the reactor.
    bell: Option<(Arc<Doorbells>, End)>,
    handshake: Handshake,
    registered: Option<Registered>,
    /// The fork generation this wait announced itself in, while it is announced: a copy
    /// inherited by a forked child is not the child's to withdraw (the parent's waiter
    /// would lose its doorbell).
    announced: Option<u64>,
    /// When the yielding polls of the current wait began.
    spinning_since: Option<Instant>,
    /// The event's sequence number at the last tick, and whether the doorbell rang since:
    /// a sequence that moved with no ring means a notifier without doorbells.
    seen: (u32, bool),
    /// A notifier without doorbells was seen: re-check every [`UNRUNG_INTERVAL`].
    unrung: bool,
    /// The last poll returned `Pending` with the task's waker left in the reactor (in the
    /// registrations of the doorbell and ticker): a cancel must take it out.
    waker_left: bool,
}

impl AsyncWait {
    /// An async wait on `event`, rung through `bell` (the channel's doorbells and the end
    /// to wait on, or `None`), under the channel's `handshake`.
    pub(crate) fn new(
        event: EventRef,
        bell: Option<(Arc<Doorbells>, End)>,
        handshake: Handshake,
    ) -> AsyncWait {
        AsyncWait {
            event,
            bell,
            handshake,
            registered: None,
            announced: None,
            spinning_since: None,
            seen: (0, false),
            unrung: false,
            waker_left: false,
        }
    }

    /// Waits (as a poll) until `attempt` returns `Some`.
    fn poll<R>(
        &mut self,
        cx: &mut Context<'_>,
        strategy: WaitStrategy,
        mut attempt: impl FnMut() -> Option<R>,
    ) -> Poll<R> {
        if !self.is_announced() {
            // `Park` and `Batched` sleep at once, as a synchronous wait does.
            let hot_polls = if matches!(strategy, WaitStrategy::Park | WaitStrategy::Batched { .. })
            {
                0
            } else {
                HOT_POLLS
            };
            for _ in 0..hot_polls {
                std::hint::spin_loop();
                if let Some(ready) = attempt() {
                    self.spinning_since = None;
                    return Poll::Ready(ready);
                }
            }
            let budget = match strategy {
                WaitStrategy::Spin => None,
                WaitStrategy::SpinThenPark { spin }
                | WaitStrategy::YieldThenPark { spin }
                | WaitStrategy::Adaptive { min: spin, .. } => Some(spin),
                // An async wait is woken by its doorbell per notification: no batches.
                WaitStrategy::Park | WaitStrategy::Batched { .. } => Some(Duration::ZERO),
            };
            let since = *self.spinning_since.get_or_insert_with(Instant::now);
            if budget.is_none_or(|budget| since.elapsed() < budget) {
                // Yield to the runtime and come back: a poll, not a sleep.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.spinning_since = None;
            if self.registration().is_none() {
                // No reactor to sleep in: come back at once, unannounced (nobody rings).
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let complete = self.event.get().announce_async(self.handshake);
            self.announced = Some(fork_generation());
            self.unrung |= self.bell.is_none() || !complete;
            self.seen = (self.event.get().sequence(), false);
            self.arm_ticker();
            // The re-check after the announcement (SYNC: waiter flag).
            if let Some(ready) = attempt() {
                self.stand_down();
                return Poll::Ready(ready);
            }
        }
        loop {
            let Some(registered) = self.registration() else {
                // No reactor to sleep in: come back at once.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            };
            // Both are polled, so that both register the task's waker.
            let ticked = rung(&registered.ticker, cx, Ticker::take);
            let rang = match &registered.bell {
                Some(bell) => rung(bell, cx, Doorbell::take),
                None => Ok(false),
            };
            let (Ok(ticked), Ok(rang)) = (ticked, rang) else {
                // The runtime that registered them is gone: register afresh in this one.
                self.registered = None;
                self.stand_down();
                cx.waker().wake_by_ref();
                return Poll::Pending;
            };
            if !(ticked || rang) {
                self.waker_left = true;
                return Poll::Pending;
            }
            self.seen.1 |= rang;
            if ticked {
                let sequence = self.event.get().sequence();
                if !self.unrung && sequence != self.seen.0 && !self.seen.1 {
                    // Notified, never rung: a peer without the doorbells. Check often.
                    self.unrung = true;
                    self.arm_ticker();
                }
                self.seen = (sequence, false);
            }
            if let Some(ready) = attempt() {
                self.stand_down();
                self.waker_left = false;
                return Poll::Ready(ready);
            }
        }
    }

    /// Ends a wait whose future was dropped: stands down, and if the reactor still holds
    /// the task's waker (the wait was pending), deregisters the descriptors, so that later
    /// rings of the channel's doorbell wake no task of a wait that is over.
    fn cancel(&mut self) {
        self.stand_down();
        if std::mem::take(&mut self.waker_left) {
            match self.registered.take() {
                // Made in this process: deregistered and closed by dropping.
                Some(registered) if registered.generation == fork_generation() => drop(registered),
                // Made before a fork (see `registration`): the parent's to drop.
                stale => std::mem::forget(stale),
            }
        }
    }

    /// Starts the ticker at the interval the wait needs.
    fn arm_ticker(&self) {
        let interval = match self.unrung {
            true => UNRUNG_INTERVAL,
            false => SLOW_CHECK_INTERVAL,
        };
        if let Some(registered) = &self.registered {
            // A ticker that cannot be armed (it cannot fail on a timerfd we own) would
            // leave the wait to its doorbell; arming is tried again at every wait.
            let _ = registered.ticker.get_ref().every(Some(interval));
        }
    }

    /// The wait's registered descriptors, made on first use in the current runtime (again
    /// if the wait moved to another runtime); `None` outside a runtime.
    fn registration(&mut self) -> Option<&Registered> {
        let generation = fork_generation();
        if let Some(stale) = self.registered.take_if(|r| r.generation != generation) {
            // Made before a fork, in the parent's reactor: dropping them would deregister
            // the parent's descriptors from the epoll instance both processes share.
            std::mem::forget(stale);
        }
        // `AsyncFd` panics outside a runtime: ask first.
        let runtime = tokio::runtime::Handle::try_current().ok()?.id();
        if self
            .registered
            .as_ref()
            .is_some_and(|r| r.runtime != runtime)
        {
            // Registered with another runtime's reactor, which may not be driven: this
            // process's own registration, so it is dropped (deregistered) normally.
            self.registered = None;
        }
        if self.registered.is_none() {
            self.registered = self.register(generation, runtime);
            if self.is_announced() {
                // A wait moved here while announced: its new ticker starts now.
                self.arm_ticker();
            }
        }
        self.registered.as_ref()
    }

    fn register(&self, generation: u64, runtime: tokio::runtime::Id) -> Option<Registered> {
        let ticker = readable(Ticker::new().ok()?)?;
        let bell = match &self.bell {
            Some((doorbells, end)) => Some(readable(end(doorbells).try_clone().ok()?)?),
            None => None,
        };
        Some(Registered {
            bell,
            ticker,
            generation,
            runtime,
        })
    }

    /// Whether this process has announced this wait.
    fn is_announced(&self) -> bool {
        self.announced == Some(fork_generation())
    }

    /// Ends the wait: withdraws the announcement and stops the ticker.
    fn stand_down(&mut self) {
        self.spinning_since = None;
        if self.announced.take() != Some(fork_generation()) {
            return;
        }
        self.event.get().withdraw_async();
        if let Some(registered) = &self.registered {
            if registered.generation == fork_generation() {
                let _ = registered.ticker.get_ref().every(None);
            }
        }
    }
}

impl Drop for AsyncWait {
    fn drop(&mut self) {
        self.stand_down();
        if let Some(stale) = self
            .registered
            .take_if(|r| r.generation != fork_generation())
        {
            std::mem::forget(stale);
        }
    }
}

/// Whether `fd` became readable: if so its count is taken (with `take`) and its readiness
/// cleared, so the task is woken again by the next edge; `Err` if the reactor that
/// registered it is gone.
fn rung<T: AsRawFd>(
    fd: &AsyncFd<T>,
    cx: &mut Context<'_>,
    take: impl Fn(&T) -> std::io::Result<u64>,
) -> Result<bool, ()> {
    match fd.poll_read_ready(cx) {
        Poll::Ready(Ok(mut guard)) => {
            // A failed read leaves the count: the next ring still makes a new edge.
            let _ = take(guard.get_inner());
            guard.clear_ready();
            Ok(true)
        }
        Poll::Ready(Err(_)) => Err(()),
        Poll::Pending => Ok(false),
    }
}

/// Registers `fd` with the current runtime's reactor for readability (tokio panics if the
/// runtime has no IO driver).
fn readable<T: AsRawFd>(fd: T) -> Option<AsyncFd<T>> {
    // SAFETY: `T` is a `Doorbell` or a `Ticker`: each owns its descriptor (an `OwnedFd`,
    // closed only when it is dropped, which the `AsyncFd` does after deregistering) and
    // always reports that same descriptor from `as_raw_fd`.
    unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.ok()
}

/// Where an endpoint's async wait lives, and how to make it.
pub(crate) trait Waiting {
    /// The endpoint's wait, if it has waited before.
    fn async_wait(&mut self) -> &mut Option<Box<AsyncWait>>;

    /// A new wait for this endpoint (its side's event and doorbell).
    fn new_async_wait(&self) -> AsyncWait;

    /// How the endpoint waits (its spin budget before it sleeps in the reactor).
    fn wait_strategy(&self) -> WaitStrategy;
}

impl<R: RingSide> Waiting for Common<R> {
    fn async_wait(&mut self) -> &mut Option<Box<AsyncWait>> {
        &mut self.async_wait
    }

    fn new_async_wait(&self) -> AsyncWait {
        let view = self.ring.view();
        let bell = view.doorbells().map(|bells| (Arc::clone(bells), self.bell));
        AsyncWait::new(self.event.clone(), bell, view.handshake())
    }

    fn wait_strategy(&self) -> WaitStrategy {
        self.strategy
    }
}

/// One poll of `op` (the endpoint's non-blocking attempt: `None` for "not now"), waiting
/// for the next chance when it is not ready.
pub(crate) fn poll_retry<E: Endpoint, R>(
    endpoint: &mut E,
    cx: &mut Context<'_>,
    mut op: impl FnMut(&mut E) -> Option<R>,
) -> Poll<R> {
    if let Some(ready) = op(endpoint) {
        stand_down(endpoint);
        return Poll::Ready(ready);
    }
    let waiting = endpoint.parts_mut().waiting();
    let mut wait = match waiting.async_wait().take() {
        Some(wait) => wait,
        None => Box::new(waiting.new_async_wait()),
    };
    let strategy = waiting.wait_strategy();
    let outcome = wait.poll(cx, strategy, || op(endpoint));
    *endpoint.parts_mut().waiting().async_wait() = Some(wait);
    outcome
}

/// Ends `endpoint`'s async wait, if one is under way (its operation completed).
pub(crate) fn stand_down<E: Endpoint>(endpoint: &mut E) {
    if let Some(wait) = endpoint.parts_mut().waiting().async_wait() {
        wait.stand_down();
    }
}

/// Ends `endpoint`'s async wait because its future (or stream, or sink) was dropped: a
/// cancelled wait is never woken again (see [`AsyncWait::cancel`]).
pub(crate) fn cancel<E: Endpoint>(endpoint: &mut E) {
    if let Some(wait) = endpoint.parts_mut().waiting().async_wait() {
        wait.cancel();
    }
}

/// Retries `op` until it is ready, as a future; dropping the future ends the wait.
pub(crate) fn retry<'a, E: Endpoint, R: 'a>(
    endpoint: &'a mut E,
    mut op: impl FnMut(&mut E) -> Option<R> + 'a,
) -> impl Future<Output = R> + 'a {
    let guard = StandDown(endpoint);
    std::future::poll_fn(move |cx| poll_retry(&mut *guard.0, cx, &mut op))
}

/// Ends the wait of the endpoint it borrows when dropped (a no-op after completion, a
/// cancel before).
struct StandDown<'a, E: Endpoint>(&'a mut E);

impl<E: Endpoint> Drop for StandDown<'_, E> {
    fn drop(&mut self) {
        cancel(self.0);
    }
}
