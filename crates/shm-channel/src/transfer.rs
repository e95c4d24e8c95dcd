//! Endpoints that travel as file descriptors: to a program started with `exec`, or to a
//! process that received them over a unix socket.
//!
//! A channel created with [`Builder::create_memfd`](crate::Builder::create_memfd) lives in a
//! sealed memfd. Any of its endpoints can be turned into a [`Transfer`]: duplicates of its
//! descriptors plus a [`Ticket`] naming the endpoint (flavor, side, owner slot). The
//! descriptors are the memfd and, if the channel has them, the two ends of its doorbell (a
//! unix datagram socket pair that wakes async waiters; see
//! [`Builder::doorbells`](crate::Builder::doorbells)): the synchronous wake-ups are futexes
//! inside the memory itself. The process that receives them rebuilds the endpoint with
//! [`Portable::from_fds`]: the layout header is validated as by `attach`, each doorbell end
//! is checked to be a unix datagram socket, and the endpoint's owner slot is taken over.
//!
//! Ownership moves in two steps, as across `fork`:
//!
//! 1. sending process: [`Transfer::hand_over`], as soon as it knows the receiving process
//!    (the pid `spawn` returns, a socket's peer credentials). Its copy becomes inert and is
//!    dropped without disconnecting anyone. If the receiving process then dies, its peer
//!    sees `PeerDied` within the usual bound, whether or not it ever attached.
//! 2. receiving process: [`Portable::from_parts`] takes the owner slot over when it names
//!    the receiving process (handed over already) or that process's parent (an exec'd child
//!    may get there before the parent's step 1), or names nobody. Any other owner, alive or
//!    dead, is refused.
//!
//! A `Transfer` dropped without being handed over drops its endpoint: the peer sees the
//! endpoint closed, as when the endpoint itself is dropped.
//!
//! ```
//! use shm_ipc::channel::spsc::Spsc;
//! use shm_ipc::channel::{Builder, Receiver};
//! use shm_ipc::channel::transfer::{Portable, Ticket, TransferError};
//!
//! let (tx, rx) = Builder::<Spsc>::new(4096).doorbells(true).create_memfd()?;
//! let transfer = rx.into_transfer()?;
//! // What travels: descriptors (close-on-exec until passed on purpose: the memfd, then the
//! // two doorbells) and a short text.
//! assert_eq!(transfer.fds().len(), 3);
//! assert_eq!(transfer.ticket().to_string(), "spsc.receiver.0");
//! let ticket: Ticket = "spsc.receiver.0".parse()?;
//! assert_eq!(ticket, transfer.ticket());
//! // The process it reaches rebuilds it with `Receiver::<Spsc>::from_fds(fds, ticket)` (see
//! // `shm_ipc::fork::exec` for a program started with `exec`); a sender cannot be made of it:
//! let fds = transfer.fds().iter().map(|fd| fd.try_clone_to_owned()).collect::<Result<_, _>>()?;
//! let wrong = shm_ipc::channel::Sender::<shm_ipc::channel::spsc::Spsc>::from_fds(fds, ticket);
//! assert!(matches!(wrong, Err(TransferError::WrongEndpoint { .. })));
//! // Dropped without a hand-over, the transfer drops the receiver: the channel closes.
//! drop(transfer);
//! # drop(tx);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::str::FromStr;
use std::sync::Arc;

use shm_core::liveness::ProcessIdentity;
use shm_core::notify::{DoorbellError, WaitStrategy};
use shm_core::Region;

use crate::codec::Codec;
use crate::shared::doorbells::Doorbells;
use crate::shared::layout::Layout;
use crate::shared::ring::RecvRing;
use crate::shared::status::Claim;
use crate::{ChannelError, Endpoint, Flavor, OwnershipError, Receiver, Sender};

/// Which side of a channel an endpoint is (or of a request/response pair).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Side {
    /// A sending endpoint.
    Sender,
    /// A receiving endpoint.
    Receiver,
    /// An [`rpc::Client`](crate::rpc::Client): a request sender and a reply receiver.
    Client,
    /// An [`rpc::Server`](crate::rpc::Server): a request receiver and a reply sender.
    Server,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Sender => "sender",
            Side::Receiver => "receiver",
            Side::Client => "client",
            Side::Server => "server",
        }
    }

    /// Whether this side is a pair of endpoints (two channels).
    fn is_pair(self) -> bool {
        matches!(self, Side::Client | Side::Server)
    }
}

