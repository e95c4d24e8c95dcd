//! Forking a child that runs a closure: the safe entry points (single-threaded callers
//! only), the unsafe one, and the code the child runs around the closure.

use std::any::Any;
use std::io::{self, Write};
use std::panic::{self, AssertUnwindSafe};

use shm_core::liveness::ProcessIdentity;
use shm_core::RegionError;

use crate::child::{Child, OnDrop, ADOPT_FAILED_EXIT_CODE, PANIC_EXIT_CODE};
use crate::inherit::{Inherit, InheritError};
use crate::report::{Outcome, Report};
use crate::sys;

/// The exit code of a child that found its parent gone before it could start (nobody is
/// left to read it; it only has to differ from 0).
const ORPHANED_EXIT_CODE: i32 = 103;

/// Why a child could not be forked.
#[derive(Debug, thiserror::Error)]
pub enum ForkError {
    /// The safe entry points refuse to fork a process with more than one thread: the child
    /// would inherit locks (allocator, stdio, any `Mutex`) that other threads held, locked
    /// for ever. Fork before starting threads, or see
    /// [`ChildOptions::fork_with_unchecked`].
    #[error(
        "refusing to fork: this process has {threads} threads, and a forked child could \
         inherit a lock another thread held (fork before spawning threads, or use the \
         unsafe `fork_with_unchecked`)"
    )]
    MultiThreaded {
        /// Threads counted in `/proc/self/task`.
        threads: usize,
    },
    /// `/proc/self/task` could not be read, so the thread count is unknown.
    #[error("cannot count this process's threads in /proc/self/task: {0}")]
    ThreadCount(#[source] io::Error),
    /// The page shared with the child (start gate, panic record) could not be mapped.
    #[error("cannot map the child's status page: {0}")]
    StatusPage(#[from] RegionError),
    /// `fork` itself failed (`EAGAIN`: process limit; `ENOMEM`).
    #[error("fork failed: {0}")]
    Fork(#[source] io::Error),
    /// The child's identity could not be read from `/proc`; the child was killed and
    /// reaped.
    #[error("cannot read the identity of child {pid}: {source}")]
    ChildIdentity {
        /// The child's pid.
        pid: i32,
        /// Why `/proc/<pid>/stat` could not be read.
        source: io::Error,
    },
    /// [`Inherit::hand_over`] failed; the child was killed and reaped before its closure
    /// could run.
    #[error("handing values over to child {pid} failed: {source}")]
    HandOver {
        /// The child's pid.
        pid: i32,
        /// The value's error.
        source: InheritError,
    },
}

/// How to fork a child: what dropping its handle does, and whether it dies with its parent.
///
/// # Examples
///
/// ```
/// use shm_ipc::fork::{ChildOptions, ExitStatus, OnDrop};
/// let mut child = ChildOptions::new()
///     .on_drop(OnDrop::Wait)
///     .kill_on_parent_death(true)
///     .fork(|| 7)?;
/// assert_eq!(child.wait()?, ExitStatus::Exited(7));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildOptions {
    on_drop: OnDrop,
    kill_on_parent_death: bool,
}

impl Default for ChildOptions {
    fn default() -> ChildOptions {
        ChildOptions::new()
    }
}

impl ChildOptions {
    /// The defaults: [`OnDrop::Kill`], killed when the parent dies.
    pub fn new() -> ChildOptions {
        ChildOptions {
            on_drop: OnDrop::Kill,
            kill_on_parent_death: true,
        }
    }

    /// What dropping the [`Child`] handle without reaping the child does.
    pub fn on_drop(mut self, on_drop: OnDrop) -> ChildOptions {
        self.on_drop = on_drop;
        self
    }

    /// Whether the child gets `SIGKILL` when its parent dies (default `true`), through
    /// `prctl(PR_SET_PDEATHSIG)`. The kernel sends it when the *thread* that forked exits,
    /// so fork from a thread that lives as long as the child should.
    pub fn kill_on_parent_death(mut self, yes: bool) -> ChildOptions {
        self.kill_on_parent_death = yes;
        self
    }

    /// Forks a child that runs `f` and exits with the code it returns.
    /// See [`fork_with`](ChildOptions::fork_with).
    pub fn fork(&self, f: impl FnOnce() -> i32) -> Result<Child, ForkError> {
        self.fork_with((), |()| f())
    }

    /// Forks a child that adopts `values` and runs `f(values)`, exiting with the code it
    /// returns; the parent hands the values over to the child and drops its copy.
    ///
    /// In the child: the closure runs after [`Inherit::adopt`], and after the parent's
    /// [`Inherit::hand_over`] has returned. When `f` returns, the child flushes std's
    /// stdout and ends with `_exit(code)`: no `atexit` handlers, none of the parent's
    /// destructors, no second flush of buffers the parent filled before the fork. A panic
    /// in `f` is caught and reported as [`ExitStatus::Panicked`](crate::ExitStatus).
    ///
    /// Pass endpoints through `values`, not as captures of `f`: a captured endpoint is never
    /// handed over, so the child does not own it (the channel refuses to use it there), and
    /// the parent drops its copy of `f` — and with it the endpoint — without running it.
    ///
    /// The parent flushes std's stdout and stderr before forking, so their buffers are
    /// written once.
    ///
    /// # Errors
    ///
    /// [`ForkError::MultiThreaded`] if the process has more than one thread (see
    /// [`fork_with_unchecked`](ChildOptions::fork_with_unchecked)); the other variants of
    /// [`ForkError`] if the fork or the hand-over failed, in which case no child is left
    /// running.
    pub fn fork_with<E: Inherit>(
        &self,
        values: E,
        f: impl FnOnce(E) -> i32,
    ) -> Result<Child, ForkError> {
        self.checked_fork(values, |values, _| f(values))
    }

    /// [`fork_with`](ChildOptions::fork_with), with the child's closure also given the
    /// status page, to record a failure before it drops its values.
    pub(crate) fn checked_fork<E: Inherit>(
        &self,
        values: E,
        f: impl FnOnce(E, &Report) -> i32,
    ) -> Result<Child, ForkError> {
        let threads = sys::thread_count().map_err(ForkError::ThreadCount)?;
        if threads > 1 {
            return Err(ForkError::MultiThreaded { threads });
        }
        // SAFETY: the process has a single thread (this one), so no other thread can hold a
        // lock at the fork, and the child's copy of every lock is in the state this thread
        // left it in — unlocked, since it is not inside any critical section here.
        unsafe { self.fork_inner(values, f) }
    }

    /// [`fork_with`](ChildOptions::fork_with) without the single-thread check.
    ///
    /// # Safety
    ///
    /// The child is a copy of the calling process with only the calling thread in it; every
    /// lock that another thread held at the moment of the fork stays locked in the child for
    /// ever. POSIX guarantees only async-signal-safe operations in such a child. The caller
    /// must guarantee that nothing the child runs takes a lock another thread could have
    /// held during the fork, or otherwise depends on another thread. What the child runs:
    ///
    /// - `values.adopt()`, then `f(values)`, including the values' destructors;
    /// - this crate's own code: `getppid`, `prctl`, a futex wait on a page mapped before the
    ///   fork, `catch_unwind`, writes to that page, a flush of std's stdout (which takes
    ///   std's stdout lock), and `_exit`. A panic also runs the panic hook, which formats
    ///   and prints to stderr (std's stderr lock, and the allocator).
    ///
    /// So in particular: no other thread may be printing through std's `stdout`/`stderr`
    /// or inside the allocator during the fork (glibc's `malloc` re-initialises its locks in
    /// the child; other allocators may not), and `f` must not lock any `Mutex`,
    /// `RwLock`, `OnceLock` in progress, or the environment lock, that other threads use.
    pub unsafe fn fork_with_unchecked<E: Inherit>(
        &self,
        values: E,
        f: impl FnOnce(E) -> i32,
    ) -> Result<Child, ForkError> {
        // SAFETY: forwarded to our caller under the same contract.
        unsafe { self.fork_inner(values, |values, _| f(values)) }
    }

    /// The fork itself.
    ///
    /// # Safety
    ///
    /// As for [`fork_with_unchecked`](ChildOptions::fork_with_unchecked).
    unsafe fn fork_inner<E: Inherit>(
        &self,
        values: E,
        f: impl FnOnce(E, &Report) -> i32,
    ) -> Result<Child, ForkError> {
        let report = Report::new()?;
        let parent = sys::getpid();
        // Flush now: a buffer copied into the child would be written by both processes.
        let _ = io::stdout().flush();
        let _ = io::stderr().flush();
        // SAFETY: forwarded to our caller: the child only runs `run_child`, whose operations
        // are listed in the `# Safety` contract above.
        let pid = match unsafe { sys::fork() } {
            Err(err) => return Err(ForkError::Fork(err)),
            Ok(None) => run_child(values, f, &report, parent, self.kill_on_parent_death),
            Ok(Some(pid)) => pid,
        };
        let identity = match ProcessIdentity::of_pid(pid) {
            Ok(identity) => identity,
            Err(source) => {
                // The unreaped child still holds its pid: the signal reaches it and no other.
                let _ = sys::sigkill(pid);
                let _ = sys::waitpid(pid, false);
                return Err(ForkError::ChildIdentity { pid, source });
            }
        };
        let mut child = Child::new(pid, identity, self.on_drop, report);
        if let Err(source) = values.hand_over(identity) {
            // The gate is still closed: the child has not run `adopt` or `f`.
            child.kill_and_reap();
            return Err(ForkError::HandOver { pid, source });
        }
        // The hand-over made the parent's copy inert; drop it before the child starts.
        drop(values);
        child.report().open_gate();
        Ok(child)
    }
}

/// Forks a child that runs `f` and exits with the code it returns, with the default
/// [`ChildOptions`]. Refuses ([`ForkError::MultiThreaded`]) in a multi-threaded process.
///
/// # Examples
///
/// ```
/// let mut child = shm_ipc::fork::fork(|| {
///     println!("hello from {}", std::process::id());
///     0
/// })?;
/// assert!(child.wait()?.success());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn fork(f: impl FnOnce() -> i32) -> Result<Child, ForkError> {
    ChildOptions::new().fork(f)
}

