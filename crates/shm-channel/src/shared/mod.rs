//! The layer below the endpoint core: what every flavor's ring is built from and agrees on
//! with its peers in shared memory.
//!
//! | module | what it holds |
//! |---|---|
//! | `primitive` | the loom seam: atomics, fences, the data area's frame words |
//! | `frame` | the frame header word, the same encoding in every ring |
//! | `lines` | the control-block lines (header slot, status, events, producer, consumer, type) and the layout hash |
//! | `fingerprint` | what typed ends carry: the public `Fingerprint`, `TypeMismatch`, and their record in the type line |
//! | `view` | a validated view of a region; the capacity rules; events and what a notifier wakes |
//! | `creation` | how a channel is created: its wake handshake and options |
//! | `layout` | the contract every flavor's layout meets |
//! | `ring` | the contract every flavor's ring sides meet, and the publishing helpers they share |
//! | `ownership` | owner slots: who owns an endpoint, checked on use, released on drop |
//! | `status` | the status line's behaviour: claim, close, peer gone |
//! | `doorbells` | the socket pair that wakes async waiters |
//! | `queue` | the async senders of a channel waiting in this process, served in order (process-local) |
//!
//! Imports flow one way: the flavors and the core use this layer; nothing here names a
//! flavor or the core.

pub(crate) mod creation;
pub(crate) mod doorbells;
pub(crate) mod fingerprint;
pub(crate) mod frame;
pub(crate) mod layout;
pub(crate) mod lines;
pub(crate) mod ownership;
pub(crate) mod primitive;
pub(crate) mod queue;
pub(crate) mod ring;
pub(crate) mod status;
pub(crate) mod view;
