//! Exec'd children: a [`std::process::Command`] that passes channel endpoints to the
//! program it starts, and [`inherited`], with which that program takes them.
//!
//! Which mechanism when:
//! - the child is a closure of this program: [`fork_with`](crate::fork_with) — nothing to
//!   serialise, any channel (anonymous memory) works;
//! - the child is *another program*, or this one started afresh (a clean address space, no
//!   fork-in-a-threaded-process hazards): this module — the channel must live in a memfd
//!   ([`Builder::create_memfd`](shm_channel::Builder::create_memfd));
//! - two processes started separately: [`rendezvous`](crate::rendezvous), with the same
//!   [`Transfer`]s over a unix socket.
//!
//! What happens at [`Command::spawn`]: each passed endpoint becomes a
//! [`Transfer`] (a duplicate of its memfd, close-on-exec);
//! in the child, between fork and exec, only those descriptors lose `FD_CLOEXEC` — every
//! other descriptor of this process stays close-on-exec, so nothing else leaks — and the
//! child is armed to die with its parent (by default). The environment variable
//! [`ENDPOINTS_VAR`] names the descriptors. As soon as `spawn` knows the child's pid it
//! hands every endpoint over to it: from then on the child owns them, whether or not it
//! ever attaches, so a child that dies is `PeerDied` to the parent's endpoints within the
//! channels' usual bound. The returned [`Child`] is shm-fork's: wait, kill, exit status,
//! killed and reaped when dropped.
//!
//! ```no_run
//! use shm_ipc::channel::spsc::Spsc;
//! use shm_ipc::channel::{Builder, Receiver};
//!
//! // Parent:
//! let (mut tx, rx) = Builder::<Spsc>::new(1 << 16).create_memfd()?;
//! let mut command = shm_ipc::fork::exec::Command::new(std::env::current_exe()?);
//! command.arg("--child");
//! command.pass("jobs", rx)?;
//! let mut child = command.spawn()?;
//! tx.send(b"work")?;
//! drop(tx);
//! assert!(child.wait()?.success());
//!
//! // Child (the same program, started with --child):
//! let mut jobs: Receiver<Spsc> = shm_ipc::fork::exec::inherited("jobs")?;
//! while let Ok(job) = jobs.recv() { /* ... */ }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod env;
mod inherited;

use std::ffi::OsStr;
use std::io;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt as _;

use shm_channel::transfer::{Portable, Transfer, TransferError};
use shm_core::liveness::ProcessIdentity;
use shm_core::RegionError;

use crate::child::{Child, OnDrop};
use crate::report::Report;
use crate::sys;

use env::Entry;
pub use env::ENDPOINTS_VAR;
pub use inherited::{inherited, InheritedError};

