//! A typed request/response service and two clients, three separate programs that meet by
//! name: the service binds a rendezvous name, and for each client that connects it makes a
//! request/response pair (`rpc::pair`, two channels in memfds), passes the client's end over
//! the connection and serves the other on a thread of its own.
//!
//! Run `cargo run --release --example service`: it starts the service and two clients (this
//! program again, in the roles `service NAME` and `client NAME ID`); each client makes
//! 100,000 calls and checks every reply; then the service is killed with `SIGKILL`, and each
//! client, still calling, gets `PeerDied` — the time from its last reply to the error is
//! printed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use shm_ipc::channel::rpc::{self, RpcError};
use shm_ipc::fork::rendezvous::{connect, Listener, RendezvousError};

/// Calls each client makes before the service is killed.
const CALLS: u64 = 100_000;
/// How long connecting and passing may take.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Serialize, Deserialize, Debug)]
enum Request {
    Add(u64, u64),
    Upper(String),
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Reply {
    Sum(u64),
    Text(String),
}

fn handle(request: Request) -> Reply {
    match request {
        Request::Add(a, b) => Reply::Sum(a.wrapping_add(b)),
        Request::Upper(text) => Reply::Text(text.to_uppercase()),
    }
}

fn main() -> Result<(), shm_ipc::MainError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [role, name] if role == "service" => service(name)?,
        [role, name, id] if role == "client" => client(name, id.parse()?)?,
        _ => orchestrate()?,
    }
    Ok(())
}

/// The service: one pair and one thread per client, until it is killed.
fn service(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let listener = Listener::bind(name)?;
    println!("ready");
    loop {
        let connection = match listener.accept() {
            Ok(connection) => connection,
            Err(err) if err.is_per_connection() => continue, // one bad client, next one
            Err(err) => return Err(err.into()),
        };
        let (client, mut server) = rpc::pair::<Request, Reply>(1 << 16)?;
        connection.pass("rpc", client, TIMEOUT)?;
        std::thread::spawn(move || match server.serve(handle) {
            Ok(()) => {}
            Err(err) => eprintln!("service: a client is gone: {err}"),
        });
    }
}

/// A client: `CALLS` checked calls, then calls until the service is gone.
fn client(name: &str, id: u64) -> Result<(), Box<dyn std::error::Error>> {
    let connection = loop {
        match connect(name, TIMEOUT) {
            Err(RendezvousError::NoListener(_)) => std::thread::sleep(Duration::from_millis(5)),
            other => break other?,
        }
    };
    let mut calls: rpc::Client<Request, Reply> = connection.take("rpc", TIMEOUT)?;
    let start = Instant::now();
    for n in 0..CALLS {
        if n % 2 == 0 {
            let reply = calls.call(Request::Add(n, id))?;
            if reply != Reply::Sum(n + id) {
                return Err(format!("call {n}: {reply:?}").into());
            }
        } else {
            let reply = calls.call(Request::Upper(format!("client {id} call {n}")))?;
            if reply != Reply::Text(format!("CLIENT {id} CALL {n}")) {
                return Err(format!("call {n}: {reply:?}").into());
            }
        }
    }
    let took = start.elapsed();
    println!(
        "client {id}: {CALLS} replies correct in {:.0} ms ({:.2} µs per call)",
        took.as_secs_f64() * 1e3,
        took.as_secs_f64() * 1e6 / CALLS as f64
    );
    println!("done");
    // Calls on until the service dies.
    let mut last_reply = Instant::now();
    let mut n = 0;
    loop {
        match calls.call(Request::Add(n, 1)) {
            Ok(_) => last_reply = Instant::now(),
            Err(RpcError::PeerDied) => {
                println!(
                    "client {id}: PeerDied {:.1} ms after the last reply",
                    last_reply.elapsed().as_secs_f64() * 1e3
                );
                return Ok(());
            }
            Err(err) => return Err(err.into()),
        }
        n += 1;
    }
}

/// Starts the service and two clients, waits for their calls, kills the service.
fn orchestrate() -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("service-example-{}", std::process::id());
    let me = std::env::current_exe()?;
    let start = |args: &[&str]| {
        Command::new(&me)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
    };
    let mut service = start(&["service", &name])?;
    let mut service_out = BufReader::new(service.stdout.take().ok_or("no pipe")?).lines();
    if service_out.next().transpose()?.as_deref() != Some("ready") {
        return Err("the service did not start".into());
    }
    let mut clients = Vec::new();
    for id in 1..=2 {
        let mut child = start(&["client", &name, &id.to_string()])?;
        let lines = BufReader::new(child.stdout.take().ok_or("no pipe")?).lines();
        clients.push((child, lines));
    }
    for (_, lines) in &mut clients {
        for line in lines.by_ref() {
            let line = line?;
            if line == "done" {
                break;
            }
            println!("{line}");
        }
    }
    service.kill()?; // SIGKILL
    service.wait()?;
    println!("service killed");
    let mut failed = 0;
    for (mut child, lines) in clients {
        for line in lines {
            println!("{}", line?);
        }
        failed += usize::from(!child.wait()?.success());
    }
    match failed {
        0 => Ok(()),
        n => Err(format!("{n} client(s) failed").into()),
    }
}
