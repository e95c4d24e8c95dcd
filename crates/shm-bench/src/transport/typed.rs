//! Transports of typed values: Rust values, not byte payloads, between the parent and a
//! forked child, in the patterns `typed-pingpong` and `typed-stream`.
//!
//! | name | value | how |
//! |---|---|---|
//! | `shm-typed-bincode` | [`Order`] (numbers, a `String`, a small `Vec`) | `shm_channel::typed` + serde/bincode 2, encoded into and decoded out of the ring in place |
//! | `shm-typed-postcard` | [`Order`] | `shm_channel::typed` + serde/postcard |
//! | `shm-typed-plain` | [`PlainOrder`] (`bytemuck::Pod`, 64 B) | `shm_channel::typed` + `Plain`: one copy each way, no codec |
//! | `pipe-bincode` | [`Order`] | bincode 2 into a private buffer, written to a pipe with a 4-byte length prefix (the reference) |
//!
//! The sender sends value `seq` ([`Value::make`]), built fresh per message (its `String`
//! and `Vec` allocated), as real senders do; in a round trip the child decodes it and sends
//! it back re-encoded. The receiver's checker checks the sequence number, or (`--verify`)
//! compares the whole value with the expected one and counts its encoded size as verified
//! bytes. The rings use the default wait strategy (spin, then park). A transport carries
//! one message size, the encoded size of value 0 ([`Transport::message_size`]).

use std::marker::PhantomData;
use std::os::fd::OwnedFd;

use serde::{Deserialize, Serialize};
use shm_channel::codec::{Bincode, Codec, Plain, Postcard};
use shm_channel::spsc::{self, Spsc};
use shm_channel::typed;
use shm_channel::Endpoint as _;
use shm_core::liveness::ProcessIdentity;

use super::fd::{read_exact, write_all};
use super::pipe::one_way;
use super::ring::{recv_err, ring_capacity, send_err};
use super::{Checker, Endpoint, Outgoing, Owned, Pair, Side, Transport, TransportError};
use crate::config::Pattern;
use crate::payload::Value;

/// A realistic message: a few numbers, a short string, a small vector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Order {
    seq: u64,
    /// Limit price.
    price: f64,
    qty: u32,
    /// Buy (0) or sell (1).
    side: u8,
    /// Instrument.
    symbol: String,
    /// Partial fills so far.
    fills: Vec<u32>,
}

/// The plain-data counterpart of [`Order`]: fixed layout, no codec.
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub(crate) struct PlainOrder {
    seq: u64,
    price: f64,
    qty: u32,
    /// Widened to keep the struct free of padding.
    side: u32,
    /// NUL-padded.
    symbol: [u8; 16],
    /// Unused slots 0.
    fills: [u32; 6],
}

impl Value for Order {
    fn make(seq: u64) -> Order {
        Order {
            seq,
            price: 101.25 + (seq % 100) as f64 * 0.01,
            qty: 100 + (seq % 7) as u32,
            side: (seq & 1) as u8,
            symbol: "EURUSD-SPOT".to_string(),
            fills: vec![10, 20, 30, (seq % 50) as u32],
        }
    }

    fn seq(&self) -> u64 {
        self.seq
    }
}

impl Value for PlainOrder {
    fn make(seq: u64) -> PlainOrder {
        let mut symbol = [0u8; 16];
        symbol[..11].copy_from_slice(b"EURUSD-SPOT");
        PlainOrder {
            seq,
            price: 101.25 + (seq % 100) as f64 * 0.01,
            qty: 100 + (seq % 7) as u32,
            side: (seq & 1) as u32,
            symbol,
            fills: [10, 20, 30, (seq % 50) as u32, 0, 0],
        }
    }

    fn seq(&self) -> u64 {
        self.seq
    }
}

/// One side of a transport of values: sends and receives whole values.
trait ValueLink: Side {
    /// What it carries.
    type Value: Value;

    /// Sends `v`.
    fn send_value(&mut self, v: Self::Value) -> Result<(), TransportError>;

    /// Receives the next value.
    fn recv_value(&mut self) -> Result<Self::Value, TransportError>;

    /// Receives the next value and has `check` check it where it was received, as a
    /// user's loop uses what `recv` returns (no further move of the value).
    fn recv_checked(&mut self, check: &mut Checker<'_>) -> Result<(), TransportError> {
        let v = self.recv_value()?;
        check.check_value(&v);
        Ok(())
    }
}

