//! Request/response pairs: replies matched to their requests (in order, after a timed-out
//! call, pipelined), a dead peer is `PeerDied` on either side, the ends travel as
//! descriptors under one ticket, and a client of other types is refused. Across `exec` and
//! the rendezvous: shm-fork's `tests/rpc.rs`; many clients in separate processes:
//! `examples/service.rs`.

use std::time::Duration;

use shm_channel::codec::{Plain, Postcard};
use shm_channel::rpc::{self, Client, RpcError, Server};
use shm_channel::transfer::{FdKind, Portable, Ticket, TransferError};
use shm_channel::{Endpoint, TrySendError};
use shm_core::liveness::ProcessIdentity;
use shm_testkit::{fork_child, fork_lock};

#[test]
fn every_call_gets_its_own_reply() {
    let (mut client, mut server) = rpc::pair::<(u32, String), String>(1 << 12).unwrap();
    let service = std::thread::spawn(move || server.serve(|(n, text)| format!("{text}{n}")));
    for n in 0..10_000 {
        assert_eq!(client.call((n, "n=".into())).unwrap(), format!("n={n}"));
    }
    drop(client);
    service.join().unwrap().unwrap();
}

#[test]
fn plain_and_postcard_bodies_travel_behind_the_id() {
    let (mut client, mut server) = rpc::pair_with::<[u64; 2], u64, Plain>(1 << 12).unwrap();
    let service = std::thread::spawn(move || server.serve(|[a, b]| a * b));
    assert_eq!(client.call([6, 7]).unwrap(), 42);
    drop(client);
    service.join().unwrap().unwrap();
    let (mut client, mut server) = rpc::pair_with::<Vec<u8>, usize, Postcard>(1 << 12).unwrap();
    let service = std::thread::spawn(move || server.serve(|bytes| bytes.len()));
    assert_eq!(client.call(vec![1; 300]).unwrap(), 300);
    drop(client);
    service.join().unwrap().unwrap();
}

#[test]
fn a_late_reply_is_dropped_and_the_next_call_gets_its_own() {
    let (mut client, mut server) = rpc::pair::<u64, u64>(1 << 12).unwrap();
    let service = std::thread::spawn(move || {
        server.serve(|n| {
            if n == 1 {
                std::thread::sleep(Duration::from_millis(200));
            }
            n * 10
        })
    });
    assert!(matches!(
        client.call_timeout(1, Duration::from_millis(5)),
        Err(RpcError::Timeout)
    ));
    // The reply to 1 comes first, and is not taken for the reply to 2.
    assert_eq!(client.call(2).unwrap(), 20);
    drop(client);
    service.join().unwrap().unwrap();
}

#[test]
fn pipelined_requests_are_answered_in_order_with_their_ids() {
    let (mut client, mut server) = rpc::pair::<u64, u64>(256).unwrap();
    let service = std::thread::spawn(move || server.serve(|n| n + 1));
    let mut sent = Vec::new();
    let mut got = Vec::new();
    for n in 0..1000u64 {
        let mut request = n;
        loop {
            match client.try_send(request) {
                Ok(id) => {
                    sent.push((id, n));
                    break;
                }
                Err(TrySendError::Full(back)) => {
                    request = back;
                    got.push(client.recv().unwrap());
                }
                Err(TrySendError::Send(err)) => panic!("{err}"),
            }
        }
    }
    while got.len() < sent.len() {
        got.push(client.recv().unwrap());
    }
    let expected: Vec<(u64, u64)> = sent.iter().map(|&(id, n)| (id, n + 1)).collect();
    assert_eq!(got, expected);
    drop(client);
    service.join().unwrap().unwrap();
}

