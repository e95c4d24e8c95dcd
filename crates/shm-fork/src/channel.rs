//! [`Inherit`] for the endpoints of `shm-channel`: the parent's `hand_over` records the child
//! as the endpoint's owner (so the parent's copy no longer counts), the child's `adopt`
//! takes ownership in the child.

use shm_channel::codec::{BatchCodec, Codec};
use shm_channel::stream::{StreamReader, StreamWriter};
use shm_channel::{bulk, rpc, typed, Endpoint, Flavor, Receiver, Sender};
use shm_core::liveness::ProcessIdentity;

use crate::inherit::{Inherit, InheritError};

macro_rules! inherit_endpoint {
    ($endpoint:ty where [$($generics:tt)*]) => {
        impl<$($generics)*> Inherit for $endpoint {
            fn hand_over(&self, child: ProcessIdentity) -> Result<(), InheritError> {
                Endpoint::hand_over(self, child).map_err(InheritError::new)
            }

            fn adopt(&self) -> Result<(), InheritError> {
                Endpoint::adopt(self).map_err(InheritError::new)
            }
        }
    };
}

inherit_endpoint!(Sender<F> where [F: Flavor]);
inherit_endpoint!(Receiver<F> where [F: Flavor]);
inherit_endpoint!(typed::Sender<T, F, C> where [T, C: Codec<T>, F: Flavor]);
inherit_endpoint!(typed::Receiver<T, F, C> where [T, C: Codec<T>, F: Flavor]);
inherit_endpoint!(bulk::Sender<T, F, C> where [T, C: BatchCodec<T>, F: Flavor]);
inherit_endpoint!(bulk::Receiver<T, F, C> where [T, C: BatchCodec<T>, F: Flavor]);
inherit_endpoint!(StreamWriter where []);
inherit_endpoint!(StreamReader where []);

/// An end of a request/response pair is two endpoints: both are handed over, both adopted.
fn hand_over_both(
    endpoints: [&dyn Endpoint; 2],
    child: ProcessIdentity,
) -> Result<(), InheritError> {
    for endpoint in endpoints {
        endpoint.hand_over(child).map_err(InheritError::new)?;
    }
    Ok(())
}

fn adopt_both(endpoints: [&dyn Endpoint; 2]) -> Result<(), InheritError> {
    for endpoint in endpoints {
        endpoint.adopt().map_err(InheritError::new)?;
    }
    Ok(())
}

impl<Req, Resp, C: Codec<Req> + Codec<Resp>> Inherit for rpc::Client<Req, Resp, C> {
    fn hand_over(&self, child: ProcessIdentity) -> Result<(), InheritError> {
        hand_over_both(self.endpoints(), child)
    }

    fn adopt(&self) -> Result<(), InheritError> {
        adopt_both(self.endpoints())
    }
}

impl<Req, Resp, C: Codec<Req> + Codec<Resp>> Inherit for rpc::Server<Req, Resp, C> {
    fn hand_over(&self, child: ProcessIdentity) -> Result<(), InheritError> {
        hand_over_both(self.endpoints(), child)
    }

    fn adopt(&self) -> Result<(), InheritError> {
        adopt_both(self.endpoints())
    }
}
