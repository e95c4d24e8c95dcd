//! `unix-socket`: a `socketpair(AF_UNIX, SOCK_STREAM)`, default buffer sizes.

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

use super::buffered::Buffered;
use super::fd::FdLink;
use super::{Pair, Transport, TransportError};

/// A connected unix stream socket pair.
#[derive(Debug)]
pub(crate) struct UnixSocket;

/// `unix-socket`.
pub(crate) static UNIX_SOCKET: UnixSocket = UnixSocket;

impl Transport for UnixSocket {
    fn name(&self) -> &'static str {
        "unix-socket"
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
        let end = |rx: std::os::fd::OwnedFd| -> Result<_, TransportError> {
            let tx = rx.try_clone()?;
            Ok(Buffered::new(FdLink { rx, tx }, max_msg))
        };
        Ok(Pair::new(end(a)?, end(b)?))
    }
}
