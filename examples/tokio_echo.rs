//! An async echo service: a tokio server and two tokio clients, separate processes (each a
//! fresh `std::process::Command` of this binary) that meet by name, with one task per
//! client on the server and no thread blocked on any channel; and the same service over
//! tokio's unix sockets, as the reference, in the same run.
//!
//! ```text
//! cargo run --release --example tokio_echo [-- --rounds 5]
//! ```
//!
//! The server binds a rendezvous name, starts the clients, and passes each one the
//! receiver of its request channel and the sender of its reply channel (memfds with their
//! doorbells, over `SCM_RIGHTS`). A task per client echoes every request with
//! `recv_async`/`send_async`; each client sends numbered messages, awaits each echo,
//! checks it and reports its median round trip. Every round runs the channels twice — with
//! the default wait (a task polls, yielding to the runtime, for up to 50 µs before it
//! sleeps on the doorbell) and with `WaitStrategy::Park` (every wait sleeps on the doorbell:
//! the reactor path alone) — and then the same service over a tokio `UnixStream` per
//! client. The server prints the medians and their ratios.

use shm_channel::{Builder, Receiver, Sender};
use std::io::{BufRead, BufReader};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shm_channel::spsc;
use shm_channel::Endpoint as _;
use shm_core::notify::WaitStrategy;
use shm_fork::rendezvous::{connect, Listener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CLIENTS: usize = 2;
const ECHOES: u64 = 10_000;
const TIMEOUT: Duration = Duration::from_secs(30);

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), shm_ipc::MainError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let outcome = match args.as_slice() {
        [mode, name, wait] if mode == "shm-client" => {
            runtime.block_on(shm_client(name, wait == "park"))
        }
        [mode, name] if mode == "unix-client" => runtime.block_on(unix_client(name)),
        [flag, rounds] if flag == "--rounds" => runtime.block_on(server(rounds.parse()?)),
        _ => runtime.block_on(server(1)),
    };
    // `Send + Sync` errors (the tasks'), as `main` prints them.
    outcome.map_err(|err| -> Box<dyn std::error::Error> { err })?;
    Ok(())
}

async fn server(rounds: usize) -> Result<(), Error> {
    let (mut shm, mut parked, mut unix) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let name = format!("tokio-echo-{}-{round}", std::process::id());
        shm.extend(shm_round(&format!("{name}-spin"), false).await?);
        parked.extend(shm_round(&format!("{name}-park"), true).await?);
        unix.extend(unix_round(&name).await?);
    }
    let (shm, parked, unix) = (median(&mut shm), median(&mut parked), median(&mut unix));
    println!(
        "tokio_echo: {CLIENTS} client processes x {ECHOES} async echoes x {rounds} round(s), \
         every one intact, one server task per client"
    );
    println!(
        "median round trip: shm channels {shm:.2} us (parked on the doorbell: {parked:.2} us), \
         tokio UnixStream {unix:.2} us; unix / shm = {:.1}x, unix / parked = {:.2}x (one run)",
        unix / shm,
        unix / parked
    );
    Ok(())
}

