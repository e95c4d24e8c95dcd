//! [`HeapRegion`]: a private, page-aligned heap buffer behind the [`SharedMemory`] API.

use std::alloc::{self, Layout};
use std::ptr::NonNull;

use crate::{RegionError, SharedMemory};

/// Alignment of a heap region: one page, like a mapping, so layouts computed for mappings
/// (128-byte lines, page-aligned data areas) hold on the heap too.
const HEAP_REGION_ALIGN: usize = 4096;

/// A zeroed, page-aligned heap buffer that implements [`SharedMemory`].
///
/// It is not shared with any other process; it exists so that ring algorithms run unchanged
/// in-process, under loom (which cannot model a mapping) and under Miri (which cannot call
/// `mmap` or `fork`).
///
/// # Examples
///
/// ```
/// use shm_ipc::core::{HeapRegion, SharedMemory};
/// let heap = HeapRegion::new(256).unwrap();
/// assert_eq!(heap.len(), 256);
/// assert_eq!(heap.as_ptr() as usize % 4096, 0);
/// ```
#[derive(Debug)]
pub struct HeapRegion {
    /// Start of the allocation; owned, valid for `len` bytes, aligned to `HEAP_REGION_ALIGN`.
    ptr: NonNull<u8>,
    /// Number of bytes allocated (never zero).
    len: usize,
}

// SAFETY: `HeapRegion` owns its allocation; all access to the bytes goes through raw pointers
// and atomics, exactly as for a mapping, so moving or sharing the handle between threads is
// no different from sharing a `Region`.
unsafe impl Send for HeapRegion {}
// SAFETY: see `Send`: the handle itself holds no interior state besides the pointer.
unsafe impl Sync for HeapRegion {}

impl HeapRegion {
    /// Allocates `len` zeroed bytes. Errors when `len` is zero or too large to allocate.
    pub fn new(len: usize) -> Result<HeapRegion, RegionError> {
        if len == 0 {
            return Err(RegionError::ZeroLength);
        }
        let layout = Layout::from_size_align(len, HEAP_REGION_ALIGN).map_err(|_| {
            RegionError::LengthOverflow {
                len,
                page_size: HEAP_REGION_ALIGN,
            }
        })?;
        // SAFETY: `layout` has a non-zero size (checked above).
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        Ok(HeapRegion { ptr, len })
    }
}

impl Drop for HeapRegion {
    fn drop(&mut self) {
        // SAFETY: `ptr` was returned by `alloc_zeroed` with exactly this layout (the layout was
        // valid when allocating, so it is valid now) and is freed only here, once.
        unsafe {
            alloc::dealloc(
                self.ptr.as_ptr(),
                Layout::from_size_align_unchecked(self.len, HEAP_REGION_ALIGN),
            )
        }
    }
}

// SAFETY: the allocation is valid for `len` bytes, page-aligned, lives as long as `self`,
// and the pointer and length never change.
unsafe impl SharedMemory for HeapRegion {
    fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    fn len(&self) -> usize {
        self.len
    }
}
