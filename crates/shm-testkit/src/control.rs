//! The control page: a small `MAP_SHARED` anonymous mapping made before `fork`, through
//! which a test and its children coordinate (stages, counts, results). Mapped with libc
//! directly: this crate depends on neither shm-core nor shm-channel.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::words::Words;

/// Words shared with forked children.
#[derive(Debug)]
pub struct ControlPage {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the page is only reached through atomics; the mapping lives until drop.
unsafe impl Send for ControlPage {}
// SAFETY: see `Send`.
unsafe impl Sync for ControlPage {}

impl ControlPage {
    /// One page of zeroed words.
    pub fn new() -> ControlPage {
        ControlPage::with_len(4096)
    }

    /// `len` bytes (rounded up to 8) of zeroed words.
    pub fn with_len(len: usize) -> ControlPage {
        let len = len.max(8).next_multiple_of(8);
        // SAFETY: a fresh anonymous shared mapping; no existing memory is affected.
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
        assert!(ptr != libc::MAP_FAILED, "mmap of the control page failed");
        ControlPage {
            base: NonNull::new(ptr.cast()).expect("mmap returned null"),
            len,
        }
    }

    /// The u64 at `offset` (a multiple of 8 inside the page).
    pub fn word(&self, offset: usize) -> &AtomicU64 {
        self.word64(offset).expect("control word out of the page")
    }

    /// Loads the word at `offset`.
    pub fn get(&self, offset: usize) -> u64 {
        self.word(offset).load(Ordering::SeqCst)
    }

    /// Stores `value` at `offset`.
    pub fn set(&self, offset: usize, value: u64) {
        self.word(offset).store(value, Ordering::SeqCst);
    }

    /// Adds `value` to the word at `offset`.
    pub fn add(&self, offset: usize, value: u64) {
        self.word(offset).fetch_add(value, Ordering::SeqCst);
    }

    /// Waits until `cond` holds, polling; false after `patience` (a peer that died or
    /// hangs).
    pub fn wait_until(&self, patience: Duration, cond: impl Fn(&ControlPage) -> bool) -> bool {
        let deadline = Instant::now() + patience;
        while !cond(self) {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        true
    }

    /// Waits until the word at `offset` is at least `value`; false after `patience`.
    pub fn wait_for(&self, offset: usize, value: u64, patience: Duration) -> bool {
        self.wait_until(patience, |c| c.get(offset) >= value)
    }
}

impl Default for ControlPage {
    fn default() -> ControlPage {
        ControlPage::new()
    }
}

impl Words for ControlPage {
    fn word64(&self, offset: usize) -> Option<&AtomicU64> {
        if offset % 8 != 0 || offset + 8 > self.len {
            return None;
        }
        // SAFETY: in bounds and 8-aligned (page-aligned base); the mapping lives as long as
        // `self`; only atomics reach it.
        Some(unsafe { AtomicU64::from_ptr(self.base.as_ptr().add(offset).cast()) })
    }

    fn word32(&self, offset: usize) -> Option<&AtomicU32> {
        if offset % 4 != 0 || offset + 4 > self.len {
            return None;
        }
        // SAFETY: as in `word64`, for 4 bytes at a 4-aligned offset.
        Some(unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(offset).cast()) })
    }
}

impl Drop for ControlPage {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `with_len`; no reference into it
        // outlives `self`.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::ControlPage;
    use std::time::Duration;

    #[test]
    fn words_start_zero_and_wait_sees_a_store() {
        let page = ControlPage::new();
        assert_eq!(page.get(4088), 0);
        page.set(8, 3);
        page.add(8, 2);
        assert_eq!(page.get(8), 5);
        assert!(page.wait_for(8, 5, Duration::from_secs(1)));
        assert!(!page.wait_for(16, 1, Duration::from_millis(1)));
    }
}
