//! [`Region`]: a `MAP_SHARED` mapping, unmapped on drop.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::{self, NonNull};

use crate::{sys, SharedMemory};

/// What backs a [`Region`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionKind {
    /// `MAP_SHARED | MAP_ANONYMOUS`: shared with children created by `fork` after mapping.
    Anonymous,
    /// `MAP_SHARED` of `/dev/zero`, as in the POSIX reference program: shared with children
    /// created by `fork`, starts zeroed.
    DevZero,
    /// A sealed `memfd_create` file: its descriptor can be passed to unrelated processes.
    Memfd,
}

/// Why a region could not be created or attached.
#[derive(Debug, thiserror::Error)]
pub enum RegionError {
    /// A region of zero bytes was asked for.
    #[error("a shared region must be at least one byte long")]
    ZeroLength,
    /// The length overflows when rounded up to whole pages (plus guard pages).
    #[error("a length of {len} bytes overflows when rounded up to {page_size}-byte pages")]
    LengthOverflow {
        /// Length asked for.
        len: usize,
        /// Page size it was rounded to.
        page_size: usize,
    },
    /// Huge pages were asked for but the system has none to give.
    #[error(
        "huge pages are not available on this system ({reason}); see /proc/sys/vm/nr_hugepages"
    )]
    HugePagesUnavailable {
        /// What showed it: no huge page size, or the kernel's error.
        reason: String,
    },
    /// `/dev/zero` could not be opened.
    #[error("cannot open /dev/zero: {0}")]
    DevZeroUnavailable(#[source] io::Error),
    /// `memfd_create`, sizing or sealing the memfd failed.
    #[error("cannot create a sealed memfd: {0}")]
    MemfdUnavailable(#[source] io::Error),
    /// The memfd name contains a NUL byte.
    #[error("a memfd name must not contain NUL bytes")]
    InvalidName,
    /// The kernel refused the mapping.
    #[error("the kernel refused to map {len} bytes: {source}")]
    MapFailed {
        /// Bytes asked for, after rounding.
        len: usize,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// `mlock` failed (often `RLIMIT_MEMLOCK`).
    #[error("cannot lock {len} bytes in memory: {source}")]
    LockFailed {
        /// Bytes asked for.
        len: usize,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// An attached memfd lacks the seals that stop a peer from shrinking or growing it under
    /// us (a shrink would turn our accesses into `SIGBUS`).
    #[error("the memfd is not sealed against shrink and grow (seals: {seals:#x})")]
    NotSealed {
        /// The seals the file has.
        seals: i32,
    },
    /// The attached file's size cannot be mapped (zero, or larger than the address space).
    #[error("the memfd's size of {size} bytes cannot be mapped")]
    BadFileSize {
        /// The file size found.
        size: u64,
    },
    /// Inspecting an attached descriptor failed.
    #[error("cannot inspect the descriptor: {0}")]
    Descriptor(#[source] io::Error),
}

/// How to create a [`Region`]: length and mapping options.
///
/// # Examples
///
/// ```
/// use shm_ipc::core::{Region, RegionKind, SharedMemory};
/// let region = Region::options(10_000).populate(true).guard_pages(true).dev_zero()?;
/// assert_eq!(region.kind(), RegionKind::DevZero);
/// assert_eq!(region.len(), 12_288); // rounded up to whole pages
/// # Ok::<(), shm_ipc::core::RegionError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "options do nothing until a region is created from them"]
pub struct RegionOptions {
    len: usize,
    populate: bool,
    lock: bool,
    huge_pages: bool,
    guard_pages: bool,
}

impl RegionOptions {
    /// Options for a region of at least `len` bytes (rounded up to the page size).
    pub fn new(len: usize) -> RegionOptions {
        RegionOptions {
            len,
            populate: false,
            lock: false,
            huge_pages: false,
            guard_pages: false,
        }
    }

    /// Pre-fault every page at creation (`MAP_POPULATE`), so the first touch does not fault.
    pub fn populate(mut self, yes: bool) -> Self {
        self.populate = yes;
        self
    }

    /// Lock the pages in RAM (`mlock`); fails with [`RegionError::LockFailed`] past
    /// `RLIMIT_MEMLOCK`.
    pub fn lock(mut self, yes: bool) -> Self {
        self.lock = yes;
        self
    }

    /// Back the region with huge pages (`MAP_HUGETLB` / `MFD_HUGETLB`); the length is rounded
    /// to the huge page size. Fails with [`RegionError::HugePagesUnavailable`] when the
    /// system has none reserved.
    pub fn huge_pages(mut self, yes: bool) -> Self {
        self.huge_pages = yes;
        self
    }

    /// Surround the usable range with one inaccessible (`PROT_NONE`) page on each side, so a
    /// stray access just before or after it faults at once.
    pub fn guard_pages(mut self, yes: bool) -> Self {
        self.guard_pages = yes;
        self
    }

    /// Creates an anonymous shared mapping (`MAP_SHARED | MAP_ANONYMOUS`).
    pub fn anonymous(&self) -> Result<Region, RegionError> {
        let len = self.rounded_len()?;
        self.map(RegionKind::Anonymous, None, len)
    }

    /// Creates a shared mapping of `/dev/zero`, as the POSIX reference program does.
    pub fn dev_zero(&self) -> Result<Region, RegionError> {
        let len = self.rounded_len()?;
        let fd = sys::open_rdwr(c"/dev/zero").map_err(RegionError::DevZeroUnavailable)?;
        // The mapping keeps its own reference to the device; the descriptor closes here.
        self.map(RegionKind::DevZero, Some(fd.as_fd()), len)
            .map(|region| region.without_fd())
    }

    /// Creates a memfd of the rounded length, seals it against shrink and grow (so no process
    /// holding the descriptor can truncate it under a mapping), and maps it shared. The
    /// descriptor is kept ([`Region::fd`]) for passing to unrelated processes.
    pub fn memfd(&self, name: &str) -> Result<Region, RegionError> {
        let len = self.rounded_len()?;
        let name = CString::new(name).map_err(|_| RegionError::InvalidName)?;
        let mut flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
        if self.huge_pages {
            flags |= libc::MFD_HUGETLB;
        }
        let fd = sys::memfd_create(&name, flags).map_err(RegionError::MemfdUnavailable)?;
        sys::ftruncate(fd.as_fd(), len)
            .map_err(|e| self.classify_huge(e, RegionError::MemfdUnavailable))?;
        sys::add_seals(
            fd.as_fd(),
            libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL,
        )
        .map_err(RegionError::MemfdUnavailable)?;
        let mut region = self.map(RegionKind::Memfd, Some(fd.as_fd()), len)?;
        region.fd = Some(fd);
        Ok(region)
    }

    /// Maps a memfd received from another process. The file must be sealed against shrink
    /// and grow; the region's length is the file's size.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_ipc::core::{Region, SharedMemory};
    /// let creator = Region::options(4096).memfd("example")?;
    /// let fd = creator.fd().unwrap().try_clone_to_owned().unwrap();
    /// let attached = Region::options(0).attach_memfd(fd)?;
    /// creator.write_bytes(0, b"hi")?;
    /// let mut buf = [0u8; 2];
    /// attached.read_bytes(0, &mut buf)?;
    /// assert_eq!(&buf, b"hi");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn attach_memfd(&self, fd: OwnedFd) -> Result<Region, RegionError> {
        let seals = sys::get_seals(fd.as_fd()).map_err(RegionError::Descriptor)?;
        let needed = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW;
        if seals & needed != needed {
            return Err(RegionError::NotSealed { seals });
        }
        let size = sys::file_size(fd.as_fd()).map_err(RegionError::Descriptor)?;
        let len = usize::try_from(size)
            .ok()
            .filter(|len| *len > 0 && *len <= isize::MAX as usize / 2)
            .ok_or(RegionError::BadFileSize { size })?;
        let mut region = self.map(RegionKind::Memfd, Some(fd.as_fd()), len)?;
        region.fd = Some(fd);
        Ok(region)
    }

    /// The page size the mapping uses.
    fn page_size(&self) -> Result<usize, RegionError> {
        if self.huge_pages {
            sys::huge_page_size().ok_or_else(|| RegionError::HugePagesUnavailable {
                reason: "the kernel reports no huge page size".into(),
            })
        } else {
            Ok(sys::page_size())
        }
    }

    /// The length rounded up to whole pages; refuses zero and overflow.
    fn rounded_len(&self) -> Result<usize, RegionError> {
        if self.len == 0 {
            return Err(RegionError::ZeroLength);
        }
        let page_size = self.page_size()?;
        let overflow = RegionError::LengthOverflow {
            len: self.len,
            page_size,
        };
        let rounded = self
            .len
            .checked_next_multiple_of(page_size)
            .ok_or(overflow)?;
        // Mappings larger than isize::MAX cannot be offset into; refuse them here (with room
        // for the guard pages) instead of letting pointer arithmetic overflow later.
        if rounded > isize::MAX as usize / 2 {
            return Err(RegionError::LengthOverflow {
                len: self.len,
                page_size,
            });
        }
        Ok(rounded)
    }

    /// Turns a kernel error into `HugePagesUnavailable` when huge pages were asked for and
    /// the error is the one the kernel gives for an empty pool.
    fn classify_huge(
        &self,
        err: io::Error,
        otherwise: impl FnOnce(io::Error) -> RegionError,
    ) -> RegionError {
        let pool_empty = matches!(
            err.raw_os_error(),
            Some(libc::ENOMEM | libc::EINVAL | libc::ENOSPC)
        );
        if self.huge_pages && pool_empty {
            RegionError::HugePagesUnavailable {
                reason: err.to_string(),
            }
        } else {
            otherwise(err)
        }
    }

    /// Maps `len` (already rounded) bytes shared, with the guard pages and options asked for.
    fn map(
        &self,
        kind: RegionKind,
        fd: Option<BorrowedFd<'_>>,
        len: usize,
    ) -> Result<Region, RegionError> {
        let page_size = self.page_size()?;
        let mut flags = libc::MAP_SHARED;
        if fd.is_none() {
            flags |= libc::MAP_ANONYMOUS;
            if self.huge_pages {
                flags |= libc::MAP_HUGETLB;
            }
        }
        if self.populate {
            flags |= libc::MAP_POPULATE;
        }
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let map_err = |source: io::Error| {
            self.classify_huge(source, |source| RegionError::MapFailed { len, source })
        };

        let region = if self.guard_pages {
            // Reserve guard + usable + guard (+ one page of slack so the usable start can be
            // aligned to a huge page), inaccessible, then map the usable part over it.
            let slack = if self.huge_pages { page_size } else { 0 };
            let reservation_len = len
                .checked_add(2 * page_size + slack)
                .ok_or(RegionError::LengthOverflow { len, page_size })?;
            // SAFETY: no MAP_FIXED: the kernel picks a fresh range.
            let reservation = unsafe {
                sys::mmap(
                    ptr::null_mut(),
                    reservation_len,
                    libc::PROT_NONE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    None,
                )
            }
            .map_err(|source| RegionError::MapFailed {
                len: reservation_len,
                source,
            })?;
            let base = reservation.as_ptr() as usize;
            let usable_offset = (base + page_size).next_multiple_of(page_size) - base;
            let target = reservation.as_ptr().wrapping_add(usable_offset);
            // SAFETY: `target .. target + len` lies inside the reservation we own (its length
            // includes two guard pages and the alignment slack), so MAP_FIXED replaces only
            // our own PROT_NONE pages.
            let mapped = unsafe { sys::mmap(target, len, prot, flags | libc::MAP_FIXED, fd) };
            match mapped {
                Ok(ptr) => Region::new(ptr, len, reservation, reservation_len, kind),
                Err(source) => {
                    // SAFETY: the reservation is ours and nothing points into it yet.
                    let _ = unsafe { sys::munmap(reservation, reservation_len) };
                    return Err(map_err(source));
                }
            }
        } else {
            // SAFETY: no MAP_FIXED: the kernel picks a fresh range.
            let ptr =
                unsafe { sys::mmap(ptr::null_mut(), len, prot, flags, fd) }.map_err(map_err)?;
            Region::new(ptr, len, ptr, len, kind)
        };

        if self.lock {
            sys::mlock(region.ptr, region.len)
                .map_err(|source| RegionError::LockFailed { len, source })?;
        }
        Ok(region)
    }
}

/// A `MAP_SHARED` mapping, unmapped on drop.
///
/// Children created by `fork` after the mapping share it with the parent: each sees the
/// other's writes. The bytes are reached only through raw pointers and the bounds-checked
/// helpers of [`SharedMemory`], because another process may change them at any time.
///
/// # Examples
///
/// ```
/// use shm_ipc::core::{Region, SharedMemory};
/// let region = Region::anonymous(4096)?;
/// region.write_bytes(0, b"string 1")?;
/// let mut out = [0u8; 8];
/// region.read_bytes(0, &mut out)?;
/// assert_eq!(&out, b"string 1");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Region {
    /// Start of the usable bytes: page-aligned, valid for `len` bytes while `self` lives.
    ptr: NonNull<u8>,
    /// Usable length, a whole number of pages, never zero.
    len: usize,
    /// What to unmap on drop: the usable range, or the guard reservation around it.
    reservation: NonNull<u8>,
    /// Length of `reservation`.
    reservation_len: usize,
    kind: RegionKind,
    /// The memfd behind the mapping, when there is one.
    fd: Option<OwnedFd>,
}

// SAFETY: a `Region` is a handle to a mapping: all access to the bytes is through raw
// pointers and atomics, which is what `SharedMemory` requires of every user, so the handle
// may move between threads.
unsafe impl Send for Region {}
// SAFETY: `&Region` only hands out raw pointers and atomics; see `Send`.
unsafe impl Sync for Region {}

impl Region {
    fn new(
        ptr: NonNull<u8>,
        len: usize,
        reservation: NonNull<u8>,
        reservation_len: usize,
        kind: RegionKind,
    ) -> Region {
        Region {
            ptr,
            len,
            reservation,
            reservation_len,
            kind,
            fd: None,
        }
    }

    fn without_fd(mut self) -> Region {
        self.fd = None;
        self
    }

    /// Options for a region of at least `len` bytes.
    pub fn options(len: usize) -> RegionOptions {
        RegionOptions::new(len)
    }

    /// An anonymous shared mapping of at least `len` bytes, with default options.
    pub fn anonymous(len: usize) -> Result<Region, RegionError> {
        RegionOptions::new(len).anonymous()
    }

    /// A shared mapping of `/dev/zero` of at least `len` bytes, with default options.
    pub fn dev_zero(len: usize) -> Result<Region, RegionError> {
        RegionOptions::new(len).dev_zero()
    }

    /// A sealed memfd of at least `len` bytes, mapped shared, with default options.
    pub fn memfd(name: &str, len: usize) -> Result<Region, RegionError> {
        RegionOptions::new(len).memfd(name)
    }

    /// What backs this region.
    pub fn kind(&self) -> RegionKind {
        self.kind
    }

    /// The memfd behind a [`RegionKind::Memfd`] region, to pass to another process
    /// (for example over a unix socket with `SCM_RIGHTS`).
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(|fd| fd.as_fd())
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the reservation is the mapping this handle created and owns; dropping the
        // handle ends every borrow of it (atomics handed out borrow `self`).
        let _ = unsafe { sys::munmap(self.reservation, self.reservation_len) };
    }
}

// SAFETY: `ptr` is page-aligned (mmap, or aligned inside the reservation), valid for reads and
// writes of `len` bytes until drop, and neither ever changes.
unsafe impl SharedMemory for Region {
    fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    fn len(&self) -> usize {
        self.len
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Region::fd(self)
    }
}
