//! Who owns what, and whether they are still alive.
//!
//! A [`ProcessIdentity`] names one process for its whole life: its pid *and* its start time
//! (clock ticks since boot, from `/proc/<pid>/stat`), packed in one `u64` so it can be
//! stored in shared memory with one atomic store. A recycled pid has another start time, so
//! an identity never matches a process that merely inherited a dead peer's pid.
//!
//! [`PeerWatch`] answers "is this identity still alive?" through the kernel: it opens a
//! pidfd on the pid, checks the start time once, and from then on asks the pidfd, which
//! becomes readable the moment the process exits — even if it was killed by `SIGKILL` and
//! never ran a destructor.
//!
//! # Examples
//!
//! ```
//! use shm_ipc::core::liveness::{Liveness, PeerWatch, ProcessIdentity};
//! let me = ProcessIdentity::current()?;
//! assert_eq!(me.pid(), std::process::id() as i32);
//! let mut watch = PeerWatch::new();
//! assert_eq!(watch.check(me), Liveness::Alive);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
#[cfg(not(miri))]
use std::os::fd::AsFd;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::sys;

/// Bits of a packed identity that hold the pid: Linux pids are below 2^22 (`PID_MAX_LIMIT`).
const PID_BITS: u32 = 22;
const PID_MASK: u64 = (1 << PID_BITS) - 1;

/// One process, for its whole life: pid plus start time, packed in a non-zero `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcessIdentity(u64);

impl ProcessIdentity {
    /// The identity of the calling process (recomputed after `fork`).
    pub fn current() -> io::Result<ProcessIdentity> {
        /// The identity computed last. Its pid bits say which process computed it, so a
        /// forked child (another pid) sees a miss and recomputes its own.
        static CACHE: AtomicU64 = AtomicU64::new(0);
        let pid = sys::getpid();
        // Relaxed: the cached value is a pure function of the pid it carries.
        let cached = CACHE.load(Ordering::Relaxed);
        if cached != 0 && cached & PID_MASK == pid as u64 {
            return Ok(ProcessIdentity(cached));
        }
        let identity = ProcessIdentity::of_pid(pid)?;
        CACHE.store(identity.0, Ordering::Relaxed);
        Ok(identity)
    }

    /// The identity of the live process `pid` (its start time is read from `/proc`).
    #[cfg(not(miri))]
    pub fn of_pid(pid: i32) -> io::Result<ProcessIdentity> {
        let start = start_time(pid)?;
        ProcessIdentity::from_parts(pid, start).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "pid or start time out of range")
        })
    }

    /// Under Miri (no `/proc`, no other processes): the pid with a fixed start time.
    #[cfg(miri)]
    pub fn of_pid(pid: i32) -> io::Result<ProcessIdentity> {
        ProcessIdentity::from_parts(pid, 1)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "pid out of range"))
    }

    fn from_parts(pid: i32, start_time: u64) -> Option<ProcessIdentity> {
        let pid = u64::try_from(pid)
            .ok()
            .filter(|p| *p > 0 && *p <= PID_MASK)?;
        let start = start_time
            .checked_shl(PID_BITS)
            .filter(|s| s >> PID_BITS == start_time)?;
        Some(ProcessIdentity(start | pid))
    }

    /// The packed form, to store in shared memory.
    pub fn to_raw(self) -> u64 {
        self.0
    }

    /// Unpacks a value read from shared memory; `None` for 0 (nobody) or a pid out of range.
    /// The value is untrusted: a valid-looking identity may still name nobody alive.
    pub fn from_raw(raw: u64) -> Option<ProcessIdentity> {
        (raw & PID_MASK != 0).then_some(ProcessIdentity(raw))
    }

    /// The process id.
    pub fn pid(self) -> i32 {
        // The mask keeps 22 bits, which always fit in an i32.
        (self.0 & PID_MASK) as i32
    }

    /// Start time in clock ticks since boot.
    pub fn start_time(self) -> u64 {
        self.0 >> PID_BITS
    }
}

