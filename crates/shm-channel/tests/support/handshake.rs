//! What the handshake tests share (`handshake.rs`, `handshake_stress.rs`): channels with
//! parked endpoints and a chosen handshake, whether membarrier is usable here, the exit
//! codes of forked children and the sequence-numbered messages they exchange.

use std::time::Duration;

use shm_channel::{Builder, Flavor, Receiver, Sender};
use shm_core::notify::{register_process, Handshake, WaitStrategy};

/// The wait after a bounded one ran out, and every other wait: only a hang exceeds it.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Exit codes of the children.
pub const CHILD_OK: i32 = 0;
pub const CHILD_WRONG_HANDSHAKE: i32 = 2;
pub const CHILD_PEER_GONE: i32 = 3;
pub const CHILD_OUT_OF_ORDER: i32 = 4;
pub const CHILD_NOT_ADOPTED: i32 = 5;

/// Whether this process can take part in the membarrier handshake; says so if not.
pub fn membarrier_usable() -> bool {
    match register_process() {
        Ok(()) => true,
        Err(err) => {
            eprintln!("membarrier handshake unavailable here ({err}): not tested");
            false
        }
    }
}

/// A channel of flavor `F` with `capacity`, parked endpoints and the handshake given (or
/// the default).
pub fn channel<F: Flavor>(
    capacity: usize,
    handshake: Option<Handshake>,
) -> (Sender<F>, Receiver<F>) {
    let builder = Builder::<F>::new(capacity).wait_strategy(WaitStrategy::Park);
    let builder = match handshake {
        Some(handshake) => builder.handshake(handshake),
        None => builder,
    };
    builder.create().expect("create")
}

/// A message: its sequence number, and whether its sender had to wait for the message it
/// answers (its `try_*` found nothing: it went to sleep, or was about to).
pub fn encode(seq: u64, waited: bool) -> [u8; 16] {
    let mut msg = [0u8; 16];
    msg[..8].copy_from_slice(&seq.to_le_bytes());
    msg[8] = u8::from(waited);
    msg
}

/// The sequence number and the wait flag of a message made by [`encode`].
pub fn decode(msg: &[u8]) -> Option<(u64, bool)> {
    let seq = u64::from_le_bytes(msg.get(..8)?.try_into().ok()?);
    Some((seq, *msg.get(8)? != 0))
}
