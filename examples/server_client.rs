//! A service and two clients, started as separate processes (not forked: each is a fresh
//! `std::process::Command` of this binary), that find each other by name.
//!
//! ```text
//! cargo run --release --example server_client
//! ```
//!
//! The server binds a rendezvous name (an abstract unix socket), starts two clients with
//! that name, and on each connection passes a sender of one shared MPSC request channel
//! and the receiver of the client's own reply channel. Each client sends 1000 numbers and
//! checks every reply is twice its number; the server answers until both clients are gone.

use shm_channel::{Builder, Receiver, Sender};
use std::process::Command;
use std::time::Duration;

use shm_channel::{mpsc, spsc};
use shm_fork::rendezvous::{connect, Listener};

const CLIENTS: u8 = 2;
const REQUESTS: u64 = 1000;
const TIMEOUT: Duration = Duration::from_secs(30);

fn main() -> Result<(), shm_ipc::MainError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [mode, name, id] if mode == "client" => client(name, id.parse()?)?,
        _ => server()?,
    }
    Ok(())
}

fn server() -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("server-client-{}", std::process::id());
    let listener = Listener::bind(&name)?;
    let (requests, mut incoming) = Builder::<mpsc::Mpsc>::new(1 << 16).create_memfd()?;
    let mut clients = Vec::new();
    let mut replies = Vec::new();
    for id in 0..CLIENTS {
        clients.push(
            Command::new(std::env::current_exe()?)
                .args(["client", &name, &id.to_string()])
                .spawn()?,
        );
        let connection = listener.accept_timeout(TIMEOUT)?;
        let (reply_tx, reply_rx) = Builder::<spsc::Spsc>::new(1 << 12).create_memfd()?;
        connection.pass("requests", requests.try_clone()?, TIMEOUT)?;
        connection.pass("replies", reply_rx, TIMEOUT)?;
        replies.push(reply_tx);
    }
    drop(requests); // only the clients' senders remain
    let mut served = 0u64;
    // Until both clients have dropped their senders.
    while let Ok(request) = incoming.recv() {
        let (id, n) = decode(&request).ok_or("a malformed request")?;
        let reply = replies
            .get_mut(usize::from(id))
            .ok_or("an unknown client")?;
        reply.send(&(2 * n).to_le_bytes())?;
        served += 1;
    }
    let mut pids = Vec::new();
    for mut child in clients {
        pids.push(child.id());
        if !child.wait()?.success() {
            return Err(format!("client {} failed", child.id()).into());
        }
    }
    if served != u64::from(CLIENTS) * REQUESTS {
        return Err(format!("served {served} requests").into());
    }
    println!(
        "server_client: served {CLIENTS} separately started clients (pids {pids:?}) found by the name {name:?}: {served} requests over one MPSC channel, every reply correct"
    );
    Ok(())
}

fn client(name: &str, id: u8) -> Result<(), Box<dyn std::error::Error>> {
    let connection = connect(name, TIMEOUT)?;
    let mut requests: Sender<mpsc::Mpsc> = connection.take("requests", TIMEOUT)?;
    let mut replies: Receiver<spsc::Spsc> = connection.take("replies", TIMEOUT)?;
    for n in 0..REQUESTS {
        let mut request = vec![id];
        request.extend_from_slice(&n.to_le_bytes());
        requests.send(&request)?;
        let reply = replies.recv()?;
        let doubled = u64::from_le_bytes(reply.as_slice().try_into()?);
        if doubled != 2 * n {
            return Err(format!("client {id}: {n} came back as {doubled}").into());
        }
    }
    Ok(())
}

fn decode(request: &[u8]) -> Option<(u8, u64)> {
    let (&id, n) = request.split_first()?;
    Some((id, u64::from_le_bytes(n.try_into().ok()?)))
}