/// Field 22 of `/proc/<pid>/stat`: start time in clock ticks after boot.
#[cfg(not(miri))]
fn start_time(pid: i32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces or ')', so parse from
    // the last ')': the fields after it start with field 3 (state); field 22 is the 20th.
    let after_name = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed stat"))?;
    after_name
        .split_whitespace()
        .nth(19)
        .and_then(|field| field.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed stat"))
}

/// Bumped in every child created by `fork` (a `pthread_atfork` child handler), so that an
/// object can tell cheaply whether it may have been copied into another process since it
/// last checked who owns it: one private load per call, compared with the value it
/// recorded.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(1);

extern "C" fn bump_fork_generation() {
    // Relaxed: the counter is private to this process (the child is single-threaded when
    // the handler runs) and carries no other data.
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// The calling process's fork generation: it changes in every child created by `fork` (via
/// libc) after the first call, and never otherwise. A value recorded by an object and still
/// equal now proves the object has not crossed a `fork` since.
///
/// The first call registers the `pthread_atfork` handler; while the registration fails (it
/// cannot, short of memory exhaustion) calls return 0, which callers treat as "always
/// re-check".
///
/// ```
/// let generation = shm_ipc::core::liveness::fork_generation();
/// assert_eq!(generation, shm_ipc::core::liveness::fork_generation()); // no fork in between
/// ```
#[inline]
pub fn fork_generation() -> u64 {
    // Not a `OnceLock`: a child forked while another thread ran the `OnceLock`'s
    // initialiser would inherit it "running", with no thread left to finish it, and wait
    // for ever on its first call (seen in multi-threaded test binaries: `pthread_atfork`
    // blocks while a fork in progress holds libc's handler lock, which widens the window).
    // Racing first calls may each register the handler; it then runs more than once per
    // fork, which still changes the generation in every child.
    static REGISTERED: AtomicBool = AtomicBool::new(false);
    // SYNC: fork handler registered. Acquire pairs with the Release store below: a thread
    // that sees `true` sees the handler registered, so every later fork bumps the count.
    if !REGISTERED.load(Ordering::Acquire) {
        if sys::at_fork_child(bump_fork_generation).is_err() {
            return 0;
        }
        // SYNC: fork handler registered (see the load above).
        REGISTERED.store(true, Ordering::Release);
    }
    // Relaxed: see `bump_fork_generation`.
    FORK_GENERATION.load(Ordering::Relaxed)
}

/// Whether a watched process is alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// The process exists and is the one named (same start time).
    Alive,
    /// The process has exited (or its pid now belongs to another process).
    Dead,
}

/// Watches one peer process at a time through a pidfd.
///
/// Keep one per endpoint (it is private state, never shared). The first check of an
/// identity opens a pidfd and verifies the start time; later checks of the same identity are
/// a single `poll` on that pidfd. Where the kernel refuses pidfds, it falls back to
/// `kill(pid, 0)` plus the start-time check.
#[derive(Debug, Default)]
pub struct PeerWatch {
    // Under Miri (one process, no pidfds) `check` keeps nothing.
    #[cfg_attr(miri, allow(dead_code))]
    watched: Option<(ProcessIdentity, Option<OwnedFd>)>,
}

impl PeerWatch {
    /// A watch with nothing cached yet.
    pub fn new() -> PeerWatch {
        PeerWatch { watched: None }
    }

    /// Whether the process `who` is still alive.
    #[cfg(miri)]
    pub fn check(&mut self, who: ProcessIdentity) -> Liveness {
        // Miri runs one process and cannot open pidfds: only this process is alive.
        match ProcessIdentity::current() {
            Ok(me) if me == who => Liveness::Alive,
            _ => Liveness::Dead,
        }
    }

    /// Whether the process `who` is still alive.
    #[cfg(not(miri))]
    pub fn check(&mut self, who: ProcessIdentity) -> Liveness {
        if let Some(known) = memo::recall(who) {
            return known;
        }
        let answer = self.ask(who);
        memo::record(who, answer);
        answer
    }

    /// [`check`](PeerWatch::check), asking the kernel.
    #[cfg(not(miri))]
    fn ask(&mut self, who: ProcessIdentity) -> Liveness {
        if let Some((identity, pidfd)) = &self.watched {
            if *identity == who {
                return match pidfd {
                    Some(fd) => match sys::pidfd_exited(fd.as_fd()) {
                        Ok(true) => Liveness::Dead,
                        Ok(false) => Liveness::Alive,
                        Err(_) => Self::check_without_pidfd(who),
                    },
                    None => Self::check_without_pidfd(who),
                };
            }
        }
        let pidfd = match sys::pidfd_open(who.pid()) {
            Ok(fd) => Some(fd),
            Err(err) if err.raw_os_error() == Some(libc::ESRCH) => return Liveness::Dead,
            // EINVAL: the id names a thread, not a process (or the kernel has no pidfds):
            // only a thread-group leader is a process an owner word can name.
            Err(_) if !is_process(who.pid()) => return Liveness::Dead,
            Err(_) => None,
        };
        // The pidfd (if any) now pins the process: a start-time match proves it is `who`.
        let same = start_time(who.pid()).is_ok_and(|start| start == who.start_time());
        if !same {
            return Liveness::Dead;
        }
        let alive = match &pidfd {
            Some(fd) => !sys::pidfd_exited(fd.as_fd()).unwrap_or(false),
            None => sys::process_exists(who.pid()),
        };
        self.watched = Some((who, pidfd));
        if alive {
            Liveness::Alive
        } else {
            Liveness::Dead
        }
    }

    #[cfg(not(miri))]
    fn check_without_pidfd(who: ProcessIdentity) -> Liveness {
        let same = start_time(who.pid()).is_ok_and(|start| start == who.start_time());
        if same && is_process(who.pid()) && sys::process_exists(who.pid()) && !is_zombie(who.pid())
        {
            Liveness::Alive
        } else {
            Liveness::Dead
        }
    }
}

/// Runs `f` with the liveness answers of this thread shared: within it, every
/// [`PeerWatch`] asks the kernel about each process at most once, and later checks of a
/// process already asked about reuse that answer. For a caller that makes many slow checks
/// at one moment — a select over many channels whose senders live in a few processes —
/// one `poll` per process instead of one per channel. Scopes nest (the outermost one
/// keeps the answers); they end with `f`.
///
/// ```
/// use shm_core::liveness::{each_process_once, Liveness, PeerWatch, ProcessIdentity};
/// let me = ProcessIdentity::current()?;
/// let (mut a, mut b) = (PeerWatch::new(), PeerWatch::new());
/// let both = each_process_once(|| [a.check(me), b.check(me)]); // one question asked
/// assert_eq!(both, [Liveness::Alive; 2]);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn each_process_once<T>(f: impl FnOnce() -> T) -> T {
    memo::scope(f)
}

