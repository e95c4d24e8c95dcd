//! The exec'd child's side: the endpoints named by [`ENDPOINTS_VAR`], taken once each.

use std::collections::HashMap;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

use shm_channel::transfer::{FdKind, Portable, Ticket, TransferError};

use super::env::{self, ENDPOINTS_VAR};
use crate::sys;

/// Why [`inherited`] could not give the endpoint asked for.
#[derive(Debug, thiserror::Error)]
pub enum InheritedError {
    /// [`ENDPOINTS_VAR`] is not set: this process was not started by
    /// [`Command::spawn`](super::Command::spawn).
    #[error("no endpoints were passed to this process ({ENDPOINTS_VAR} is not set)")]
    NoEndpoints,
    /// [`ENDPOINTS_VAR`] is not in the format `spawn` writes.
    #[error("{ENDPOINTS_VAR} is malformed: {reason}")]
    Malformed {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// [`ENDPOINTS_VAR`] was written for the children of another process (this process
    /// inherited the variable from an ancestor, but not the descriptors).
    #[error("{ENDPOINTS_VAR} was written by process {written_by}, not by this process's parent {parent}")]
    NotForThisProcess {
        /// The pid the variable names.
        written_by: i32,
        /// This process's parent.
        parent: i32,
    },
    /// No endpoint of that name was passed, or it was taken already.
    #[error("no endpoint named {0:?} was passed to this process (or it was taken already)")]
    NotPassed(String),
    /// A descriptor the variable names is not open, or not of its kind (the first a
    /// memfd, the doorbell ends after it sockets).
    #[error("descriptor {fd} named for endpoint {name:?} is not an open memfd or doorbell")]
    BadDescriptor {
        /// The endpoint's name.
        name: String,
        /// The descriptor number.
        fd: RawFd,
    },
    /// The memfd does not rebuild into the endpoint asked for (another kind of endpoint,
    /// a corrupt header, an owner slot held by another live process, ...).
    #[error("cannot rebuild endpoint {name:?}: {source}")]
    Rebuild {
        /// The endpoint's name.
        name: String,
        /// Why.
        #[source]
        source: TransferError,
    },
}

/// The passed endpoints not taken yet: read from the environment on the first call, then
/// each handed out once (so no descriptor is ever owned twice).
enum Registry {
    Unread,
    Read(HashMap<String, (Vec<RawFd>, Ticket)>),
    /// The variable is missing, malformed or not ours: every call says so.
    Failed(Failure),
}

/// Why the variable gave no endpoints (kept, and turned into an error on each call).
#[derive(Debug, Clone, Copy)]
enum Failure {
    Missing,
    Malformed(&'static str),
    NotOurs { written_by: i32, parent: i32 },
}

impl Failure {
    fn error(self) -> InheritedError {
        match self {
            Failure::Missing => InheritedError::NoEndpoints,
            Failure::Malformed(reason) => InheritedError::Malformed { reason },
            Failure::NotOurs { written_by, parent } => {
                InheritedError::NotForThisProcess { written_by, parent }
            }
        }
    }
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry::Unread);

/// Takes the endpoint passed to this process under `name` by the parent's
/// [`Command::spawn`](super::Command::spawn): validates the descriptor (an open memfd),
/// maps it, validates the channel's header and takes the endpoint's ownership over. Each
/// name can be taken once. The first call reads [`ENDPOINTS_VAR`] and makes every memfd
/// it names close-on-exec again, taken or not: none leaks into programs this one runs.
///
/// # Errors
///
/// Every failure is an [`InheritedError`] naming it; a garbage variable or descriptor is
/// never a panic. A descriptor whose rebuild failed is closed.
///
/// # Examples
///
/// ```
/// // Not started by `Command::spawn`: nothing to take.
/// let rx = shm_ipc::fork::exec::inherited::<shm_ipc::channel::Receiver<shm_ipc::channel::spsc::Spsc>>("jobs");
/// assert!(rx.is_err());
/// ```
pub fn inherited<T: Portable>(name: &str) -> Result<T, InheritedError> {
    let (raw, ticket) = take(name)?;
    // The count was checked against the ticket when the variable was parsed.
    let Some(kinds) = ticket.fd_kinds(raw.len()) else {
        return Err(InheritedError::Malformed {
            reason: "an entry names a number of descriptors its endpoint does not have",
        });
    };
    for (&fd, &kind) in raw.iter().zip(&kinds) {
        if !sys::fd_is_open(fd) || !is_passed_kind(kind, fd) {
            return Err(InheritedError::BadDescriptor {
                name: name.to_owned(),
                fd,
            });
        }
    }
    let fds = raw
        .into_iter()
        // SAFETY: each `fd` is open and of the kind passed in its place (a memfd, then
        // sockets), named for this process by its parent (the pid in the variable is our
        // parent's) and inherited across exec; the registry hands each entry out once and
        // refuses a descriptor named twice, so this is the only `OwnedFd` made of it.
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect();
    T::from_fds(fds, ticket).map_err(|source| InheritedError::Rebuild {
        name: name.to_owned(),
        source,
    })
}

/// Removes `name`'s entry from the registry (reading the environment first if needed).
fn take(name: &str) -> Result<(Vec<RawFd>, Ticket), InheritedError> {
    // A poisoned lock only means another thread panicked while holding it; the registry
    // itself is always in a consistent state (every update is one assignment).
    let mut registry = REGISTRY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if matches!(*registry, Registry::Unread) {
        *registry = read_environment();
    }
    match &mut *registry {
        Registry::Read(entries) => entries
            .remove(name)
            .ok_or_else(|| InheritedError::NotPassed(name.to_owned())),
        Registry::Failed(failure) => Err(failure.error()),
        Registry::Unread => Err(InheritedError::NoEndpoints),
    }
}

/// The registry as the environment describes it.
fn read_environment() -> Registry {
    let Some(value) = std::env::var_os(ENDPOINTS_VAR) else {
        return Registry::Failed(Failure::Missing);
    };
    let Some(value) = value.to_str() else {
        return Registry::Failed(Failure::Malformed("it is not UTF-8"));
    };
    let (written_by, entries) = match env::parse(value) {
        Ok(parsed) => parsed,
        Err(reason) => return Registry::Failed(Failure::Malformed(reason)),
    };
    let parent = sys::getppid();
    if written_by != parent {
        return Registry::Failed(Failure::NotOurs { written_by, parent });
    }
    // Close-on-exec again at once, taken or not: none of them may leak into programs this
    // one runs (only open memfds: another descriptor at that number is not ours to touch).
    for entry in &entries {
        let kinds = entry.ticket.fd_kinds(entry.fds.len()).unwrap_or_default();
        for (&fd, &kind) in entry.fds.iter().zip(&kinds) {
            if sys::fd_is_open(fd) && is_passed_kind(kind, fd) {
                let _ = sys::close_on_exec(fd);
            }
        }
    }
    Registry::Read(
        entries
            .into_iter()
            .map(|entry| (entry.name, (entry.fds, entry.ticket)))
            .collect(),
    )
}

/// Whether `fd` is of the `kind` its ticket passes in its place: a memfd
/// (`/proc/self/fd/<fd>` links to `/memfd:<name>`) or a socket (a doorbell end);
/// `Portable::from_fds` then checks the sockets are unix datagram sockets.
fn is_passed_kind(kind: FdKind, fd: RawFd) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok_and(|target| {
        let target = target.to_string_lossy();
        match kind {
            FdKind::Memfd => target.starts_with("/memfd:"),
            FdKind::Doorbell => target.starts_with("socket:"),
        }
    })
}