/// Why a child could not be started with its endpoints.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// An endpoint name is not 1 to 64 of `[A-Za-z0-9_-]`, or is passed twice.
    #[error("invalid or repeated endpoint name {0:?}")]
    BadName(String),
    /// The endpoint cannot travel (see [`TransferError`]).
    #[error("cannot pass endpoint {name:?}: {source}")]
    Transfer {
        /// The name it was passed under.
        name: String,
        /// Why.
        #[source]
        source: TransferError,
    },
    /// The child's status page could not be mapped.
    #[error("cannot map the child's status page: {0}")]
    StatusPage(#[from] RegionError),
    /// `spawn` failed (program not found, `exec` refused, ...): no child runs; the passed
    /// endpoints were dropped, so their peers see them closed.
    #[error("cannot start the program: {0}")]
    Spawn(#[source] io::Error),
    /// The child's identity or the hand-over failed; the child was killed and reaped.
    #[error("handing the endpoints over to child {pid} failed: {source}")]
    HandOver {
        /// The child's pid.
        pid: i32,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// A [`std::process::Command`] (it derefs to one: `arg`, `env`, `current_dir`, `stdin`,
/// ...) that also passes channel endpoints to the program. See the [module docs](self).
///
/// ```
/// use std::time::Duration;
/// use shm_ipc::channel::spsc::Spsc;
/// use shm_ipc::channel::Builder;
/// use shm_ipc::channel::{SendError, SendTimeoutError};
///
/// let (mut tx, rx) = Builder::<Spsc>::new(4096).create_memfd()?;
/// // `true` never takes its endpoint; it owns it anyway from `spawn` on.
/// let mut command = shm_ipc::fork::exec::Command::new("true");
/// command.pass("jobs", rx)?;
/// let mut child = command.spawn()?;
/// assert!(child.wait()?.success());
/// // The owner is gone: once the ring is full, the sender says so.
/// let err = loop {
///     if let Err(err) = tx.send_timeout(&[0; 64], Duration::from_secs(30)) {
///         break err;
///     }
/// };
/// assert!(matches!(err, SendTimeoutError::Send(SendError::PeerDied(()))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Standard streams set to [`Stdio::piped`](std::process::Stdio::piped) are not kept: the
/// [`Child`] returned has no pipe handles. Talk to the child through channels, or redirect
/// its streams to files or [`Stdio::null`](std::process::Stdio::null).
#[derive(Debug)]
pub struct Command {
    inner: std::process::Command,
    passed: Vec<(String, Transfer)>,
    on_drop: OnDrop,
    kill_on_parent_death: bool,
}

impl From<std::process::Command> for Command {
    fn from(inner: std::process::Command) -> Command {
        Command {
            inner,
            passed: Vec::new(),
            on_drop: OnDrop::Kill,
            kill_on_parent_death: true,
        }
    }
}

impl Deref for Command {
    type Target = std::process::Command;

    fn deref(&self) -> &std::process::Command {
        &self.inner
    }
}

impl DerefMut for Command {
    fn deref_mut(&mut self) -> &mut std::process::Command {
        &mut self.inner
    }
}

impl Command {
    /// A command running `program` (as [`std::process::Command::new`]).
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command::from(std::process::Command::new(program))
    }

    /// Passes `endpoint` to the child under `name` (1 to 64 of `[A-Za-z0-9_-]`); the child
    /// takes it with [`inherited`]`(name)`. Until [`spawn`](Command::spawn) the endpoint
    /// stays owned here; dropping the command drops it.
    ///
    /// # Errors
    ///
    /// [`ExecError::BadName`], or [`ExecError::Transfer`] when the endpoint cannot travel
    /// (its channel is not in a memfd, or it is a copy this process does not own); the
    /// endpoint is dropped then.
    pub fn pass(&mut self, name: &str, endpoint: impl Portable) -> Result<&mut Command, ExecError> {
        if !env::valid_name(name) || self.passed.iter().any(|(n, _)| n == name) {
            return Err(ExecError::BadName(name.chars().take(64).collect()));
        }
        let transfer = endpoint
            .into_transfer()
            .map_err(|source| ExecError::Transfer {
                name: name.to_owned(),
                source,
            })?;
        self.passed.push((name.to_owned(), transfer));
        Ok(self)
    }

    /// What dropping the returned [`Child`] does (default [`OnDrop::Kill`]).
    pub fn on_drop(&mut self, on_drop: OnDrop) -> &mut Command {
        self.on_drop = on_drop;
        self
    }

    /// Whether the child gets `SIGKILL` when this process's spawning thread exits
    /// (default `true`, `PR_SET_PDEATHSIG`, kept across `exec`).
    pub fn kill_on_parent_death(&mut self, yes: bool) -> &mut Command {
        self.kill_on_parent_death = yes;
        self
    }

    /// Starts the program with the passed endpoints and hands them over to it.
    ///
    /// Unlike [`fork_with`](crate::fork_with) this is safe in a multi-threaded process:
    /// between fork and exec the child only makes async-signal-safe calls (`fcntl`,
    /// `prctl`, `getppid`) before std's `exec`.
    ///
    /// # Errors
    ///
    /// [`ExecError::Spawn`] if the program could not be started (the endpoints are
    /// dropped), [`ExecError::HandOver`] if the hand-over failed (the child is killed and
    /// reaped).
    pub fn spawn(mut self) -> Result<Child, ExecError> {
        let parent = sys::getpid();
        let entries: Vec<Entry> = self
            .passed
            .iter()
            .map(|(name, transfer)| Entry {
                name: name.clone(),
                fds: transfer.fds().iter().map(AsRawFd::as_raw_fd).collect(),
                ticket: transfer.ticket(),
            })
            .collect();
        let fds: Vec<RawFd> = entries.iter().flat_map(|entry| entry.fds.clone()).collect();
        self.inner.env(ENDPOINTS_VAR, env::encode(parent, &entries));
        let die_with_parent = self.kill_on_parent_death;
        // SAFETY: the closure runs in the forked child before `exec` and makes only
        // async-signal-safe calls (fcntl, prctl, getppid) on data prepared before the fork
        // (`fds` is only read, never allocated or freed there).
        unsafe {
            self.inner.pre_exec(move || {
                for &fd in &fds {
                    sys::keep_across_exec(fd)?;
                }
                if die_with_parent {
                    sys::die_with_parent(parent)?;
                }
                Ok(())
            });
        }
        let report = Report::new()?;
        let spawned = self.inner.spawn().map_err(ExecError::Spawn)?;
        let pid = spawned.id() as i32;
        // Dropping std's handle neither kills nor reaps: shm-fork's `Child` does both.
        drop(spawned);
        let fail = |mut child: Option<Child>, source| {
            match child.as_mut() {
                Some(child) => child.kill_and_reap(),
                None => {
                    // Not reaped yet, so the pid is still this child's.
                    let _ = sys::sigkill(pid);
                    let _ = sys::waitpid(pid, false);
                }
            }
            ExecError::HandOver { pid, source }
        };
        let identity = ProcessIdentity::of_pid(pid).map_err(|source| fail(None, source))?;
        let child = Child::new(pid, identity, self.on_drop, report);
        for (_, transfer) in self.passed.drain(..) {
            if let Err(err) = transfer.hand_over(identity) {
                return Err(fail(Some(child), io::Error::other(err)));
            }
        }
        Ok(child)
    }
}
