//! Unrelated processes: a rendezvous by name. A [`Listener`] bound to a name (a Linux
//! abstract unix socket: nothing on disk, gone with the last process that holds it, even
//! after `SIGKILL`), or to a filesystem path ([`Listener::bind_path`], under
//! `$XDG_RUNTIME_DIR` say, where the directory's permissions gate who connects), accepts
//! [`Connection`]s; over a connection either side passes channel endpoints
//! ([`Connection::pass`]) that the other takes by name ([`Connection::take`]), as memfds
//! with `SCM_RIGHTS`.
//!
//! - **Who may connect**: each side checks the other's credentials (`SO_PEERCRED`, recorded
//!   by the kernel, not claimed by the peer) against a [`Policy`]; by default the same
//!   user. A refused peer's connection is closed and reported as
//!   [`RendezvousError::Refused`].
//! - **Timeouts everywhere**: `connect`, `pass` and `take` take one and return
//!   [`RendezvousError::Timeout`] when it passes; a service waits for its next client with
//!   [`Listener::accept`] (as long as it takes) or [`Listener::accept_timeout`].
//! - **A bad client never blocks the listener**: accepting reads nothing from the client
//!   (the credentials come from the kernel), every socket is non-blocking, and each
//!   connection is its own object; an error on one ([`RendezvousError::is_per_connection`])
//!   says nothing about the next.
//! - **Ownership**: `pass` hands the endpoint over to the peer's identity *before*
//!   sending it, so a peer that dies before taking it, or after, is `PeerDied` to the
//!   channel's other end within the usual bound.
//!
//! ```
//! use std::time::Duration;
//! use shm_ipc::fork::rendezvous::{connect, Listener, RendezvousError};
//!
//! let name = format!("doc-{}", std::process::id());
//! let listener = Listener::bind(&name)?;
//! assert!(matches!(Listener::bind(&name), Err(RendezvousError::NameTaken(_))));
//! // A connection completes in the kernel: here this process is both sides.
//! let client = connect(&name, Duration::from_secs(5))?;
//! let server = listener.accept_timeout(Duration::from_secs(5))?;
//! assert_eq!(server.peer().pid, std::process::id() as i32);
//! assert_eq!(client.peer().uid, server.peer().uid);
//! assert!(matches!(listener.accept_timeout(Duration::ZERO), Err(RendezvousError::Timeout)));
//! drop(listener);
//! assert!(matches!(
//!     connect(&name, Duration::ZERO),
//!     Err(RendezvousError::NoListener(_))
//! ));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A service and its clients, as separate programs (see `examples/server_client.rs`):
//!
//! ```no_run
//! use std::time::Duration;
//! use shm_ipc::channel::spsc::Spsc;
//! use shm_ipc::channel::{Builder, Receiver};
//! use shm_ipc::fork::rendezvous::{connect, Listener};
//! let timeout = Duration::from_secs(10);
//!
//! // The service:
//! let listener = Listener::bind("jobs-service")?;
//! loop {
//!     let connection = match listener.accept() {
//!         Ok(connection) => connection,
//!         Err(err) if err.is_per_connection() => continue, // one bad client, next one
//!         Err(err) => return Err(err.into()),
//!     };
//!     let (mut tx, rx) = Builder::<Spsc>::new(1 << 16).create_memfd()?;
//!     connection.pass("jobs", rx, timeout)?;
//!     tx.send(b"job 1")?;
//! #   break;
//! }
//!
//! // A client:
//! let connection = connect("jobs-service", timeout)?;
//! let mut jobs: Receiver<Spsc> = connection.take("jobs", timeout)?;
//! let job = jobs.recv()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod socket;

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::PollFlags;
use shm_channel::transfer::{Portable, Ticket, TransferError};
use shm_core::liveness::ProcessIdentity;

use socket::{Address, Credentials, Received};

/// The prefix of every abstract address this module binds (`@shm-ipc/<name>`).
const PREFIX: &str = "shm-ipc/";

/// Who may talk to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Processes of our effective user id (the default).
    #[default]
    SameUser,
    /// Processes of this user id.
    Uid(u32),
    /// Any process that can reach the socket (abstract sockets: any process in our
    /// network namespace). Only for endpoints you would hand to anyone.
    AnyUser,
}

impl Policy {
    fn allows(self, uid: u32) -> bool {
        match self {
            Policy::SameUser => uid == nix::unistd::geteuid().as_raw(),
            Policy::Uid(allowed) => uid == allowed,
            Policy::AnyUser => true,
        }
    }
}

