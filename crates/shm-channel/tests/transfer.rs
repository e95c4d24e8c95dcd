//! Rebuilding endpoints from a memfd and a ticket: every bad input is a typed error.
//! (Across a real `exec`: shm-fork's `tests/exec.rs`.)

use shm_channel::{Builder, Receiver, Sender};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::Ordering;

use shm_channel::transfer::{Portable, Ticket, Transfer, TransferError};
use shm_channel::Endpoint;
use shm_channel::{broadcast, mpsc, spsc, ChannelError};
use shm_core::{Region, RegionError, SharedMemory};

fn ticket(text: &str) -> Ticket {
    text.parse().unwrap()
}

/// A new descriptor of the memfd `transfer` carries.
fn memfd(transfer: &Transfer) -> OwnedFd {
    transfer.fds()[0].try_clone_to_owned().unwrap()
}

#[test]
fn tickets_round_trip_and_garbage_is_refused() {
    let t = ticket("mpsc.sender.12");
    // The flavor, side and slot parsed are what it prints.
    assert_eq!(t.flavor(), "mpsc");
    assert_eq!(t.to_string(), "mpsc.sender.12");
    assert_eq!(ticket("spsc.receiver.0").to_string(), "spsc.receiver.0");
    for bad in [
        "",
        "spsc",
        "spsc.sender",
        "spsc.sender.0.0",
        "tcp.sender.0",
        "spsc.writer.0",
        "spsc.sender.-1",
        "spsc.sender.99999",
        "spsc.sender.+1",
        "spsc.sender. 1",
    ] {
        assert!(
            matches!(bad.parse::<Ticket>(), Err(TransferError::BadTicket { .. })),
            "{bad:?} parsed"
        );
    }
}

#[test]
fn anonymous_channels_do_not_travel() {
    let (tx, rx) = spsc::channel(4096).unwrap();
    assert!(matches!(
        tx.into_transfer(),
        Err(TransferError::NotFdBacked)
    ));
    assert!(matches!(
        rx.into_transfer(),
        Err(TransferError::NotFdBacked)
    ));
}

#[test]
fn broadcast_receivers_travel_with_their_slot() {
    let (tx, first) = Builder::<broadcast::Broadcast>::new(4096)
        .create_memfd()
        .unwrap();
    let second = first.try_clone().unwrap();
    let transfer = second.into_transfer().unwrap();
    assert_eq!(transfer.ticket().to_string(), "broadcast.receiver.1");
    let transfer = tx.into_transfer().unwrap();
    assert_eq!(transfer.ticket().to_string(), "broadcast.sender.0");
}

#[test]
fn a_broadcast_receiver_slot_out_of_range_or_a_garbage_cursor_is_refused() {
    use shm_testkit::layout::broadcast::{reader, READER_CURSOR};
    let (_tx, rx) = Builder::<broadcast::Broadcast>::new(4096)
        .create_memfd()
        .unwrap();
    let transfer = rx.into_transfer().unwrap();
    assert!(matches!(
        Receiver::<broadcast::Broadcast>::from_parts(
            memfd(&transfer),
            ticket("broadcast.receiver.16")
        ),
        Err(TransferError::Channel(ChannelError::NoSuchSlot { .. }))
    ));
    let region = Region::options(0).attach_memfd(memfd(&transfer)).unwrap();
    let cursor = region.atomic_u64(reader(0) + READER_CURSOR).unwrap();
    for garbage in [8u64, 1 << 40] {
        cursor.store(garbage, Ordering::SeqCst);
        assert!(
            matches!(
                Receiver::<broadcast::Broadcast>::from_parts(memfd(&transfer), transfer.ticket()),
                Err(TransferError::Channel(ChannelError::Corrupted(_)))
            ),
            "cursor {garbage:#x} accepted"
        );
    }
}

#[test]
fn a_copy_handed_away_cannot_travel() {
    let (tx, _rx) = Builder::<spsc::Spsc>::new(4096).create_memfd().unwrap();
    // Hand it to a process that is not us (pid 1 is alive and never ours).
    let init = shm_core::liveness::ProcessIdentity::of_pid(1).unwrap();
    tx.hand_over(init).unwrap();
    assert!(matches!(tx.into_transfer(), Err(TransferError::NotOwner)));
}

