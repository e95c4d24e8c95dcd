//! Waiting on several receivers at once, across processes: [`Select`], shaped like
//! crossbeam-channel's, over receivers of any flavor ([`spsc`](crate::spsc),
//! [`mpsc`](crate::mpsc), [`broadcast`](crate::broadcast)), bytes or [typed](crate::typed).
//!
//! Add receivers with [`recv`](Select::recv) (each gets the next index, from 0), then ask
//! which one is ready: [`select`](Select::select) waits as long as it takes,
//! [`try_select`](Select::try_select) does not wait, [`select_timeout`](Select::select_timeout)
//! waits at most a given time. A receiver is
//! *ready* when a receive would return now: with a message, or with the error that ends
//! its stream (disconnected, a dead sender, a corrupt ring, not owned here), as crossbeam
//! counts a disconnected channel. The select only says which; receive from that receiver
//! yourself (`try_recv`, or any receive), once the select is dropped. Nothing is taken from
//! a ready receiver by selecting, and an error the select found is kept for the receive to
//! return. The [`select!`](crate::select!) macro writes this for you.
//!
//! ```
//! use shm_channel::mpsc::{self, Mpsc};
//! use shm_channel::{select::Select, spsc, typed};
//!
//! let (mut bytes_tx, mut bytes_rx) = spsc::channel(4096)?;
//! let (mut typed_tx, mut typed_rx): typed::Pair<u64, Mpsc> = typed::pair(mpsc::channel(4096)?)?;
//! typed_tx.send(7)?;
//!
//! let mut sel = Select::new();
//! let bytes = sel.recv(&mut bytes_rx);
//! let typed = sel.recv(&mut typed_rx);
//! let ready = sel.select()?;
//! assert_eq!(ready, typed);
//! assert_eq!(typed_rx.try_recv()?, 7);
//!
//! drop(bytes_tx); // a disconnected channel is ready: its receive returns the error
//! let mut sel = Select::new();
//! sel.recv(&mut bytes_rx);
//! assert_eq!(sel.try_select(), Ok(bytes));
//! assert!(bytes_rx.try_recv().is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How it waits
//!
//! No thread and no descriptor per channel, and nothing new in shared memory: the select
//! sleeps on the channels' own data events, whose sequence words every sender already
//! bumps and wakes (with `FUTEX_WAKE`) when a waiter is counted. It polls the receivers
//! (hot polls, then a backoff, for the spin budget of its [`WaitStrategy`]); then, to
//! sleep, it counts itself as a waiter in every channel's event, pays the wake handshake
//! once for all of them (one SeqCst fence, and one `membarrier` if any channel uses
//! [`Handshake::Membarrier`]), looks at every
//! receiver again, and sleeps on all the sequence words at once with `futex_waitv`
//! (Linux 5.16+), withdrawing from each event when it wakes
//! ([`Event::wait_any`](shm_core::notify::Event::wait_any)). The sleeper pays, as for a
//! single receive: a sender's cost does not change.
//!
//! Sleeps last at most [`SLOW_CHECK_INTERVAL`](shm_core::notify::SLOW_CHECK_INTERVAL)
//! (10 ms), after which every receiver makes its slow check (the senders' liveness,
//! through the kernel): a sender that dies without dropping its end makes the select
//! ready within that bound plus scheduling delay, as it would end a blocked receive.
//!
//! # Limits
//!
//! - A waiting select watches at most [`MAX_RECEIVERS`] (128) receivers, the kernel's
//!   `futex_waitv` limit; [`select`](Select::select) and the timed forms refuse more with
//!   [`SelectError::TooManyReceivers`] before looking at any. [`try_select`](Select::try_select)
//!   never sleeps and takes any number.
//! - Where the kernel refuses `futex_waitv` (before 5.16, or a sandbox), a select sleeps
//!   on its first receiver's event alone for at most 1 ms at a time: the others are
//!   noticed within 1 ms.
//! - A select sets no mark on the events it sleeps on (see
//!   [`WaitStrategy::Batched`]): any notification wakes it. A receiver of a broadcast
//!   channel shares its event with the channel's other receivers; while one of them waits
//!   batched, the sender wakes the event only at that receiver's mark, so a select over
//!   another receiver of that channel may notice a message up to one slice (10 ms) late.
//! - A select is process-local state (borrowed receivers): build it in the process that
//!   receives. The receivers themselves may have come through `fork`, `exec` or the
//!   rendezvous of `shm-fork`: they are ordinary endpoints.
//!
//! # Fairness
//!
//! Each select starts looking at a random receiver and goes round from there, and each
//! poll of a wait starts one further on; so when several are ready, none is always
//! preferred.

mod error;
#[cfg(all(test, loom))]
mod loom;
mod macros;

use std::cell::Cell;
use std::time::Duration;

use shm_core::liveness::each_process_once;
use shm_core::notify::{Check, Event, Handshake, SpinBudget, WaitStrategy, MAX_WAIT_ANY};

pub use self::error::{SelectError, SelectTimeoutError, TrySelectError};
use crate::endpoint::{Deadline, Flavor, Probe, Ready};
use crate::shared::view::EventRef;