/// The answers shared by [`each_process_once`]: per thread, so nothing is locked (and a
/// forked child, which keeps only the forking thread, starts from its own copy).
mod memo {
    use std::cell::RefCell;

    use super::{Liveness, ProcessIdentity};

    thread_local! {
        /// The answers of the open scope, if one is open.
        static ANSWERS: RefCell<Option<Vec<(ProcessIdentity, Liveness)>>> =
            const { RefCell::new(None) };
    }

    /// Runs `f` in a scope (a nested one joins the open scope).
    pub(super) fn scope<T>(f: impl FnOnce() -> T) -> T {
        let opened = ANSWERS.with_borrow_mut(|answers| {
            let opened = answers.is_none();
            if opened {
                *answers = Some(Vec::new());
            }
            opened
        });
        /// Closes the scope it opened, also if `f` unwinds.
        struct Close(bool);
        impl Drop for Close {
            fn drop(&mut self) {
                if self.0 {
                    ANSWERS.with_borrow_mut(|answers| *answers = None);
                }
            }
        }
        let _close = Close(opened);
        f()
    }

    /// The answer about `who` given in the open scope.
    #[cfg_attr(miri, allow(dead_code))]
    pub(super) fn recall(who: ProcessIdentity) -> Option<Liveness> {
        ANSWERS.with_borrow(|answers| {
            answers
                .as_ref()?
                .iter()
                .find(|(known, _)| *known == who)
                .map(|(_, answer)| *answer)
        })
    }

