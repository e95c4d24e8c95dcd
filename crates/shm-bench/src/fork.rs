//! Forking the benchmark child, reaping it, the stall watchdog.
//!
//! The child runs one closure (its benchmark loop) and ends with `libc::_exit`: it never
//! returns into the caller, never runs the parent's destructors or atexit handlers, and
//! never unwinds out of the closure (a panic becomes exit code [`EXIT_PANIC`]).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, getpid, getppid, ForkResult, Pid};

use crate::affinity::{allowed_cpus, pin_to};
use crate::error::BenchError;

/// Child exit code: the benchmark loop finished normally.
pub const EXIT_OK: i32 = 0;
/// Child exit code: a received payload failed verification.
pub const EXIT_CORRUPT: i32 = 2;
/// Child exit code: the transport failed (other than the parent closing it).
pub const EXIT_TRANSPORT: i32 = 3;
/// Child exit code: the child's loop gave up waiting for the parent.
pub const EXIT_STALLED: i32 = 4;
/// Child exit code: the child could not pin itself to its CPU.
pub const EXIT_PIN: i32 = 90;
/// Child exit code: the child's closure panicked.
pub const EXIT_PANIC: i32 = 101;

/// A forked benchmark child, killed and reaped if dropped before [`Child::wait`].
#[derive(Debug)]
pub struct Child {
    pid: Option<Pid>,
    what: String,
}

/// Forks a child pinned to `cpu` that runs `body` and exits with its return value.
///
/// In the child: the parent-death signal is set to SIGKILL (a child whose parent died
/// cannot block for ever), SIGPIPE is ignored (a closed peer gives `EPIPE`), the process
/// is pinned to `cpu`, then `body` runs; its result, or [`EXIT_PANIC`], is passed to
/// `_exit`.
///
/// Contract (the reason this is sound to call from a multi-threaded test binary): `body`
/// must not take locks that another thread of the parent may hold at the time of the
/// fork — in practice, it must do its I/O through raw syscalls and preallocated buffers
/// (no `println!`, no `std::io::stdout`). Heap allocation is tolerated: glibc resets its
/// malloc locks in the child of `fork`. Tests serialise their forks.
pub fn spawn<F>(what: &str, cpu: usize, body: F) -> Result<Child, BenchError>
where
    F: FnOnce() -> i32,
{
    let parent = getpid();
    // SAFETY: see the contract above: the child runs only `body` (raw syscalls on
    // descriptors and mappings made before the fork, preallocated buffers) and leaves
    // through `_exit`, so it never touches state that another thread of the parent might
    // have left locked, and never returns into the parent's code.
    match unsafe { fork() } {
        Err(e) => Err(BenchError::nix("fork", e)),
        Ok(ForkResult::Child) => {
            let code = child_main(parent, cpu, body);
            // SAFETY: `_exit` ends the process at once without running atexit handlers
            // or destructors that belong to the parent's state; always sound to call.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => Ok(Child {
            pid: Some(child),
            what: what.to_string(),
        }),
    }
}

fn child_main<F: FnOnce() -> i32>(parent: Pid, cpu: usize, body: F) -> i32 {
    // If the parent dies, the kernel kills us: no orphan keeps spinning on a core.
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    if getppid() != parent {
        // The parent died before the death signal was armed.
        return EXIT_STALLED;
    }
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code; it is
    // async-signal-safe and affects only this (single-threaded) child.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    if pin_to(cpu).is_err() {
        return EXIT_PIN;
    }
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(EXIT_PANIC)
}

/// Whether the process that forked us is gone (we were re-parented).
pub(crate) fn parent_gone(parent: Pid) -> bool {
    getppid() != parent
}

impl Child {
    /// The child's pid.
    pub fn pid(&self) -> Option<Pid> {
        self.pid
    }

    /// Waits for the child to exit; `Ok(())` if it exited with [`EXIT_OK`].
    pub fn wait(mut self) -> Result<(), BenchError> {
        let Some(pid) = self.pid.take() else {
            return Ok(());
        };
        let status = loop {
            match waitpid(pid, None) {
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(BenchError::nix("waitpid", e)),
                Ok(s @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => break s,
                Ok(_) => continue,
            }
        };
        match status {
            WaitStatus::Exited(_, EXIT_OK) => Ok(()),
            WaitStatus::Exited(_, code) => Err(BenchError::Child {
                what: self.what.clone(),
                detail: describe_exit(code),
            }),
            WaitStatus::Signaled(_, sig, _) => Err(BenchError::Child {
                what: self.what.clone(),
                detail: format!("killed by {sig:?}"),
            }),
            _ => unreachable!("loop only breaks on exit or signal"),
        }
    }
}

/// A human description of a child exit code.
pub fn describe_exit(code: i32) -> String {
    let why = match code {
        EXIT_CORRUPT => "received a corrupt payload",
        EXIT_TRANSPORT => "transport error",
        EXIT_STALLED => "gave up waiting for the parent",
        EXIT_PIN => "could not pin itself to its CPU",
        EXIT_PANIC => "panicked",
        _ => "failed",
    };
    format!("exited with code {code} ({why})")
}

/// A sleeping process that SIGKILLs a benchmark child after a deadline, so that a
/// transport which blocks for ever cannot hang the harness: once the child is dead, the
/// parent's blocked call returns (EOF for descriptors; a ring must detect the peer's death
/// through the kernel anyway, GUIDE §3 rule 9).
///
/// The watchdog closes every descriptor it inherited before it sleeps, so it keeps no
/// transport open (a pipe it held would hide the parent's EOF from the child).
#[derive(Debug)]
pub struct Watchdog {
    child: Child,
}

impl Watchdog {
    /// Arms a watchdog that kills `target` after `after`.
    pub fn arm(target: &Child, after: Duration) -> Result<Watchdog, BenchError> {
        let Some(target) = target.pid else {
            return Err(BenchError::Config("watchdog on a reaped child".into()));
        };
        let cpu = allowed_cpus().first().copied().unwrap_or(0);
        let child = spawn("watchdog", cpu, move || {
            // SAFETY: close_range only closes descriptors of this process; nothing in
            // the watchdog uses them afterwards (it only sleeps and sends a signal).
            unsafe {
                libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            }
            std::thread::sleep(after);
            let _ = kill(target, Signal::SIGKILL);
            EXIT_OK
        })?;
        Ok(Watchdog { child })
    }

    /// Stops the watchdog; returns whether it had already fired.
    pub fn disarm(mut self) -> bool {
        let Some(pid) = self.child.pid.take() else {
            return false;
        };
        let _ = kill(pid, Signal::SIGKILL);
        loop {
            match waitpid(pid, None) {
                Err(nix::Error::EINTR) => continue,
                Ok(WaitStatus::Exited(_, code)) => return code == EXIT_OK,
                Ok(WaitStatus::Signaled(..)) | Err(_) => return false,
                Ok(_) => continue,
            }
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = kill(pid, Signal::SIGKILL);
            while let Err(nix::Error::EINTR) = waitpid(pid, None) {}
        }
    }
}