#[test]
fn wrong_flavor_or_side_is_refused() {
    let (tx, _rx) = Builder::<spsc::Spsc>::new(4096).create_memfd().unwrap();
    let transfer = tx.into_transfer().unwrap();
    assert!(matches!(
        Receiver::<spsc::Spsc>::from_parts(memfd(&transfer), transfer.ticket()),
        Err(TransferError::WrongEndpoint { .. })
    ));
    // A ticket that lies about the flavor: the header says otherwise.
    assert!(matches!(
        Sender::<mpsc::Mpsc>::from_parts(memfd(&transfer), ticket("mpsc.sender.0")),
        Err(TransferError::Channel(ChannelError::Header(_)))
    ));
    // A slot the flavor does not have.
    assert!(matches!(
        Sender::<spsc::Spsc>::from_parts(memfd(&transfer), ticket("spsc.sender.1")),
        Err(TransferError::Channel(ChannelError::NoSuchSlot { .. }))
    ));
}

#[test]
fn mpsc_slot_out_of_range_is_refused() {
    let (tx, _rx) = Builder::<mpsc::Mpsc>::new(4096).create_memfd().unwrap();
    let transfer = tx.into_transfer().unwrap();
    let fd = memfd(&transfer);
    assert!(matches!(
        Sender::<mpsc::Mpsc>::from_parts(fd, ticket("mpsc.sender.9999")),
        Err(TransferError::Channel(ChannelError::NoSuchSlot { .. }))
    ));
}

#[test]
fn descriptors_that_are_not_sealed_memfds_are_refused() {
    let file = std::fs::File::open("/proc/self/stat").unwrap();
    assert!(matches!(
        Receiver::<spsc::Spsc>::from_parts(file.into(), ticket("spsc.receiver.0")),
        Err(TransferError::Channel(ChannelError::Region(
            RegionError::Descriptor(_)
        )))
    ));
    // SAFETY: memfd_create takes a C string and flags; the result is checked.
    let raw = unsafe { libc::memfd_create(c"unsealed".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(raw >= 0);
    // SAFETY: `raw` is a fresh descriptor nobody else owns.
    let unsealed = unsafe { OwnedFd::from_raw_fd(raw) };
    assert!(matches!(
        Receiver::<spsc::Spsc>::from_parts(unsealed, ticket("spsc.receiver.0")),
        Err(TransferError::Channel(ChannelError::Region(
            RegionError::NotSealed { .. }
        )))
    ));
}

#[test]
fn a_corrupt_header_is_refused() {
    let (tx, _rx) = Builder::<spsc::Spsc>::new(4096).create_memfd().unwrap();
    let transfer = tx.into_transfer().unwrap();
    let fd = memfd(&transfer);
    // Scribble over the magic through a second mapping of the same memfd.
    let region = Region::options(0).attach_memfd(memfd(&transfer)).unwrap();
    region
        .atomic_u64(0)
        .unwrap()
        .store(0xdead_beef, Ordering::SeqCst);
    assert!(matches!(
        Sender::<spsc::Spsc>::from_parts(fd, transfer.ticket()),
        Err(TransferError::Channel(ChannelError::Header(_)))
    ));
}

#[test]
fn a_memfd_of_random_bytes_is_refused() {
    let region = Region::memfd("garbage", 1 << 16).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for offset in (0..region.len()).step_by(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // Relaxed: garbage written by this thread alone, read after the memfd is passed
        // (no other thread or process touches it meanwhile).
        region
            .atomic_u64(offset)
            .unwrap()
            .store(state, Ordering::Relaxed);
    }
    let fd = region.fd().unwrap().try_clone_to_owned().unwrap();
    assert!(matches!(
        Receiver::<spsc::Spsc>::from_parts(fd, ticket("spsc.receiver.0")),
        Err(TransferError::Channel(_))
    ));
}
