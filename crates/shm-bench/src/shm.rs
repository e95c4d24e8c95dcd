//! The harness's own shared memory: an anonymous `MAP_SHARED` mapping that survives
//! `fork`, and cross-process futex calls on words inside it.
//!
//! This is deliberately independent of `shm-core`: the floors must measure the raw
//! hardware and kernel, not our own abstractions.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::Duration;

/// Cache-line distance used to keep contended words apart. 128 bytes rather than 64
/// because the adjacent-line prefetcher of x86 CPUs pulls lines in pairs (the same
/// reason crossbeam's `CachePadded` uses 128 on x86_64).
pub(crate) const LINE: usize = 128;

/// An anonymous, zero-filled, `MAP_SHARED` mapping: after `fork`, parent and child see
/// each other's writes to it.
///
/// Invariant: `ptr` is the start of a live mapping of `len` bytes, page-aligned, readable
/// and writable, unmapped only by `Drop`.
pub(crate) struct SharedMap {
    ptr: NonNull<u8>,
    len: usize,
}

impl SharedMap {
    /// Maps `len` bytes (rounded up by the kernel to whole pages).
    pub(crate) fn new(len: usize) -> io::Result<SharedMap> {
        assert!(len > 0, "empty mapping");
        // SAFETY: an anonymous mapping at an address of the kernel's choice cannot alias
        // any existing Rust object; all arguments are valid for mmap(2).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(SharedMap { ptr, len })
    }

    /// The pointer to the byte at `offset`, checked to hold a `T` in bounds and aligned.
    fn slot<T>(&self, offset: usize) -> *mut T {
        let end = offset.checked_add(size_of::<T>()).expect("offset overflow");
        assert!(end <= self.len, "offset {offset} out of the mapping");
        assert!(offset % align_of::<T>() == 0, "misaligned offset {offset}");
        // The mapping is page-aligned, so an aligned offset gives an aligned pointer.
        self.ptr.as_ptr().wrapping_add(offset).cast::<T>()
    }

    /// A raw pointer to the `len` bytes at `offset` (checked in bounds). The bytes are
    /// shared with the other process: reach them only through the pointer (copies), never
    /// through a reference.
    pub(crate) fn bytes_at(&self, offset: usize, len: usize) -> *mut u8 {
        let end = offset.checked_add(len).expect("offset overflow");
        assert!(end <= self.len, "bytes {offset}..{end} out of the mapping");
        self.ptr.as_ptr().wrapping_add(offset)
    }

    /// The `AtomicU64` at `offset` (must be 8-aligned and in bounds).
    pub(crate) fn u64_at(&self, offset: usize) -> &AtomicU64 {
        let p = self.slot::<AtomicU64>(offset);
        // SAFETY: `slot` checked bounds and alignment; the mapping lives as long as
        // `&self`; it was zero-filled by the kernel, a valid AtomicU64; every access by
        // either process goes through atomics, so there is no data race.
        unsafe { &*p }
    }

    /// The `AtomicU32` at `offset` (must be 4-aligned and in bounds).
    pub(crate) fn u32_at(&self, offset: usize) -> &AtomicU32 {
        let p = self.slot::<AtomicU32>(offset);
        // SAFETY: as for `u64_at`: in bounds, aligned, alive for `&self`, zero-initialised
        // and only ever accessed atomically.
        unsafe { &*p }
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe the mapping made in `new`, unmapped only here;
        // no reference derived from it outlives `&self`.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// `FUTEX_WAIT` on `word` (shared: no `FUTEX_PRIVATE_FLAG`, so a waker in another
/// process that maps the same page finds us): sleeps while `*word == expected`, at most
/// `timeout`. Returns on wake, value mismatch, timeout or signal; the caller re-checks
/// the word in a loop.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) -> io::Result<()> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a live, aligned u32 for the duration of the call; the kernel only
    // reads it atomically. `ts` lives across the call. The unused uaddr2/val3 are ignored
    // by FUTEX_WAIT.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    if r == -1 {
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) | Some(libc::ETIMEDOUT) => Ok(()),
            _ => Err(e),
        }
    } else {
        Ok(())
    }
}

/// `FUTEX_WAKE` (shared) of up to `n` waiters on `word`; returns how many were woken.
pub(crate) fn futex_wake(word: &AtomicU32, n: i32) -> io::Result<usize> {
    // SAFETY: `word` is a live, aligned u32; FUTEX_WAKE does not access user memory
    // beyond hashing the address. The unused timeout/uaddr2/val3 are ignored.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            n,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}
