//! The benchmark's children: forked with `shm-fork`, pinned, reaped, watched.
//!
//! Every child is forked by [`spawn`] through [`shm_fork::ChildOptions::fork_with`], which
//! gives the harness what it needs from a child:
//!
//! - the endpoints a child uses are passed as `fork_with`'s values ([`shm_fork::Inherit`]):
//!   the parent hands them over to the child right after the fork and drops its copy, and
//!   the child adopts them behind shm-fork's start gate, before its closure runs (so an
//!   adoption can never race the hand-over);
//! - the child dies with the parent (`PR_SET_PDEATHSIG`), a handle dropped before it was
//!   reaped kills and reaps the child ([`OnDrop::Kill`]): no orphan keeps spinning on a
//!   core, no zombie is left;
//! - the child ends with `_exit` when its closure returns, never running the parent's
//!   destructors or atexit handlers; a panic is reported as [`ExitStatus::Panicked`].
//!
//! A child's closure returns one of the `EXIT_*` codes below; [`BenchChild::wait`] turns
//! anything but [`EXIT_OK`] into a [`BenchError::Child`] that says what happened.
//!
//! **Pinning.** shm-fork runs no caller code between the fork and the closure, so the
//! child pins itself to its CPU as the first thing its closure does, before the body
//! (failure: [`EXIT_PIN`]). Until then it runs on the parent's mask (the parent is pinned
//! to its own CPU for the scenario) and only waits at the start gate and adopts its
//! endpoints: nothing of a measurement happens before the pin.
//!
//! **Threads.** shm-fork's safe entry points refuse to fork a process that has more than
//! one thread ([`shm_fork::ForkError::MultiThreaded`], reported as [`BenchError::Fork`]).
//! The harness is single-threaded: its progress bar never starts indicatif's ticker thread
//! (`runner`), and its test binaries run their tests on the main thread.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::{getppid, Pid};
use shm_fork::{Child, ChildError, ChildOptions, ExitStatus, Inherit, OnDrop};

use crate::affinity::pin_to;
use crate::error::BenchError;
use crate::shm::SharedMap;

/// Child exit code: the benchmark loop finished normally.
pub(crate) const EXIT_OK: i32 = 0;
/// Child exit code: a received payload failed verification.
pub(crate) const EXIT_CORRUPT: i32 = 2;
/// Child exit code: the transport failed (other than the parent closing it).
pub(crate) const EXIT_TRANSPORT: i32 = 3;
/// Child exit code: the child's loop gave up waiting for the parent.
pub(crate) const EXIT_STALLED: i32 = 4;
/// Child exit code: the child could not pin itself to its CPU.
pub(crate) const EXIT_PIN: i32 = 90;

/// How every benchmark child is forked: killed and reaped if its handle is dropped
/// unreaped, killed if the parent dies.
fn options() -> ChildOptions {
    ChildOptions::new()
        .on_drop(OnDrop::Kill)
        .kill_on_parent_death(true)
}

/// A forked benchmark child (killed and reaped if dropped before it was reaped), with
/// the name of what it runs for error messages.
#[derive(Debug)]
pub(crate) struct BenchChild {
    child: Child,
    what: String,
}

/// Forks a child that adopts `values`, pins itself to `cpu`, runs `body(values)` and
/// exits with the code it returns.
///
/// Pass the endpoints the child uses as `values`, not as captures of `body` (see
/// [`shm_fork::ChildOptions::fork_with`]): only `values` are handed over. State of the
/// parent that the child must release (the parent's own endpoint: for pipes, its
/// descriptors, which would otherwise keep the child from ever seeing EOF) can be
/// captured by `&mut Option` and taken and dropped in the child.
///
/// In the child, before `body`: SIGPIPE is ignored (a closed peer gives `EPIPE`; std's
/// runtime already ignores it in Rust programs, this keeps it so for other hosts), and
/// the process is pinned to `cpu` ([`EXIT_PIN`] if that fails).
pub(crate) fn spawn<E: Inherit>(
    what: &str,
    cpu: usize,
    values: E,
    body: impl FnOnce(E) -> i32,
) -> Result<BenchChild, BenchError> {
    let child = options()
        .fork_with(values, |values| {
            // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code;
            // it affects only this (single-threaded) child process.
            unsafe {
                libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            }
            if pin_to(cpu).is_err() {
                return EXIT_PIN;
            }
            body(values)
        })
        .map_err(|source| BenchError::Fork {
            what: what.to_string(),
            source,
        })?;
    Ok(BenchChild {
        child,
        what: what.to_string(),
    })
}

/// Whether the process that forked us is gone (we were re-parented). The kernel kills
/// our children when their parent dies (`PR_SET_PDEATHSIG`); children that wait for the
/// parent in loops check this too, so that they never outlive it even where the death
/// signal is not delivered (it follows the forking *thread*).
pub(crate) fn parent_gone(parent: Pid) -> bool {
    getppid() != parent
}

impl BenchChild {
    /// The child's pid.
    pub(crate) fn pid(&self) -> i32 {
        self.child.pid()
    }

    /// Waits for the child to exit; `Ok(())` if it exited with [`EXIT_OK`].
    pub(crate) fn wait(mut self) -> Result<(), BenchError> {
        let status = self.child.wait().map_err(self.reap_err())?;
        self.verdict(status)
    }

    /// Waits for the child until `until`; if it is still running then, kills it, reaps it
    /// and returns [`BenchError::Stalled`] (with `secs` as the deadline reported).
    fn wait_until(mut self, until: Instant, secs: u64) -> Result<(), BenchError> {
        let left = until.saturating_duration_since(Instant::now());
        match self.child.wait_timeout(left).map_err(self.reap_err())? {
            Some(status) => self.verdict(status),
            None => {
                // Still running at the deadline: it will not stop on its own.
                let _ = self.child.kill();
                self.child.wait().map_err(self.reap_err())?;
                Err(BenchError::Stalled {
                    what: self.what.clone(),
                    secs,
                })
            }
        }
    }

