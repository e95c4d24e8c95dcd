//! The rendezvous between unrelated processes: this test binary spawns itself as clients
//! (`RENDEZVOUS_CLIENT`), started by `std::process::Command`, not forked children.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::DEADLINE;
use shm_channel::spsc::Spsc;
use shm_channel::stream::StreamReader;
use shm_channel::RecvError;
use shm_channel::SendError;
use shm_channel::{Builder, Receiver, Sender};
use shm_channel::{RecvTimeoutError, SendTimeoutError};
use shm_fork::rendezvous::{
    connect, connect_path, connect_with, Connection, Listener, Policy, RendezvousError,
};

/// Set in a client: `mode name`.
const CLIENT: &str = "RENDEZVOUS_CLIENT";

fn main() {
    if let Ok(client) = std::env::var(CLIENT) {
        let (mode, name) = client.split_once(' ').expect("mode and name");
        std::process::exit(run_client(mode, name));
    }
    common::run(&[
        (
            "endpoints_reach_a_separate_process_both_directions",
            endpoints_reach_a_separate_process_both_directions,
        ),
        (
            "a_byte_stream_reaches_a_separate_process",
            a_byte_stream_reaches_a_separate_process,
        ),
        (
            "a_stalled_client_does_not_block_the_next",
            a_stalled_client_does_not_block_the_next,
        ),
        (
            "client_killed_mid_handshake_is_peer_died",
            client_killed_mid_handshake_is_peer_died,
        ),
        ("another_uid_is_refused", another_uid_is_refused),
        ("timeouts_and_absent_names", timeouts_and_absent_names),
        (
            "garbage_from_a_peer_is_a_typed_error",
            garbage_from_a_peer_is_a_typed_error,
        ),
        (
            "nothing_is_left_when_both_sides_are_gone",
            nothing_is_left_when_both_sides_are_gone,
        ),
        (
            "a_path_listener_serves_a_separate_process_and_removes_its_file",
            a_path_listener_serves_a_separate_process_and_removes_its_file,
        ),
        (
            "a_socket_file_left_by_a_killed_listener_is_replaced",
            a_socket_file_left_by_a_killed_listener_is_replaced,
        ),
        (
            "a_select_in_a_separate_process_receives_from_three_flavors",
            a_select_in_a_separate_process_receives_from_three_flavors,
        ),
    ]);
}

/// Exit codes of the client modes.
const REFUSED_AS_EXPECTED: i32 = 40;

fn run_client(mode: &str, name: &str) -> i32 {
    match mode {
        "echo" => echo_client(&connect(name, DEADLINE).expect("connect")),
        "stream" => {
            let connection = connect(name, DEADLINE).expect("connect");
            let mut bytes: StreamReader = connection.take("bytes", DEADLINE).expect("bytes");
            let mut results: Sender<Spsc> = connection.take("results", DEADLINE).expect("results");
            let (blocks, hash) = common::read_stream(&mut bytes).expect("read the stream");
            let mut report = blocks.to_le_bytes().to_vec();
            report.extend_from_slice(&hash.to_le_bytes());
            results.send(&report).expect("report");
            0
        }
        "select" => {
            let connection = connect(name, DEADLINE).expect("connect");
            let spsc: Receiver<Spsc> = connection.take("spsc", DEADLINE).expect("spsc");
            let mpsc: shm_channel::Receiver<shm_channel::mpsc::Mpsc> =
                connection.take("mpsc", DEADLINE).expect("mpsc");
            let news: shm_channel::Receiver<shm_channel::broadcast::Broadcast> =
                connection.take("broadcast", DEADLINE).expect("broadcast");
            let mut results: Sender<Spsc> = connection.take("results", DEADLINE).expect("results");
            let report = common::select_three((spsc, mpsc, news));
            results.send(&report).expect("report");
            0
        }
        "echo-path" => echo_client(&connect_path(name, DEADLINE).expect("connect to the path")),
        "listen-path" => {
            let _listener = Listener::bind_path(name).expect("bind the path");
            common::block_forever()
        }
        "stall" => {
            let _connection = connect(name, DEADLINE).expect("connect");
            common::block_forever()
        }
        "refused" => {
            // This client accepts any listener; the listener refuses it.
            let connection = connect_with(name, Policy::AnyUser, DEADLINE).expect("connect");
            match connection.take::<Receiver<Spsc>>("jobs", DEADLINE) {
                Err(RendezvousError::PeerGone) => REFUSED_AS_EXPECTED,
                _ => 1,
            }
        }
        _ => 2,
    }
}

