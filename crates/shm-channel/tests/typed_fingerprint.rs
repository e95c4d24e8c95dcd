//! Typed ends check their type: the first typed end of a channel records its fingerprint in
//! the channel's type line, every later one is checked against it — made from bytes,
//! attached, received through `transfer`, over every flavor — and a mismatch is a
//! `TypeMismatch` naming both types. Byte ends stay untyped. Garbage in the type line (a
//! hostile peer) is a mismatch or a match, never a panic, and its description stays bounded.
//! Across `exec`, the rendezvous and `fork`: `crates/shm-fork/tests/typed_fingerprint.rs`.

use shm_channel::codec::{Bincode, Plain, Postcard, Schema};
use shm_channel::transfer::Portable;
use shm_channel::typed::{self, Fingerprint, TypeMismatch};
use shm_channel::{broadcast, bulk, mpsc, spsc, Builder, ChannelError, Endpoint, Flavor};
use std::os::fd::OwnedFd;

use shm_channel::transfer::{Ticket, Transfer, TransferError};
use shm_channel::{Receiver, Sender};
use shm_testkit::garbage::values;
use shm_testkit::layout::{self, types};
use shm_testkit::Words;

mod support;
use support::{heap_channel, Mem};

/// The mismatch a typed receiver of `T` through `C` gets on `rx`.
fn refused<T, C: shm_channel::codec::Codec<T>, F: Flavor>(rx: Receiver<F>) -> TypeMismatch {
    match typed::Receiver::<T, F, C>::try_from(rx) {
        Ok(_) => panic!("{} taken as {}", F::NAME, std::any::type_name::<T>()),
        Err(mismatch) => mismatch,
    }
}

fn string_channel_refuses_other_types<F: Flavor>(builder: Builder<F>) {
    let (tx, rx, _heap) = heap_channel(builder);
    let mut tx = typed::Sender::<String, F, Bincode>::try_from(tx).unwrap();
    let memory = rx.memory().clone();
    let err = refused::<u64, Bincode, F>(rx);
    assert_eq!(err.expected(), &Fingerprint::of::<u64, Bincode>());
    assert_eq!(err.found(), &Fingerprint::of::<String, Bincode>());
    assert_eq!(
        err.to_string(),
        "the channel carries `alloc::string::String` by bincode2, not `u64` by bincode2",
        "{}",
        F::NAME
    );
    // The refused end was dropped (closing the receiving side, as any drop does); a new
    // receiver attaches, and the matching type works.
    let rx = Receiver::<F>::attach(memory.clone()).unwrap();
    let err = refused::<(u64, u64, u64), Bincode, F>(rx);
    assert_eq!(err.found().type_name(), "alloc::string::String");
    let rx = Receiver::<F>::attach(memory.clone()).unwrap();
    let mut rx = typed::Receiver::<String, F, Bincode>::try_from(rx).unwrap();
    tx.send("hi".to_string()).unwrap();
    assert_eq!(rx.recv().unwrap(), "hi");
    // Byte ends stay untyped: they attach and read the frames as they are.
    assert_eq!(
        rx.type_fingerprint(),
        Some(Fingerprint::of::<String, Bincode>())
    );
}

#[test]
fn a_typed_channel_refuses_ends_of_another_type_over_every_flavor() {
    string_channel_refuses_other_types(Builder::<spsc::Spsc>::new(4096));
    string_channel_refuses_other_types(Builder::<mpsc::Mpsc>::new(4096));
    string_channel_refuses_other_types(Builder::<broadcast::Broadcast>::new(4096));
}

#[test]
fn attached_typed_ends_are_checked() {
    let (tx, rx) = typed::channel::<String>(4096).unwrap();
    drop(tx);
    let memory = rx.memory().clone();
    let sender = Sender::<spsc::Spsc>::attach(memory.clone()).unwrap();
    let err = typed::Sender::<u64>::try_from(sender).unwrap_err();
    assert_eq!(err.found().type_name(), "alloc::string::String");
    let sender = Sender::<spsc::Spsc>::attach(memory).unwrap();
    let mut tx = typed::Sender::<String>::try_from(sender).unwrap();
    tx.send("again".into()).unwrap();
    let mut rx = rx;
    assert_eq!(rx.recv().unwrap(), "again");
}

