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
//! | `lane` | the single-writer ring an SPSC channel is and each MPSC sender writes: the algorithm over a `Lane`'s words |
//! | `lane_sender` | the sending side of a lane, for every flavor whose senders write lanes (`LaneHome`: where the lane lives) |
//! | `layout` | the contract every flavor's layout meets |
//! | `ring` | the contract every flavor's ring sides meet, and the publishing helpers they share |
//! | `release` | batched releases: a reader's position stored once per batch of frames |
//! | `ownership` | owner slots: who owns an endpoint, checked on use, released on drop |
//! | `status` | the status line's behaviour: claim, close, peer gone |
//! | `doorbells` | the socket pair that wakes async waiters |
//!
//! Imports flow one way: the flavors and the core use this layer; nothing here names a
//! flavor or the core.

pub(crate) mod creation;
pub(crate) mod doorbells;
pub(crate) mod fingerprint;
pub(crate) mod frame;
pub(crate) mod lane;
pub(crate) mod lane_sender;
pub(crate) mod layout;
pub(crate) mod lines;
pub(crate) mod ownership;
pub(crate) mod primitive;
pub(crate) mod release;
pub(crate) mod ring;
pub(crate) mod status;
pub(crate) mod view;
