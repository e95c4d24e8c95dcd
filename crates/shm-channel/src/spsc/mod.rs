//! Single producer, single consumer: variable-length byte frames through one ring.
//!
//! The fastest flavor: each side caches the other's index and touches the shared one only
//! when its cache says full or empty; head and tail live on separate 128-byte lines.
//!
//! # Sizing the ring
//!
//! A frame is contiguous in the ring (one that would cross the end is preceded by a pad),
//! and the receiver frees a frame only when it is done copying it. So the sender can write
//! message *n + 1* while the receiver copies message *n* only if both fit at once: with
//! messages near half the capacity, or larger, the two copies take turns instead of
//! overlapping, and a pad can waste up to one message's worth at the ring end. Give the ring
//! **at least four times the largest message** for streaming (what `shm-bench` does); for
//! large messages where even one copy is too many, write them in place with
//! [`Sender::reserve`](crate::Sender::reserve) and read them with
//! [`Receiver::read`](crate::Receiver::read).
//!
//! Typed values over SPSC: [`crate::typed`] (SPSC is its default flavor).
//!
//! # Examples
//!
//! ```
//! let (mut tx, mut rx) = shm_ipc::channel::spsc::channel(4096)?;
//! tx.send(b"hello")?;
//! assert_eq!(rx.recv()?, b"hello");
//!
//! // Zero-copy: write in place, then commit the length actually written.
//! let mut grant = tx.reserve(64)?;
//! grant.write_at(0, b"in place")?;
//! grant.commit(8)?;
//! let frame = rx.read()?;
//! let mut buf = [0u8; 8];
//! frame.copy_to(&mut buf);
//! assert_eq!(&buf, b"in place");
//! drop(frame); // releases the space
//!
//! drop(tx);
//! assert_eq!(rx.recv(), Err(shm_ipc::channel::RecvError::Disconnected));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::endpoint::{Flavor, Rings};
use crate::shared::status::Claim;
use crate::{Builder, Receiver, Sender};
use crate::{ChannelError, RecvError};

use layout::Layout;
use ring::{Reader, Writer};

mod layout;
#[cfg(all(test, loom))]
mod loom;
mod ring;

/// The SPSC flavor: the marker type that makes [`Sender<Spsc>`], [`Receiver<Spsc>`] and
/// [`Builder<Spsc>`] the ends and the options of an SPSC channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spsc;

impl Flavor for Spsc {
    type RecvError = RecvError;
    const NAME: &'static str = "spsc";
}

/// Creates an SPSC channel of `capacity` bytes (a power of two, at least 16) in a fresh
/// anonymous shared region. Both endpoints are owned by the calling process; after `fork`,
/// hand one to the child (see `shm-fork`).
pub fn channel(capacity: usize) -> Result<(Sender<Spsc>, Receiver<Spsc>), ChannelError> {
    Builder::new(capacity).create()
}

impl Rings for Spsc {
    type Writer = Writer;
    type Reader = Reader;

    fn writer(layout: Layout, claim: Claim) -> Result<Writer, ChannelError> {
        layout.status().claim_sender(claim)?;
        Ok(Writer::new(layout)?)
    }

    fn reader(layout: Layout, claim: Claim) -> Result<Reader, ChannelError> {
        layout.status().claim_receiver(claim)?;
        Ok(Reader::new(layout)?)
    }
}
