//! The async senders of a channel waiting for room in this process, in the order they began
//! to wait ([`SendQueue`]): process-local state of a channel's view, shared by the senders
//! made from one another (`try_clone`), never in shared memory.
//!
//! Room that frees up goes to the first of them: a sender of the channel in this process
//! that is not first — a later async send, a `try_send`, a blocking `send` — finds no room
//! while any wait, as tokio's bounded channel serves its senders in order. When the first
//! leaves (it sent, failed, or its future was dropped), the next is woken at once.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::Waker;

/// A place in a [`SendQueue`].
pub(crate) type Ticket = u64;

/// The async senders waiting for room, first come first served (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct SendQueue {
    /// How many wait: read on every send of a flavor with several senders (0: the fast
    /// path), written under the lock.
    waiting: AtomicUsize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    next: Ticket,
    /// The waiters in order, each with the waker of its last wait.
    queue: VecDeque<(Ticket, Option<Waker>)>,
}

impl SendQueue {
    /// Whether no async sender waits.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        // Relaxed: a hint; a sender that reads 0 while another is just joining takes room
        // as if it had come first, which it did; every decision that matters is taken
        // under the lock.
        self.waiting.load(Ordering::Relaxed) == 0
    }

    /// Joins the end of the queue.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn join(&self) -> Ticket {
        let mut inner = self.lock();
        let ticket = inner.next;
        inner.next += 1;
        inner.queue.push_back((ticket, None));
        self.waiting.store(inner.queue.len(), Ordering::Relaxed);
        ticket
    }

    /// Whether `ticket` is first (room is its to take).
    pub(crate) fn is_first(&self, ticket: Ticket) -> bool {
        self.lock()
            .queue
            .front()
            .is_some_and(|(first, _)| *first == ticket)
    }

    /// Keeps `waker` for `ticket`: it is woken when `ticket` becomes first.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn set_waker(&self, ticket: Ticket, waker: &Waker) {
        let mut inner = self.lock();
        if let Some((_, slot)) = inner.queue.iter_mut().find(|(t, _)| *t == ticket) {
            match slot {
                Some(kept) if kept.will_wake(waker) => {}
                _ => *slot = Some(waker.clone()),
            }
        }
    }

    /// Leaves the queue; if `ticket` was first, wakes the next.
    pub(crate) fn leave(&self, ticket: Ticket) {
        let mut inner = self.lock();
        let Some(at) = inner.queue.iter().position(|(t, _)| *t == ticket) else {
            return;
        };
        inner.queue.remove(at);
        self.waiting.store(inner.queue.len(), Ordering::Relaxed);
        let next = match at {
            0 => inner.queue.front().and_then(|(_, waker)| waker.clone()),
            _ => None,
        };
        drop(inner);
        if let Some(waker) = next {
            waker.wake();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while the lock is held leaves the queue consistent (every change is one
        // step): carry on.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
