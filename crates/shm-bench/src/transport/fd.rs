//! Byte-stream links over file descriptors (pipes, stream sockets), with the
//! partial-read/write and `EINTR` loops that such descriptors need.

use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;

use super::buffered::ByteLink;
use super::{Side, TransportError};

/// One side's descriptors: it reads from `rx` and writes to `tx`.
pub(crate) struct FdLink {
    pub(crate) rx: OwnedFd,
    pub(crate) tx: OwnedFd,
}

/// Descriptors record no owner: the kernel knows who holds them.
impl Side for FdLink {}

impl ByteLink for FdLink {
    fn write_msg(&mut self, msg: &[u8]) -> Result<(), TransportError> {
        write_all(&self.tx, msg)
    }

    fn read_msg(&mut self, buf: &mut Vec<u8>) -> Result<(), TransportError> {
        read_exact(&self.rx, buf)
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