/// Forks a child that adopts `values` and runs `f(values)`, with the default
/// [`ChildOptions`]; see [`ChildOptions::fork_with`].
///
/// # Examples
///
/// ```
/// // Any `Inherit` value (tuples, `Vec`s, `Option`s, arrays of them) can be handed over;
/// // channel endpoints are the values that matter.
/// let mut child = shm_ipc::fork::fork_with(((), ()), |((), ())| 0)?;
/// assert!(child.wait()?.success());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn fork_with<E: Inherit>(values: E, f: impl FnOnce(E) -> i32) -> Result<Child, ForkError> {
    ChildOptions::new().fork_with(values, f)
}

/// [`fork_with`] without the single-thread check, with the default [`ChildOptions`].
///
/// # Safety
///
/// As for [`ChildOptions::fork_with_unchecked`].
pub unsafe fn fork_with_unchecked<E: Inherit>(
    values: E,
    f: impl FnOnce(E) -> i32,
) -> Result<Child, ForkError> {
    // SAFETY: forwarded to our caller under the same contract.
    unsafe { ChildOptions::new().fork_with_unchecked(values, f) }
}

/// The child's side of the fork: never returns.
fn run_child<E: Inherit>(
    values: E,
    f: impl FnOnce(E, &Report) -> i32,
    report: &Report,
    parent: i32,
    kill_on_parent_death: bool,
) -> ! {
    if kill_on_parent_death {
        if sys::kill_me_when_parent_dies().is_err() {
            sys::exit_now(ORPHANED_EXIT_CODE);
        }
        // The parent may have died between the fork and the prctl, before any signal was
        // armed: then we were re-parented, and must go as the signal would have made us.
        if sys::getppid() != parent {
            sys::exit_now(ORPHANED_EXIT_CODE);
        }
    }
    // Wait for the parent's hand-over: adopting before it would race its bookkeeping.
    if !report.wait_for_gate(parent) {
        sys::exit_now(ORPHANED_EXIT_CODE);
    }
    let outcome = panic::catch_unwind(AssertUnwindSafe(move || match values.adopt() {
        Ok(()) => Ok(f(values, report)),
        Err(err) => {
            // Not adopted: never use (or drop) the values in this process.
            std::mem::forget(values);
            Err(err)
        }
    }));
    let code = match outcome {
        Ok(Ok(code)) => u8::try_from(code).map_or(255, i32::from),
        Ok(Err(err)) => {
            report.record(Outcome::AdoptFailed, &err.to_string());
            ADOPT_FAILED_EXIT_CODE
        }
        Err(payload) => {
            // Unless the closure recorded this panic itself, before dropping its values.
            if report.outcome() != Outcome::Panicked {
                report.record(Outcome::Panicked, payload_text(&*payload));
            }
            // Dropping the payload could panic again, outside any catch_unwind.
            std::mem::forget(payload);
            PANIC_EXIT_CODE
        }
    };
    // What the child printed is its own; what the parent had buffered was flushed pre-fork.
    let _ = io::stdout().flush();
    sys::exit_now(code)
}

/// The text of a panic payload (`panic!("...")` payloads are `&str` or `String`).
pub(crate) fn payload_text(payload: &(dyn Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "(non-string panic payload)"
    }
}