/// Why a rendezvous call failed.
#[derive(Debug, thiserror::Error)]
pub enum RendezvousError {
    /// The name is not 1 to 64 of `[A-Za-z0-9_.-]`.
    #[error("invalid rendezvous name {0:?} (1 to 64 of [A-Za-z0-9_.-])")]
    BadName(String),
    /// Another process listens on that name already.
    #[error("the name {0:?} is taken by another listener")]
    NameTaken(String),
    /// Nobody listens on that name.
    #[error("nobody listens on {0:?}")]
    NoListener(String),
    /// The timeout passed.
    #[error("timed out")]
    Timeout,
    /// The peer's credentials do not satisfy the policy; the connection was closed.
    #[error("refused process {pid} of user {uid} (policy {policy:?})")]
    Refused {
        /// The peer's pid.
        pid: i32,
        /// The peer's user id.
        uid: u32,
        /// The policy it failed.
        policy: Policy,
    },
    /// The peer closed the connection or died.
    #[error("the peer closed the connection or died")]
    PeerGone,
    /// The peer sent something this module does not send.
    #[error("the peer broke the protocol: {0}")]
    Protocol(&'static str),
    /// The endpoint taken is not the one asked for.
    #[error("expected endpoint {expected:?}, the peer passed {found:?}")]
    WrongName {
        /// The name asked for.
        expected: String,
        /// The name passed.
        found: String,
    },
    /// The endpoint cannot travel, or does not rebuild from what was received.
    #[error(transparent)]
    Transfer(#[from] TransferError),
    /// A socket call failed.
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
}

impl RendezvousError {
    /// Whether the error concerns one connection only (a refused, vanished, stalled or
    /// misbehaving peer, or no peer before the timeout): a listener keeps accepting after
    /// it. Socket errors (`Io`: out of descriptors, say) and naming errors are not.
    pub fn is_per_connection(&self) -> bool {
        matches!(
            self,
            RendezvousError::Timeout
                | RendezvousError::Refused { .. }
                | RendezvousError::PeerGone
                | RendezvousError::Protocol(_)
                | RendezvousError::WrongName { .. }
                | RendezvousError::Transfer(_)
        )
    }
}

fn address(name: &str) -> Result<Vec<u8>, RendezvousError> {
    let valid = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !valid {
        return Err(RendezvousError::BadName(name.chars().take(64).collect()));
    }
    Ok(format!("{PREFIX}{name}").into_bytes())
}

/// A listener bound to a name or a path. Dropping it frees the name (the path: its
/// socket file is removed).
#[derive(Debug)]
pub struct Listener {
    socket: OwnedFd,
    policy: Policy,
    /// A path listener's socket file and the process that bound it (the only one whose
    /// drop removes it: a forked copy's drop does not).
    file: Option<(PathBuf, u32)>,
}

impl Listener {
    /// Binds the abstract unix socket `@shm-ipc/<name>`, with [`Policy::SameUser`].
    pub fn bind(name: &str) -> Result<Listener, RendezvousError> {
        let address = Address::Abstract(address(name)?);
        let socket = socket::listen(&address).map_err(|err| taken_or_io(err, name))?;
        Ok(Listener {
            socket,
            policy: Policy::default(),
            file: None,
        })
    }

    /// Binds a unix socket at the filesystem `path` (under `$XDG_RUNTIME_DIR`, say), with
    /// [`Policy::SameUser`]; clients reach it with [`connect_path`]. The directory's
    /// permissions gate who can connect, before the policy does.
    ///
    /// Unlike an abstract name, a socket file outlives a listener killed by `SIGKILL`:
    /// a later `bind_path` finds it stale (nobody answers a connect) and replaces it; the
    /// listener's drop removes it.
    ///
    /// # Errors
    ///
    /// [`RendezvousError::NameTaken`] while a live listener answers at `path`;
    /// [`RendezvousError::Io`] for a path the socket cannot be bound to.
    pub fn bind_path(path: impl AsRef<Path>) -> Result<Listener, RendezvousError> {
        // Absolute, as the kernel's socket table lists it (see `socket::listening_at`).
        let path = std::path::absolute(path.as_ref())?;
        let address = Address::Path(path.clone());
        let shown = path.display().to_string();
        let socket = match socket::listen(&address) {
            Err(err) if err.raw_os_error() == Some(libc::EADDRINUSE) => {
                // A file is there: a live listener's, or one a killed listener left.
                if socket::listening_at(&path)? {
                    return Err(RendezvousError::NameTaken(shown));
                }
                std::fs::remove_file(&path)?;
                socket::listen(&address).map_err(|err| taken_or_io(err, &shown))?
            }
            other => other?,
        };
        Ok(Listener {
            socket,
            policy: Policy::default(),
            file: Some((path, std::process::id())),
        })
    }

    /// Who may connect.
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// Waits for the next connection, as long as it takes, and checks the peer against the
    /// policy (a service's loop).
    ///
    /// # Errors
    ///
    /// [`RendezvousError::Refused`] (the connection is closed; call `accept` again for the
    /// next one); [`RendezvousError::PeerGone`] for a peer that connected and died before
    /// it was accepted; [`RendezvousError::Io`] if the socket fails.
    pub fn accept(&self) -> Result<Connection, RendezvousError> {
        self.accept_until(None)
    }

    /// Waits at most `timeout` for a connection, and checks the peer against the policy.
    ///
    /// # Errors
    ///
    /// [`RendezvousError::Timeout`], and the errors of [`accept`](Listener::accept).
    pub fn accept_timeout(&self, timeout: Duration) -> Result<Connection, RendezvousError> {
        self.accept_until(Some(deadline(timeout)))
    }

    fn accept_until(&self, deadline: Option<Instant>) -> Result<Connection, RendezvousError> {
        loop {
            if let Some(socket) = socket::accept(self.socket.as_fd())? {
                return Connection::checked(socket, self.policy);
            }
            // Without a deadline, a day at a time: `wait` needs one.
            let until = deadline.unwrap_or_else(|| self::deadline(Duration::from_secs(86_400)));
            if !socket::wait(self.socket.as_fd(), PollFlags::POLLIN, until)? && deadline.is_some() {
                return Err(RendezvousError::Timeout);
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some((path, binder)) = &self.file {
            if *binder == std::process::id() {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// `NameTaken` for an address in use, the socket error otherwise.
fn taken_or_io(err: io::Error, name: &str) -> RendezvousError {
    if err.raw_os_error() == Some(libc::EADDRINUSE) {
        RendezvousError::NameTaken(name.to_owned())
    } else {
        RendezvousError::Io(err)
    }
}

/// Connects to the listener bound at the filesystem `path` ([`Listener::bind_path`]),
/// which must satisfy [`Policy::SameUser`].
pub fn connect_path(
    path: impl AsRef<Path>,
    timeout: Duration,
) -> Result<Connection, RendezvousError> {
    connect_path_with(path, Policy::SameUser, timeout)
}

/// Connects to the listener bound at `path`, checking its process against `policy`.
pub fn connect_path_with(
    path: impl AsRef<Path>,
    policy: Policy,
    timeout: Duration,
) -> Result<Connection, RendezvousError> {
    let path = path.as_ref();
    connect_to(
        &Address::Path(path.to_path_buf()),
        &path.display().to_string(),
        policy,
        timeout,
    )
}

/// Connects to the listener bound to `name`, which must satisfy [`Policy::SameUser`].
pub fn connect(name: &str, timeout: Duration) -> Result<Connection, RendezvousError> {
    connect_with(name, Policy::SameUser, timeout)
}

/// Connects to the listener bound to `name`, checking its process against `policy`.
pub fn connect_with(
    name: &str,
    policy: Policy,
    timeout: Duration,
) -> Result<Connection, RendezvousError> {
    connect_to(&Address::Abstract(address(name)?), name, policy, timeout)
}

fn connect_to(
    address: &Address,
    name: &str,
    policy: Policy,
    timeout: Duration,
) -> Result<Connection, RendezvousError> {
    match socket::connect(address, deadline(timeout)) {
        Ok(Some(socket)) => Connection::checked(socket, policy),
        Ok(None) => Err(RendezvousError::NoListener(name.to_owned())),
        Err(err) if err.kind() == io::ErrorKind::TimedOut => Err(RendezvousError::Timeout),
        Err(err) => Err(err.into()),
    }
}

fn deadline(timeout: Duration) -> Instant {
    let now = Instant::now();
    // A timeout past the clock's range: a day is as good as for ever here.
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(86_400))
}

/// One connection between two processes, on either side.
#[derive(Debug)]
pub struct Connection {
    socket: OwnedFd,
    peer: Credentials,
    identity: ProcessIdentity,
}

/// The process at the other end of a [`Connection`], as the kernel recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Its pid.
    pub pid: i32,
    /// Its user id.
    pub uid: u32,
    /// Its group id.
    pub gid: u32,
}

impl Connection {
    /// A connection whose peer passed the policy, with the peer's identity.
    fn checked(socket: OwnedFd, policy: Policy) -> Result<Connection, RendezvousError> {
        let peer = socket::peer_credentials(socket.as_fd())?;
        if !policy.allows(peer.uid) {
            return Err(RendezvousError::Refused {
                pid: peer.pid,
                uid: peer.uid,
                policy,
            });
        }
        let identity = ProcessIdentity::of_pid(peer.pid).map_err(|_| RendezvousError::PeerGone)?;
        // With a pidfd of the peer (Linux 6.5), an identity read after the peer died (its
        // pid reused by another process) is caught: the pidfd says it exited.
        if socket::peer_pidfd(socket.as_fd()).is_some_and(|pidfd| socket::exited(pidfd.as_fd())) {
            return Err(RendezvousError::PeerGone);
        }
        Ok(Connection {
            socket,
            peer,
            identity,
        })
    }

    /// The process at the other end.
    pub fn peer(&self) -> Peer {
        Peer {
            pid: self.peer.pid,
            uid: self.peer.uid,
            gid: self.peer.gid,
        }
    }

    /// Passes `endpoint` to the peer under `name` (1 to 64 of `[A-Za-z0-9_.-]`): hands it
    /// over to the peer's identity, then sends its descriptors (the memfd, and the
    /// channel's doorbells if it has them). From the hand-over on the peer
    /// owns it: if the peer never takes it (it died, or this call timed out), the channel's
    /// other end sees `PeerDied` once the peer is gone.
    pub fn pass(
        &self,
        name: &str,
        endpoint: impl Portable,
        timeout: Duration,
    ) -> Result<(), RendezvousError> {
        address(name)?;
        let deadline = deadline(timeout);
        let transfer = endpoint.into_transfer()?;
        let fds = transfer
            .fds()
            .iter()
            .map(|fd| fd.try_clone_to_owned())
            .collect::<Result<Vec<OwnedFd>, _>>()
            .map_err(TransferError::Duplicate)?;
        let fds: Vec<_> = fds.iter().map(AsFd::as_fd).collect();
        let message = format!("{name}\t{}", transfer.ticket());
        transfer.hand_over(self.identity)?;
        loop {
            match socket::send_with_fds(self.socket.as_fd(), message.as_bytes(), &fds) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(err) if is_gone(&err) => return Err(RendezvousError::PeerGone),
                Err(err) => return Err(err.into()),
            }
            if !socket::wait(self.socket.as_fd(), PollFlags::POLLOUT, deadline)? {
                return Err(RendezvousError::Timeout);
            }
        }
    }

    /// Takes the next endpoint the peer passes, which must be named `name`, and rebuilds
    /// it (header validated, ownership taken).
    pub fn take<T: Portable>(&self, name: &str, timeout: Duration) -> Result<T, RendezvousError> {
        let deadline = deadline(timeout);
        let (data, fds) = loop {
            match socket::receive(self.socket.as_fd()) {
                Ok(Received::Message {
                    data,
                    fds,
                    truncated,
                }) => {
                    if truncated || fds.is_empty() || fds.len() > 6 {
                        return Err(RendezvousError::Protocol(
                            "a message without 1 to 6 descriptors, or truncated",
                        ));
                    }
                    break (data, fds);
                }
                Ok(Received::Closed) => return Err(RendezvousError::PeerGone),
                Ok(Received::Nothing) => {}
                Err(err) if is_gone(&err) => return Err(RendezvousError::PeerGone),
                Err(err) => return Err(err.into()),
            }
            if !socket::wait(self.socket.as_fd(), PollFlags::POLLIN, deadline)? {
                return Err(RendezvousError::Timeout);
            }
        };
        let (found, ticket) = parse_message(&data)?;
        if ticket.fd_kinds(fds.len()).is_none() {
            return Err(RendezvousError::Protocol(
                "a message with a number of descriptors its endpoint does not have",
            ));
        }
        if found != name {
            return Err(RendezvousError::WrongName {
                expected: name.to_owned(),
                found: found.to_owned(),
            });
        }
        Ok(T::from_fds(fds, ticket)?)
    }
}

/// `name\tticket`, as `pass` writes it.
fn parse_message(data: &[u8]) -> Result<(&str, Ticket), RendezvousError> {
    let text = std::str::from_utf8(data)
        .map_err(|_| RendezvousError::Protocol("a message that is not UTF-8"))?;
    let (name, ticket) = text
        .split_once('\t')
        .ok_or(RendezvousError::Protocol("a message without a ticket"))?;
    address(name).map_err(|_| RendezvousError::Protocol("an invalid endpoint name"))?;
    Ok((name, ticket.parse()?))
}

fn is_gone(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EPIPE | libc::ECONNRESET | libc::ENOTCONN)
    )
}
