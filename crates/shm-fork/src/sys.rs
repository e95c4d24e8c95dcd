//! Thin wrappers over the Linux calls this crate makes. Nothing here is public API: the
//! public types ([`crate::Child`], [`crate::ChildOptions`]) call in and turn `errno` into
//! typed errors.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::{ForkResult, Pid};

/// How a reaped child ended, as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reaped {
    /// `exit`/`_exit` with this code (0..=255).
    Exited(i32),
    /// Terminated by this signal number.
    Signaled(i32),
}

/// The number of threads of the calling process: the entries of `/proc/self/task`.
pub(crate) fn thread_count() -> io::Result<usize> {
    let mut count = 0;
    for entry in std::fs::read_dir("/proc/self/task")? {
        entry?;
        count += 1;
    }
    Ok(count)
}

/// `fork()`: `Ok(None)` in the child, `Ok(Some(pid))` in the parent.
///
/// # Safety
///
/// The caller upholds the contract of [`nix::unistd::fork`]: in a multi-threaded process the
/// child may only run code that takes no lock another thread could have held at the fork.
pub(crate) unsafe fn fork() -> io::Result<Option<i32>> {
    // SAFETY: the caller upholds the fork contract stated above.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => Ok(None),
        Ok(ForkResult::Parent { child }) => Ok(Some(child.as_raw())),
        Err(errno) => Err(errno.into()),
    }
}

/// Ends the calling process at once with `code`: no destructors, no `atexit` handlers, no
/// flush of C stdio buffers (which may hold bytes the parent wrote before the fork).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` has no preconditions and never returns.
    unsafe { libc::_exit(code) }
}

/// The calling process's pid.
pub(crate) fn getpid() -> i32 {
    nix::unistd::getpid().as_raw()
}

/// The calling process's parent pid.
pub(crate) fn getppid() -> i32 {
    nix::unistd::getppid().as_raw()
}

/// Asks the kernel to send `SIGKILL` to the calling process when its parent thread exits.
pub(crate) fn kill_me_when_parent_dies() -> io::Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)
}

/// `kill(pid, SIGKILL)`. The caller makes sure `pid` is an unreaped child, so that the pid
/// cannot have been recycled for another process.
pub(crate) fn sigkill(pid: i32) -> io::Result<()> {
    nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL).map_err(io::Error::from)
}

/// `pidfd_send_signal(pidfd, SIGKILL)`: kills exactly the process the pidfd was opened on,
/// or fails with `ESRCH` once it has been reaped — never a process that reused its pid.
pub(crate) fn pidfd_sigkill(pidfd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: the fd is a valid pidfd for the duration of the call; the info pointer is NULL,
    // which the kernel accepts (it then fills in the info as `kill` would); no memory is read.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `pidfd_open(pid, 0)`: an fd that becomes readable when `pid` exits (`O_CLOEXEC` is
/// implied by the kernel). Fails on kernels older than 5.3.
pub(crate) fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: `pidfd_open` takes two integers and returns a new fd or -1; no memory is read.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(ret).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Waits up to `timeout` for `fd` to become readable. `Ok(true)` if it did; `Ok(false)` on
/// timeout or when interrupted by a signal (the caller re-checks and loops).
pub(crate) fn poll_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    // Round up, so that a sub-millisecond remainder does not become a busy 0 ms poll.
    let millis = timeout
        .as_nanos()
        .div_ceil(1_000_000)
        .min(libc::c_int::MAX as u128) as libc::c_int;
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is a valid, exclusively borrowed pollfd array of length 1.
    let ret = unsafe { libc::poll(&mut pfd, 1, millis) };
    match ret {
        n if n > 0 => Ok(true),
        0 => Ok(false),
        _ => {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                Ok(false)
            } else {
                Err(err)
            }
        }
    }
}

/// `waitpid(pid, WNOHANG?)`, retried on `EINTR`. `Ok(None)` when `nohang` and the child is
/// still running. `ECHILD` (not our child, or already reaped) is returned as the error.
pub(crate) fn waitpid(pid: i32, nohang: bool) -> io::Result<Option<Reaped>> {
    let flags = if nohang { libc::WNOHANG } else { 0 };
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: `status` is a valid, exclusively borrowed int for the kernel to fill in.
        let ret = unsafe { libc::waitpid(pid, &mut status, flags) };
        if ret == 0 {
            return Ok(None);
        }
        if ret < 0 {
            if Errno::last() == Errno::EINTR {
                continue;
            }
            return Err(io::Error::last_os_error());
        }
        // Without WUNTRACED/WCONTINUED only exits and deaths by signal are reported.
        if libc::WIFEXITED(status) {
            return Ok(Some(Reaped::Exited(libc::WEXITSTATUS(status))));
        }
        if libc::WIFSIGNALED(status) {
            return Ok(Some(Reaped::Signaled(libc::WTERMSIG(status))));
        }
    }
}

/// The name of signal `signal` (`"SIGKILL"`), if it is a standard one.
pub(crate) fn signal_name(signal: i32) -> Option<&'static str> {
    Signal::try_from(signal).ok().map(Signal::as_str)
}

/// Between `fork` and `exec` (async-signal-safe: one `fcntl`, no allocation): clears
/// `FD_CLOEXEC` on `fd`, so that the program about to run inherits it.
pub(crate) fn keep_across_exec(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_SETFD on a descriptor number touches no memory; a closed number fails EBADF.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets `FD_CLOEXEC` on descriptor number `fd`: it does not leak into programs this
/// process runs.
pub(crate) fn close_on_exec(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_SETFD on a descriptor number touches no memory; a closed number fails EBADF.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether `fd` is an open descriptor of this process (`F_GETFD` succeeds).
pub(crate) fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD on a descriptor number touches no memory; a closed number fails EBADF.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// Between `fork` and `exec` (async-signal-safe): arms `SIGKILL` on the parent's death and
/// checks the parent is still `parent` (it may have died before the signal was armed).
pub(crate) fn die_with_parent(parent: i32) -> io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes integers only.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } != parent {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_are_known() {
        assert_eq!(signal_name(libc::SIGKILL), Some("SIGKILL"));
        assert_eq!(signal_name(libc::SIGRTMIN() + 3), None);
    }

    #[test]
    fn waiting_for_a_stranger_is_echild() {
        // pid 1 is never our child.
        let err = waitpid(1, true).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ECHILD));
    }

    #[test]
    fn this_process_has_threads() {
        assert!(thread_count().unwrap() >= 1);
    }
}
