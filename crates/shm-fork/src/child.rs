//! The parent's handle on a forked child: waiting (blocking, polling, with a timeout),
//! killing, and what happens when the handle is dropped.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use shm_core::liveness::ProcessIdentity;

use crate::report::{Outcome, Report};
use crate::sys::{self, Reaped};

/// The exit code of a child whose closure panicked — the same code a Rust program exits
/// with when its `main` panics. [`ExitStatus::Panicked`] is reported only when the child
/// *also* recorded the panic in its shared status page, so a closure that returns 101 is
/// reported as `Exited(101)`, not as a panic.
pub const PANIC_EXIT_CODE: i32 = 101;

/// The exit code of a child whose [`Inherit::adopt`](crate::Inherit::adopt) failed (the
/// closure never ran); reported as [`ExitStatus::AdoptFailed`] when the child also recorded
/// the failure in its status page.
pub const ADOPT_FAILED_EXIT_CODE: i32 = 102;

/// The exit code of a worker or pipeline process that failed with an error of its own (a
/// stage's `Err`, a message it could not send); [`Child::failure_message`] has the text.
pub const FAILED_EXIT_CODE: i32 = 104;

/// The exit code of a pipeline stage whose input broke: the upstream process died or the
/// channel is corrupt. A consequence of another failure, never the cause.
pub const UPSTREAM_LOST_EXIT_CODE: i32 = 105;

/// The exit code of a pipeline process whose output broke: the downstream process is gone.
/// A consequence of another failure, never the cause.
pub const DOWNSTREAM_LOST_EXIT_CODE: i32 = 106;

/// How a child ended.
///
/// # Examples
///
/// ```
/// let mut child = shm_ipc::fork::fork(|| 3)?;
/// let status = child.wait()?;
/// assert_eq!(status, shm_ipc::fork::ExitStatus::Exited(3));
/// assert_eq!(status.code(), Some(3));
/// assert!(!status.success());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// The closure returned this exit code (0..=255; codes outside that range are reported
    /// as 255, never truncated into 0).
    Exited(i32),
    /// The child was terminated by this signal (`libc::SIGKILL`, ...).
    Signaled(i32),
    /// The closure panicked (exit code [`PANIC_EXIT_CODE`] plus a record in the status page);
    /// [`Child::failure_message`] has the payload, if it was a string.
    Panicked,
    /// The child could not adopt the values handed to it, so the closure never ran;
    /// [`Child::failure_message`] has the error text.
    AdoptFailed,
}

impl ExitStatus {
    /// Whether the child exited with code 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Exited(0)
    }

    /// The exit code, if the closure returned one.
    pub fn code(self) -> Option<i32> {
        match self {
            ExitStatus::Exited(code) => Some(code),
            _ => None,
        }
    }

    /// The signal that terminated the child, if one did.
    pub fn signal(self) -> Option<i32> {
        match self {
            ExitStatus::Signaled(signal) => Some(signal),
            _ => None,
        }
    }

    /// Whether the closure panicked.
    pub fn panicked(self) -> bool {
        self == ExitStatus::Panicked
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitStatus::Exited(code) => write!(f, "exited with code {code}"),
            ExitStatus::Signaled(signal) => match sys::signal_name(signal) {
                Some(name) => write!(f, "killed by signal {signal} ({name})"),
                None => write!(f, "killed by signal {signal}"),
            },
            ExitStatus::Panicked => f.write_str("panicked"),
            ExitStatus::AdoptFailed => f.write_str("failed to adopt its inherited values"),
        }
    }
}

/// What dropping a [`Child`] that has not been reaped does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDrop {
    /// `SIGKILL` the child and reap it (the default): nothing outlives the handle.
    #[default]
    Kill,
    /// Wait (block) until the child exits, then reap it.
    Wait,
    /// Leave the child running. Once it exits it stays a zombie until this process reaps it
    /// (`waitpid`) or exits. With
    /// [`ChildOptions::kill_on_parent_death`](crate::ChildOptions::kill_on_parent_death)
    /// (the default) it still dies with this process.
    Detach,
}

