//! Thin wrappers over the Linux calls this crate makes. Nothing here is public API: the
//! public types ([`crate::Region`], [`crate::notify::Futex`], [`crate::notify::Handshake`],
//! [`crate::liveness`]) call in and turn `errno` into typed errors.

use std::ffi::CStr;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::{self, NonNull};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Result of a raw call: the OS error on failure.
pub(crate) type SysResult<T> = Result<T, io::Error>;

/// The base page size of this machine.
pub(crate) fn page_size() -> usize {
    // SAFETY: `sysconf` has no preconditions; `_SC_PAGESIZE` is always supported on Linux.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|s| *s > 0)
        .unwrap_or(4096)
}

/// The default huge page size, from `/proc/meminfo` (`Hugepagesize:`), if the kernel has one.
pub(crate) fn huge_page_size() -> Option<usize> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("Hugepagesize:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// `mmap(NULL or hint, len, prot, flags, fd, 0)`.
///
/// # Safety
///
/// With `MAP_FIXED` in `flags`, `addr` must point to a range of `len` bytes this process
/// has reserved and owns (it is replaced).
pub(crate) unsafe fn mmap(
    addr: *mut u8,
    len: usize,
    prot: libc::c_int,
    flags: libc::c_int,
    fd: Option<BorrowedFd<'_>>,
) -> SysResult<NonNull<u8>> {
    let raw_fd = fd.map_or(-1, |fd| fd.as_raw_fd());
    // SAFETY: arguments are plain values; the caller upholds the MAP_FIXED contract above.
    let ret = unsafe { libc::mmap(addr.cast(), len, prot, flags, raw_fd, 0) };
    if ret == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(ret.cast::<u8>()).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `munmap(addr, len)`.
///
/// # Safety
///
/// `addr .. addr + len` must be a mapping this process owns that nothing will touch again.
pub(crate) unsafe fn munmap(addr: NonNull<u8>, len: usize) -> SysResult<()> {
    // SAFETY: the caller guarantees the range is an owned mapping no longer in use.
    let ret = unsafe { libc::munmap(addr.as_ptr().cast(), len) };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `mlock(addr, len)`.
pub(crate) fn mlock(addr: NonNull<u8>, len: usize) -> SysResult<()> {
    // SAFETY: `mlock` only changes residency of pages; on a range that is not mapped it fails
    // with ENOMEM rather than touching memory.
    let ret = unsafe { libc::mlock(addr.as_ptr().cast(), len) };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `open(path, O_RDWR | O_CLOEXEC)`.
pub(crate) fn open_rdwr(path: &CStr) -> SysResult<OwnedFd> {
    // SAFETY: `path` is a valid NUL-terminated string; the flags are plain values.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    owned_fd(fd)
}

/// `memfd_create(name, flags)`.
pub(crate) fn memfd_create(name: &CStr, flags: libc::c_uint) -> SysResult<OwnedFd> {
    // SAFETY: `name` is a valid NUL-terminated string; the flags are plain values.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    owned_fd(fd)
}

/// `ftruncate(fd, len)`.
pub(crate) fn ftruncate(fd: BorrowedFd<'_>, len: usize) -> SysResult<()> {
    let len = libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    // SAFETY: plain call on a borrowed, open descriptor.
    let ret = unsafe { libc::ftruncate(fd.as_raw_fd(), len) };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `fstat(fd).st_size`.
pub(crate) fn file_size(fd: BorrowedFd<'_>) -> SysResult<u64> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `stat` points to writable memory of the right type for `fstat` to fill.
    let ret = unsafe { libc::fstat(fd.as_raw_fd(), stat.as_mut_ptr()) };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fstat` returned 0, so it initialised `stat`.
    let stat = unsafe { stat.assume_init() };
    u64::try_from(stat.st_size).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `fcntl(fd, F_ADD_SEALS, seals)`.
pub(crate) fn add_seals(fd: BorrowedFd<'_>, seals: libc::c_int) -> SysResult<()> {
    // SAFETY: plain call on a borrowed, open descriptor.
    let ret = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `fcntl(fd, F_GET_SEALS)`.
pub(crate) fn get_seals(fd: BorrowedFd<'_>) -> SysResult<libc::c_int> {
    // SAFETY: plain call on a borrowed, open descriptor.
    let ret = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    if ret >= 0 {
        Ok(ret)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// What a futex wait ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FutexWait {
    /// Woken by a `FUTEX_WAKE`, a signal or spuriously: the caller re-checks its condition.
    Woken,
    /// The word did not hold the expected value when the kernel looked (`EAGAIN`).
    ValueChanged,
    /// The relative timeout expired.
    TimedOut,
}

/// `futex(word, FUTEX_WAIT, expected, timeout)`, shared (no `FUTEX_PRIVATE_FLAG`), so a
/// waker in another process that maps the same page can wake us. The relative timeout is
/// measured by the kernel against `CLOCK_MONOTONIC`.
pub(crate) fn futex_wait(
    word: &AtomicU32,
    expected: u32,
    timeout: Option<Duration>,
) -> SysResult<FutexWait> {
    let timespec = timeout.map(|t| libc::timespec {
        tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(t.subsec_nanos()),
    });
    let timespec_ptr = timespec
        .as_ref()
        .map_or(ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, 4-aligned atomic for the duration of the call; the kernel only
    // reads it. `timespec_ptr` is null or points to a timespec on our stack.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            timespec_ptr,
            ptr::null::<u32>(),
            0u32,
        )
    };
    futex_wait_result(ret == 0)
}

/// What a futex wait call that returned `ok` (else -1 with `errno`) ended with.
fn futex_wait_result(ok: bool) -> SysResult<FutexWait> {
    if ok {
        return Ok(FutexWait::Woken);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) => Ok(FutexWait::ValueChanged),
        Some(libc::ETIMEDOUT) => Ok(FutexWait::TimedOut),
        Some(libc::EINTR) => Ok(FutexWait::Woken),
        _ => Err(err),
    }
}

/// `futex(word, FUTEX_WAKE, count)`, shared. Returns how many waiters were woken.
pub(crate) fn futex_wake(word: &AtomicU32, count: i32) -> SysResult<usize> {
    // SAFETY: `word` is a live, 4-aligned atomic; FUTEX_WAKE does not access its value.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            count,
            ptr::null::<libc::timespec>(),
            ptr::null::<u32>(),
            0u32,
        )
    };
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}

/// `FUTEX2_SIZE_U32` of `uapi/linux/futex.h`: the futex is a 32-bit word. The flags of a
/// `futex_waitv` entry never carry `FUTEX2_PRIVATE` (128), so the kernel keys the wait on
/// the page, as for the shared `FUTEX_WAIT` above.
const FUTEX2_SIZE_U32: u32 = 0x02;

/// The most futexes one `futex_waitv` call takes (`FUTEX_WAITV_MAX` of
/// `uapi/linux/futex.h`); more is `EINVAL`.
pub(crate) const FUTEX_WAITV_MAX: usize = 128;

/// One futex of a `futex_waitv` call: `struct futex_waitv` of `uapi/linux/futex.h` (the
/// value it must hold, its address, its flags, a reserved zero), keeping the word borrowed
/// for `'a` so the kernel never reads a word that is gone.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct WaitvEntry<'a> {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
    _word: PhantomData<&'a AtomicU32>,
}

const _: () = {
    assert!(std::mem::size_of::<WaitvEntry<'static>>() == 24);
    assert!(std::mem::offset_of!(WaitvEntry<'static>, uaddr) == 8);
    assert!(std::mem::offset_of!(WaitvEntry<'static>, flags) == 16);
};

impl<'a> WaitvEntry<'a> {
    /// An unused entry, to fill a fixed array; never passed to the kernel.
    pub(crate) const UNUSED: WaitvEntry<'static> = WaitvEntry {
        val: 0,
        uaddr: 0,
        flags: 0,
        reserved: 0,
        _word: PhantomData,
    };

    /// Sleep while `word` holds `expected` (a shared, 32-bit futex).
    pub(crate) fn new(word: &'a AtomicU32, expected: u32) -> WaitvEntry<'a> {
        WaitvEntry {
            val: u64::from(expected),
            uaddr: word.as_ptr() as u64,
            flags: FUTEX2_SIZE_U32,
            reserved: 0,
            _word: PhantomData,
        }
    }
}

/// `futex_waitv(entries, len, 0, timeout, CLOCK_MONOTONIC)` (Linux 5.16+): sleeps until one
/// of the futexes is woken, or finds one that does not hold its value (`ValueChanged`), or
/// the relative `timeout` passes (turned into the absolute `CLOCK_MONOTONIC` time the call
/// takes). `entries` holds 1 to [`FUTEX_WAITV_MAX`] entries made by [`WaitvEntry::new`];
/// `ENOSYS` (an older kernel) and `EPERM` (a sandbox) come back as errors.
pub(crate) fn futex_waitv(
    entries: &[WaitvEntry<'_>],
    timeout: Option<Duration>,
) -> SysResult<FutexWait> {
    let timespec = match timeout {
        Some(timeout) => Some(monotonic_after(timeout)?),
        None => None,
    };
    let timespec_ptr = timespec
        .as_ref()
        .map_or(ptr::null(), |t| t as *const libc::timespec);
    let len = libc::c_uint::try_from(entries.len())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `entries` is `len` valid `struct futex_waitv`s (`repr(C)`, layout asserted
    // above), each naming a live, 4-aligned atomic borrowed for the call; the kernel only
    // reads them. `timespec_ptr` is null or points to a timespec on our stack.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_futex_waitv,
            entries.as_ptr(),
            len,
            0u32,
            timespec_ptr,
            libc::CLOCK_MONOTONIC,
        )
    };
    // The index of a futex woken, or -1.
    futex_wait_result(ret >= 0)
}

/// `CLOCK_MONOTONIC` now plus `after`, as a timespec (saturating far in the future).
fn monotonic_after(after: Duration) -> SysResult<libc::timespec> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec for the duration of the call.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let now = Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    );
    let at = now.saturating_add(after);
    Ok(libc::timespec {
        tv_sec: libc::time_t::try_from(at.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(at.subsec_nanos()),
    })
}

/// `membarrier(2)` commands, from `uapi/linux/membarrier.h` (`enum membarrier_cmd`), as
/// libc exports them; the assertions pin the kernel ABI values.
pub(crate) use libc::{
    MEMBARRIER_CMD_GLOBAL_EXPEDITED, MEMBARRIER_CMD_QUERY, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED,
};

const _: () = {
    assert!(MEMBARRIER_CMD_QUERY == 0);
    assert!(libc::MEMBARRIER_CMD_GLOBAL == 1);
    assert!(MEMBARRIER_CMD_GLOBAL_EXPEDITED == 2);
    assert!(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED == 4);
};

/// `membarrier(cmd, flags, 0)`: the call's non-negative result (a bitmask of the supported
/// commands for `MEMBARRIER_CMD_QUERY`, 0 otherwise). The third argument, `cpu_id`, is read
/// only with `MEMBARRIER_CMD_FLAG_CPU` (Linux 5.10+), which this crate never passes.
pub(crate) fn membarrier(cmd: libc::c_int, flags: libc::c_uint) -> SysResult<libc::c_int> {
    // SAFETY: plain syscall with integer arguments; it reads and writes no user memory.
    let ret = unsafe { libc::syscall(libc::SYS_membarrier, cmd, flags, 0 as libc::c_int) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    libc::c_int::try_from(ret).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// How many CPUs the calling thread may run on (its affinity mask), or `None` if the
/// kernel refused to say.
pub(crate) fn affinity_cpus() -> Option<usize> {
    // SAFETY: `cpu_set_t` is a plain bit array: all-zero bytes are a valid, empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid `cpu_set_t` of the size we pass; pid 0 is the caller.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if rc != 0 {
        return None;
    }
    // SAFETY: `set` was filled by the kernel above.
    let count = unsafe { libc::CPU_COUNT(&set) };
    usize::try_from(count).ok().filter(|&n| n > 0)
}

/// `CLOCK_MONOTONIC_COARSE` in ns: the clock at the last tick (a few ms resolution), read
/// from the vDSO in a few ns; `None` if the kernel refuses it.
pub(crate) fn coarse_monotonic_ns() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    if r != 0 {
        return None;
    }
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u64::try_from(ts.tv_nsec).ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// `getpid()`.
pub(crate) fn getpid() -> i32 {
    // SAFETY: `getpid` has no preconditions and cannot fail.
    unsafe { libc::getpid() }
}

/// `pidfd_open(pid, 0)`.
#[cfg(not(miri))] // peer liveness under Miri is this process only
pub(crate) fn pidfd_open(pid: i32) -> SysResult<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0u32) };
    let fd = RawFd::try_from(ret).map_err(|_| io::Error::last_os_error())?;
    owned_fd(fd)
}

/// Whether the process behind `pidfd` has exited: `poll(pidfd, POLLIN, 0)` reports readable
/// once it has terminated (zombie or reaped).
#[cfg(not(miri))]
pub(crate) fn pidfd_exited(pidfd: BorrowedFd<'_>) -> SysResult<bool> {
    let mut pfd = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: `pfd` is one valid pollfd on our stack; timeout 0 never blocks.
        let ret = unsafe { libc::poll(&mut pfd, 1, 0) };
        if ret >= 0 {
            return Ok(ret > 0 && pfd.revents & (libc::POLLIN | libc::POLLHUP) != 0);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// `kill(pid, 0)`: whether a process with this pid exists (used where pidfd is refused).
#[cfg(not(miri))]
pub(crate) fn process_exists(pid: i32) -> bool {
    // SAFETY: signal 0 performs only the permission and existence checks.
    let ret = unsafe { libc::kill(pid, 0) };
    ret == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// `pthread_atfork(None, None, child)`: runs `child` in every child created by `fork(2)`
/// through libc (not by a raw `clone` syscall).
pub(crate) fn at_fork_child(child: extern "C" fn()) -> SysResult<()> {
    // SAFETY: registering a handler has no memory-safety preconditions; `child` is a plain
    // `extern "C" fn` that lives for the whole program.
    let ret = unsafe { libc::pthread_atfork(None, None, Some(child)) };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(ret))
    }
}

/// `socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK)`: two connected ends.
pub(crate) fn datagram_pair() -> SysResult<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as RawFd; 2];
    let kind = libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;
    // SAFETY: `fds` has room for the two descriptors the call writes.
    let ret = unsafe { libc::socketpair(libc::AF_UNIX, kind, 0, fds.as_mut_ptr()) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((owned_fd(fds[0])?, owned_fd(fds[1])?))
}

/// Sends a one-byte datagram on `socket` without ever blocking (`MSG_DONTWAIT`: per call,
/// whatever flags the shared open file has). A full queue (`EAGAIN`, `ENOBUFS`) is success:
/// the other end is readable already.
pub(crate) fn send_byte_now(socket: BorrowedFd<'_>) -> SysResult<()> {
    let byte = 1u8;
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    // SAFETY: sends the one byte of `byte`, which outlives the call.
    let ret = unsafe { libc::send(socket.as_raw_fd(), (&byte as *const u8).cast(), 1, flags) };
    if ret < 0 {
        let err = io::Error::last_os_error();
        if !matches!(err.raw_os_error(), Some(libc::EAGAIN | libc::ENOBUFS)) {
            return Err(err);
        }
    }
    Ok(())
}

/// Receives and discards up to `max` datagrams waiting on `socket` without ever blocking
/// (`MSG_DONTWAIT`); how many there were.
pub(crate) fn drain_datagrams(socket: BorrowedFd<'_>, max: u64) -> SysResult<u64> {
    let mut buf = [0u8; 16];
    let mut count = 0;
    while count < max {
        // SAFETY: receives at most `buf.len()` bytes into `buf`, which outlives the call.
        let ret = unsafe {
            libc::recv(
                socket.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if ret < 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::EAGAIN) => Ok(count),
                _ => Err(err),
            };
        }
        count += 1;
    }
    Ok(count)
}

/// Whether `fd` is a unix datagram socket (`SO_DOMAIN` `AF_UNIX`, `SO_TYPE` `SOCK_DGRAM`).
pub(crate) fn is_unix_datagram_socket(fd: BorrowedFd<'_>) -> bool {
    let option = |name: libc::c_int| {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `value` and `len` are valid for the call, `len` giving `value`'s size.
        let ret = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                name,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        (ret == 0).then_some(value)
    };
    option(libc::SO_DOMAIN) == Some(libc::AF_UNIX)
        && option(libc::SO_TYPE) == Some(libc::SOCK_DGRAM)
}

/// `timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK)`.
pub(crate) fn timerfd() -> SysResult<OwnedFd> {
    // SAFETY: no pointers; the kernel returns a new descriptor or -1.
    owned_fd(unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_CLOEXEC | libc::TFD_NONBLOCK,
        )
    })
}

/// Arms `timer` to expire every `interval` (the first time one interval from now), or
/// disarms it (`None`).
pub(crate) fn timerfd_every(timer: BorrowedFd<'_>, interval: Option<Duration>) -> SysResult<()> {
    let every = interval.map_or(
        libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        |interval| libc::timespec {
            tv_sec: interval.as_secs().try_into().unwrap_or(libc::time_t::MAX),
            tv_nsec: interval.subsec_nanos().into(),
        },
    );
    let spec = libc::itimerspec {
        it_interval: every,
        it_value: every,
    };
    // SAFETY: `spec` is a valid itimerspec for the duration of the call; the old value is
    // not asked for (null).
    let ret = unsafe { libc::timerfd_settime(timer.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads (and so resets) the expiry count of a non-blocking timerfd this process made
/// (never shared with a peer); `0` if it has not expired.
pub(crate) fn read_timer(fd: BorrowedFd<'_>) -> SysResult<u64> {
    let mut count: u64 = 0;
    // SAFETY: reads at most 8 bytes into `count`, which outlives the call.
    let ret = unsafe { libc::read(fd.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
    if ret < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::EAGAIN) => Ok(0),
            _ => Err(err),
        };
    }
    Ok(count)
}

/// Wraps a returned descriptor, or the errno if it is negative.
fn owned_fd(fd: RawFd) -> SysResult<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned `fd` to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
