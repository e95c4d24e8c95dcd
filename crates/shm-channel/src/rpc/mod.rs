//! Request/response between any two processes: a typed [`Client`] and [`Server`] over a
//! pair of SPSC channels, one each way.
//!
//! [`pair`] creates both channels in sealed memfds, so either end travels as any endpoint
//! does: moved into a child by `fork` (shm-fork's `fork_with`), passed to a program started
//! with `exec` (`shm_fork::exec::Command::pass`, taken with `inherited`), or handed over a
//! rendezvous to a process started separately (`Connection::pass`/`take`) — each end as one
//! [`Portable`] value (its ticket is `rpc.client.0` or
//! `rpc.server.0`; its descriptors are both channels'). Both channels check their types like
//! any typed channel: a client of other request or response types is refused.
//!
//! Every request carries an id (8 bytes in front of the body), and its reply carries it
//! back: [`Client::call`] returns the reply to *its* request, dropping replies to earlier
//! requests whose calls gave up ([`Client::call_timeout`]). A dead peer is `PeerDied`
//! within the channels' liveness bound, never a hang: a client blocked in `call` when the
//! server's process is killed gets [`RpcError::PeerDied`], and so does a server waiting for
//! a request from a dead client.
//!
//! A server serves one client; a service with many clients serves each on a thread of its
//! own (see `examples/service.rs`).
//!
//! ```
//! use shm_ipc::channel::rpc;
//! let (mut client, mut server) = rpc::pair::<u64, String>(1 << 12)?;
//! let service = std::thread::spawn(move || server.serve(|n| format!("#{n}")));
//! assert_eq!(client.call(7)?, "#7");
//! assert_eq!(client.call(8)?, "#8");
//! drop(client); // the server's loop ends: Ok, its client is gone
//! service.join().unwrap()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod client;
mod envelope;
mod server;

pub use client::Client;
pub use server::Server;

use std::os::fd::OwnedFd;

use crate::codec::Codec;
use crate::transfer::{split_pair, Portable, Side, Ticket, Transfer, TransferError};
use crate::typed::{self, DefaultCodec};
use crate::ChannelError;

use envelope::{Envelope, Tagged};

/// Both ends of a request/response pair.
type Ends<Req, Resp, C = DefaultCodec> = (Client<Req, Resp, C>, Server<Req, Resp, C>);

/// Creates a client and its server: two SPSC channels of `capacity` bytes each (requests,
/// replies) in sealed memfds, with the default codec.
pub fn pair<Req, Resp>(capacity: usize) -> Result<Ends<Req, Resp>, ChannelError>
where
    DefaultCodec: Codec<Req> + Codec<Resp>,
{
    pair_with::<Req, Resp, DefaultCodec>(capacity)
}

/// [`pair`] with codec `C`.
pub fn pair_with<Req, Resp, C>(capacity: usize) -> Result<Ends<Req, Resp, C>, ChannelError>
where
    C: Codec<Req> + Codec<Resp>,
{
    let memfd = || crate::Builder::<crate::spsc::Spsc>::new(capacity).create_memfd();
    let (requests, incoming) = typed::pair::<Envelope<Req>, _, Tagged<C>>(memfd()?)?;
    let (outgoing, replies) = typed::pair::<Envelope<Resp>, _, Tagged<C>>(memfd()?)?;
    Ok((
        Client::new(requests, replies),
        Server {
            requests: incoming,
            replies: outgoing,
        },
    ))
}

/// Why a request or a reply did not go through.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The other side's process died (seen through the kernel, within the channels'
    /// liveness bound).
    #[error("the process at the other end died")]
    PeerDied,
    /// The other side closed its end (a client was dropped, or its server was).
    #[error("the other end was closed")]
    Disconnected,
    /// No reply within the timeout; it is dropped when it comes.
    #[error("no reply within the timeout")]
    Timeout,
    /// The request or reply could not be sent: too large for the ring, not encodable, a
    /// copy of the end this process does not own, or a corrupt ring.
    #[error("cannot send: {0}")]
    Send(typed::SendError<()>),
    /// A request or reply could not be received: not decodable, a copy this process does
    /// not own, or a corrupt ring.
    #[error("cannot receive: {0}")]
    Recv(typed::RecvError),
    /// A reply names a request this client has not sent (a peer that breaks the protocol).
    #[error("a reply to request {found}, none of ours (the next is {expected})")]
    Protocol {
        /// The id of the request this client waits for.
        expected: u64,
        /// The id the reply named.
        found: u64,
    },
}

impl RpcError {
    /// The error of a failed send (the value is dropped).
    fn of_send<T>(err: typed::SendError<T>) -> RpcError {
        match err {
            typed::SendError::Send(crate::SendError::Disconnected(_)) => RpcError::Disconnected,
            typed::SendError::Send(crate::SendError::PeerDied(_)) => RpcError::PeerDied,
            typed::SendError::Send(other) => {
                RpcError::Send(typed::SendError::Send(other.map(drop)))
            }
            typed::SendError::Encode(_, e) => RpcError::Send(typed::SendError::Encode((), e)),
        }
    }

    /// The error of a failed receive.
    fn of_recv(err: typed::RecvError) -> RpcError {
        match err {
            typed::RecvError::Recv(crate::RecvError::Disconnected) => RpcError::Disconnected,
            typed::RecvError::Recv(crate::RecvError::PeerDied) => RpcError::PeerDied,
            other => RpcError::Recv(other),
        }
    }
}

/// The transfer of a pair's end made of `first` and `second`, one after the other.
fn travel(
    side: Side,
    first: impl Portable,
    second: impl Portable,
) -> Result<Transfer, TransferError> {
    let first = first.into_transfer()?;
    Ok(Transfer::pair(side, first, second.into_transfer()?))
}

/// The two channels of a pair's end (`side`) received as `fds` with `ticket`; the first
/// channel's side is `first`.
fn arrive<A: Portable, B: Portable>(
    fds: Vec<OwnedFd>,
    ticket: Ticket,
    side: Side,
    first: Side,
) -> Result<(A, B), TransferError> {
    let [(a, a_ticket), (b, b_ticket)] = split_pair(fds, ticket, side, first)?;
    Ok((A::from_fds(a, a_ticket)?, B::from_fds(b, b_ticket)?))
}

/// A client travels as its two channels (ticket `rpc.client.0`): the request sender's
/// descriptors, then the reply receiver's.
impl<Req, Resp, C: Codec<Req> + Codec<Resp>> Portable for Client<Req, Resp, C> {
    fn into_transfer(self) -> Result<Transfer, TransferError> {
        travel(Side::Client, self.requests, self.replies)
    }

    fn from_fds(fds: Vec<OwnedFd>, ticket: Ticket) -> Result<Self, TransferError> {
        let (requests, replies) = arrive(fds, ticket, Side::Client, Side::Sender)?;
        Ok(Client::new(requests, replies))
    }
}

/// A server travels as its two channels (ticket `rpc.server.0`): the request receiver's
/// descriptors, then the reply sender's.
impl<Req, Resp, C: Codec<Req> + Codec<Resp>> Portable for Server<Req, Resp, C> {
    fn into_transfer(self) -> Result<Transfer, TransferError> {
        travel(Side::Server, self.requests, self.replies)
    }

    fn from_fds(fds: Vec<OwnedFd>, ticket: Ticket) -> Result<Self, TransferError> {
        let (requests, replies) = arrive(fds, ticket, Side::Server, Side::Receiver)?;
        Ok(Server { requests, replies })
    }
}