/// The echo client: takes `jobs` and `results`, sends every job back until `jobs` closes.
fn echo_client(connection: &shm_fork::rendezvous::Connection) -> i32 {
    let mut jobs: Receiver<Spsc> = connection.take("jobs", DEADLINE).expect("jobs");
    let mut results: Sender<Spsc> = connection.take("results", DEADLINE).expect("results");
    while let Ok(msg) = jobs.recv() {
        results.send(&msg).expect("send back");
    }
    0
}

/// A fresh name for one test.
fn fresh_name(test: &str) -> String {
    format!("test-{test}-{}", std::process::id())
}

/// This binary as a client in `mode`, for the listener `name`.
fn client(mode: &str, name: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .env(CLIENT, format!("{mode} {name}"))
        .stdin(Stdio::null());
    command
}

fn spawn(command: &mut Command) -> Child {
    command.spawn().expect("spawn the client")
}

/// A listener named for `test` (and its name), a client spawned in `mode` and its
/// accepted connection.
fn accepted(test: &str, mode: &str) -> (Connection, Child, Listener, String) {
    let name = fresh_name(test);
    let listener = Listener::bind(&name).unwrap();
    let child = spawn(&mut client(mode, &name));
    let connection = listener.accept_timeout(DEADLINE).unwrap();
    (connection, child, listener, name)
}

/// Serves an echo client on `connection`: 500 messages there and back, intact.
fn serve_echo(connection: &shm_fork::rendezvous::Connection) {
    let (mut tx, jobs) = Builder::<Spsc>::new(4096).create_memfd().unwrap();
    let (results, mut rx) = Builder::<Spsc>::new(4096).create_memfd().unwrap();
    connection.pass("jobs", jobs, DEADLINE).unwrap();
    connection.pass("results", results, DEADLINE).unwrap();
    for i in 0..500u32 {
        let msg: Vec<u8> = (0..(i % 300) + 1).map(|j| (i ^ j) as u8).collect();
        tx.send_timeout(&msg, DEADLINE).unwrap();
        assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), msg, "message {i}");
    }
    drop(tx);
    assert!(matches!(
        rx.recv_timeout(DEADLINE),
        Err(RecvTimeoutError::Recv(RecvError::Disconnected))
    ));
}

fn endpoints_reach_a_separate_process_both_directions() {
    let (connection, mut child, _listener, _) = accepted("echo", "echo");
    assert_eq!(connection.peer().pid, child.id() as i32);
    serve_echo(&connection);
    assert!(child.wait().unwrap().success());
}

fn a_byte_stream_reaches_a_separate_process() {
    let (connection, mut child, _listener, _) = accepted("stream", "stream");
    let (mut writer, bytes) = shm_channel::stream::pipe_memfd(1 << 16).unwrap();
    let (results, mut rx) = Builder::<Spsc>::new(4096).create_memfd().unwrap();
    connection.pass("bytes", bytes, DEADLINE).unwrap();
    connection.pass("results", results, DEADLINE).unwrap();
    let hash = common::write_stream(&mut writer, 8).unwrap();
    drop(writer);
    let report = rx.recv_timeout(DEADLINE).unwrap();
    assert_eq!(report[..8], 8u64.to_le_bytes());
    assert_eq!(report[8..], hash.to_le_bytes());
    assert!(child.wait().unwrap().success());
}

fn a_stalled_client_does_not_block_the_next() {
    let (stalled_connection, mut stalled, listener, name) = accepted("stall", "stall");
    // The stalled client never takes what we pass: passing still returns.
    let (mut tx, jobs) = Builder::<Spsc>::new(4096).create_memfd().unwrap();
    stalled_connection.pass("jobs", jobs, DEADLINE).unwrap();
    let mut good = spawn(&mut client("echo", &name));
    let connection = listener.accept_timeout(DEADLINE).unwrap();
    assert_eq!(connection.peer().pid, good.id() as i32);
    serve_echo(&connection);
    assert!(good.wait().unwrap().success());
    // The stalled client owns the endpoint passed to it: once it dies, PeerDied.
    stalled.kill().unwrap();
    stalled.wait().unwrap();
    assert!(matches!(
        send_until_error(&mut tx),
        SendTimeoutError::Send(SendError::PeerDied(()))
    ));
}

fn send_until_error(tx: &mut Sender<Spsc>) -> SendTimeoutError<()> {
    loop {
        if let Err(err) = tx.send_timeout(&[3; 64], DEADLINE) {
            return err;
        }
    }
}

