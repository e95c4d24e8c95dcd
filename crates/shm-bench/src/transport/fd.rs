//! A byte-stream endpoint over file descriptors (pipes, stream sockets), with the
//! partial-read/write and `EINTR` loops that such descriptors need.

use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;

use super::{Endpoint, MsgIn, MsgOut, TransportError};

/// An endpoint reading from `rx` and writing to `tx` through a private buffer.
pub(crate) struct FdEndpoint {
    rx: OwnedFd,
    tx: OwnedFd,
    /// Private message buffer of the maximum message size.
    buf: Vec<u8>,
}

impl FdEndpoint {
    /// An endpoint for messages of up to `max_msg` bytes.
    pub(crate) fn new(rx: OwnedFd, tx: OwnedFd, max_msg: usize) -> FdEndpoint {
        FdEndpoint {
            rx,
            tx,
            buf: vec![0u8; max_msg],
        }
    }

    fn check_len(&self, len: usize) -> Result<(), TransportError> {
        super::check_fits(len, self.buf.len())
    }
}

/// Reads exactly `buf.len()` bytes. EOF before the first byte is `Disconnected`; EOF in
/// the middle of a message is a truncated message (`BadLength`).
pub(crate) fn read_exact(fd: impl AsFd, buf: &mut [u8]) -> Result<(), TransportError> {
    let fd = fd.as_fd();
    let mut done = 0;
    while done < buf.len() {
        match nix::unistd::read(fd, &mut buf[done..]) {
            Ok(0) if done == 0 => return Err(TransportError::Disconnected),
            Ok(0) => {
                return Err(TransportError::BadLength {
                    expected: buf.len(),
                    got: done,
                })
            }
            Ok(n) => done += n,
            Err(Errno::EINTR) => continue,
            Err(Errno::ECONNRESET) => return Err(TransportError::Disconnected),
            Err(e) => return Err(TransportError::Io(e.into())),
        }
    }
    Ok(())
}

/// Writes all of `buf`. A closed reader (`EPIPE`, `ECONNRESET`) is `Disconnected`.
pub(crate) fn write_all(fd: impl AsFd, buf: &[u8]) -> Result<(), TransportError> {
    let fd = fd.as_fd();
    let mut done = 0;
    while done < buf.len() {
        match nix::unistd::write(fd, &buf[done..]) {
            Ok(0) => return Err(TransportError::Disconnected),
            Ok(n) => done += n,
            Err(Errno::EINTR) => continue,
            Err(Errno::EPIPE | Errno::ECONNRESET) => return Err(TransportError::Disconnected),
            Err(e) => return Err(TransportError::Io(e.into())),
        }
    }
    Ok(())
}

impl Endpoint for FdEndpoint {
    fn send(
        &mut self,
        len: usize,
        fill: &mut dyn FnMut(&mut MsgOut<'_>),
    ) -> Result<(), TransportError> {
        self.check_len(len)?;
        let msg = &mut self.buf[..len];
        fill(&mut MsgOut::private(msg));
        write_all(&self.tx, msg)
    }

    fn recv(&mut self, len: usize, read: &mut dyn FnMut(&MsgIn<'_>)) -> Result<(), TransportError> {
        self.check_len(len)?;
        let msg = &mut self.buf[..len];
        read_exact(&self.rx, msg)?;
        read(&MsgIn::private(msg));
        Ok(())
    }

    fn echo(
        &mut self,
        len: usize,
        inspect: &mut dyn FnMut(&MsgIn<'_>),
    ) -> Result<(), TransportError> {
        self.check_len(len)?;
        let msg = &mut self.buf[..len];
        read_exact(&self.rx, msg)?;
        inspect(&MsgIn::private(msg));
        write_all(&self.tx, msg)
    }
}
