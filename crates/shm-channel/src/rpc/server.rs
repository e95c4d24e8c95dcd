//! The server end: requests in, each reply carrying its request's id back.

use super::envelope::{Envelope, Tagged};
use super::RpcError;
use crate::codec::Codec;
use crate::spsc::Spsc;
use crate::typed::{self, DefaultCodec};
use crate::Endpoint;

/// The server end of a request/response pair (see [`rpc`](super)): receives requests of
/// type `Req`, answers with replies of type `Resp`, both encoded by `C`. It serves one
/// client; serve many on a thread each.
pub struct Server<Req, Resp, C = DefaultCodec> {
    pub(super) requests: typed::Receiver<Envelope<Req>, Spsc, Tagged<C>>,
    pub(super) replies: typed::Sender<Envelope<Resp>, Spsc, Tagged<C>>,
}

impl<Req, Resp, C> Server<Req, Resp, C>
where
    C: Codec<Req> + Codec<Resp>,
{
    /// Answers every request with `handler(request)`, in order, until the client is gone:
    /// `Ok` when it closed its end (dropped it), [`RpcError::PeerDied`] when its process
    /// died, another error if a request or reply did not go through.
    pub fn serve(&mut self, mut handler: impl FnMut(Req) -> Resp) -> Result<(), RpcError> {
        loop {
            let (id, request) = match self.recv() {
                Ok(next) => next,
                Err(RpcError::Disconnected) => return Ok(()),
                Err(err) => return Err(err),
            };
            match self.reply(id, handler(request)) {
                Ok(()) => {}
                Err(RpcError::Disconnected) => return Ok(()),
                Err(err) => return Err(err),
            }
        }
    }

    /// The next request and its id, waiting as long as it takes;
    /// [`RpcError::Disconnected`] once the client closed its end and every request it sent
    /// was taken.
    pub fn recv(&mut self) -> Result<(u64, Req), RpcError> {
        let request = self.requests.recv().map_err(RpcError::of_recv)?;
        Ok((request.id, request.body))
    }

    /// Sends the reply to request `id`.
    pub fn reply(&mut self, id: u64, reply: Resp) -> Result<(), RpcError> {
        self.replies
            .send(Envelope { id, body: reply })
            .map_err(RpcError::of_send)
    }

    /// The request and reply endpoints (for what every endpoint offers: ownership across
    /// `fork`, capacity, …).
    pub fn endpoints(&self) -> [&dyn Endpoint; 2] {
        [&self.requests, &self.replies]
    }
}

impl<Req, Resp, C> std::fmt::Debug for Server<Req, Resp, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("rpc::Server")
            .field("requests", &self.requests)
            .finish_non_exhaustive()
    }
}
