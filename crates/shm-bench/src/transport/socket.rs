//! `unix-socket`: a `socketpair(AF_UNIX, SOCK_STREAM)`, default buffer sizes.

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

use super::fd::FdEndpoint;
use super::{Pair, Transport, TransportError};

/// A connected unix stream socket pair.
#[derive(Debug)]
pub struct UnixSocket;

/// `unix-socket`.
pub static UNIX_SOCKET: UnixSocket = UnixSocket;

impl Transport for UnixSocket {
    fn name(&self) -> &'static str {
        "unix-socket"
    }

    fn description(&self) -> &'static str {
        "socketpair(AF_UNIX, SOCK_STREAM), default buffers"
    }

    fn connect(&self, max_msg: usize) -> Result<Pair, TransportError> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(std::io::Error::from)?;
        // Each side reads and writes the same socket; give the endpoint a second
        // descriptor so that its read and write halves are owned separately.
        let a2 = a.try_clone()?;
        let b2 = b.try_clone()?;
        Ok(Pair::new(
            FdEndpoint::new(a, a2, max_msg),
            FdEndpoint::new(b, b2, max_msg),
        ))
    }
}