/// What a descriptor passed with an endpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdKind {
    /// A channel's memory: a sealed memfd.
    Memfd,
    /// One end of a channel's doorbell socket pair.
    Doorbell,
}

/// Which endpoint a [`Transfer`]'s memfd carries: flavor, side and owner slot. Its text
/// form (`Display`/`FromStr`) is `flavor.side.slot`, e.g. `mpsc.sender.3`; an end of a
/// request/response pair (two SPSC channels) is `rpc.client.0` or `rpc.server.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ticket {
    flavor: &'static str,
    side: Side,
    slot: usize,
}

/// The flavors a ticket may name (`rpc`: a request/response pair of SPSC channels).
const FLAVORS: [&str; 4] = ["spsc", "mpsc", "broadcast", "rpc"];

impl Ticket {
    /// The flavor's name (`"spsc"`, `"mpsc"`, `"broadcast"`).
    pub fn flavor(&self) -> &'static str {
        self.flavor
    }

    /// What the `count` descriptors passed with this ticket are, in order; `None` if
    /// `count` is not a number this ticket travels with (an endpoint: its memfd, then
    /// optionally its two doorbells; a pair: the same for each of its two channels).
    pub fn fd_kinds(&self, count: usize) -> Option<Vec<FdKind>> {
        let parts = if self.side.is_pair() { 2 } else { 1 };
        let per_part = match count.checked_div(parts)? {
            n @ (1 | 3) if n * parts == count => n,
            _ => return None,
        };
        Some(
            (0..count)
                .map(|i| match i % per_part {
                    0 => FdKind::Memfd,
                    _ => FdKind::Doorbell,
                })
                .collect(),
        )
    }

    /// `Ok` if this ticket names an endpoint of flavor `flavor` on `side`.
    fn expect_named(&self, flavor: &'static str, side: Side) -> Result<(), TransferError> {
        if self.flavor == flavor && self.side == side {
            Ok(())
        } else {
            Err(TransferError::WrongEndpoint {
                expected: format!("{flavor}.{}", side.name()),
                found: *self,
            })
        }
    }

    /// `Ok` if this ticket names an endpoint of flavor `F` on `side`.
    fn expect<F: Flavor>(&self, side: Side) -> Result<(), TransferError> {
        self.expect_named(F::NAME, side)
    }
}

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.flavor, self.side.name(), self.slot)
    }
}

impl FromStr for Ticket {
    type Err = TransferError;

    /// Parses `flavor.side.slot`; anything else is [`TransferError::BadTicket`].
    fn from_str(text: &str) -> Result<Ticket, TransferError> {
        let bad = |reason| TransferError::BadTicket {
            ticket: text.chars().take(64).collect(),
            reason,
        };
        let mut parts = text.split('.');
        let (Some(flavor), Some(side), Some(slot), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("not of the form flavor.side.slot"));
        };
        let flavor = FLAVORS
            .into_iter()
            .find(|known| *known == flavor)
            .ok_or_else(|| bad("unknown flavor"))?;
        let side = match (flavor, side) {
            ("rpc", "client") => Side::Client,
            ("rpc", "server") => Side::Server,
            ("rpc", _) => return Err(bad("the side of a pair is neither client nor server")),
            (_, "sender") => Side::Sender,
            (_, "receiver") => Side::Receiver,
            _ => return Err(bad("the side is neither sender nor receiver")),
        };
        // At most 4 digits: slots are few (the channels' limits are 16 and 64).
        let slot = (slot.len() <= 4 && slot.bytes().all(|b| b.is_ascii_digit()))
            .then(|| slot.parse().ok())
            .flatten()
            .ok_or_else(|| bad("the slot is not a small decimal number"))?;
        Ok(Ticket { flavor, side, slot })
    }
}

