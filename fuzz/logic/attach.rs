//! Target `attach`: attaching to arbitrary bytes.

use std::time::Duration;

use shm_channel::spsc::Spsc;
use shm_channel::ChannelError;
use shm_channel::Endpoint;
use shm_channel::{Builder, Receiver, Sender};
use shm_core::SharedMemory;
use shm_testkit::layout::spsc::DATA;

use super::{check_received, poke_u64, timed, Input, MakeMemory};

/// Attaches a sender and a receiver to memory filled from `data`, then drives them.
///
/// `data[0]`: bits 4..7 pick the capacity (16 << n); bits 0..1 pick how the input lands:
/// 0 raw bytes from offset 0 (header included); 1 a valid channel, then the input over
/// everything after the header; 2 and 3 a valid channel, then the input read as sparse
/// `(u16 offset, u64 value)` patches.
pub fn attach(data: &[u8], make: MakeMemory) {
    let mut input = Input(data);
    let mode = input.u8();
    let capacity = 16usize << ((mode >> 4) & 7);
    let memory = make(DATA + capacity);
    match mode & 3 {
        0 => {
            let n = input.0.len().min(memory.len());
            memory.write_bytes(0, &input.0[..n]).unwrap();
        }
        1 => {
            drop(
                Builder::<Spsc>::new(capacity)
                    .create_in(memory.clone())
                    .unwrap(),
            );
            let n = input.0.len().min(memory.len() - 64);
            memory.write_bytes(64, &input.0[..n]).unwrap();
        }
        _ => {
            drop(
                Builder::<Spsc>::new(capacity)
                    .create_in(memory.clone())
                    .unwrap(),
            );
            while !input.is_empty() {
                let offset = usize::from(input.u16()) % memory.len();
                poke_u64(&*memory, offset, input.u64());
            }
        }
    }
    let tx = timed("Sender::<Spsc>::attach", || {
        Sender::<Spsc>::attach(memory.clone())
    });
    let rx = timed("Receiver::<Spsc>::attach", || {
        Receiver::<Spsc>::attach(memory.clone())
    });
    check_attach(&tx, &*memory);
    check_attach(&rx, &*memory);
    drive_attached(tx.ok(), rx.ok());
}

/// An attach that succeeded found a channel that fits the mapping.
fn check_attach<E: Endpoint>(result: &Result<E, ChannelError>, memory: &dyn SharedMemory) {
    if let Ok(endpoint) = result {
        let capacity = endpoint.capacity();
        assert!(capacity.is_power_of_two() && capacity >= 16);
        assert!(DATA + capacity <= memory.len());
    }
}

/// A few operations on whatever attached.
fn drive_attached(mut tx: Option<Sender<Spsc>>, mut rx: Option<Receiver<Spsc>>) {
    let tiny = Duration::from_micros(200);
    for round in 0..3usize {
        if let Some(tx) = tx.as_mut() {
            let len = [0, 1, 8, tx.capacity() / 2, tx.max_message_len()][round % 5];
            let msg = vec![0x5a; len];
            let _ = timed("try_send", || tx.try_send(&msg));
            let _ = timed("send_timeout", || tx.send_timeout(b"attached", tiny));
            if let Ok(mut grant) = timed("try_reserve", || tx.try_reserve(24)) {
                let _ = grant.write_at(0, &[7; 24]);
                assert!(grant.commit(17).is_ok(), "a commit within the grant");
            }
        }
        if let Some(rx) = rx.as_mut() {
            let capacity = rx.capacity();
            let got = timed("try_recv", || rx.try_recv());
            check_received(&got, capacity);
            let got = timed("recv_timeout", || rx.recv_timeout(tiny));
            check_received(&got, capacity);
            if let Ok(grant) = timed("try_read", || rx.try_read()) {
                let mut buf = [0u8; 16];
                let _ = grant.read_at(0, &mut buf[..grant.len().min(16)]);
            }
        }
    }
}
