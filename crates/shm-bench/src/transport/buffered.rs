//! The endpoint of every transport that moves a message through a private buffer (pipes,
//! sockets, the byte streams, the copying rings, the byte-ring peers): the sender writes the
//! message into its buffer and hands the buffer to the transport, the receiver has the
//! transport fill its buffer and checks it there.
//!
//! Such a transport implements only [`ByteLink`] (write one message, read one message);
//! [`Buffered`] makes it an [`Endpoint`], with `send`, `recv` and `echo` written once.

use shm_core::liveness::ProcessIdentity;

use super::{check_fits, Checker, Endpoint, MsgIn, MsgOut, Outgoing, Side, TransportError};

/// A transport's two one-way links of one side, moving whole messages from and into
/// private memory.
pub(crate) trait ByteLink: Side {
    /// Sends `msg` to the peer, all of it.
    fn write_msg(&mut self, msg: &[u8]) -> Result<(), TransportError>;

    /// Receives the peer's next message into `buf`, whose length is the message's. A link
    /// whose library hands out a fresh buffer per message (ipc-channel) may put that
    /// buffer in `buf` instead, of the same length, and so copies nothing more than the
    /// library does.
    fn read_msg(&mut self, buf: &mut Vec<u8>) -> Result<(), TransportError>;
}

/// An endpoint over a [`ByteLink`], with a private message buffer.
pub(crate) struct Buffered<L> {
    link: L,
    /// The message, its length the current message size (at most `max`).
    buf: Vec<u8>,
    /// The largest message the endpoint was built for.
    max: usize,
    /// `buf` holds a message this side wrote, of its length: the next one differs only in
    /// its stamps.
    written: bool,
}

impl<L: ByteLink> Buffered<L> {
    /// An endpoint for messages of up to `max_msg` bytes.
    pub(crate) fn new(link: L, max_msg: usize) -> Buffered<L> {
        Buffered {
            link,
            buf: Vec::with_capacity(max_msg),
            max: max_msg,
            written: false,
        }
    }

    /// Sizes the buffer for a `len`-byte message (one comparison after the first message
    /// of a scenario: all have one size).
    #[inline(always)]
    fn size_for(&mut self, len: usize) -> Result<(), TransportError> {
        if self.buf.len() != len {
            check_fits(len, self.max)?;
            self.buf.resize(len, 0);
            self.written = false;
        }
        Ok(())
    }

    /// Writes `msg` into the buffer (its stamps alone over the message this side wrote
    /// before) and sends it.
    #[inline(always)]
    fn send_one(&mut self, msg: &Outgoing<'_>) -> Result<(), TransportError> {
        self.size_for(msg.size())?;
        let mut out = MsgOut::private(&mut self.buf);
        if self.written {
            msg.rewrite_in(&mut out);
        } else {
            msg.write_to(&mut out);
            self.written = true;
        }
        self.link.write_msg(&self.buf)
    }

    /// Receives the next message into the buffer and checks it there.
    #[inline(always)]
    fn recv_checked(&mut self, check: &mut Checker<'_>) -> Result<(), TransportError> {
        self.size_for(check.size())?;
        // What arrives replaces what this side wrote.
        self.written = false;
        self.link.read_msg(&mut self.buf)?;
        check.check(&MsgIn::private(&self.buf));
        Ok(())
    }
}

/// `send_batch` and `recv_batch` are the defaults' loops with the per-message work inlined
/// into them (the defaults call `send`/`recv`, which the compiler keeps out of line).
impl<L: ByteLink> Endpoint for Buffered<L> {
    fn send(&mut self, msg: &Outgoing<'_>) -> Result<(), TransportError> {
        self.send_one(msg)
    }

    fn recv(&mut self, check: &mut Checker<'_>) -> Result<(), TransportError> {
        self.recv_checked(check)
    }

    fn send_batch(&mut self, msg: &mut Outgoing<'_>, n: u64) -> Result<(), TransportError> {
        for _ in 0..n {
            self.send_one(msg)?;
            msg.advance();
        }
        Ok(())
    }

    fn recv_batch(&mut self, check: &mut Checker<'_>, n: u64) -> Result<(), TransportError> {
        for _ in 0..n {
            self.recv_checked(check)?;
            if check.first_bad.is_some() {
                break;
            }
        }
        Ok(())
    }

    fn echo(&mut self, check: &mut Checker<'_>) -> Result<(), TransportError> {
        self.recv_checked(check)?;
        self.link.write_msg(&self.buf)
    }

    fn hand_over(&self, child: ProcessIdentity) -> Result<(), TransportError> {
        self.link.owned().hand_over(child)
    }

    fn adopt(&self) -> Result<(), TransportError> {
        self.link.owned().adopt()
    }

    fn wake_syscalls(&self) -> u64 {
        self.link.wake_syscalls()
    }
}
