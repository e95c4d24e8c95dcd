//! Fault-test helpers that need the channel's types: handing an endpoint to a forked
//! child.

use std::sync::MutexGuard;

use shm_channel::{Flavor, Receiver, Sender};
use shm_core::liveness::ProcessIdentity;
use shm_testkit::{fork_child, TestChild};

/// An endpoint that a child can adopt.
pub trait Endpoint {
    /// In the owner: hands the endpoint over to `to`.
    fn hand_over_to(&self, to: ProcessIdentity);
    /// In the child: adopts it.
    fn adopt_here(&self);
}

impl<F: Flavor> Endpoint for Sender<F> {
    fn hand_over_to(&self, to: ProcessIdentity) {
        self.hand_over(to).unwrap();
    }
    fn adopt_here(&self) {
        self.adopt().unwrap();
    }
}

impl<F: Flavor> Endpoint for Receiver<F> {
    fn hand_over_to(&self, to: ProcessIdentity) {
        self.hand_over(to).unwrap();
    }
    fn adopt_here(&self) {
        self.adopt().unwrap();
    }
}

/// Forks a child that adopts `endpoint` and runs `f` with it; the parent hands the endpoint
/// over and drops its copy (which, no longer owned here, closes nothing).
pub fn fork_owner<E: Endpoint>(
    lock: &MutexGuard<'static, ()>,
    endpoint: E,
    f: impl FnOnce(E) -> i32,
) -> TestChild {
    let mut slot = Some(endpoint);
    let child = fork_child(lock, || {
        let endpoint = slot.take().unwrap();
        endpoint.adopt_here();
        f(endpoint)
    });
    let endpoint = slot.take().unwrap();
    endpoint.hand_over_to(ProcessIdentity::of_pid(child.pid()).unwrap());
    drop(endpoint);
    child
}