    /// Keeps the answer about `who`, if a scope is open.
    #[cfg_attr(miri, allow(dead_code))]
    pub(super) fn record(who: ProcessIdentity, answer: Liveness) {
        ANSWERS.with_borrow_mut(|answers| {
            if let Some(answers) = answers {
                answers.push((who, answer));
            }
        });
    }
}

/// Whether `pid` names a process (a thread-group leader), not another thread of one: the
/// `Tgid:` line of `/proc/<pid>/status` (which exists for thread ids too) is `pid` itself.
#[cfg(not(miri))]
fn is_process(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Tgid:"))?;
            line["Tgid:".len()..].trim().parse::<i32>().ok()
        })
        .is_some_and(|tgid| tgid == pid)
}

/// Whether `/proc/<pid>/stat` says the process is a zombie (exited, not yet reaped).
#[cfg(not(miri))]
fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat
                .rfind(')')
                .map(|i| stat[i + 1..].trim_start().chars().next())?;
            state.map(|c| c == 'Z' || c == 'X')
        })
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_asks_about_each_process_once_and_forgets_at_its_end() {
        let me = ProcessIdentity::current().unwrap();
        assert_eq!(memo::recall(me), None, "no scope open");
        each_process_once(|| {
            assert_eq!(memo::recall(me), None);
            assert_eq!(PeerWatch::new().check(me), Liveness::Alive);
            assert_eq!(memo::recall(me), Some(Liveness::Alive));
            // A nested scope joins the open one.
            each_process_once(|| assert_eq!(memo::recall(me), Some(Liveness::Alive)));
            assert_eq!(memo::recall(me), Some(Liveness::Alive));
        });
        assert_eq!(memo::recall(me), None);
    }

    #[test]
    fn identity_round_trips_through_raw() {
        let me = ProcessIdentity::current().unwrap();
        assert_eq!(ProcessIdentity::from_raw(me.to_raw()), Some(me));
        assert_eq!(ProcessIdentity::from_raw(0), None);
        assert_eq!(me, ProcessIdentity::current().unwrap());
    }

    #[test]
    fn wrong_start_time_is_dead() {
        let me = ProcessIdentity::current().unwrap();
        let impostor = ProcessIdentity::from_parts(me.pid(), me.start_time() + 1).unwrap();
        assert_eq!(PeerWatch::new().check(impostor), Liveness::Dead);
    }

    // Under Miri there is no `/proc` to read a start time from (see `start_time`).
    #[cfg(not(miri))]
    #[test]
    fn a_thread_id_is_not_a_live_process() {
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            // SAFETY: `gettid` has no preconditions.
            let tid = unsafe { libc::gettid() };
            tid_tx.send(tid).unwrap();
            let _ = done_rx.recv();
        });
        let tid = tid_rx.recv().unwrap();
        let start = start_time(tid).unwrap();
        let identity = ProcessIdentity::from_parts(tid, start).unwrap();
        assert_eq!(PeerWatch::new().check(identity), Liveness::Dead);
        done_tx.send(()).unwrap();
        thread.join().unwrap();
    }

    #[test]
    fn unknown_pid_is_dead() {
        let nobody = ProcessIdentity::from_parts(PID_MASK as i32, 1).unwrap();
        assert_eq!(PeerWatch::new().check(nobody), Liveness::Dead);
    }

    #[test]
    fn exited_child_is_dead_once_exited() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let identity = ProcessIdentity::of_pid(child.id() as i32);
        child.wait().unwrap();
        // Either it exited before we read its start time, or the watch reports it gone.
        if let Ok(identity) = identity {
            assert_eq!(PeerWatch::new().check(identity), Liveness::Dead);
        }
    }

    #[test]
    fn zombie_child_is_dead_before_reaping() {
        let mut child = std::process::Command::new("sleep")
            .arg("0.05")
            .spawn()
            .unwrap();
        let identity = ProcessIdentity::of_pid(child.id() as i32).unwrap();
        let mut watch = PeerWatch::new();
        assert_eq!(watch.check(identity), Liveness::Alive);
        // Not reaped yet: wait for the exit through the watch itself.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while watch.check(identity) == Liveness::Alive {
            assert!(std::time::Instant::now() < deadline, "exit not seen");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        child.wait().unwrap();
    }
}