    fn reap_err(&self) -> impl FnOnce(ChildError) -> BenchError {
        let what = self.what.clone();
        move |source| BenchError::Reap { what, source }
    }

    /// `Ok(())` for [`EXIT_OK`], else what happened.
    fn verdict(&self, status: ExitStatus) -> Result<(), BenchError> {
        if status.code() == Some(EXIT_OK) {
            return Ok(());
        }
        Err(BenchError::Child {
            what: self.what.clone(),
            detail: describe(status, self.child.failure_message()),
        })
    }
}

/// A human description of how a child ended (`message`: what it recorded, if anything:
/// a panic's payload, an adoption error).
pub(crate) fn describe(status: ExitStatus, message: Option<String>) -> String {
    match (status, message) {
        (ExitStatus::Exited(code), _) => describe_exit(code),
        // "killed by signal 9 (SIGKILL)"
        (ExitStatus::Signaled(_), _) => status.to_string(),
        // "panicked: <payload>", "failed to adopt its inherited values: <error>"
        (_, Some(message)) => format!("{status}: {message}"),
        (_, None) => status.to_string(),
    }
}

/// A human description of a child exit code.
fn describe_exit(code: i32) -> String {
    let why = match code {
        EXIT_CORRUPT => "received a corrupt payload",
        EXIT_TRANSPORT => "transport error",
        EXIT_STALLED => "gave up waiting for the parent",
        EXIT_PIN => "could not pin itself to its CPU",
        _ => "failed",
    };
    format!("exited with code {code} ({why})")
}

/// A sleeping process that SIGKILLs a benchmark child after a deadline, so that a
/// transport which blocks for ever cannot hang the harness: once the child is dead, the
/// parent's blocked call returns (EOF for descriptors; a ring must detect the peer's death
/// through the kernel anyway, docs/architecture.md, rule 9).
///
/// The watchdog closes every descriptor it inherited before it sleeps, so it keeps no
/// transport open (a pipe it held would hide the parent's EOF from the child). It is
/// forked with shm-fork like the benchmark children (no values, not pinned: it sleeps);
/// it says that it fired through a word of a shared page, written before the kill.
///
/// [`Watchdog::finish`] stops and reaps the watchdog *before* it reaps the target, so the
/// watchdog's `kill(pid)` can only ever reach the target (an unreaped child keeps its
/// pid). Dropping a `Watchdog` kills and reaps it.
pub(crate) struct Watchdog {
    dog: Child,
    fired: SharedMap,
    until: Instant,
    after: Duration,
}

impl Watchdog {
    /// Arms a watchdog that kills `target` after `after`.
    pub(crate) fn arm(target: &BenchChild, after: Duration) -> Result<Watchdog, BenchError> {
        let target = Pid::from_raw(target.pid());
        let fired = SharedMap::new(4096).map_err(|source| BenchError::Sys {
            what: "mmap (watchdog)",
            source,
        })?;
        let flag = fired.u64_at(0);
        let until = Instant::now() + after;
        let dog = options()
            .fork(|| {
                // SAFETY: close_range only closes descriptors of this process; nothing in
                // the watchdog uses them afterwards (it only sleeps, writes to a mapping
                // and sends a signal).
                unsafe {
                    libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
                }
                std::thread::sleep(after);
                // SYNC: fired flag. Read by the parent only after it has reaped us.
                flag.store(1, Ordering::SeqCst);
                let _ = kill(target, Signal::SIGKILL);
                EXIT_OK
            })
            .map_err(|source| BenchError::Fork {
                what: "watchdog".to_string(),
                source,
            })?;
        Ok(Watchdog {
            dog,
            fired,
            until,
            after,
        })
    }

    /// Stops the watchdog, then reaps `target`: waits for it until the watchdog's deadline,
    /// and kills it if it is still running then. [`BenchError::Stalled`] if the watchdog
    /// fired or the target had to be killed at the deadline; else `target`'s own verdict
    /// ([`BenchChild::wait`]).
    pub(crate) fn finish(mut self, target: BenchChild) -> Result<(), BenchError> {
        // Killed and reaped first: from here on nothing can signal the target's pid.
        let _ = self.dog.kill();
        let _ = self.dog.wait();
        let what = target.what.clone();
        let secs = self.after.as_secs();
        let result = target.wait_until(self.until, secs);
        // SYNC: fired flag. The watchdog stored it before killing, and was reaped above.
        if self.fired.u64_at(0).load(Ordering::SeqCst) != 0 {
            return Err(BenchError::Stalled { what, secs });
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_described() {
        assert_eq!(
            describe(ExitStatus::Exited(EXIT_TRANSPORT), None),
            "exited with code 3 (transport error)"
        );
        assert_eq!(
            describe(ExitStatus::Exited(EXIT_PIN), None),
            "exited with code 90 (could not pin itself to its CPU)"
        );
        assert_eq!(
            describe(ExitStatus::Signaled(libc::SIGKILL), None),
            "killed by signal 9 (SIGKILL)"
        );
        assert_eq!(
            describe(ExitStatus::Panicked, Some("boom".into())),
            "panicked: boom"
        );
        assert_eq!(describe(ExitStatus::Panicked, None), "panicked");
        // A closure that returns 101 did not panic.
        assert_eq!(
            describe(ExitStatus::Exited(101), None),
            "exited with code 101 (failed)"
        );
    }
}
