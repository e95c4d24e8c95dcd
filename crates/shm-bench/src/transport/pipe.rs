//! Pipes: `pipe` (the kernel's default capacity, 64 KiB on Linux) and `pipe-1mib`
//! (`F_SETPIPE_SZ` raised to 1 MiB, so a 1 MiB message needs one wake-up, not sixteen).

use std::os::fd::{AsFd, OwnedFd};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::unistd::pipe2;

use super::buffered::Buffered;
use super::fd::FdLink;
use super::{Pair, Transport, TransportError};

/// Two pipes, one per direction, with an optional capacity.
#[derive(Debug)]
pub(crate) struct Pipe {
    name: &'static str,
    /// Requested capacity in bytes, `None` for the kernel default.
    capacity: Option<usize>,
}

/// `pipe`: two pipes of default capacity.
pub(crate) static PIPE: Pipe = Pipe {
    name: "pipe",
    capacity: None,
};

/// `pipe-1mib`: two pipes with `F_SETPIPE_SZ` 1 MiB.
pub(crate) static PIPE_1MIB: Pipe = Pipe {
    name: "pipe-1mib",
    capacity: Some(1 << 20),
};

impl Pipe {
    /// Resizes the pipe if asked; returns a note when the kernel refused or rounded.
    fn resize(&self, fd: impl AsFd) -> Option<String> {
        let want = self.capacity?;
        match fcntl(fd.as_fd(), FcntlArg::F_SETPIPE_SZ(want as libc::c_int)) {
            Ok(got) if got as usize >= want => None,
            Ok(got) => Some(format!(
                "{}: F_SETPIPE_SZ({want}) gave only {got} bytes",
                self.name
            )),
            Err(e) => {
                let now = fcntl(fd.as_fd(), FcntlArg::F_GETPIPE_SZ).unwrap_or(-1);
                Some(format!(
                    "{}: F_SETPIPE_SZ({want}) refused ({e}; see /proc/sys/fs/pipe-max-size), pipe stays {now} bytes",
                    self.name
                ))
            }
        }
    }

    /// One pipe of this capacity: (write end, read end).
    fn pipe(&self, notes: &mut Vec<String>) -> Result<(OwnedFd, OwnedFd), TransportError> {
        let (w, r) = one_way()?;
        if let Some(n) = self.resize(&w) {
            if !notes.contains(&n) {
                notes.push(n);
            }
        }
        Ok((w, r))
    }
}

/// A pipe of default capacity: (write end, read end).
pub(crate) fn one_way() -> Result<(OwnedFd, OwnedFd), TransportError> {
    let (r, w) = pipe2(OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
    Ok((w, r))
}

impl Transport for Pipe {
    fn name(&self) -> &'static str {
        self.name
    }

    fn connect(&self, max_msg: usize) -> Result<Pair, TransportError> {
        let mut notes = Vec::new();
        let down = self.pipe(&mut notes)?;
        let up = self.pipe(&mut notes)?;
        let pair = Pair::crosswise(down, up, |tx, rx| Buffered::new(FdLink { rx, tx }, max_msg));
        Ok(Pair { notes, ..pair })
    }
}
