//! What the channel's integration tests share beyond `shm-testkit` (which cannot name this
//! crate's types): the kit's word access over a `SharedMemory`, endpoint hand-over to
//! forked children, and the hostile-peer harness. Each test binary includes the parts it
//! uses (`mod support;`); not every binary uses every helper.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, AtomicU64};

use shm_core::SharedMemory;
use shm_testkit::Words;

pub mod faults;
pub mod hostile;

/// A channel's memory, as the kit's [`Words`].
#[derive(Clone, Copy)]
pub struct Mem<'a>(pub &'a dyn SharedMemory);

impl Words for Mem<'_> {
    fn word64(&self, offset: usize) -> Option<&AtomicU64> {
        self.0.atomic_u64(offset).ok()
    }

    fn word32(&self, offset: usize) -> Option<&AtomicU32> {
        self.0.atomic_u32(offset).ok()
    }
}