/// The endpoint of a [`ValueLink`]: message `seq` is the value made from `seq`.
struct Typed<L>(L);

impl<L: ValueLink> Endpoint for Typed<L> {
    fn send(&mut self, msg: &Outgoing<'_>) -> Result<(), TransportError> {
        self.0.send_value(msg.value())
    }

    fn recv(&mut self, check: &mut Checker<'_>) -> Result<(), TransportError> {
        self.0.recv_checked(check)
    }

    fn echo(&mut self, check: &mut Checker<'_>) -> Result<(), TransportError> {
        let v = self.0.recv_value()?;
        check.check_value(&v);
        self.0.send_value(v)
    }

    fn hand_over(&self, child: ProcessIdentity) -> Result<(), TransportError> {
        self.0.owned().hand_over(child)
    }

    fn adopt(&self) -> Result<(), TransportError> {
        self.0.owned().adopt()
    }

    fn wake_syscalls(&self) -> u64 {
        self.0.wake_syscalls()
    }
}

/// Whether a transport of `encoded`-byte values runs `pattern` with `size`-byte messages.
fn supports_typed(pattern: Pattern, size: usize, encoded: usize) -> bool {
    pattern.is_typed() && size == encoded
}

/// Typed ring transport with codec `C` over values `V`.
pub(crate) struct TypedRing<V, C> {
    name: &'static str,
    _t: PhantomData<fn(V, C)>,
}

/// `shm-typed-bincode`.
pub(crate) static SHM_TYPED_BINCODE: TypedRing<Order, Bincode> = TypedRing {
    name: "shm-typed-bincode",
    _t: PhantomData,
};

/// `shm-typed-postcard`.
pub(crate) static SHM_TYPED_POSTCARD: TypedRing<Order, Postcard> = TypedRing {
    name: "shm-typed-postcard",
    _t: PhantomData,
};

/// `shm-typed-plain`.
pub(crate) static SHM_TYPED_PLAIN: TypedRing<PlainOrder, Plain> = TypedRing {
    name: "shm-typed-plain",
    _t: PhantomData,
};

impl<V, C> Transport for TypedRing<V, C>
where
    V: Value + 'static,
    C: Codec<V> + 'static,
{
    fn name(&self) -> &'static str {
        self.name
    }

    fn message_size(&self) -> Option<usize> {
        C::encoded_len(&V::make(0)).ok()
    }

    fn supports(&self, pattern: Pattern, size: usize) -> bool {
        self.message_size()
            .is_some_and(|encoded| supports_typed(pattern, size, encoded))
    }

    fn connect(&self, max_msg: usize) -> Result<Pair, TransportError> {
        let cap = ring_capacity(max_msg.max(64));
        let failed = |e: shm_channel::ChannelError| TransportError::Failed(e.to_string());
        let typed_pair = || typed::pair::<V, _, C>(spsc::channel(cap)?);
        let down = typed_pair().map_err(failed)?;
        let up = typed_pair().map_err(failed)?;
        Ok(Pair::crosswise(down, up, |tx, rx| {
            Typed(RingValues {
                tx,
                rx,
                received: V::make(0),
            })
        }))
    }
}

/// One side of a typed ring transport.
struct RingValues<V, C> {
    tx: typed::Sender<V, Spsc, C>,
    rx: typed::Receiver<V, Spsc, C>,
    received: V,
}

impl<V: Value, C: Codec<V>> ValueLink for RingValues<V, C> {
    type Value = V;

    fn send_value(&mut self, v: V) -> Result<(), TransportError> {
        self.tx.send(v).map_err(|e| match e {
            typed::SendError::Send(e) => send_err(e),
            other => TransportError::Failed(other.to_string()),
        })
    }

    fn recv_value(&mut self) -> Result<V, TransportError> {
        self.rx.recv().map_err(typed_recv_err)
    }

    fn recv_checked(&mut self, check: &mut Checker<'_>) -> Result<(), TransportError> {
        match self.rx.recv_into(&mut self.received) {
            Ok(()) => {
                check.check_value(&self.received);
                Ok(())
            }
            Err(e) => Err(typed_recv_err(e)),
        }
    }
}