/// Why waiting for or signalling a child failed.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// Someone else reaped the child (a `waitpid(-1)` elsewhere in the process, or
    /// `SIGCHLD` set to `SIG_IGN`), so its exit status is lost.
    #[error("child {pid} was already reaped by someone else; its exit status is lost")]
    AlreadyReaped {
        /// The child's pid.
        pid: i32,
    },
    /// `waitpid` failed for another reason.
    #[error("waiting for child {pid} failed: {source}")]
    Wait {
        /// The child's pid.
        pid: i32,
        /// The OS error.
        source: io::Error,
    },
    /// Sending the signal failed.
    #[error("signalling child {pid} failed: {source}")]
    Signal {
        /// The child's pid.
        pid: i32,
        /// The OS error.
        source: io::Error,
    },
}

/// A forked child, owned by the parent that forked it.
///
/// Created by [`fork`](crate::fork), [`fork_with`](crate::fork_with) or
/// [`ChildOptions`](crate::ChildOptions). Until it is reaped the pid cannot be recycled,
/// so [`kill`](Child::kill) always reaches this child and no other process. Once reaped,
/// the exit status is kept: later `wait`s return it again.
///
/// Dropping a handle whose child was not reaped kills and reaps it by default (see
/// [`OnDrop`]).
#[derive(Debug)]
pub struct Child {
    pid: i32,
    identity: ProcessIdentity,
    /// Readable once the child exits; `None` where the kernel has no pidfds (< 5.3).
    pidfd: Option<OwnedFd>,
    /// `Some` once reaped: from then on `pid` may belong to another process.
    status: Option<ExitStatus>,
    on_drop: OnDrop,
    report: Report,
}

impl Child {
    pub(crate) fn new(
        pid: i32,
        identity: ProcessIdentity,
        on_drop: OnDrop,
        report: Report,
    ) -> Child {
        Child {
            pid,
            identity,
            pidfd: sys::pidfd_open(pid).ok(),
            status: None,
            on_drop,
            report,
        }
    }

    pub(crate) fn report(&self) -> &Report {
        &self.report
    }

    /// The child's process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The child's identity (pid and start time), as recorded right after the fork.
    pub fn identity(&self) -> ProcessIdentity {
        self.identity
    }

    /// The exit status, if the child has been reaped (by `wait`, `try_wait`, ...).
    pub fn status(&self) -> Option<ExitStatus> {
        self.status
    }

    /// What dropping this handle will do.
    pub fn on_drop(&self) -> OnDrop {
        self.on_drop
    }

    /// Changes what dropping this handle will do.
    pub fn set_on_drop(&mut self, on_drop: OnDrop) {
        self.on_drop = on_drop;
    }