/// One round over shm channels: the clients' median round trips, in µs.
async fn shm_round(name: &str, park: bool) -> Result<Vec<f64>, Error> {
    let listener = Listener::bind(name)?;
    let wait = if park { "park" } else { "default" };
    let clients = spawn_clients(&["shm-client", name, wait])?;
    // `accept` blocks (with its timeout): a thread of the blocking pool waits for it.
    let connections = tokio::task::spawn_blocking(move || {
        (0..CLIENTS)
            .map(|_| listener.accept_timeout(TIMEOUT))
            .collect::<Result<Vec<_>, _>>()
    })
    .await??;
    let mut echoers = Vec::new();
    for connection in connections {
        let (request_tx, mut requests) = Builder::<spsc::Spsc>::new(1 << 14)
            .doorbells(true)
            .create_memfd()?;
        let (mut replies, reply_rx) = Builder::<spsc::Spsc>::new(1 << 14)
            .doorbells(true)
            .create_memfd()?;
        connection.pass("requests", request_tx, TIMEOUT)?;
        connection.pass("replies", reply_rx, TIMEOUT)?;
        requests.set_wait_strategy(strategy(park));
        replies.set_wait_strategy(strategy(park));
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
    finish(echoers, clients).await
}

/// One round over tokio unix sockets (abstract names): the clients' medians, in µs.
async fn unix_round(name: &str) -> Result<Vec<f64>, Error> {
    let address = SocketAddr::from_abstract_name(format!("{name}-unix"))?;
    let listener = std::os::unix::net::UnixListener::bind_addr(&address)?;
    listener.set_nonblocking(true)?;
    let listener = tokio::net::UnixListener::from_std(listener)?;
    let clients = spawn_clients(&["unix-client", name])?;
    let mut echoers = Vec::new();
    for _ in 0..CLIENTS {
        let (mut stream, _) = tokio::time::timeout(TIMEOUT, listener.accept()).await??;
        echoers.push(tokio::spawn(async move {
            let mut echoed = 0u64;
            let mut request = [0u8; 8];
            while stream.read_exact(&mut request).await.is_ok() {
                if stream.write_all(&request).await.is_err() {
                    break;
                }
                echoed += 1;
            }
            echoed
        }));
    }
    finish(echoers, clients).await
}

fn spawn_clients(args: &[&str]) -> Result<Vec<std::process::Child>, Error> {
    (0..CLIENTS)
        .map(|_| {
            Command::new(std::env::current_exe()?)
                .args(args)
                .stdout(Stdio::piped())
                .spawn()
                .map_err(Error::from)
        })
        .collect()
}

/// Waits for the echo tasks (checking they echoed every message) and the clients; the
/// clients' median round trips (each prints `median <µs>`).
async fn finish(
    echoers: Vec<tokio::task::JoinHandle<u64>>,
    clients: Vec<std::process::Child>,
) -> Result<Vec<f64>, Error> {
    let mut echoed = 0;
    for echoer in echoers {
        echoed += tokio::time::timeout(TIMEOUT, echoer).await??;
    }
    let expected = CLIENTS as u64 * ECHOES;
    if echoed != expected {
        return Err(format!("{echoed} echoes, expected {expected}").into());
    }
    let mut medians = Vec::new();
    for client in clients {
        let output = tokio::task::spawn_blocking(move || client.wait_with_output()).await??;
        if !output.status.success() {
            return Err(format!("a client failed: {}", output.status).into());
        }
        for line in BufReader::new(output.stdout.as_slice()).lines() {
            let line = line?;
            println!("{line}");
            if let Some(us) = line
                .rsplit_once("median ")
                .and_then(|(_, v)| v.split(' ').next())
            {
                medians.push(us.parse()?);
            }
        }
    }
    Ok(medians)
}

/// The endpoints' wait: the default, or every wait asleep on the doorbell.
fn strategy(park: bool) -> WaitStrategy {
    if park {
        WaitStrategy::Park
    } else {
        WaitStrategy::default()
    }
}

async fn shm_client(name: &str, park: bool) -> Result<(), Error> {
    let connection = connect(name, TIMEOUT)?;
    let mut requests: Sender<spsc::Spsc> = connection.take("requests", TIMEOUT)?;
    let mut replies: Receiver<spsc::Spsc> = connection.take("replies", TIMEOUT)?;
    requests.set_wait_strategy(strategy(park));
    replies.set_wait_strategy(strategy(park));
    let mut round_trips = Vec::with_capacity(ECHOES as usize);
    for seq in 0..ECHOES {
        let message = seq.to_le_bytes();
        let sent = Instant::now();
        requests.send_async(&message).await?;
        let echo = tokio::time::timeout(TIMEOUT, replies.recv_async()).await??;
        round_trips.push(sent.elapsed().as_secs_f64() * 1e6);
        if echo != message {
            return Err(format!("echo {seq} came back as {echo:?}").into());
        }
    }
    report(if park { "shm, parked" } else { "shm" }, &mut round_trips);
    Ok(())
}

async fn unix_client(name: &str) -> Result<(), Error> {
    let address = SocketAddr::from_abstract_name(format!("{name}-unix"))?;
    let stream = std::os::unix::net::UnixStream::connect_addr(&address)?;
    stream.set_nonblocking(true)?;
    let mut stream = tokio::net::UnixStream::from_std(stream)?;
    let mut round_trips = Vec::with_capacity(ECHOES as usize);
    let mut echo = [0u8; 8];
    for seq in 0..ECHOES {
        let message = seq.to_le_bytes();
        let sent = Instant::now();
        stream.write_all(&message).await?;
        tokio::time::timeout(TIMEOUT, stream.read_exact(&mut echo)).await??;
        round_trips.push(sent.elapsed().as_secs_f64() * 1e6);
        if echo != message {
            return Err(format!("echo {seq} came back as {echo:?}").into());
        }
    }
    report("unix", &mut round_trips);
    Ok(())
}

fn report(mode: &str, round_trips: &mut [f64]) {
    println!(
        "client {} ({mode}): {ECHOES} echoes intact, median {:.2} us",
        std::process::id(),
        median(round_trips)
    );
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}