/// Why an endpoint could not be turned into a [`Transfer`], or rebuilt from one.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The channel's memory has no descriptor another process could map: create the
    /// channel with [`Builder::create_memfd`](crate::Builder::create_memfd).
    #[error("the channel's memory is not a memfd (create it with Builder::create_memfd)")]
    NotFdBacked,
    /// This endpoint cannot travel in its present state.
    #[error("a {what} cannot be handed to another process")]
    Unsupported {
        /// The endpoint.
        what: &'static str,
    },
    /// The endpoint is a copy this process does not own.
    #[error("the endpoint is a copy this process does not own")]
    NotOwner,
    /// Duplicating the memfd failed (`EMFILE`, ...).
    #[error("cannot duplicate the channel's memfd: {0}")]
    Duplicate(#[source] io::Error),
    /// A ticket's text is not one this crate writes.
    #[error("invalid endpoint ticket {ticket:?}: {reason}")]
    BadTicket {
        /// The text (its first 64 characters).
        ticket: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The ticket names another kind of endpoint than the one asked for.
    #[error("expected a {expected} endpoint, the descriptor carries a {found}")]
    WrongEndpoint {
        /// `flavor.side` asked for.
        expected: String,
        /// What the ticket names.
        found: Ticket,
    },
    /// Not the descriptors of an endpoint: a memfd, optionally followed by two doorbells
    /// (an end of a request/response pair: that for each of its channels).
    #[error(
        "an endpoint travels as 1 descriptor (its memfd) or 3 (and its doorbells), a pair's end as twice that, not {count}"
    )]
    Descriptors {
        /// How many arrived.
        count: usize,
    },
    /// A descriptor passed as a doorbell is not a unix datagram socket.
    #[error(transparent)]
    Doorbell(#[from] DoorbellError),
    /// The memfd could not be mapped, or does not hold a compatible channel, or the
    /// endpoint's owner slot is held by another live process.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// The endpoint is a typed end of another type than the one asked for (see
    /// [`typed::Fingerprint`](crate::typed::Fingerprint)); it was dropped, which closes
    /// it.
    #[error(transparent)]
    Type(#[from] crate::typed::TypeMismatch),
}

/// An endpoint that can travel to another process as a descriptor and a [`Ticket`].
pub trait Portable: Sized {
    /// Turns the endpoint into what another process needs to rebuild it. The endpoint
    /// stays alive inside the [`Transfer`] until [`Transfer::hand_over`].
    ///
    /// # Errors
    ///
    /// [`TransferError::NotFdBacked`] for a channel not in a memfd,
    /// [`TransferError::NotOwner`] for a copy this process does not own,
    /// [`TransferError::Unsupported`] for a stream reader holding bytes it read out of
    /// its ring.
    fn into_transfer(self) -> Result<Transfer, TransferError>;

    /// Rebuilds the endpoint from the received descriptors ([`Transfer::fds`]: the memfd,
    /// then the doorbells if the channel has them) and ticket, in the process it was handed
    /// to (see the [module docs](self)).
    fn from_fds(fds: Vec<OwnedFd>, ticket: Ticket) -> Result<Self, TransferError>;

    /// [`from_fds`](Portable::from_fds) with the memfd alone: async waits on the endpoint
    /// then re-check every millisecond instead of being rung by the peer.
    fn from_parts(fd: OwnedFd, ticket: Ticket) -> Result<Self, TransferError> {
        Self::from_fds(vec![fd], ticket)
    }
}

/// An endpoint on its way to another process: its descriptors (duplicates, close-on-exec:
/// the memfd, then the doorbells if the channel has them) and [`Ticket`], and the endpoint
/// itself, still owned here until [`hand_over`](Self::hand_over).
pub struct Transfer {
    fds: Vec<OwnedFd>,
    ticket: Ticket,
    /// The endpoint (two for an end of a request/response pair).
    endpoints: Vec<Box<dyn Endpoint + Send>>,
}

impl fmt::Debug for Transfer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transfer")
            .field("fds", &self.fds)
            .field("ticket", &self.ticket)
            .finish_non_exhaustive()
    }
}