#[test]
fn codec_layout_and_schema_are_part_of_the_type() {
    let (tx, rx) = typed::pair::<[u32; 2], _, Plain>(spsc::channel(4096).unwrap()).unwrap();
    let rx = shm_channel::Receiver::from(rx);
    let memory = rx.memory().clone();
    // Same type, another codec.
    let err = refused::<[u32; 2], Postcard, _>(rx);
    assert_eq!(
        err.found().to_string(),
        "`[u32; 2]` by plain (8 bytes, align 4)"
    );
    let rx = Receiver::<spsc::Spsc>::attach(memory.clone()).unwrap();
    // A type of the same size under another name.
    let err = refused::<u64, Plain, _>(rx);
    assert_eq!(
        err.expected().to_string(),
        "`u64` by plain (8 bytes, align 8)"
    );
    drop(tx);
    // A schema id: another id is refused, another name with the same id is not.
    let (tx, rx) =
        typed::pair::<(u32, String), _, Schema<Bincode, 3>>(spsc::channel(4096).unwrap()).unwrap();
    let rx = shm_channel::Receiver::from(rx);
    let memory = rx.memory().clone();
    let err = refused::<(u32, String), Schema<Bincode, 4>, _>(rx);
    assert!(err.to_string().contains("schema 3"), "{err}");
    let rx = Receiver::<spsc::Spsc>::attach(memory).unwrap();
    let mut rx = typed::Receiver::<(u32, String), _, Schema<Bincode, 3>>::try_from(rx).unwrap();
    let mut tx = tx;
    tx.send((1, "one".into())).unwrap();
    assert_eq!(rx.recv().unwrap(), (1, "one".to_string()));
}

#[test]
fn bulk_and_typed_ends_refuse_each_other() {
    let (tx, rx) = spsc::channel(4096).unwrap();
    let _tx = bulk::Sender::<u64, _, Plain>::try_from(tx).unwrap();
    let err = typed::Receiver::<u64, _, Plain>::try_from(rx).unwrap_err();
    assert_eq!(err.found().type_name(), "[u64]");
    // The batch format is part of what a bulk end records: an end of a build that frames
    // batches otherwise is refused, by name.
    assert!(
        err.found().to_string().contains("plain+batch2"),
        "{}",
        err.found()
    );
    let (tx, rx) = typed::channel::<u64>(4096).unwrap();
    let err = bulk::Receiver::<u64>::try_from(shm_channel::Receiver::from(rx)).unwrap_err();
    assert_eq!(err.found().type_name(), "u64");
    drop(tx);
}

#[test]
fn a_typed_end_received_through_transfer_is_checked() {
    /// The descriptors and ticket of `rx`, as another process would receive them (this
    /// process takes its own transfer back: it names this process already).
    /// The transfer (kept alive: dropping it would close the end, which still names this
    /// process) and what it carries.
    fn passed<T>(rx: typed::Receiver<T>) -> (Transfer, Vec<OwnedFd>, Ticket)
    where
        typed::DefaultCodec: shm_channel::codec::Codec<T>,
    {
        let transfer = rx.into_transfer().unwrap();
        let fds = transfer
            .fds()
            .iter()
            .map(|fd| fd.try_clone_to_owned().unwrap())
            .collect();
        let ticket = transfer.ticket();
        (transfer, fds, ticket)
    }
    let (mut tx, rx): typed::Pair<String> =
        typed::pair(Builder::<spsc::Spsc>::new(4096).create_memfd().unwrap()).unwrap();
    let (_transfer, fds, ticket) = passed(rx);
    match typed::Receiver::<u64>::from_fds(fds, ticket) {
        Err(TransferError::Type(mismatch)) => {
            assert_eq!(mismatch.found().type_name(), "alloc::string::String")
        }
        other => panic!("{other:?}"),
    }
    // The refused end was dropped: the sender learns it at once.
    assert!(matches!(
        tx.send("lost".into()),
        Err(typed::SendError::Send(
            shm_channel::SendError::Disconnected(_)
        ))
    ));
    let (mut tx, rx): typed::Pair<String> =
        typed::pair(Builder::<spsc::Spsc>::new(4096).create_memfd().unwrap()).unwrap();
    let (_transfer, fds, ticket) = passed(rx);
    let mut rx = typed::Receiver::<String>::from_fds(fds, ticket).unwrap();
    tx.send("through a memfd".into()).unwrap();
    assert_eq!(rx.recv().unwrap(), "through a memfd");
}

