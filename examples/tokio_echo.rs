//! An async echo service: a tokio server and two tokio clients, separate processes (each a
//! fresh `std::process::Command` of this binary) that meet by name, with one task per
//! client on the server and no thread blocked on any channel.
//!
//! ```text
//! cargo run --release --example tokio_echo
//! ```
//!
//! The server binds a rendezvous name, starts the clients, and passes each one the
//! receiver of its request channel and the sender of its reply channel (memfds with their
//! doorbells, over `SCM_RIGHTS`). A task per client echoes every request with
//! `recv_async`/`send_async`; each client sends numbered messages, awaits each echo,
//! checks it and reports its median round trip. The server prints one result line.

use std::process::Command;
use std::time::{Duration, Instant};

use shm_channel::spsc;
use shm_fork::rendezvous::{connect, Listener};

const CLIENTS: usize = 2;
const ECHOES: u64 = 10_000;
const TIMEOUT: Duration = Duration::from_secs(30);

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match args.as_slice() {
        [mode, name] if mode == "client" => runtime.block_on(client(name)),
        _ => runtime.block_on(server()),
    }
}

async fn server() -> Result<(), Error> {
    let name = format!("tokio-echo-{}", std::process::id());
    let listener = Listener::bind(&name)?;
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(
            Command::new(std::env::current_exe()?)
                .args(["client", &name])
                .spawn()?,
        );
    }
    // `accept` blocks (with its timeout): a thread of the blocking pool waits for it.
    let connections = tokio::task::spawn_blocking(move || {
        (0..CLIENTS)
            .map(|_| listener.accept(TIMEOUT))
            .collect::<Result<Vec<_>, _>>()
    })
    .await??;
    let mut echoers = Vec::new();
    for connection in connections {
        let (request_tx, mut requests) =
            spsc::Builder::new(1 << 14).doorbells(true).create_memfd()?;
        let (mut replies, reply_rx) = spsc::Builder::new(1 << 14).doorbells(true).create_memfd()?;
        connection.pass("requests", request_tx, TIMEOUT)?;
        connection.pass("replies", reply_rx, TIMEOUT)?;
        echoers.push(tokio::spawn(async move {
            let mut echoed = 0u64;
            // Until the client drops its sender (or dies: `PeerDied` ends it too).
            while let Ok(request) = requests.recv_async().await {
                if replies.send_async(&request).await.is_err() {
                    break;
                }
                echoed += 1;
            }
            echoed
        }));
    }
    let mut echoed = 0;
    for echoer in echoers {
        echoed += tokio::time::timeout(TIMEOUT, echoer).await??;
    }
    for mut client in clients {
        let status = tokio::task::spawn_blocking(move || client.wait()).await??;
        if !status.success() {
            return Err(format!("a client failed: {status}").into());
        }
    }
    if echoed != CLIENTS as u64 * ECHOES {
        return Err(format!("{echoed} echoes, expected {}", CLIENTS as u64 * ECHOES).into());
    }
    println!(
        "tokio_echo: {CLIENTS} client processes x {ECHOES} async echoes each, every one intact, \
         one server task per client"
    );
    Ok(())
}

async fn client(name: &str) -> Result<(), Error> {
    let connection = connect(name, TIMEOUT)?;
    let mut requests: spsc::Sender = connection.take("requests", TIMEOUT)?;
    let mut replies: spsc::Receiver = connection.take("replies", TIMEOUT)?;
    let mut round_trips = Vec::with_capacity(ECHOES as usize);
    for seq in 0..ECHOES {
        let message = seq.to_le_bytes();
        let sent = Instant::now();
        requests.send_async(&message).await?;
        let echo = tokio::time::timeout(TIMEOUT, replies.recv_async()).await??;
        round_trips.push(sent.elapsed());
        if echo != message {
            return Err(format!("echo {seq} came back as {echo:?}").into());
        }
    }
    round_trips.sort();
    println!(
        "client {}: {ECHOES} echoes, median round trip {:.1} us",
        std::process::id(),
        round_trips[round_trips.len() / 2].as_secs_f64() * 1e6
    );
    Ok(())
}