impl Transfer {
    /// Every descriptor to pass, in order: the memfd, then the channel's two doorbells if
    /// it has them. [`Portable::from_fds`] takes them in this order.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        self.fds.iter().map(AsFd::as_fd).collect()
    }

    /// Which endpoint the memfd carries.
    pub fn ticket(&self) -> Ticket {
        self.ticket
    }

    /// Makes process `to` the endpoint's owner and drops this process's copy, which no
    /// longer disconnects anyone. Succeeds too when `to` (the only other process that holds
    /// the memfd) has taken the endpoint over already — and even closed it since.
    ///
    /// # Errors
    ///
    /// [`TransferError::Channel`] (`ChannelError::Ownership`) if this process's identity
    /// cannot be read; the endpoint is dropped (and closed) then.
    pub fn hand_over(self, to: ProcessIdentity) -> Result<(), TransferError> {
        for endpoint in &self.endpoints {
            match endpoint.hand_over(to) {
                Ok(()) | Err(OwnershipError::OwnedElsewhere { .. }) => {}
                Err(err) => return Err(ChannelError::Ownership(err).into()),
            }
        }
        Ok(())
    }

    /// The transfer of an end of a request/response pair (`side`: client or server):
    /// both channels' transfers in one, their descriptors one after the other.
    pub(crate) fn pair(side: Side, first: Transfer, second: Transfer) -> Transfer {
        let mut fds = first.fds;
        fds.extend(second.fds);
        let mut endpoints = first.endpoints;
        endpoints.extend(second.endpoints);
        Transfer {
            fds,
            ticket: Ticket {
                flavor: "rpc",
                side,
                slot: 0,
            },
            endpoints,
        }
    }
}

/// The descriptors and tickets of the two SPSC channels of an end of a request/response
/// pair, received with `ticket` (which must name `side`): the first channel's side is
/// `first`, the second's the other.
pub(crate) fn split_pair(
    fds: Vec<OwnedFd>,
    ticket: Ticket,
    side: Side,
    first: Side,
) -> Result<[(Vec<OwnedFd>, Ticket); 2], TransferError> {
    ticket.expect_named("rpc", side)?;
    let count = fds.len();
    if ticket.fd_kinds(count).is_none() {
        return Err(TransferError::Descriptors { count });
    }
    let mut fds = fds;
    let second_fds = fds.split_off(count / 2);
    let part = |side| Ticket {
        flavor: "spsc",
        side,
        slot: 0,
    };
    let second = match first {
        Side::Sender => Side::Receiver,
        _ => Side::Sender,
    };
    Ok([(fds, part(first)), (second_fds, part(second))])
}

/// Duplicates of the descriptors behind a channel: its memfd (from `memory`), then its
/// doorbells, if any.
fn duplicate(
    memory: &Arc<dyn shm_core::SharedMemory>,
    doorbells: Option<&Arc<Doorbells>>,
) -> Result<Vec<OwnedFd>, TransferError> {
    let fd = memory.fd().ok_or(TransferError::NotFdBacked)?;
    // `try_clone_to_owned` duplicates with F_DUPFD_CLOEXEC: the copy does not leak into
    // programs this process runs, unless passed on purpose.
    let mut fds = vec![fd.try_clone_to_owned().map_err(TransferError::Duplicate)?];
    if let Some(doorbells) = doorbells {
        fds.extend(doorbells.duplicate().map_err(TransferError::Duplicate)?);
    }
    Ok(fds)
}

/// Maps a received memfd, validates the channel's header, and checks and takes the
/// doorbells that came with it.
fn attach<F: Flavor>(fds: Vec<OwnedFd>) -> Result<Layout<F>, TransferError> {
    let count = fds.len();
    let mut fds = fds.into_iter();
    let (Some(memfd), bells) = (fds.next(), [fds.next(), fds.next(), fds.next()]) else {
        return Err(TransferError::Descriptors { count });
    };
    let doorbells = match bells {
        [None, None, None] => None,
        [Some(data), Some(space), None] => Some(Doorbells::from_fds([data, space])?),
        _ => return Err(TransferError::Descriptors { count }),
    };
    let region = Region::options(0)
        .attach_memfd(memfd)
        .map_err(ChannelError::from)?;
    Ok(Layout::<F>::attach(Arc::new(region))?.with_doorbells(doorbells))
}