/// The most receivers a select can wait on: the kernel's `futex_waitv` limit.
pub const MAX_RECEIVERS: usize = MAX_WAIT_ANY;

/// A receiver a [`Select`] can watch: the byte [`Receiver`](crate::Receiver) and the
/// [`typed::Receiver`](crate::typed::Receiver) of every flavor. Sealed: its method names a
/// crate-private trait.
#[allow(private_interfaces)]
pub trait Selectable {
    /// The receiver's side of a select (the crate's own).
    #[doc(hidden)]
    fn ready(&mut self) -> &mut dyn Ready;
}

#[allow(private_interfaces)]
impl<F: Flavor> Selectable for crate::Receiver<F> {
    fn ready(&mut self) -> &mut dyn Ready {
        self
    }
}

#[allow(private_interfaces)]
impl<T, C, F: Flavor> Selectable for crate::typed::Receiver<T, F, C> {
    fn ready(&mut self) -> &mut dyn Ready {
        &mut self.inner
    }
}

/// Waits until one of several receivers is ready (see the [module docs](self)): which,
/// as the index [`recv`](Select::recv) gave it.
///
/// A select borrows its receivers: build one, select, drop it (or just stop using it),
/// then receive. In a loop, build one per round (up to 4 receivers it allocates nothing).
/// The indices count the receivers added to this select: a receiver left out of a round
/// (its stream ended, say) shifts those after it, and one added under an `if` keeps the
/// borrow checker able to tell the receivers apart where a loop over several variables
/// would not.
///
/// ```
/// use std::time::Duration;
/// use shm_channel::broadcast::Policy;
/// use shm_channel::select::{Select, SelectTimeoutError};
///
/// let (mut tx1, mut rx1) = shm_channel::spsc::channel(4096)?;
/// let (mut tx2, mut rx2) = shm_channel::broadcast::channel(4096, Policy::BackPressure)?;
/// tx1.send(b"one")?;
/// tx2.send(b"two")?;
/// let mut got = Vec::new();
/// loop {
///     let mut sel = Select::new();
///     sel.recv(&mut rx1);
///     sel.recv(&mut rx2);
///     match sel.select_timeout(Duration::from_millis(20)) {
///         Ok(0) => got.push(rx1.try_recv()?),
///         Ok(_) => got.push(rx2.try_recv()?),
///         Err(SelectTimeoutError::Timeout) => break,
///         Err(other) => return Err(other.into()),
///     }
/// }
/// got.sort();
/// assert_eq!(got, [b"one".to_vec(), b"two".to_vec()]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Select<'a> {
    receivers: Receivers<'a>,
    strategy: WaitStrategy,
    budget: SpinBudget,
}

impl Default for Select<'_> {
    fn default() -> Self {
        Select::new()
    }
}

impl std::fmt::Debug for Select<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Select")
            .field("receivers", &self.receivers.len())
            .field("strategy", &self.strategy)
            .finish()
    }
}

impl<'a> Select<'a> {
    /// An empty select, waiting with the default [`WaitStrategy`].
    pub fn new() -> Select<'a> {
        Select {
            receivers: Receivers::default(),
            strategy: WaitStrategy::default(),
            budget: SpinBudget::new(),
        }
    }

    /// Adds `receiver`; its index, which a select returns when it is ready (0 for the
    /// first added, then 1, 2, ...).
    pub fn recv<R: Selectable + ?Sized>(&mut self, receiver: &'a mut R) -> usize {
        self.receivers.push(receiver.ready())
    }

    /// Changes how this select waits before it sleeps (the default: adaptive
    /// spin-then-park; [`WaitStrategy::Park`] sleeps at once; [`WaitStrategy::Batched`]
    /// sleeps at once in slices of its latency, and sets no mark: a select is woken by
    /// every notification).
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.strategy = strategy;
    }

    /// The index of a receiver that is ready now, without waiting.
    pub fn try_select(&mut self) -> Result<usize, TrySelectError> {
        self.run(Deadline::Now).map_err(|_| TrySelectError)
    }

    /// Waits as long as it takes for a receiver to be ready; its index.
    pub fn select(&mut self) -> Result<usize, SelectError> {
        loop {
            match self.run(Deadline::Never) {
                Ok(index) => return Ok(index),
                Err(Some(error)) => return Err(error),
                // An endless wait cannot time out; were it told so, it would wait again.
                Err(None) => continue,
            }
        }
    }

    /// Waits at most `timeout` for a receiver to be ready; its index.
    pub fn select_timeout(&mut self, timeout: Duration) -> Result<usize, SelectTimeoutError> {
        self.select_until(Deadline::after(timeout))
    }

    fn select_until(&mut self, deadline: Deadline) -> Result<usize, SelectTimeoutError> {
        self.run(deadline).map_err(|error| match error {
            Some(error) => SelectTimeoutError::Select(error),
            None => SelectTimeoutError::Timeout,
        })
    }

    /// One select until `deadline`: the index of a ready receiver, or why there is none
    /// (`None`: nothing ready in time).
    fn run(&mut self, deadline: Deadline) -> Result<usize, Option<SelectError>> {
        let count = self.receivers.len();
        if deadline != Deadline::Now {
            if count == 0 {
                return Err(Some(SelectError::NoReceivers));
            }
            if count > MAX_RECEIVERS {
                return Err(Some(SelectError::TooManyReceivers { count }));
            }
        }
        if count == 0 {
            return Err(None);
        }
        let mut start = random_below(count);
        let Select {
            receivers,
            strategy,
            budget,
        } = self;
        if deadline == Deadline::Now {
            // As a non-blocking receive: one look, with a slow check where one is due.
            return scan(count, start, Probe::Paced, |i, p| receivers.poll(i, p)).ok_or(None);
        }
        if let Some(index) = scan(count, start, Probe::Fast, |i, p| receivers.poll(i, p)) {
            return Ok(index);
        }
        let events = distinct_events(receivers);
        let events: Vec<(&Event, Handshake)> = events.iter().map(|(e, h)| (e.get(), *h)).collect();
        // The sleeper's half of the wake handshake of every channel (SYNC: waiter flag):
        // the senders publish and notify as they do for a single blocked receive.
        let woken = Event::wait_any(&events, strategy, budget, deadline.instant(), |check| {
            start = if start + 1 == count { 0 } else { start + 1 };
            let probe = match check {
                Check::Fast => Probe::Fast,
                Check::Slow => Probe::Slow,
            };
            scan(count, start, probe, |i, p| receivers.poll(i, p))
        });
        match woken {
            Ok(index) => Ok(index),
            // Ended by its deadline, maybe before its first slow check (short timeouts in a
            // loop): one more look, with a slow check paced as non-blocking calls' are.
            Err(_) => scan(count, start, Probe::Paced, |i, p| receivers.poll(i, p)).ok_or(None),
        }
    }
}

