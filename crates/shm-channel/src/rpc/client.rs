//! The client end: requests out, replies matched to them.

use std::time::{Duration, Instant};

use super::envelope::{Envelope, Tagged};
use super::RpcError;
use crate::codec::Codec;
use crate::spsc::Spsc;
use crate::typed::{self, DefaultCodec};
use crate::{Endpoint, RecvTimeoutError, TryRecvError, TrySendError};

/// The client end of a request/response pair (see [`rpc`](super)): sends requests of type
/// `Req`, receives replies of type `Resp`, both encoded by `C`.
pub struct Client<Req, Resp, C = DefaultCodec> {
    pub(super) requests: typed::Sender<Envelope<Req>, Spsc, Tagged<C>>,
    pub(super) replies: typed::Receiver<Envelope<Resp>, Spsc, Tagged<C>>,
    /// The id of the next request.
    next_id: u64,
}

impl<Req, Resp, C> Client<Req, Resp, C>
where
    C: Codec<Req> + Codec<Resp>,
{
    pub(super) fn new(
        requests: typed::Sender<Envelope<Req>, Spsc, Tagged<C>>,
        replies: typed::Receiver<Envelope<Resp>, Spsc, Tagged<C>>,
    ) -> Self {
        Client {
            requests,
            replies,
            next_id: 0,
        }
    }

    /// Sends `request` and waits for its reply (dropping replies to earlier requests whose
    /// calls gave up, or that were [`send`](Client::send) without their replies taken).
    ///
    /// # Errors
    ///
    /// [`RpcError::PeerDied`] / [`RpcError::Disconnected`] if the server is gone (its
    /// process killed: within the liveness bound); [`RpcError::Send`] /
    /// [`RpcError::Recv`] for a value the codec or the ring refused; [`RpcError::Protocol`]
    /// for a reply to a request never sent.
    pub fn call(&mut self, request: Req) -> Result<Resp, RpcError> {
        let id = self.send(request)?;
        loop {
            let reply = self.replies.recv().map_err(RpcError::of_recv)?;
            if let Some(body) = self.matched(id, reply)? {
                return Ok(body);
            }
        }
    }

    /// [`call`](Client::call), waiting at most `timeout` for the reply (and for room to
    /// send): [`RpcError::Timeout`] then, and the reply is dropped when it comes.
    pub fn call_timeout(&mut self, request: Req, timeout: Duration) -> Result<Resp, RpcError> {
        let deadline = Instant::now() + timeout;
        let id = self.next_id;
        let envelope = Envelope { id, body: request };
        match self.requests.send_timeout(envelope, timeout) {
            Ok(()) => self.next_id += 1,
            Err(crate::SendTimeoutError::Timeout(_)) => return Err(RpcError::Timeout),
            Err(crate::SendTimeoutError::Send(err)) => return Err(RpcError::of_send(err)),
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let reply = match self.replies.recv_timeout(left) {
                Ok(reply) => reply,
                Err(RecvTimeoutError::Timeout) => return Err(RpcError::Timeout),
                Err(RecvTimeoutError::Recv(err)) => return Err(RpcError::of_recv(err)),
            };
            if let Some(body) = self.matched(id, reply)? {
                return Ok(body);
            }
        }
    }

    /// Sends `request` without waiting for its reply (waiting for room as long as it
    /// takes); returns its id, which [`recv`](Client::recv) returns with the reply. The
    /// server answers in order.
    pub fn send(&mut self, request: Req) -> Result<u64, RpcError> {
        let id = self.next_id;
        self.requests
            .send(Envelope { id, body: request })
            .map_err(RpcError::of_send)?;
        self.next_id += 1;
        Ok(id)
    }

    /// [`send`](Client::send) if there is room now; `Full` hands the request back.
    pub fn try_send(&mut self, request: Req) -> Result<u64, TrySendError<Req, RpcError>> {
        let id = self.next_id;
        match self.requests.try_send(Envelope { id, body: request }) {
            Ok(()) => {
                self.next_id += 1;
                Ok(id)
            }
            Err(TrySendError::Full(envelope)) => Err(TrySendError::Full(envelope.body)),
            Err(TrySendError::Send(err)) => Err(TrySendError::Send(RpcError::of_send(err))),
        }
    }

    /// The next reply and the id of its request, waiting as long as it takes.
    pub fn recv(&mut self) -> Result<(u64, Resp), RpcError> {
        let reply = self.replies.recv().map_err(RpcError::of_recv)?;
        self.checked(reply)
    }

    /// The next reply if one is there now (`Ok(None)` if not).
    pub fn try_recv(&mut self) -> Result<Option<(u64, Resp)>, RpcError> {
        match self.replies.try_recv() {
            Ok(reply) => self.checked(reply).map(Some),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Recv(err)) => Err(RpcError::of_recv(err)),
        }
    }

    /// The request and reply endpoints (for what every endpoint offers: ownership across
    /// `fork`, capacity, …).
    pub fn endpoints(&self) -> [&dyn Endpoint; 2] {
        [&self.requests, &self.replies]
    }

    /// `reply` if it answers request `id`; `None` for a reply to an earlier request.
    fn matched(&self, id: u64, reply: Envelope<Resp>) -> Result<Option<Resp>, RpcError> {
        let (found, body) = self.checked(reply)?;
        Ok((found == id).then_some(body))
    }

    /// `reply`, refused if it answers a request this client has not sent.
    fn checked(&self, reply: Envelope<Resp>) -> Result<(u64, Resp), RpcError> {
        if reply.id >= self.next_id {
            return Err(RpcError::Protocol {
                expected: self.next_id.saturating_sub(1),
                found: reply.id,
            });
        }
        Ok((reply.id, reply.body))
    }
}

impl<Req, Resp, C> std::fmt::Debug for Client<Req, Resp, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("rpc::Client")
            .field("requests", &self.requests)
            .field("next_id", &self.next_id)
            .finish_non_exhaustive()
    }
}