/// The transfer of `endpoint`, the `side` of a channel of flavor `F` holding owner slot
/// `slot`: duplicates of its descriptors and a ticket naming it. Its shared state must be
/// complete already (a sender published what it deferred; a receiver stored its head, from
/// which the receiving process starts).
fn transfer<F: Flavor>(
    endpoint: impl Endpoint + Send + 'static,
    side: Side,
    slot: usize,
) -> Result<Transfer, TransferError> {
    if !endpoint.is_owned_here() {
        return Err(TransferError::NotOwner);
    }
    Ok(Transfer {
        fds: duplicate(endpoint.memory(), endpoint.parts().view().doorbells())?,
        ticket: Ticket {
            flavor: F::NAME,
            side,
            slot,
        },
        endpoints: vec![Box::new(endpoint)],
    })
}

/// The ring side `open` makes of a received channel, for the endpoint `ticket` names, which
/// must be `side` of a channel of flavor `F`.
fn adopt<F: Flavor, R>(
    fds: Vec<OwnedFd>,
    ticket: Ticket,
    side: Side,
    open: fn(Layout<F>, Claim) -> Result<R, ChannelError>,
) -> Result<R, TransferError> {
    ticket.expect::<F>(side)?;
    Ok(open(attach::<F>(fds)?, Claim::Adopt { slot: ticket.slot })?)
}

impl<F: Flavor> Portable for Sender<F>
where
    Sender<F>: Send,
{
    fn into_transfer(mut self) -> Result<Transfer, TransferError> {
        self.flush();
        let slot = F::sender_slot(&self.common.ring);
        transfer::<F>(self, Side::Sender, slot)
    }

    fn from_fds(fds: Vec<OwnedFd>, ticket: Ticket) -> Result<Sender<F>, TransferError> {
        let writer = adopt::<F, _>(fds, ticket, Side::Sender, F::writer)?;
        Ok(Sender::from_ring(writer, WaitStrategy::default()))
    }
}

impl<F: Flavor> Portable for Receiver<F>
where
    Receiver<F>: Send,
{
    fn into_transfer(mut self) -> Result<Transfer, TransferError> {
        self.ring().flush_releases();
        let slot = F::receiver_slot(&self.common.ring);
        transfer::<F>(self, Side::Receiver, slot)
    }

    fn from_fds(fds: Vec<OwnedFd>, ticket: Ticket) -> Result<Receiver<F>, TransferError> {
        let reader = adopt::<F, _>(fds, ticket, Side::Receiver, F::reader)?;
        Ok(Receiver::from_ring(reader, WaitStrategy::default()))
    }
}

/// An end that travels as the byte end it wraps (the typed ends): unwrapped on the way
/// out, wrapped again on the way in (which checks its type: [`TransferError::Type`]).
pub(crate) trait TravelsAsBytes {
    /// The byte end underneath.
    type Bytes;
}

/// A typed sender travels as its byte sender.
impl<T, C: Codec<T>, F: Flavor> TravelsAsBytes for crate::typed::Sender<T, F, C> {
    type Bytes = Sender<F>;
}

/// A typed receiver travels as its byte receiver.
impl<T, C: Codec<T>, F: Flavor> TravelsAsBytes for crate::typed::Receiver<T, F, C> {
    type Bytes = Receiver<F>;
}

// `TravelsAsBytes` is the crate's own: only the typed ends get this impl.
impl<W> Portable for W
where
    W: TravelsAsBytes + Into<W::Bytes> + TryFrom<W::Bytes, Error = crate::typed::TypeMismatch>,
    W::Bytes: Portable,
{
    fn into_transfer(self) -> Result<Transfer, TransferError> {
        self.into().into_transfer()
    }

    fn from_fds(fds: Vec<OwnedFd>, ticket: Ticket) -> Result<Self, TransferError> {
        Ok(Self::try_from(W::Bytes::from_fds(fds, ticket)?)?)
    }
}