    /// Blocks until the child exits, reaps it and returns how it ended. Returns the kept
    /// status if it was already reaped through this handle.
    ///
    /// # Errors
    ///
    /// [`ChildError::AlreadyReaped`] if someone else reaped it.
    pub fn wait(&mut self) -> Result<ExitStatus, ChildError> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let reaped = self.reap(false)?;
        // Without WNOHANG, waitpid returns only once the child has ended.
        reaped.ok_or_else(|| ChildError::Wait {
            pid: self.pid,
            source: io::Error::other("waitpid returned no status"),
        })
    }

    /// Reaps the child if it has exited; `Ok(None)` if it is still running. Never blocks.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, ChildError> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        self.reap(true)
    }

    /// Waits at most `timeout` (monotonic clock) for the child to exit; `Ok(None)` if it is
    /// still running then. Sleeps in `poll` on a pidfd (or, without pidfds, in sleeps that
    /// back off from 1 ms to 50 ms); it never spins.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut child = shm_ipc::fork::fork(|| 0)?;
    /// let status = child.wait_timeout(Duration::from_secs(60))?;
    /// assert_eq!(status, Some(shm_ipc::fork::ExitStatus::Exited(0)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, ChildError> {
        let Some(deadline) = Instant::now().checked_add(timeout) else {
            return self.wait().map(Some);
        };
        let mut backoff = Duration::from_millis(1);
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            match &self.pidfd {
                Some(pidfd) => {
                    // Readable, timed out or interrupted: all lead to `try_wait` again.
                    sys::poll_readable(pidfd.as_fd(), left).map_err(|source| ChildError::Wait {
                        pid: self.pid,
                        source,
                    })?;
                }
                None => {
                    std::thread::sleep(backoff.min(left));
                    backoff = (backoff * 2).min(Duration::from_millis(50));
                }
            }
        }
    }

    /// Sends `SIGKILL` to the child (it does not reap it: call [`wait`](Child::wait)).
    /// Does nothing if the child has already been reaped through this handle.
    pub fn kill(&mut self) -> Result<(), ChildError> {
        if self.status.is_some() {
            return Ok(());
        }
        // Not reaped by us: the pidfd names this child and no other, even if someone else
        // reaped it and the pid was reused (then the kernel reports ESRCH). Without a pidfd
        // the pid is still this child's unless someone else reaped it.
        let sent = match &self.pidfd {
            Some(pidfd) => sys::pidfd_sigkill(pidfd.as_fd()),
            None => sys::sigkill(self.pid),
        };
        sent.map_err(|source| {
            if source.raw_os_error() == Some(libc::ESRCH) {
                ChildError::AlreadyReaped { pid: self.pid }
            } else {
                ChildError::Signal {
                    pid: self.pid,
                    source,
                }
            }
        })
    }

    /// The message the child recorded when it panicked (the payload, if it was a `&str` or
    /// `String`), failed to adopt its values, or (worker and pipeline processes) failed
    /// with an error of its own. `None` before the child is reaped.
    pub fn failure_message(&self) -> Option<String> {
        self.status?;
        self.report.message()
    }

    fn reap(&mut self, nohang: bool) -> Result<Option<ExitStatus>, ChildError> {
        let reaped = sys::waitpid(self.pid, nohang).map_err(|source| {
            if source.raw_os_error() == Some(libc::ECHILD) {
                ChildError::AlreadyReaped { pid: self.pid }
            } else {
                ChildError::Wait {
                    pid: self.pid,
                    source,
                }
            }
        })?;
        let status = reaped.map(|reaped| self.decode(reaped));
        self.status = status;
        if status.is_some() {
            // The pid is free for reuse now; its pidfd would only ever say "exited".
            self.pidfd = None;
        }
        Ok(status)
    }

    fn decode(&self, reaped: Reaped) -> ExitStatus {
        match reaped {
            Reaped::Signaled(signal) => ExitStatus::Signaled(signal),
            Reaped::Exited(code) => match (code, self.report.outcome()) {
                (PANIC_EXIT_CODE, Outcome::Panicked) => ExitStatus::Panicked,
                (ADOPT_FAILED_EXIT_CODE, Outcome::AdoptFailed) => ExitStatus::AdoptFailed,
                (code, _) => ExitStatus::Exited(code),
            },
        }
    }

    /// Kills and reaps, ignoring errors (the child may be gone already).
    pub(crate) fn kill_and_reap(&mut self) {
        if self.status.is_none() {
            let _ = self.kill();
            let _ = self.wait();
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        match self.on_drop {
            OnDrop::Kill => self.kill_and_reap(),
            OnDrop::Wait => {
                let _ = self.wait();
            }
            OnDrop::Detach => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_display_what_happened() {
        assert_eq!(ExitStatus::Exited(3).to_string(), "exited with code 3");
        assert_eq!(
            ExitStatus::Signaled(libc::SIGKILL).to_string(),
            "killed by signal 9 (SIGKILL)"
        );
        assert_eq!(ExitStatus::Panicked.to_string(), "panicked");
        assert!(ExitStatus::Exited(0).success());
        assert!(!ExitStatus::Panicked.success());
        assert_eq!(ExitStatus::Signaled(15).signal(), Some(15));
        assert_eq!(ExitStatus::Signaled(15).code(), None);
    }
}
