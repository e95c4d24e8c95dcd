//! The region abstraction: a base pointer and a length, plus bounds-checked access.
//!
//! Everything above `shm-core` (rings, channels) is written against [`SharedMemory`], so the
//! same algorithm runs over a real `MAP_SHARED` mapping ([`crate::Region`]) and over a
//! private heap buffer ([`crate::HeapRegion`]) under loom and Miri.
//!
//! The helpers never form a `&[u8]` over the shared bytes: another process may write them at
//! any moment, and a Rust reference promises that nobody does. Bytes are copied in and out
//! with `ptr::copy_nonoverlapping`; words that both sides touch are reached as atomics.

use std::sync::atomic::{AtomicU32, AtomicU64};

/// A bounds or alignment violation in one of the [`SharedMemory`] access helpers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// `offset .. offset + len` does not lie inside the region.
    #[error(
        "access of {len} bytes at offset {offset} is outside the region of {region_len} bytes"
    )]
    OutOfBounds {
        /// First byte asked for.
        offset: usize,
        /// Number of bytes asked for.
        len: usize,
        /// Usable length of the region.
        region_len: usize,
    },
    /// The offset is not a multiple of the alignment the access needs.
    #[error("offset {offset} is not aligned to {align} bytes")]
    Misaligned {
        /// Offset asked for.
        offset: usize,
        /// Alignment the access needs.
        align: usize,
    },
}

/// Memory that may be shared with another process: a base pointer and a length.
///
/// # Safety
///
/// Implementors guarantee that, for as long as the value lives:
/// - `as_ptr()` is non-null, aligned to at least 4096 bytes (one page), and valid for reads
///   and writes of `len()` bytes, and always returns the same pointer;
/// - `len()` always returns the same value;
/// - the memory is never reached through Rust references that assume exclusivity or
///   immutability (other processes may write it at any time), only through raw pointers
///   and atomics.
pub unsafe trait SharedMemory: Send + Sync {
    /// Base address of the usable bytes.
    fn as_ptr(&self) -> *mut u8;

    /// Number of usable bytes.
    fn len(&self) -> usize;

    /// The file descriptor behind the memory, when another process can map it from one (a
    /// memfd): what travels to that process to share the memory. `None` (the default) for
    /// memory only `fork` can share (anonymous, `/dev/zero`, heap).
    fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }

    /// Whether the region has no usable bytes (never the case for the regions of this crate).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A pointer to `len` bytes at `offset`, checked to lie inside the region.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_ipc::core::{HeapRegion, SharedMemory};
    /// let region = HeapRegion::new(4096).unwrap();
    /// assert!(region.ptr_at(4000, 96).is_ok());
    /// assert!(region.ptr_at(4000, 97).is_err());
    /// ```
    fn ptr_at(&self, offset: usize, len: usize) -> Result<*mut u8, AccessError> {
        let region_len = self.len();
        match offset.checked_add(len) {
            Some(end) if end <= region_len => {
                // `wrapping_add` keeps provenance and cannot actually wrap: `offset <= len`.
                Ok(self.as_ptr().wrapping_add(offset))
            }
            _ => Err(AccessError::OutOfBounds {
                offset,
                len,
                region_len,
            }),
        }
    }

    /// Copies `out.len()` bytes starting at `offset` out of the region.
    fn read_bytes(&self, offset: usize, out: &mut [u8]) -> Result<(), AccessError> {
        let src = self.ptr_at(offset, out.len())?;
        // SAFETY: `ptr_at` checked that `src .. src + out.len()` lies inside the region, which
        // the trait contract makes valid for reads; `out` is private memory we borrow mutably,
        // so the two ranges cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(src, out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    /// Copies `bytes` into the region starting at `offset`.
    fn write_bytes(&self, offset: usize, bytes: &[u8]) -> Result<(), AccessError> {
        let dst = self.ptr_at(offset, bytes.len())?;
        // SAFETY: `ptr_at` checked the destination range lies inside the region, valid for
        // writes by the trait contract; `bytes` is private memory, so no overlap.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
        Ok(())
    }

    /// The 4-byte-aligned word at `offset`, as an atomic.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::Ordering;
    /// use shm_ipc::core::{AccessError, HeapRegion, SharedMemory};
    /// let region = HeapRegion::new(4096).unwrap();
    /// region.atomic_u32(4)?.store(7, Ordering::SeqCst);
    /// assert_eq!(region.atomic_u32(4)?.load(Ordering::SeqCst), 7);
    /// assert!(matches!(region.atomic_u32(6), Err(AccessError::Misaligned { .. })));
    /// # Ok::<(), AccessError>(())
    /// ```
    fn atomic_u32(&self, offset: usize) -> Result<&AtomicU32, AccessError> {
        let ptr = checked_atomic_ptr(self, offset, std::mem::size_of::<AtomicU32>())?;
        // SAFETY: the word lies inside the region (valid for reads and writes for the
        // lifetime of `self`, to which the returned reference is tied) and is 4-aligned
        // (region base is page-aligned and `offset` was checked). An `AtomicU32` may be
        // shared and written concurrently by anyone, including another process, so a shared
        // reference to it is sound; any bit pattern is a valid `u32`.
        Ok(unsafe { AtomicU32::from_ptr(ptr.cast::<u32>()) })
    }

    /// The 8-byte-aligned word at `offset`, as an atomic.
    fn atomic_u64(&self, offset: usize) -> Result<&AtomicU64, AccessError> {
        let ptr = checked_atomic_ptr(self, offset, std::mem::size_of::<AtomicU64>())?;
        // SAFETY: as in `atomic_u32`: in bounds, 8-aligned, valid for the lifetime of
        // `self`, and atomics tolerate concurrent writers; any bit pattern is a valid `u64`.
        Ok(unsafe { AtomicU64::from_ptr(ptr.cast::<u64>()) })
    }
}

/// Bounds- and alignment-checks an atomic word of `size` bytes (its own alignment) at `offset`.
fn checked_atomic_ptr<M: SharedMemory + ?Sized>(
    memory: &M,
    offset: usize,
    size: usize,
) -> Result<*mut u8, AccessError> {
    if offset % size != 0 {
        return Err(AccessError::Misaligned {
            offset,
            align: size,
        });
    }
    memory.ptr_at(offset, size)
}
