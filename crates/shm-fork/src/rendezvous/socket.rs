//! The socket calls of the rendezvous (private): `SOCK_SEQPACKET` unix sockets at abstract
//! or filesystem addresses, non-blocking and close-on-exec, peer credentials, one
//! descriptor per message.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    self, sockopt, AddressFamily, Backlog, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag,
    SockType, UnixAddr,
};

/// The largest message the rendezvous sends (a name and a ticket).
pub(crate) const MAX_MESSAGE: usize = 256;

/// The credentials the kernel recorded for the other end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub(crate) pid: i32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

fn new_socket() -> io::Result<OwnedFd> {
    let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
    Ok(socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        flags,
        None,
    )?)
}

/// Where a listener is bound.
#[derive(Debug, Clone)]
pub(crate) enum Address {
    /// A Linux abstract address (no file; gone with the last socket bound there).
    Abstract(Vec<u8>),
    /// A filesystem path (a socket file, removed by the listener's drop).
    Path(PathBuf),
}

impl Address {
    fn unix(&self) -> io::Result<UnixAddr> {
        Ok(match self {
            Address::Abstract(name) => UnixAddr::new_abstract(name)?,
            Address::Path(path) => UnixAddr::new(path.as_path())?,
        })
    }
}

/// Whether a socket listens at the filesystem `path` (an absolute path), by the kernel's
/// table of unix sockets in this network namespace (`/proc/net/unix`, flag
/// `__SO_ACCEPTCON`). Asked without connecting: a probe connection would sit in a live
/// listener's queue and be accepted as if it were a client.
pub(crate) fn listening_at(path: &std::path::Path) -> io::Result<bool> {
    /// `__SO_ACCEPTCON`: the socket is listening.
    const ACCEPTCON: u32 = 1 << 16;
    let table = std::fs::read_to_string("/proc/net/unix")?;
    let wanted = path.as_os_str().to_string_lossy();
    Ok(table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let flags = fields.get(3).and_then(|f| u32::from_str_radix(f, 16).ok());
        fields.len() >= 8
            && fields[7..].join(" ") == wanted
            && flags.is_some_and(|f| f & ACCEPTCON != 0)
    }))
}

/// A listening socket bound to `address`.
pub(crate) fn listen(address: &Address) -> io::Result<OwnedFd> {
    let fd = new_socket()?;
    socket::bind(fd.as_raw_fd(), &address.unix()?)?;
    socket::listen(&fd, Backlog::new(64).map_err(io::Error::from)?)?;
    Ok(fd)
}

/// A socket connected to `address`, retrying while the listener's backlog is full
/// (`EAGAIN`) until `deadline`. `Ok(None)`: nobody listens there.
pub(crate) fn connect(address: &Address, deadline: Instant) -> io::Result<Option<OwnedFd>> {
    let addr = address.unix()?;
    let fd = new_socket()?;
    let mut nap = Duration::from_millis(1);
    loop {
        match socket::connect(fd.as_raw_fd(), &addr) {
            Ok(()) => return Ok(Some(fd)),
            Err(Errno::ECONNREFUSED | Errno::ENOENT) => return Ok(None),
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) if Instant::now() < deadline => {
                std::thread::sleep(nap.min(deadline.saturating_duration_since(Instant::now())));
                nap = (nap * 2).min(Duration::from_millis(50));
            }
            Err(Errno::EAGAIN) => return Err(io::ErrorKind::TimedOut.into()),
            Err(errno) => return Err(errno.into()),
        }
    }
}

/// Accepts one connection (non-blocking, close-on-exec); `Ok(None)` if none is waiting.
pub(crate) fn accept(listener: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    match socket::accept4(listener, SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::EAGAIN | Errno::EINTR | Errno::ECONNABORTED) => Ok(None),
        Err(errno) => Err(errno.into()),
    }
}