fn client_killed_mid_handshake_is_peer_died() {
    let (connection, mut child, listener, name) = accepted("killed", "stall");
    child.kill().unwrap();
    child.wait().unwrap();
    let (mut tx, jobs) = Builder::<Spsc>::new(4096).create_memfd().unwrap();
    // The peer is gone: passing fails, and the endpoint is the dead peer's.
    assert!(matches!(
        connection.pass("jobs", jobs, DEADLINE),
        Err(RendezvousError::PeerGone)
    ));
    assert!(matches!(
        send_until_error(&mut tx),
        SendTimeoutError::Send(SendError::PeerDied(()))
    ));
    // The listener goes on: the next client is served.
    let mut good = spawn(&mut client("echo", &name));
    serve_echo(&listener.accept_timeout(DEADLINE).unwrap());
    assert!(good.wait().unwrap().success());
}

fn another_uid_is_refused() {
    use std::os::unix::process::CommandExt;
    let name = fresh_name("uid");
    let mut listener = Listener::bind(&name).unwrap();
    let me = nix::unistd::geteuid().as_raw();
    if me == 0 {
        // As root (CI): a client that runs as `nobody`.
        let mut command = client("refused", &name);
        command.uid(65534).gid(65534);
        let mut child = spawn(&mut command);
        match listener.accept_timeout(DEADLINE) {
            Err(RendezvousError::Refused { uid, .. }) => assert_eq!(uid, 65534),
            other => panic!("a client of another uid was not refused: {other:?}"),
        }
        assert_eq!(child.wait().unwrap().code(), Some(REFUSED_AS_EXPECTED));
    }
    // As any user: a policy naming another uid refuses our own client.
    listener.set_policy(Policy::Uid(me.wrapping_add(1)));
    let mut child = spawn(&mut client("refused", &name));
    let refused = listener.accept_timeout(DEADLINE);
    assert!(matches!(refused, Err(RendezvousError::Refused { .. })));
    assert!(refused.unwrap_err().is_per_connection());
    assert_eq!(child.wait().unwrap().code(), Some(REFUSED_AS_EXPECTED));
}

fn timeouts_and_absent_names() {
    let name = fresh_name("timeouts");
    assert!(matches!(
        connect(&name, Duration::from_millis(10)),
        Err(RendezvousError::NoListener(_))
    ));
    assert!(matches!(
        Listener::bind("not a name"),
        Err(RendezvousError::BadName(_))
    ));
    let listener = Listener::bind(&name).unwrap();
    assert!(matches!(
        listener.accept_timeout(Duration::from_millis(10)),
        Err(RendezvousError::Timeout)
    ));
    // Connected, but the listener never passes anything.
    let connection = connect(&name, DEADLINE).unwrap();
    assert!(matches!(
        connection.take::<Receiver<Spsc>>("jobs", Duration::from_millis(10)),
        Err(RendezvousError::Timeout)
    ));
}

/// Whether `/proc/net/unix` lists the abstract name `@shm-ipc/<name>`.
fn bound(name: &str) -> bool {
    let table = std::fs::read_to_string("/proc/net/unix").unwrap();
    let needle = format!("@shm-ipc/{name}");
    table.lines().any(|line| line.ends_with(&needle))
}

fn nothing_is_left_when_both_sides_are_gone() {
    let name = fresh_name("gone");
    let listener = Listener::bind(&name).unwrap();
    assert!(bound(&name));
    let mut child = spawn(&mut client("stall", &name));
    let connection = listener.accept_timeout(DEADLINE).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    drop(connection);
    drop(listener);
    assert!(!bound(&name));
    // The name is free again, with nothing to clean up.
    drop(Listener::bind(&name).unwrap());
}

/// A raw `SOCK_SEQPACKET` client of `name` (not this crate's), to send what it never would.
fn raw_client(name: &str) -> std::os::fd::OwnedFd {
    use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr};
    use std::os::fd::AsRawFd;
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    let addr = UnixAddr::new_abstract(format!("shm-ipc/{name}").as_bytes()).unwrap();
    socket::connect(fd.as_raw_fd(), &addr).unwrap();
    fd
}

/// Sends `data` on `socket`, with `fd` attached if given.
fn raw_send(socket: &std::os::fd::OwnedFd, data: &[u8], fd: Option<std::os::fd::RawFd>) {
    use nix::sys::socket::{self, ControlMessage, MsgFlags};
    use std::os::fd::AsRawFd;
    let fds: Vec<std::os::fd::RawFd> = fd.into_iter().collect();
    let cmsgs: Vec<ControlMessage<'_>> = if fds.is_empty() {
        Vec::new()
    } else {
        vec![ControlMessage::ScmRights(&fds)]
    };
    let iov = [std::io::IoSlice::new(data)];
    socket::sendmsg::<()>(socket.as_raw_fd(), &iov, &cmsgs, MsgFlags::empty(), None).unwrap();
}

