//! Channel endpoints handed to forked children: messages flow, the parent's copies are
//! inert, and a child that dies is reported as such.

mod common;

use shm_channel::Endpoint;
use shm_channel::{typed, RecvError, SendError, TryRecvError, TrySendError};
use shm_fork::{fork_with, ExitStatus};

fn main() {
    common::run(&[
        (
            "endpoints_handed_to_child_carry_messages_both_ways",
            endpoints_handed_to_child_carry_messages_both_ways,
        ),
        (
            "child_exiting_cleanly_is_disconnected_after_all_messages",
            child_exiting_cleanly_is_disconnected_after_all_messages,
        ),
        (
            "child_killed_mid_stream_is_peer_died",
            child_killed_mid_stream_is_peer_died,
        ),
        (
            "receiver_killed_makes_send_peer_died",
            receiver_killed_makes_send_peer_died,
        ),
        (
            "endpoint_moved_into_the_closure_without_inherit_is_refused",
            endpoint_moved_into_the_closure_without_inherit_is_refused,
        ),
    ]);
}

fn endpoints_handed_to_child_carry_messages_both_ways() {
    let (mut to_child, from_parent) = typed::channel::<u64>(4096).unwrap();
    let (to_parent, mut from_child) = typed::channel::<String>(4096).unwrap();
    let mut child = fork_with((from_parent, to_parent), |(mut rx, mut tx)| {
        assert!(rx.is_owned_here() && tx.is_owned_here());
        while let Ok(n) = rx.recv() {
            tx.send(format!("<{n}>")).unwrap();
        }
        0
    })
    .unwrap();
    for n in 0..100u64 {
        to_child.send(n).unwrap();
        assert_eq!(from_child.recv().unwrap(), format!("<{n}>"));
    }
    drop(to_child);
    // The child's loop ends on Disconnected, drops its sender: we see Disconnected too.
    assert_eq!(
        from_child.recv(),
        Err(typed::RecvError::Recv(RecvError::Disconnected))
    );
    assert_eq!(child.wait().unwrap(), ExitStatus::Exited(0));
}

fn child_exiting_cleanly_is_disconnected_after_all_messages() {
    let (tx, mut rx) = typed::channel::<u32>(1 << 12).unwrap();
    let mut child = fork_with(tx, |mut tx| {
        for n in 0..10_000 {
            tx.send(n).unwrap();
        }
        0
    })
    .unwrap();
    // The parent's copy of `tx` was dropped inside `fork_with`: that must not have
    // disconnected the channel.
    for n in 0..10_000 {
        assert_eq!(rx.recv().unwrap(), n);
    }
    assert_eq!(
        rx.recv(),
        Err(typed::RecvError::Recv(RecvError::Disconnected))
    );
    assert!(child.wait().unwrap().success());
}

fn child_killed_mid_stream_is_peer_died() {
    let (tx, mut rx) = typed::channel::<u64>(1 << 12).unwrap();
    let mut child = fork_with(tx, |mut tx| {
        let mut n = 0u64;
        loop {
            if tx.send(n).is_err() {
                return 1;
            }
            n += 1;
        }
    })
    .unwrap();
    for n in 0..1000 {
        assert_eq!(rx.recv().unwrap(), n);
    }
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap(), ExitStatus::Signaled(libc::SIGKILL));
    // What was committed before the kill is still delivered, in order; then PeerDied.
    let mut expected = 1000;
    let err = loop {
        match rx.recv() {
            Ok(n) => {
                assert_eq!(n, expected);
                expected += 1;
            }
            Err(err) => break err,
        }
    };
    assert_eq!(err, typed::RecvError::Recv(RecvError::PeerDied));
}

fn receiver_killed_makes_send_peer_died() {
    let (mut tx, rx) = typed::channel::<u64>(1 << 12).unwrap();
    let mut child = fork_with(rx, |_rx| common::block_forever()).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    // The ring fills up (nobody reads), then the sender finds its receiver dead.
    let err = loop {
        if let Err(err) = tx.send(7) {
            break err;
        }
    };
    assert!(
        matches!(err, typed::SendError::Send(SendError::PeerDied(7))),
        "{err:?}"
    );
}

/// Regression (found in the review of the endpoint machinery): an endpoint captured by
/// `move` in the closure, rather than passed through `fork_with`'s values, used to work in
/// the child. It is not handed over, so the child does not own it: every use is refused,
/// and the parent's receiver sees nothing.
fn endpoint_moved_into_the_closure_without_inherit_is_refused() {
    let (mut tx, mut rx) = typed::channel::<u32>(4096).unwrap();
    let mut child = fork_with((), move |()| {
        let refused = (0..10).all(|n| {
            matches!(
                tx.try_send(n),
                Err(TrySendError::Send(typed::SendError::Send(
                    SendError::NotOwner(_)
                )))
            )
        });
        i32::from(!refused)
    })
    .unwrap();
    assert_eq!(child.wait().unwrap(), ExitStatus::Exited(0));
    // Nothing from the child; and the parent's own `tx`, moved into the closure that the
    // parent dropped unrun, closed the channel as the owner's drop does.
    assert_eq!(
        rx.try_recv(),
        Err(TryRecvError::Recv(typed::RecvError::Recv(
            RecvError::Disconnected
        )))
    );
}
