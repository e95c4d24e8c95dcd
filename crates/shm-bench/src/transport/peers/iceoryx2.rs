//! `iceoryx2`: iceoryx2 0.10 publish-subscribe over `[u8]` slices, two services per
//! pair (one per direction), as its zero-copy examples use it: the sender loans a sample
//! and writes the payload in place, the receiver reads it in place from the sample it
//! received; waiting is busy polling (`receive` until a sample comes), iceoryx2's
//! lowest-latency mode.
//!
//! iceoryx2 state is per process and must not cross a `fork`, so the pair made before
//! the fork holds only the two service names; each process opens its node, services and
//! ports on first use, then waits until the peer's subscriber and publisher exist
//! (messages published before a subscriber connects would be lost, and the harness
//! checks every one). No message is lost under back-pressure: the services have no safe
//! overflow and publishers retry until delivered. A side learns that its peer is gone
//! when the service it receives from has no publisher left.

use std::hint::spin_loop;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory as PubSub;
use nix::unistd::getpid;

use crate::transport::watch::{BoundedWait, Owner};
use crate::transport::{
    check_exact, check_fits, Checker, Endpoint, MsgIn, MsgOut, Outgoing, Owned, Pair, Transport,
    TransportError,
};

/// Samples a subscriber holds before the publisher has to retry.
const BUFFER: usize = 16;

/// Empty polls between two looks at the peer (those read the service's state).
const POLLS_PER_CHECK: u32 = 1024;

/// Pairs made by this process, for unique service names.
static PAIRS: AtomicU32 = AtomicU32::new(0);

/// The transport.
#[derive(Debug)]
pub(crate) struct Iceoryx2;

/// `iceoryx2`: iceoryx2 publish-subscribe, zero-copy, busy polling.
pub(crate) static ICEORYX2: Iceoryx2 = Iceoryx2;

fn failed(e: impl std::fmt::Debug) -> TransportError {
    TransportError::Failed(format!("iceoryx2: {e:?}"))
}

impl Transport for Iceoryx2 {
    fn name(&self) -> &'static str {
        "iceoryx2"
    }

    fn connect(&self, max_msg: usize) -> Result<Pair, TransportError> {
        // Relaxed: a counter for unique names, no data rides on it.
        let n = PAIRS.fetch_add(1, Ordering::Relaxed);
        let base = format!("shm-bench/{}/{n}", getpid());
        let (down, up) = (format!("{base}/down"), format!("{base}/up"));
        let end = |out: &str, inp: &str| IceEnd {
            out: out.to_string(),
            inp: inp.to_string(),
            max_msg,
            ports: None,
            owner: Owner::here(),
        };
        Ok(Pair::new(end(&down, &up), end(&up, &down)))
    }
}

/// What a process opens on first use. Fields drop in order: ports before their
/// services, services before the node.
struct Ports {
    publisher: Publisher<ipc::Service, [u8], ()>,
    subscriber: Subscriber<ipc::Service, [u8], ()>,
    outgoing: PubSub<ipc::Service, [u8], ()>,
    incoming: PubSub<ipc::Service, [u8], ()>,
    _node: Node<ipc::Service>,
    /// Bounds the waits of this process's ports.
    owner: Owner,
}

/// One side: publishes on `out`, subscribes to `inp`.
struct IceEnd {
    out: String,
    inp: String,
    max_msg: usize,
    ports: Option<Ports>,
    owner: Owner,
}

/// Sleeps a little between two looks while waiting for the peer to open its ports.
fn pause(bound: &mut BoundedWait) -> Result<(), TransportError> {
    bound.check()?;
    std::thread::sleep(Duration::from_micros(200));
    Ok(())
}

impl IceEnd {
    fn open(&self) -> Result<Ports, TransportError> {
        set_log_level(LogLevel::Error);
        let node = NodeBuilder::new()
            .signal_handling_mode(SignalHandlingMode::Disabled)
            .create::<ipc::Service>()
            .map_err(failed)?;
        // The harness creates both services, the child opens them once they exist: two
        // processes racing through `open_or_create` on one name is the one case where
        // iceoryx2's creation protocol has to arbitrate, and the bench has no need of it.
        let creates = self.owner.is_creator();
        let mut bound = self.owner.wait();
        let mut service = |name: &str| {
            let name: ServiceName = name.try_into().map_err(failed)?;
            loop {
                let builder = node
                    .service_builder(&name)
                    .publish_subscribe::<[u8]>()
                    .history_size(0)
                    .subscriber_max_buffer_size(BUFFER)
                    .enable_safe_overflow(false)
                    .max_publishers(1)
                    .max_subscribers(1);
                if creates {
                    return builder.create().map_err(failed);
                }
                match builder.open() {
                    Ok(service) => return Ok(service),
                    Err(_not_yet) => pause(&mut bound)?,
                }
            }
        };
        let outgoing = service(&self.out)?;
        let incoming = service(&self.inp)?;
        let subscriber = incoming
            .subscriber_builder()
            .buffer_size(BUFFER)
            .create()
            .map_err(failed)?;
        let publisher = outgoing
            .publisher_builder()
            .initial_max_slice_len(self.max_msg)
            .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
            .create()
            .map_err(failed)?;
        // Both of the peer's ports must exist before the first message: one sent
        // before its subscriber connects is lost, and a receiver that sees no publisher
        // takes the peer for gone.
        while outgoing.dynamic_config().number_of_subscribers() == 0
            || incoming.dynamic_config().number_of_publishers() == 0
        {
            pause(&mut bound)?;
        }
        Ok(Ports {
            publisher,
            subscriber,
            outgoing,
            incoming,
            _node: node,
            owner: self.owner.clone(),
        })
    }