/// A child that takes `end` over and runs `body` with it, then hangs (to be killed); the
/// parent hands the end over to it, as shm-fork's `fork_with` does, and drops its copy.
fn child_with<E>(
    end: E,
    endpoints: impl Fn(&E) -> [&dyn Endpoint; 2],
    body: fn(E),
) -> shm_testkit::TestChild {
    let mut end = Some(end);
    let lock = fork_lock();
    let child = fork_child(&lock, || {
        let end = end.take().unwrap();
        for endpoint in endpoints(&end) {
            if endpoint.adopt().is_err() {
                return 1;
            }
        }
        body(end);
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let identity = ProcessIdentity::of_pid(child.pid()).unwrap();
    let end = end.take().unwrap();
    for endpoint in endpoints(&end) {
        // Refused only if the child adopted it first: it is the child's either way.
        let _ = endpoint.hand_over(identity);
    }
    drop(end);
    child
}

#[test]
fn a_killed_server_is_peer_died_to_a_waiting_client() {
    let (mut client, server) = rpc::pair::<u64, u64>(1 << 12).unwrap();
    let child = child_with(server, Server::endpoints, |mut server: Server<u64, u64>| {
        // Answers the first request, then takes the second and never answers.
        let (id, n) = server.recv().unwrap();
        server.reply(id, n).unwrap();
        let _ = server.recv();
    });
    assert_eq!(client.call(5).unwrap(), 5);
    child.kill();
    child.wait();
    assert!(matches!(client.call(6), Err(RpcError::PeerDied)));
}

#[test]
fn a_killed_client_is_peer_died_to_a_waiting_server() {
    let (client, mut server) = rpc::pair::<u64, u64>(1 << 12).unwrap();
    let child = child_with(client, Client::endpoints, |mut client: Client<u64, u64>| {
        client.call(1).unwrap();
    });
    let (id, n) = server.recv().unwrap();
    server.reply(id, n).unwrap();
    child.kill();
    child.wait();
    assert!(matches!(server.serve(|n| n), Err(RpcError::PeerDied)));
}

/// The descriptors of `end`'s transfer, as a receiving process gets them, the ticket, and
/// the transfer (kept alive: its copies still name this process, which takes them back).
fn passed<E: Portable>(
    end: E,
) -> (
    Vec<std::os::fd::OwnedFd>,
    Ticket,
    shm_channel::transfer::Transfer,
) {
    let transfer = end.into_transfer().unwrap();
    let fds = transfer
        .fds()
        .iter()
        .map(|fd| fd.try_clone_to_owned().unwrap())
        .collect();
    (fds, transfer.ticket(), transfer)
}

#[test]
fn an_end_travels_as_one_ticket_with_both_channels() {
    let (client, mut server) = rpc::pair::<String, usize>(1 << 12).unwrap();
    let (fds, ticket, _transfer) = passed(client);
    assert_eq!(ticket.to_string(), "rpc.client.0");
    let kinds = ticket.fd_kinds(fds.len()).unwrap();
    assert_eq!(kinds.iter().filter(|k| **k == FdKind::Memfd).count(), 2);
    let service = std::thread::spawn(move || server.serve(|text| text.len()));
    let mut client = Client::<String, usize>::from_fds(fds, ticket).unwrap();
    assert_eq!(client.call("four".into()).unwrap(), 4);
    drop(client);
    service.join().unwrap().unwrap();
}

#[test]
fn an_end_of_other_types_or_side_is_refused() {
    let (client, mut server) = rpc::pair::<String, usize>(1 << 12).unwrap();
    let (fds, ticket, _transfer) = passed(client);
    let again = || fds.iter().map(|fd| fd.try_clone().unwrap()).collect();
    // A server end cannot be made of a client's descriptors.
    assert!(matches!(
        Server::<String, usize>::from_fds(again(), ticket),
        Err(TransferError::WrongEndpoint { .. })
    ));
    // Of other types: refused by the channels' fingerprints; the refused end is dropped,
    // so its server sees its client gone.
    match Client::<u64, usize>::from_fds(again(), ticket) {
        Err(TransferError::Type(mismatch)) => {
            assert!(mismatch.to_string().contains("String"), "{mismatch}")
        }
        other => panic!("{other:?}"),
    }
    assert!(server.serve(|text| text.len()).is_ok());
}

#[test]
fn pair_tickets_parse_and_refuse_garbage() {
    let client: Ticket = "rpc.client.0".parse().unwrap();
    assert_eq!(client.flavor(), "rpc");
    assert_eq!(client.fd_kinds(6).unwrap()[3], FdKind::Memfd);
    for count in [0, 1, 3, 4, 5, 7, 12] {
        assert!(client.fd_kinds(count).is_none(), "{count}");
    }
    let endpoint: Ticket = "spsc.sender.0".parse().unwrap();
    assert_eq!(
        endpoint.fd_kinds(3).unwrap(),
        [FdKind::Memfd, FdKind::Doorbell, FdKind::Doorbell]
    );
    assert!(endpoint.fd_kinds(2).is_none());
    for bad in [
        "rpc.sender.0",
        "spsc.client.0",
        "rpc.client",
        "rpc.server.x",
    ] {
        assert!(bad.parse::<Ticket>().is_err(), "{bad}");
    }
}