/// The credentials of the other end (`SO_PEERCRED`).
pub(crate) fn peer_credentials(fd: BorrowedFd<'_>) -> io::Result<Credentials> {
    let creds = socket::getsockopt(&fd, sockopt::PeerCredentials)?;
    Ok(Credentials {
        pid: creds.pid(),
        uid: creds.uid(),
        gid: creds.gid(),
    })
}

/// A pidfd of the other end (`SO_PEERPIDFD`, Linux 6.5), if the kernel has it.
pub(crate) fn peer_pidfd(fd: BorrowedFd<'_>) -> Option<OwnedFd> {
    socket::getsockopt(&fd, sockopt::PeerPidfd).ok()
}

/// Waits until `fd` is ready for `flags` or `deadline` passes; whether it is ready.
pub(crate) fn wait(fd: BorrowedFd<'_>, flags: PollFlags, deadline: Instant) -> io::Result<bool> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // Whole milliseconds, rounded up, so a short wait still waits.
        let millis = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        let timeout = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(fd, flags)];
        match nix::poll::poll(&mut fds, timeout) {
            Ok(0) if left.is_zero() => return Ok(false),
            Ok(0) => continue,
            Ok(_) => return Ok(true),
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(errno.into()),
        }
    }
}

/// Whether `pidfd` says its process has exited (readable).
pub(crate) fn exited(pidfd: BorrowedFd<'_>) -> bool {
    let mut fds = [PollFd::new(pidfd, PollFlags::POLLIN)];
    matches!(nix::poll::poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// Sends `data` with descriptor `fd` attached, without `SIGPIPE`. `Ok(false)`: the
/// socket's buffer is full (try again once writable).
pub(crate) fn send_with_fds(
    socket: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<bool> {
    let fds: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let cmsgs = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(data)];
    match socket::sendmsg::<()>(
        socket.as_raw_fd(),
        &iov,
        &cmsgs,
        MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
        None,
    ) {
        Ok(_) => Ok(true),
        Err(Errno::EAGAIN | Errno::EINTR) => Ok(false),
        Err(errno) => Err(errno.into()),
    }
}

/// One received message.
pub(crate) enum Received {
    /// Nothing waiting (try again once readable).
    Nothing,
    /// The other end closed the connection.
    Closed,
    /// A message: its bytes and every descriptor that came with it (owned, close-on-exec),
    /// and whether the kernel truncated the data or the descriptors.
    Message {
        data: Vec<u8>,
        fds: Vec<OwnedFd>,
        truncated: bool,
    },
}

/// Receives one message (descriptors close-on-exec, `MSG_CMSG_CLOEXEC`).
pub(crate) fn receive(socket: BorrowedFd<'_>) -> io::Result<Received> {
    let mut data = vec![0u8; MAX_MESSAGE];
    // Room for one descriptor more than an endpoint ever travels with (6: an end of a
    // request/response pair with doorbells), so that one too many is seen, not cut.
    let mut space = nix::cmsg_space!([RawFd; 7]);
    let (len, flags, raw_fds) = {
        let mut iov = [IoSliceMut::new(&mut data)];
        let msg = match socket::recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(msg) => msg,
            Err(Errno::EAGAIN | Errno::EINTR) => return Ok(Received::Nothing),
            Err(errno) => return Err(errno.into()),
        };
        let mut raw_fds = Vec::new();
        if let Ok(cmsgs) = msg.cmsgs() {
            for cmsg in cmsgs {
                if let ControlMessageOwned::ScmRights(fds) = cmsg {
                    raw_fds.extend(fds);
                }
            }
        }
        (msg.bytes, msg.flags, raw_fds)
    };
    let fds = raw_fds
        .into_iter()
        // SAFETY: the kernel just installed these descriptors in this process for this
        // message; nothing else knows their numbers, so each gets exactly one owner.
        .map(|raw| unsafe { OwnedFd::from_raw_fd(raw) })
        .collect::<Vec<_>>();
    if len == 0 && fds.is_empty() {
        return Ok(Received::Closed);
    }
    data.truncate(len);
    let truncated = flags.intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
    Ok(Received::Message {
        data,
        fds,
        truncated,
    })
}