    fn ports(&mut self) -> Result<&mut Ports, TransportError> {
        if self.ports.is_none() {
            self.ports = Some(self.open()?);
        }
        Ok(self.ports.as_mut().expect("opened above"))
    }

    fn check_len(&self, len: usize) -> Result<(), TransportError> {
        check_fits(len, self.max_msg)
    }
}

impl Ports {
    fn owner_wait(&self) -> BoundedWait {
        self.owner.wait()
    }

    /// Loans a sample of `len` bytes, lets `write` fill it through its raw pointer, and
    /// sends it; again, with a new loan, when iceoryx2 delivered it to no one although
    /// the peer's subscriber is there. (A publisher whose subscriber has not yet handed
    /// back enough samples finds the connection's used-chunk list full and drops the
    /// sample, whatever the back-pressure strategy; `send` then reports 0 recipients.
    /// `write` writes the same message each time.)
    fn publish(&self, len: usize, mut write: impl FnMut(*mut u8)) -> Result<(), TransportError> {
        let mut bound: Option<BoundedWait> = None;
        loop {
            let mut sample = self.publisher.loan_slice_uninit(len).map_err(failed)?;
            write(sample.payload_mut().as_mut_ptr().cast::<u8>());
            // SAFETY: `write` initialised all `len` bytes (the harness's `fill` writes
            // every byte of a message; the echo copies all of them).
            let sample = unsafe { sample.assume_init() };
            if sample.send().map_err(failed)? > 0 {
                return Ok(());
            }
            if self.outgoing.dynamic_config().number_of_subscribers() == 0 {
                return Err(TransportError::Disconnected);
            }
            bound.get_or_insert_with(|| self.owner_wait()).check()?;
            spin_loop();
        }
    }

    /// Busy-polls for the next sample.
    fn next(
        &self,
        bound: &mut BoundedWait,
    ) -> Result<iceoryx2::sample::Sample<ipc::Service, [u8], ()>, TransportError> {
        let mut polls = 0u32;
        loop {
            if let Some(sample) = self.subscriber.receive().map_err(failed)? {
                return Ok(sample);
            }
            spin_loop();
            polls = polls.wrapping_add(1);
            if polls % POLLS_PER_CHECK == 0 {
                if self.incoming.dynamic_config().number_of_publishers() == 0 {
                    // One last look: what was sent before the close is delivered.
                    return match self.subscriber.receive().map_err(failed)? {
                        Some(sample) => Ok(sample),
                        None => Err(TransportError::Disconnected),
                    };
                }
                bound.check()?;
            }
        }
    }
}

impl Endpoint for IceEnd {
    fn send(&mut self, msg: &Outgoing<'_>) -> Result<(), TransportError> {
        let len = msg.size();
        self.check_len(len)?;
        self.ports()?.publish(len, |ptr| {
            // SAFETY: the loaned sample's payload is valid for writes of `len` bytes
            // until it is sent, and `out` is dropped before; no reference is formed.
            msg.write_to(&mut unsafe { MsgOut::shared(ptr, len) });
        })
    }

    fn recv(&mut self, check: &mut Checker<'_>) -> Result<(), TransportError> {
        let len = check.size();
        self.check_len(len)?;
        let mut bound = self.owner.wait();
        let sample = self.ports()?.next(&mut bound)?;
        check_exact(len, sample.payload().len())?;
        // SAFETY: the sample's payload is valid for reads of `len` bytes while `sample`
        // lives, and the message does not outlive this statement.
        check.check(&unsafe { MsgIn::shared(sample.payload().as_ptr(), len) });
        Ok(())
    }

    fn echo(&mut self, check: &mut Checker<'_>) -> Result<(), TransportError> {
        let len = check.size();
        self.check_len(len)?;
        let mut bound = self.owner.wait();
        let ports = self.ports()?;
        let incoming = ports.next(&mut bound)?;
        check_exact(len, incoming.payload().len())?;
        let src = incoming.payload().as_ptr();
        // SAFETY: as in `recv`: valid for `len` bytes while `incoming` lives.
        check.check(&unsafe { MsgIn::shared(src, len) });
        ports.publish(len, |dst| {
            // SAFETY: `src` is valid for `len` bytes (the received sample, alive until
            // the end of this function), `dst` for `len` bytes (the loaned one); two
            // different samples, so they do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(src, dst, len) };
        })
    }

    fn hand_over(&self, child: shm_core::liveness::ProcessIdentity) -> Result<(), TransportError> {
        Owned::Record(&self.owner).hand_over(child)
    }
}
