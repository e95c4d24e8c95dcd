//! Where the SPSC writer places large frames: at the start of the data area when the ring
//! is empty (so a round trip of large messages reuses memory still in the caches), after
//! the previous frame otherwise; either way every byte arrives intact.

use shm_channel::spsc;
use shm_channel::{Receiver, Sender};

const CAPACITY: usize = 256 << 10;
const LARGE: usize = 100 << 10;

/// Reserves, fills with `tag` and commits a `len`-byte message; returns where its
/// payload went.
fn send_tagged(tx: &mut Sender<spsc::Spsc>, len: usize, tag: u8) -> usize {
    let mut grant = tx.reserve(len).expect("room");
    let ptr = grant.as_volatile_slice().ptr_guard_mut().as_ptr();
    // SAFETY: the grant's bytes are valid for writes of `len` bytes until commit.
    unsafe { std::ptr::write_bytes(ptr, tag, len) };
    grant.commit(len).unwrap();
    ptr as usize
}

fn recv_checked(rx: &mut Receiver<spsc::Spsc>, len: usize, tag: u8) {
    let mut buf = vec![0u8; len];
    assert_eq!(rx.recv_into(&mut buf).expect("a message"), len);
    assert!(buf.iter().all(|&b| b == tag), "message {tag} corrupted");
}

#[test]
fn large_frames_into_an_empty_ring_start_over_at_the_beginning() {
    let (mut tx, mut rx) = spsc::channel(CAPACITY).expect("channel");
    let first = send_tagged(&mut tx, LARGE, 1);
    recv_checked(&mut rx, LARGE, 1);
    for tag in 2..40u8 {
        let at = send_tagged(&mut tx, LARGE, tag);
        assert_eq!(
            at, first,
            "message {tag} did not reuse the start of the ring"
        );
        recv_checked(&mut rx, LARGE, tag);
    }
}

#[test]
fn large_frames_behind_unread_ones_follow_them() {
    let (mut tx, mut rx) = spsc::channel(CAPACITY).expect("channel");
    let a = send_tagged(&mut tx, LARGE, 1);
    let b = send_tagged(&mut tx, LARGE, 2);
    assert!(b > a, "the second frame goes after the unread first one");
    recv_checked(&mut rx, LARGE, 1);
    recv_checked(&mut rx, LARGE, 2);
}

#[test]
fn small_frames_keep_walking_the_ring() {
    let (mut tx, mut rx) = spsc::channel(CAPACITY).expect("channel");
    let a = send_tagged(&mut tx, 4096, 1);
    recv_checked(&mut rx, 4096, 1);
    let b = send_tagged(&mut tx, 4096, 2);
    assert_eq!(
        b,
        a + 4096 + 8,
        "a small frame goes right after the last one"
    );
    recv_checked(&mut rx, 4096, 2);
}
