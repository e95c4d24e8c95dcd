//! What this crate's forking test binaries share: the CPUs to run on, and a test transport
//! that wraps a real one to make its child side misbehave.
//!
//! The harness forks its benchmark children with `shm-fork`, whose safe entry points refuse
//! to fork a multi-threaded process; libtest runs tests on threads. So every test binary of
//! this crate that forks is `harness = false`: its `main` runs its tests one after another
//! on the main thread with `shm_testkit::run_serially` (name filters as with libtest:
//! `cargo test -p shm-bench --test failures -- watchdog`).

#![allow(dead_code)]

use shm_bench::transport::{self, Checker, Endpoint, Outgoing, Pair, Transport, TransportError};
use shm_bench::{allowed_cpus, CpuPair};
use shm_core::liveness::ProcessIdentity;

/// Two CPUs this test process may use (one, shared, on a single-CPU machine).
pub fn cpus() -> CpuPair {
    let allowed = allowed_cpus();
    let parent = allowed[0];
    let child = *allowed.get(1).unwrap_or(&parent);
    CpuPair { parent, child }
}

/// What the child side of a [`ChildFault`] transport does around each of its calls.
pub trait Fault: Clone + Sync + 'static {
    /// Before each send, receive or echo: `Err` fails the call without making it.
    fn before(&mut self) -> Result<(), TransportError> {
        Ok(())
    }

    /// After each call, with its result: the result the child's loop sees.
    fn after(&mut self, result: Result<(), TransportError>) -> Result<(), TransportError> {
        result
    }
}

/// The transport called `inner` (from the registry), with `fault` injected into every
/// call of its child's endpoint.
pub struct ChildFault<F> {
    inner: &'static str,
    fault: F,
}

impl<F> ChildFault<F> {
    /// The transport called `inner`, its child's endpoint wrapped in `fault`.
    pub fn on(inner: &'static str, fault: F) -> ChildFault<F> {
        ChildFault { inner, fault }
    }
}

impl<F: Fault> Transport for ChildFault<F> {
    fn name(&self) -> &'static str {
        "child-fault"
    }

    fn connect(&self, max_msg: usize) -> Result<Pair, TransportError> {
        let inner = transport::by_name(self.inner).expect("a registered transport");
        let pair = inner.connect(max_msg)?;
        Ok(Pair {
            child: Box::new(FaultyEnd {
                inner: pair.child,
                fault: self.fault.clone(),
            }),
            ..pair
        })
    }
}

/// The child's endpoint of a [`ChildFault`]: the real one, wrapped.
struct FaultyEnd<F> {
    inner: Box<dyn Endpoint>,
    fault: F,
}

impl<F: Fault> Endpoint for FaultyEnd<F> {
    fn send(&mut self, msg: &Outgoing<'_>) -> Result<(), TransportError> {
        self.fault.before()?;
        let r = self.inner.send(msg);
        self.fault.after(r)
    }

    fn recv(&mut self, check: &mut Checker<'_>) -> Result<(), TransportError> {
        self.fault.before()?;
        let r = self.inner.recv(check);
        self.fault.after(r)
    }

    fn echo(&mut self, check: &mut Checker<'_>) -> Result<(), TransportError> {
        self.fault.before()?;
        let r = self.inner.echo(check);
        self.fault.after(r)
    }

    fn hand_over(&self, child: ProcessIdentity) -> Result<(), TransportError> {
        self.inner.hand_over(child)
    }

    fn adopt(&self) -> Result<(), TransportError> {
        self.inner.adopt()
    }
}