/// The receivers of a select: the first [`INLINE`] in place, so that a select built for
/// each message (the usual loop) allocates nothing; the others in a vector.
#[derive(Default)]
struct Receivers<'a> {
    inline: [Option<&'a mut dyn Ready>; INLINE],
    more: Vec<&'a mut dyn Ready>,
    len: usize,
}

/// Receivers a select keeps in place.
const INLINE: usize = 4;

impl<'a> Receivers<'a> {
    /// Adds `receiver`; its index.
    fn push(&mut self, receiver: &'a mut dyn Ready) -> usize {
        match self.inline.get_mut(self.len) {
            Some(slot) => *slot = Some(receiver),
            None => self.more.push(receiver),
        }
        self.len += 1;
        self.len - 1
    }

    fn len(&self) -> usize {
        self.len
    }

    /// Whether receiver `index` is ready (`false` for an index not added).
    fn poll(&mut self, index: usize, probe: Probe) -> bool {
        let receiver = match index.checked_sub(INLINE) {
            None => self.inline[index].as_deref_mut(),
            Some(past) => self.more.get_mut(past).map(|r| &mut **r),
        };
        receiver.is_some_and(|r| r.poll_ready(probe))
    }

    /// Every receiver, in order.
    fn iter(&self) -> impl Iterator<Item = &(dyn Ready + 'a)> {
        let inline = self.inline.iter().flatten();
        inline.chain(&self.more).map(|r| &**r)
    }
}

/// The first of `count` receivers that `ready` says is ready, looking from `start` round
/// to `start - 1`. A scan that may ask the kernel about senders asks about each process
/// once (receivers whose senders live in the same process share the answer).
fn scan(
    count: usize,
    start: usize,
    probe: Probe,
    mut ready: impl FnMut(usize, Probe) -> bool,
) -> Option<usize> {
    let mut look = || {
        (start..count)
            .chain(0..start)
            .find(|&index| ready(index, probe))
    };
    match probe {
        Probe::Fast => look(),
        Probe::Slow | Probe::Paced => each_process_once(look),
    }
}

/// The data events of `receivers`, each once (receivers of one broadcast channel share
/// theirs), with their channels' handshakes.
fn distinct_events(receivers: &Receivers<'_>) -> Vec<(EventRef, Handshake)> {
    let mut events: Vec<(EventRef, Handshake)> = Vec::with_capacity(receivers.len());
    for receiver in receivers.iter() {
        let (event, handshake) = receiver.data_event();
        if !events
            .iter()
            .any(|(known, _)| std::ptr::eq(known.get(), event.get()))
        {
            events.push((event, handshake));
        }
    }
    events
}

/// A number below `count` (> 0), from a per-thread pseudo-random sequence (splitmix64): the
/// receiver a select looks at first.
fn random_below(count: usize) -> usize {
    thread_local! {
        static STATE: Cell<u64> = const { Cell::new(0x853C_49E6_748F_EA9B) };
    }
    let mixed = STATE.with(|state| {
        let next = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(next);
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    });
    (mixed % count as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::random_below;

    #[test]
    fn the_first_receiver_looked_at_varies_over_all() {
        let mut seen = [0u32; 5];
        for _ in 0..1000 {
            seen[random_below(5)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 100), "{seen:?}");
    }
}
