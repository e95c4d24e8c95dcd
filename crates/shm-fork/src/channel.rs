//! [`Inherit`] for the endpoints of `shm-channel`: the parent's `hand_over` records the child
//! as the endpoint's owner (so the parent's copy no longer counts), the child's `adopt`
//! takes ownership in the child.

use shm_channel::codec::Codec;
use shm_channel::endpoint::{ByteReceiver, ByteSender};
use shm_channel::{broadcast, bytes, mpsc, typed};
use shm_core::liveness::ProcessIdentity;

use crate::inherit::{Inherit, InheritError};

/// Implements [`Inherit`] for a channel endpoint type by forwarding to its own
/// `hand_over`/`adopt` (every endpoint of shm-channel has the pair).
macro_rules! inherit_endpoint {
    ($endpoint:ty $(where [$($generics:tt)*])?) => {
        impl$(<$($generics)*>)? Inherit for $endpoint {
            fn hand_over(&self, child: ProcessIdentity) -> Result<(), InheritError> {
                <$endpoint>::hand_over(self, child).map_err(InheritError::new)
            }

            fn adopt(&self) -> Result<(), InheritError> {
                <$endpoint>::adopt(self).map_err(InheritError::new)
            }
        }
    };
}

inherit_endpoint!(bytes::Sender);
inherit_endpoint!(bytes::Receiver);
inherit_endpoint!(typed::Sender<T, C, S> where [T, C: Codec<T>, S: ByteSender]);
inherit_endpoint!(typed::Receiver<T, C, R> where [T, C: Codec<T>, R: ByteReceiver]);
inherit_endpoint!(mpsc::Sender);
inherit_endpoint!(mpsc::Receiver);
inherit_endpoint!(broadcast::Sender);
inherit_endpoint!(broadcast::Receiver);