#[test]
fn byte_ends_are_untyped_and_channel_errors_carry_the_mismatch() {
    let (tx, rx) = spsc::channel(4096).unwrap();
    assert_eq!(tx.type_fingerprint(), None);
    let tx = typed::Sender::<u8>::try_from(tx).unwrap();
    assert_eq!(rx.type_fingerprint().unwrap().type_name(), "u8");
    let err = ChannelError::from(typed::Receiver::<i8>::try_from(rx).unwrap_err());
    assert!(err.to_string().contains("not `i8`"), "{err}");
    drop(tx);
}

/// Every word of the type line × the garbage set, written before a typed end is made of the
/// channel: the end is made (the garbage named our type, or nothing) or refused with a
/// mismatch whose description is bounded; never a panic.
fn garbage_in_the_type_line<F: Flavor>(builder: impl Fn() -> Builder<F>, types_at: usize) {
    let words = [
        types::words(types_at).to_vec(),
        vec![
            layout::Word::u64("type size", types_at + types::SIZE),
            layout::Word::u64("type name", types_at + types::NAME),
            layout::Word::u64("type name end", types_at + types::NAME + 184),
            layout::Word::u64("type codec", types_at + types::CODEC),
        ],
    ]
    .concat();
    let (mut made, mut refused_count) = (0, 0);
    for typed_first in [false, true] {
        for word in &words {
            for garbage in values(4096) {
                let (tx, rx, heap) = heap_channel(builder());
                let tx = match typed_first {
                    true => Some(typed::Sender::<String, F, Bincode>::try_from(tx).unwrap()),
                    false => {
                        drop(tx);
                        None
                    }
                };
                Mem(&*heap).poke(*word, garbage);
                let said = rx.type_fingerprint().map(|f| f.to_string());
                assert!(said.is_none_or(|s| s.len() < 1024), "{word:?} {garbage:?}");
                match typed::Receiver::<String, F, Bincode>::try_from(rx) {
                    Ok(_) => made += 1,
                    Err(mismatch) => {
                        assert!(mismatch.to_string().len() < 2048, "{word:?} {garbage:?}");
                        refused_count += 1;
                    }
                }
                drop(tx);
            }
        }
    }
    assert!(
        made > 0 && refused_count > 0,
        "{made} made, {refused_count} refused"
    );
}

#[test]
fn garbage_in_the_type_line_is_a_mismatch_or_a_match_never_a_panic() {
    garbage_in_the_type_line(|| Builder::<spsc::Spsc>::new(4096), layout::spsc::TYPES);
    garbage_in_the_type_line(|| Builder::<mpsc::Mpsc>::new(4096), layout::mpsc::TYPES);
    garbage_in_the_type_line(
        || Builder::<broadcast::Broadcast>::new(4096),
        layout::broadcast::TYPES,
    );
}

#[test]
fn sender_side_endpoints_check_too() {
    let (tx, rx) =
        typed::pair::<u32, _, typed::DefaultCodec>(mpsc::channel(4096).unwrap()).unwrap();
    let other = Sender::<mpsc::Mpsc>::attach(rx.memory().clone()).unwrap();
    let err = typed::Sender::<u64, mpsc::Mpsc, Bincode>::try_from(other).unwrap_err();
    assert_eq!(err.found().type_name(), "u32");
    let clone = tx.try_clone().unwrap();
    assert_eq!(
        clone.type_fingerprint(),
        Some(Fingerprint::of::<u32, Bincode>())
    );
}
