//! A typed channel of `String` handed to another process — over the rendezvous, across
//! `exec`, across `fork` — and taken there as a `typed::Sender<u64>` or a
//! `typed::Receiver<(u64, u64, u64)>`: a typed error each time (the fingerprint recorded in
//! the channel's memory names `String`); taken as `String`, it works. This binary runs
//! itself as the other process (`FINGERPRINT_ROLE`).

mod common;

use std::process::Stdio;

use common::DEADLINE;
use shm_channel::transfer::TransferError;
use shm_channel::typed;
use shm_fork::exec::{inherited, Command, InheritedError};
use shm_fork::rendezvous::{connect, Listener, RendezvousError};

/// Set in the other process: `role [name]`.
const ROLE: &str = "FINGERPRINT_ROLE";

/// The other process's exit codes.
const BOTH_REFUSED: i32 = 0;
const TAKEN_AS_STRING: i32 = 0;
const NOT_REFUSED_BY_TYPE: i32 = 3;

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        let (role, name) = role.split_once(' ').unwrap_or((&role, ""));
        std::process::exit(other_process(role, name));
    }
    common::run(&[
        (
            "exec_takes_only_the_recorded_type",
            exec_takes_only_the_recorded_type,
        ),
        (
            "rendezvous_takes_only_the_recorded_type",
            rendezvous_takes_only_the_recorded_type,
        ),
        (
            "fork_takes_only_the_recorded_type",
            fork_takes_only_the_recorded_type,
        ),
    ]);
}

/// Whether `err` is a refusal for the type (and says which types).
fn refused_for_type(err: &TransferError) -> bool {
    match err {
        TransferError::Type(mismatch) => {
            eprintln!("refused as expected: {mismatch}");
            mismatch.found().type_name() == "alloc::string::String"
        }
        _ => false,
    }
}

fn other_process(role: &str, name: &str) -> i32 {
    match role {
        "exec-wrong" => {
            let tx = inherited::<typed::Sender<u64>>("tx");
            let rx = inherited::<typed::Receiver<(u64, u64, u64)>>("rx");
            let by_type = |r: Result<_, InheritedError>| match r {
                Err(InheritedError::Rebuild { source, .. }) => refused_for_type(&source),
                _ => false,
            };
            match (by_type(tx.map(drop)), by_type(rx.map(drop))) {
                (true, true) => BOTH_REFUSED,
                _ => NOT_REFUSED_BY_TYPE,
            }
        }
        "exec-right" => {
            let mut tx: typed::Sender<String> = inherited("tx").expect("tx");
            tx.send("taken as String".into()).expect("send");
            TAKEN_AS_STRING
        }
        "rendezvous-wrong" => {
            let connection = connect(name, DEADLINE).expect("connect");
            let tx = connection.take::<typed::Sender<u64>>("tx", DEADLINE);
            let rx = connection.take::<typed::Receiver<(u64, u64, u64)>>("rx", DEADLINE);
            let by_type = |r: Result<_, RendezvousError>| match r {
                Err(RendezvousError::Transfer(source)) => refused_for_type(&source),
                _ => false,
            };
            match (by_type(tx.map(drop)), by_type(rx.map(drop))) {
                (true, true) => BOTH_REFUSED,
                _ => NOT_REFUSED_BY_TYPE,
            }
        }
        "rendezvous-right" => {
            let connection = connect(name, DEADLINE).expect("connect");
            let mut tx: typed::Sender<String> = connection.take("tx", DEADLINE).expect("tx");
            tx.send("taken as String".into()).expect("send");
            TAKEN_AS_STRING
        }
        _ => 2,
    }
}

fn me(role: &str) -> std::process::Command {
    let mut command = std::process::Command::new(std::env::current_exe().expect("own path"));
    command.env(ROLE, role).stdin(Stdio::null());
    command
}

fn exec_takes_only_the_recorded_type() {
    let (tx, rx) = memfd_pair::<String>(4096);
    let mut command = Command::from(me("exec-wrong"));
    command.pass("tx", tx).unwrap();
    command.pass("rx", rx).unwrap();
    let mut child = command.spawn().unwrap();
    assert!(child.wait().unwrap().success(), "both ends refused by type");

    let (tx, mut rx) = memfd_pair::<String>(4096);
    let mut command = Command::from(me("exec-right"));
    command.pass("tx", tx).unwrap();
    let mut child = command.spawn().unwrap();
    assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), "taken as String");
    assert!(child.wait().unwrap().success());
}

fn rendezvous_takes_only_the_recorded_type() {
    let name = format!("fingerprint-{}", std::process::id());
    let listener = Listener::bind(&name).unwrap();

    let mut client = me(&format!("rendezvous-wrong {name}")).spawn().unwrap();
    let connection = listener.accept_timeout(DEADLINE).unwrap();
    let (tx, rx) = memfd_pair::<String>(4096);
    connection.pass("tx", tx, DEADLINE).unwrap();
    connection.pass("rx", rx, DEADLINE).unwrap();
    assert!(
        client.wait().unwrap().success(),
        "both ends refused by type"
    );

    let mut client = me(&format!("rendezvous-right {name}")).spawn().unwrap();
    let connection = listener.accept_timeout(DEADLINE).unwrap();
    let (tx, mut rx) = memfd_pair::<String>(4096);
    connection.pass("tx", tx, DEADLINE).unwrap();
    assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), "taken as String");
    assert!(client.wait().unwrap().success());
}

fn fork_takes_only_the_recorded_type() {
    // Across fork the ends keep their Rust types; a child that makes typed ends of other
    // types out of their bytes is refused just the same.
    let (tx, rx) = typed::channel::<String>(4096).unwrap();
    let mut child = shm_fork::fork_with((tx, rx), |(tx, rx)| {
        let tx = typed::Sender::<u64>::try_from(shm_channel::Sender::from(tx));
        let rx = typed::Receiver::<(u64, u64, u64)>::try_from(shm_channel::Receiver::from(rx));
        let by_type = |found: Option<String>| found.as_deref() == Some("alloc::string::String");
        let tx = tx.err().map(|e| e.found().type_name().to_owned());
        let rx = rx.err().map(|e| e.found().type_name().to_owned());
        match (by_type(tx), by_type(rx)) {
            (true, true) => BOTH_REFUSED,
            _ => NOT_REFUSED_BY_TYPE,
        }
    })
    .unwrap();
    assert!(child.wait().unwrap().success(), "both ends refused by type");

    let (tx, mut rx) = typed::channel::<String>(4096).unwrap();
    let mut child = shm_fork::fork_with(shm_channel::Sender::from(tx), |tx| {
        let mut tx = typed::Sender::<String>::try_from(tx).expect("the recorded type");
        tx.send("taken as String".into()).expect("send");
        TAKEN_AS_STRING
    })
    .unwrap();
    assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), "taken as String");
    assert!(child.wait().unwrap().success());
}

/// Typed ends of `T` (the default codec) over an SPSC channel of `capacity` bytes in a
/// sealed memfd, so that they can travel.
fn memfd_pair<T>(capacity: usize) -> typed::Pair<T>
where
    typed::DefaultCodec: shm_channel::codec::Codec<T>,
{
    typed::pair(
        shm_channel::Builder::<shm_channel::spsc::Spsc>::new(capacity)
            .create_memfd()
            .unwrap(),
    )
    .unwrap()
}