fn garbage_from_a_peer_is_a_typed_error() {
    use std::os::fd::AsRawFd;
    let name = fresh_name("garbage");
    let listener = Listener::bind(&name).unwrap();
    let raw = raw_client(&name);
    let connection = listener.accept_timeout(DEADLINE).unwrap();
    let take = || connection.take::<Receiver<Spsc>>("jobs", DEADLINE);
    // No descriptor.
    raw_send(&raw, b"jobs\tspsc.receiver.0", None);
    assert!(matches!(take(), Err(RendezvousError::Protocol(_))));
    // A descriptor, but garbage text.
    let file = std::fs::File::open("/proc/self/stat").unwrap();
    raw_send(&raw, &[0xff, 0xfe, 0x00], Some(file.as_raw_fd()));
    assert!(matches!(take(), Err(RendezvousError::Protocol(_))));
    raw_send(&raw, b"jobs\tnot-a-ticket", Some(file.as_raw_fd()));
    assert!(matches!(take(), Err(RendezvousError::Transfer(_))));
    // A well-formed message carrying a file that is not a memfd.
    raw_send(&raw, b"jobs\tspsc.receiver.0", Some(file.as_raw_fd()));
    assert!(matches!(take(), Err(RendezvousError::Transfer(_))));
    // Another name than the one asked for.
    let (_tx, rx) = Builder::<Spsc>::new(4096).create_memfd().unwrap();
    let transfer = shm_channel::transfer::Portable::into_transfer(rx).unwrap();
    raw_send(
        &raw,
        b"other\tspsc.receiver.0",
        Some(transfer.fds()[0].as_raw_fd()),
    );
    assert!(matches!(take(), Err(RendezvousError::WrongName { .. })));
    // The peer hangs up.
    drop(raw);
    assert!(matches!(take(), Err(RendezvousError::PeerGone)));
}

/// A fresh socket path for one test, in the temporary directory.
fn fresh_path(test: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("shm-ipc-{test}-{}.sock", std::process::id()))
}

fn a_path_listener_serves_a_separate_process_and_removes_its_file() {
    let path = fresh_path("served");
    let listener = Listener::bind_path(&path).unwrap();
    assert!(
        path.exists(),
        "the socket file is there while the listener is"
    );
    assert!(matches!(
        Listener::bind_path(&path),
        Err(RendezvousError::NameTaken(_))
    ));
    let mut child = spawn(&mut client("echo-path", path.to_str().unwrap()));
    let connection = listener.accept_timeout(DEADLINE).unwrap();
    assert_eq!(connection.peer().pid, child.id() as i32);
    serve_echo(&connection);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    drop(connection);
    drop(listener);
    assert!(
        !path.exists(),
        "the listener's drop removes its socket file"
    );
    assert!(matches!(
        connect_path(&path, Duration::from_millis(10)),
        Err(RendezvousError::NoListener(_))
    ));
}

fn a_socket_file_left_by_a_killed_listener_is_replaced() {
    let path = fresh_path("stale");
    let mut child = spawn(&mut client("listen-path", path.to_str().unwrap()));
    // Wait (bounded) until the child's listener answers.
    let start = std::time::Instant::now();
    while connect_path(&path, Duration::from_millis(10)).is_err() {
        assert!(start.elapsed() < DEADLINE, "the child never listened");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // SIGKILL left the file behind (the limit of a path, documented), but nobody
    // answers it: the next bind replaces it.
    assert!(path.exists());
    let listener = Listener::bind_path(&path).unwrap();
    let client = connect_path(&path, DEADLINE).unwrap();
    let server = listener.accept_timeout(DEADLINE).unwrap();
    assert_eq!(server.peer().pid, std::process::id() as i32);
    drop((client, server, listener));
    assert!(!path.exists());
}

/// A select over receivers of all three flavors taken over the rendezvous by a process we
/// did not start as a child of a fork is woken by our sends.
fn a_select_in_a_separate_process_receives_from_three_flavors() {
    let (connection, mut child, _listener, _) = accepted("select", "select");
    let (senders, (spsc, mpsc, news)) = common::three_channels();
    let (results, mut rx) = Builder::<Spsc>::new(4096).create_memfd().unwrap();
    connection.pass("spsc", spsc, DEADLINE).unwrap();
    connection.pass("mpsc", mpsc, DEADLINE).unwrap();
    connection.pass("broadcast", news, DEADLINE).unwrap();
    connection.pass("results", results, DEADLINE).unwrap();
    common::feed_three(senders);
    assert_eq!(
        rx.recv_timeout(DEADLINE).unwrap(),
        common::select_three_complete()
    );
    assert!(child.wait().unwrap().success());
}