/// A typed receive error as the harness's.
fn typed_recv_err(e: typed::RecvError<shm_channel::RecvError>) -> TransportError {
    match e {
        typed::RecvError::Recv(e) => recv_err(e),
        other => TransportError::Failed(other.to_string()),
    }
}

impl<V: Value, C: Codec<V>> Side for RingValues<V, C> {
    fn owned(&self) -> Owned<'_> {
        Owned::Halves(&self.tx, &self.rx)
    }

    fn wake_syscalls(&self) -> u64 {
        self.tx.stats().wake_syscalls + self.rx.stats().wake_syscalls
    }
}

/// Name of `pipe-bincode`, the reference of the typed rows.
pub(crate) const PIPE_BINCODE_NAME: &str = "pipe-bincode";

/// `pipe-bincode`: bincode into a private buffer, length-prefixed, through two pipes.
pub(crate) struct PipeBincode;

/// `pipe-bincode`: the reference for the typed rows.
pub(crate) static PIPE_BINCODE: PipeBincode = PipeBincode;

/// The largest encoded value `pipe-bincode` accepts from its peer.
const MAX_ENCODED: usize = 1 << 20;

fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

impl Transport for PipeBincode {
    fn name(&self) -> &'static str {
        PIPE_BINCODE_NAME
    }

    fn message_size(&self) -> Option<usize> {
        bincode::serde::encode_to_vec(Order::make(0), bincode_config())
            .ok()
            .map(|v| v.len())
    }

    fn supports(&self, pattern: Pattern, size: usize) -> bool {
        self.message_size()
            .is_some_and(|encoded| supports_typed(pattern, size, encoded))
    }

    fn connect(&self, _max_msg: usize) -> Result<Pair, TransportError> {
        let (down, up) = (one_way()?, one_way()?);
        Ok(Pair::crosswise(down, up, |tx, rx| {
            Typed(PipeValues {
                rx,
                tx,
                buf: Vec::new(),
            })
        }))
    }
}

/// One side of `pipe-bincode`.
struct PipeValues {
    rx: OwnedFd,
    tx: OwnedFd,
    /// The encoded value, after its 4-byte length.
    buf: Vec<u8>,
}

/// Descriptors record no owner: the kernel knows who holds them.
impl Side for PipeValues {}

impl ValueLink for PipeValues {
    type Value = Order;

    fn send_value(&mut self, v: Order) -> Result<(), TransportError> {
        self.buf.clear();
        self.buf.extend_from_slice(&[0; 4]);
        bincode::serde::encode_into_std_write(&v, &mut self.buf, bincode_config())
            .map_err(|e| TransportError::Failed(e.to_string()))?;
        let n = (self.buf.len() - 4) as u32;
        self.buf[..4].copy_from_slice(&n.to_le_bytes());
        write_all(&self.tx, &self.buf)
    }

    fn recv_value(&mut self) -> Result<Order, TransportError> {
        let mut len = [0u8; 4];
        read_exact(&self.rx, &mut len)?;
        let n = u32::from_le_bytes(len) as usize;
        if n > MAX_ENCODED {
            return Err(TransportError::BadLength {
                expected: MAX_ENCODED,
                got: n,
            });
        }
        self.buf.resize(n, 0);
        read_exact(&self.rx, &mut self.buf)?;
        bincode::serde::decode_from_slice(&self.buf, bincode_config())
            .map(|(v, _)| v)
            .map_err(|e| TransportError::Failed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_sizes_are_known() {
        let typed: [&dyn Transport; 4] = [
            &PIPE_BINCODE,
            &SHM_TYPED_BINCODE,
            &SHM_TYPED_POSTCARD,
            &SHM_TYPED_PLAIN,
        ];
        for t in typed {
            let size = t.message_size().unwrap_or(0);
            assert!(size > 0, "{}", t.name());
            assert!(t.supports(Pattern::TypedStream, size), "{}", t.name());
            assert!(!t.supports(Pattern::Stream, size), "{}", t.name());
            assert!(
                !t.supports(Pattern::TypedPingPong, size + 1),
                "{}",
                t.name()
            );
        }
        assert_eq!(SHM_TYPED_PLAIN.message_size(), Some(64));
        assert_eq!(
            SHM_TYPED_BINCODE.message_size(),
            PIPE_BINCODE.message_size()
        );
    }
}
