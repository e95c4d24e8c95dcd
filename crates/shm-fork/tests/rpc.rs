//! Request/response pairs travel as one value by fork, exec and the rendezvous alike: the
//! server end goes to the other process, the client here calls it; a server killed there is
//! `PeerDied` here. This binary runs itself as the other process (`RPC_ROLE`).

mod common;

use std::process::Stdio;

use common::DEADLINE;
use shm_channel::rpc::{self, RpcError, Server};
use shm_fork::exec::{inherited, Command};
use shm_fork::rendezvous::{connect, Listener};

const ROLE: &str = "RPC_ROLE";

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        let (role, name) = role.split_once(' ').unwrap_or((&role, ""));
        std::process::exit(other_process(role, name));
    }
    common::run(&[
        (
            "a_server_passed_by_exec_answers",
            a_server_passed_by_exec_answers,
        ),
        (
            "a_server_taken_from_the_rendezvous_answers_then_dies",
            a_server_taken_from_the_rendezvous_answers_then_dies,
        ),
        ("a_forked_server_answers", a_forked_server_answers),
    ]);
}

fn double(n: u64) -> u64 {
    n * 2
}

fn other_process(role: &str, name: &str) -> i32 {
    let mut server: Server<u64, u64> = match role {
        "exec" => inherited("svc").expect("the server end"),
        "rendezvous" => connect(name, DEADLINE)
            .expect("connect")
            .take("svc", DEADLINE)
            .expect("the server end"),
        _ => return 2,
    };
    match server.serve(double) {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("{err}");
            1
        }
    }
}

fn me(role: &str) -> std::process::Command {
    let mut command = std::process::Command::new(std::env::current_exe().expect("own path"));
    command.env(ROLE, role).stdin(Stdio::null());
    command
}

fn a_server_passed_by_exec_answers() {
    let (mut client, server) = rpc::pair::<u64, u64>(4096).unwrap();
    let mut command = Command::from(me("exec"));
    command.pass("svc", server).unwrap();
    let mut child = command.spawn().unwrap();
    for n in 0..1000 {
        assert_eq!(client.call(n).unwrap(), 2 * n);
    }
    drop(client);
    assert!(child.wait().unwrap().success(), "the server ends cleanly");
}

fn a_server_taken_from_the_rendezvous_answers_then_dies() {
    let name = format!("rpc-test-{}", std::process::id());
    let listener = Listener::bind(&name).unwrap();
    let mut child = me(&format!("rendezvous {name}")).spawn().unwrap();
    let connection = listener.accept_timeout(DEADLINE).unwrap();
    let (mut client, server) = rpc::pair::<u64, u64>(4096).unwrap();
    connection.pass("svc", server, DEADLINE).unwrap();
    assert_eq!(client.call(21).unwrap(), 42);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(matches!(client.call(1), Err(RpcError::PeerDied)));
}

fn a_forked_server_answers() {
    let (mut client, server) = rpc::pair::<u64, u64>(4096).unwrap();
    let mut child = shm_fork::fork_with(server, |mut server| match server.serve(double) {
        Ok(()) => 0,
        Err(_) => 1,
    })
    .unwrap();
    assert_eq!(client.call(5).unwrap(), 10);
    drop(client);
    assert!(child.wait().unwrap().success());
}
