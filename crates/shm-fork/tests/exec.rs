//! Exec'd children across a real `exec`: this test binary spawns itself in a child mode
//! (`EXEC_CHILD_MODE`), passing it endpoints through `shm_fork::exec::Command`.

mod common;

use std::collections::BTreeSet;
use std::os::fd::AsRawFd;
use std::process::Stdio;

use common::DEADLINE;
use shm_channel::spsc::Spsc;
use shm_channel::stream::StreamReader;
use shm_channel::RecvError;
use shm_channel::SendError;
use shm_channel::{broadcast, mpsc, RecvTimeoutError, SendTimeoutError};
use shm_channel::{Builder, Receiver, Sender};
use shm_fork::exec::{inherited, Command, InheritedError, ENDPOINTS_VAR};
use shm_fork::ExitStatus;

/// Set in the child: which child mode to run.
const MODE: &str = "EXEC_CHILD_MODE";

fn main() {
    if let Ok(mode) = std::env::var(MODE) {
        std::process::exit(child(&mode));
    }
    common::run(&[
        (
            "messages_intact_both_directions",
            messages_intact_both_directions,
        ),
        (
            "byte_stream_to_exec_child_checksums_equal",
            byte_stream_to_exec_child_checksums_equal,
        ),
        (
            "broadcast_receiver_travels_with_its_cursor",
            broadcast_receiver_travels_with_its_cursor,
        ),
        (
            "mpsc_sender_travels_with_its_slot",
            mpsc_sender_travels_with_its_slot,
        ),
        (
            "child_killed_before_attaching_is_peer_died",
            child_killed_before_attaching_is_peer_died,
        ),
        (
            "child_killed_mid_stream_is_peer_died",
            child_killed_mid_stream_is_peer_died,
        ),
        (
            "child_exiting_without_attaching_is_peer_died",
            child_exiting_without_attaching_is_peer_died,
        ),
        (
            "no_descriptor_leaks_into_the_child",
            no_descriptor_leaks_into_the_child,
        ),
        (
            "no_stray_descriptors_after_both_sides_drop",
            no_stray_descriptors_after_both_sides_drop,
        ),
        (
            "garbage_variables_are_typed_errors",
            garbage_variables_are_typed_errors,
        ),
        (
            "wrong_endpoint_type_and_second_take_are_typed_errors",
            wrong_endpoint_type_and_second_take_are_typed_errors,
        ),
        (
            "anonymous_channel_cannot_be_passed",
            anonymous_channel_cannot_be_passed,
        ),
        (
            "a_select_in_an_exec_child_receives_from_three_flavors",
            a_select_in_an_exec_child_receives_from_three_flavors,
        ),
    ]);
}

// ---------------------------------------------------------------- child modes

/// Exit codes of the child modes that report an `InheritedError`.
fn error_code(err: &InheritedError) -> i32 {
    match err {
        InheritedError::NoEndpoints => 10,
        InheritedError::Malformed { .. } => 11,
        InheritedError::NotForThisProcess { .. } => 12,
        InheritedError::NotPassed(_) => 13,
        InheritedError::BadDescriptor { .. } => 14,
        InheritedError::Rebuild { .. } => 15,
    }
}

fn child(mode: &str) -> i32 {
    match mode {
        "echo" => {
            let mut jobs: Receiver<Spsc> = inherited("jobs").expect("jobs");
            let mut results: Sender<Spsc> = inherited("results").expect("results");
            while let Ok(msg) = jobs.recv() {
                results.send(&msg).expect("send back");
            }
            0
        }
        "mpsc-send" => {
            let mut out: Sender<mpsc::Mpsc> = inherited("out").expect("out");
            for i in 0..1000u64 {
                out.send(&message(i)).expect("send");
            }
            0
        }
        "stream-read" => {
            let mut bytes: StreamReader = inherited("bytes").expect("bytes");
            let mut results: Sender<Spsc> = inherited("results").expect("results");
            let (blocks, hash) = common::read_stream(&mut bytes).expect("read the stream");
            let mut report = blocks.to_le_bytes().to_vec();
            report.extend_from_slice(&hash.to_le_bytes());
            results.send(&report).expect("report");
            0
        }
        "broadcast-read" => {
            let mut news: Receiver<broadcast::Broadcast> = inherited("news").expect("news");
            let mut results: Sender<Spsc> = inherited("results").expect("results");
            for i in 0..100 {
                assert_eq!(news.recv().expect("news"), message(i));
            }
            results.send(b"all 100").expect("report");
            0
        }
        "select" => {
            let spsc: Receiver<Spsc> = inherited("spsc").expect("spsc");
            let mpsc: Receiver<mpsc::Mpsc> = inherited("mpsc").expect("mpsc");
            let news: Receiver<broadcast::Broadcast> = inherited("broadcast").expect("broadcast");
            let mut results: Sender<Spsc> = inherited("results").expect("results");
            let report = common::select_three((spsc, mpsc, news));
            results.send(&report).expect("report");
            0
        }
        "sleep" => common::block_forever(),
        "exit-unattached" => 7,
        "read-ten-then-sleep" => {
            let mut jobs: Receiver<Spsc> = inherited("jobs").expect("jobs");
            let mut results: Sender<Spsc> = inherited("results").expect("results");
            for i in 0..10 {
                assert_eq!(jobs.recv().expect("job"), message(i));
            }
            results.send(b"ready").expect("ready");
            common::block_forever()
        }
        "count-fds" => {
            // Before anything else opens a descriptor: what exec let through.
            let fds = open_fds();
            let mut results: Sender<Spsc> = inherited("results").expect("results");
            let list: Vec<u8> = fds.iter().flat_map(|fd| fd.to_le_bytes()).collect();
            results.send(&list).expect("send the list");
            // Every passed descriptor, taken ("results") or not ("jobs"), is close-on-exec
            // again: none would leak into a program this one starts.
            let value = std::env::var(ENDPOINTS_VAR).expect("the variable");
            let passed: Vec<i32> = value
                .split(';')
                .skip(1)
                .map(|entry| entry.split_once('=').unwrap().1)
                .flat_map(|rest| rest.split_once(':').unwrap().0.split(','))
                .map(|fd| fd.parse().unwrap())
                .collect();
            let inheritable = inheritable_fds();
            let still_inheritable = passed.iter().filter(|fd| inheritable.contains(fd)).count();
            results
                .send(&[passed.len() as u8, still_inheritable as u8])
                .expect("send the count");
            0
        }
        "take" => match inherited::<Receiver<Spsc>>("jobs") {
            Ok(_) => 0,
            Err(err) => {
                eprintln!("{err}");
                error_code(&err)
            }
        },
        "take-twice" => {
            let first = inherited::<Receiver<Spsc>>("jobs").map(drop);
            let second = inherited::<Receiver<Spsc>>("jobs").map(drop);
            match (first, second) {
                (Err(err), _) => error_code(&err),
                (Ok(()), Err(err)) => 20 + error_code(&err),
                (Ok(()), Ok(())) => 1,
            }
        }
        _ => 2,
    }
}

// ---------------------------------------------------------------- helpers

/// Message `i`: its number, then a pattern; 8 to 207 bytes.
fn message(i: u64) -> Vec<u8> {
    let len = 8 + (i as usize * 37) % 200;
    let mut msg: Vec<u8> = (0..len).map(|j| (i as usize + j * 7) as u8).collect();
    msg[..8].copy_from_slice(&i.to_le_bytes());
    msg
}

/// This test binary, to run in `mode`.
fn command(mode: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("own path"));
    command.env(MODE, mode).stdin(Stdio::null());
    command
}

/// Spawns `mode` with a fresh "jobs" channel (we send) and "results" channel (we
/// receive).
fn spawn_with_jobs_and_results(mode: &str) -> (Sender<Spsc>, Receiver<Spsc>, shm_fork::Child) {
    let (tx, jobs) = Builder::<Spsc>::new(4096).create_memfd().unwrap();
    let (results, rx) = Builder::<Spsc>::new(4096).create_memfd().unwrap();
    let mut command = command(mode);
    command.pass("jobs", jobs).unwrap();
    command.pass("results", results).unwrap();
    (tx, rx, command.spawn().unwrap())
}

/// After the child was killed: both of our endpoints report `PeerDied` (within
/// [`DEADLINE`], not `Timeout`), and the child's status is the kill.
fn assert_peer_died(mut tx: Sender<Spsc>, mut rx: Receiver<Spsc>, mut child: shm_fork::Child) {
    assert!(matches!(
        send_until_error(&mut tx),
        SendTimeoutError::Send(SendError::PeerDied(()))
    ));
    assert!(matches!(
        rx.recv_timeout(DEADLINE),
        Err(RecvTimeoutError::Recv(RecvError::PeerDied))
    ));
    assert_eq!(child.wait().unwrap(), ExitStatus::Signaled(libc::SIGKILL));
}

/// The child closed its end (`Disconnected`, after every message) and exited with 0.
fn assert_closed_then_exits_0<F>(rx: &mut shm_channel::Receiver<F>, child: &mut shm_fork::Child)
where
    F: shm_channel::Flavor<RecvError = RecvError>,
{
    assert!(matches!(
        rx.recv_timeout(DEADLINE),
        Err(RecvTimeoutError::Recv(RecvError::Disconnected))
    ));
    assert_eq!(
        child.wait_timeout(DEADLINE).unwrap(),
        Some(ExitStatus::Exited(0))
    );
}

/// The open descriptors of this process (without the one reading the directory).
fn open_fds() -> BTreeSet<i32> {
    let dir = std::fs::read_dir("/proc/self/fd").expect("read /proc/self/fd");
    let mut fds: BTreeSet<i32> = dir
        .map(|entry| {
            entry
                .unwrap()
                .file_name()
                .to_string_lossy()
                .parse()
                .unwrap()
        })
        .collect();
    // One of them was the directory itself: keep only those still open now.
    fds.retain(|fd| {
        // SAFETY: F_GETFD on a descriptor number touches no memory.
        unsafe { libc::fcntl(*fd, libc::F_GETFD) != -1 }
    });
    fds
}

/// This process's descriptors without `FD_CLOEXEC` (inherited from whoever started the
/// test: they pass into any child, and are not ours to close).
fn inheritable_fds() -> BTreeSet<i32> {
    let mut fds = open_fds();
    // SAFETY: F_GETFD on a descriptor number touches no memory.
    fds.retain(|fd| unsafe { libc::fcntl(*fd, libc::F_GETFD) } & libc::FD_CLOEXEC == 0);
    fds
}

/// Sends until the send fails; the error (never `Timeout` within [`DEADLINE`]).
fn send_until_error(tx: &mut Sender<Spsc>) -> SendTimeoutError<()> {
    loop {
        if let Err(err) = tx.send_timeout(&[7; 64], DEADLINE) {
            return err;
        }
    }
}

// ---------------------------------------------------------------- tests

fn messages_intact_both_directions() {
    let (mut tx, mut rx, mut child) = spawn_with_jobs_and_results("echo");
    for i in 0..2000u64 {
        tx.send_timeout(&message(i), DEADLINE).unwrap();
        let echoed = rx.recv_timeout(DEADLINE).unwrap();
        assert_eq!(echoed, message(i), "message {i} changed on the way");
    }
    drop(tx);
    assert_closed_then_exits_0(&mut rx, &mut child);
}

fn byte_stream_to_exec_child_checksums_equal() {
    let (mut writer, bytes) = shm_channel::stream::pipe_memfd(1 << 16).unwrap();
    let (results, mut rx) = Builder::<Spsc>::new(4096).create_memfd().unwrap();
    let mut command = command("stream-read");
    command.pass("bytes", bytes).unwrap();
    command.pass("results", results).unwrap();
    let mut child = command.spawn().unwrap();
    let hash = common::write_stream(&mut writer, 16).unwrap();
    drop(writer);
    let report = rx.recv_timeout(DEADLINE).unwrap();
    assert_eq!(report[..8], 16u64.to_le_bytes());
    assert_eq!(report[8..], hash.to_le_bytes());
    assert_eq!(
        child.wait_timeout(DEADLINE).unwrap(),
        Some(ExitStatus::Exited(0))
    );
}

fn broadcast_receiver_travels_with_its_cursor() {
    let (mut tx, mut first) = Builder::<broadcast::Broadcast>::new(1 << 16)
        .create_memfd()
        .unwrap();
    let second = first.try_clone().unwrap();
    // Sent before the hand-over: the child must see it, from the cursor it inherits.
    tx.send(&message(0)).unwrap();
    let (results, mut rx) = Builder::<Spsc>::new(4096).create_memfd().unwrap();
    let mut command = command("broadcast-read");
    command.pass("news", second).unwrap();
    command.pass("results", results).unwrap();
    let mut child = command.spawn().unwrap();
    for i in 1..100 {
        tx.send_timeout(&message(i), DEADLINE).unwrap();
    }
    for i in 0..100 {
        assert_eq!(first.recv().unwrap(), message(i));
    }
    assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), b"all 100");
    assert_closed_then_exits_0(&mut rx, &mut child);
}

fn mpsc_sender_travels_with_its_slot() {
    let (first, mut rx) = Builder::<mpsc::Mpsc>::new(1 << 14).create_memfd().unwrap();
    let second = first.try_clone().unwrap();
    assert_eq!(second.slot(), 1);
    let mut command = command("mpsc-send");
    command.pass("out", second).unwrap();
    let mut child = command.spawn().unwrap();
    drop(first);
    for i in 0..1000u64 {
        assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), message(i));
    }
    assert_closed_then_exits_0(&mut rx, &mut child);
}

fn child_killed_before_attaching_is_peer_died() {
    let (tx, rx, mut child) = spawn_with_jobs_and_results("sleep");
    child.kill().unwrap();
    assert_peer_died(tx, rx, child);
}

fn child_killed_mid_stream_is_peer_died() {
    let (mut tx, mut rx, mut child) = spawn_with_jobs_and_results("read-ten-then-sleep");
    for i in 0..10 {
        tx.send_timeout(&message(i), DEADLINE).unwrap();
    }
    assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), b"ready");
    child.kill().unwrap();
    assert_peer_died(tx, rx, child);
}

fn child_exiting_without_attaching_is_peer_died() {
    let (mut tx, jobs) = Builder::<Spsc>::new(4096).create_memfd().unwrap();
    let mut command = command("exit-unattached");
    command.pass("jobs", jobs).unwrap();
    let mut child = command.spawn().unwrap();
    assert_eq!(
        child.wait_timeout(DEADLINE).unwrap(),
        Some(ExitStatus::Exited(7))
    );
    assert!(matches!(
        send_until_error(&mut tx),
        SendTimeoutError::Send(SendError::PeerDied(()))
    ));
}

fn no_descriptor_leaks_into_the_child() {
    // Descriptors of ours that must not reach the child: a file, another memfd channel.
    let _file = std::fs::File::open("/proc/self/stat").unwrap();
    let (_other_tx, _other_rx) = Builder::<Spsc>::new(4096)
        .doorbells(true)
        .create_memfd()
        .unwrap();
    // One endpoint travels with its doorbells (3 descriptors), one without (1).
    let (_tx, jobs) = Builder::<Spsc>::new(4096)
        .doorbells(true)
        .create_memfd()
        .unwrap();
    let (results, mut rx) = Builder::<Spsc>::new(4096)
        .doorbells(false)
        .create_memfd()
        .unwrap();
    let mut command = command("count-fds");
    command.pass("jobs", jobs).unwrap();
    command.pass("results", results).unwrap();
    let before = inheritable_fds();
    let mut child = command.spawn().unwrap();
    let list = rx.recv_timeout(DEADLINE).unwrap();
    // Four passed, none left inheritable after the child's first `inherited`.
    assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), [4, 0]);
    let in_child: BTreeSet<i32> = list
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(
        child.wait_timeout(DEADLINE).unwrap(),
        Some(ExitStatus::Exited(0))
    );
    // The child has what any child of ours inherits (descriptors someone opened without
    // FD_CLOEXEC before this test ran: the standard streams, a jobserver) plus exactly
    // the four passed descriptors (two memfds, one channel's two doorbells).
    let extra: Vec<i32> = in_child.difference(&before).copied().collect();
    assert_eq!(
        extra.len(),
        4,
        "child has {in_child:?}, inheritable here {before:?}"
    );
    assert!(before.is_subset(&in_child));
}

fn no_stray_descriptors_after_both_sides_drop() {
    let before = open_fds();
    {
        let (mut tx, mut rx, mut child) = spawn_with_jobs_and_results("echo");
        tx.send(b"one").unwrap();
        assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), b"one");
        drop(tx);
        assert_eq!(
            child.wait_timeout(DEADLINE).unwrap(),
            Some(ExitStatus::Exited(0))
        );
    }
    assert_eq!(open_fds(), before);
}

/// Runs the "take" mode with the variable set to `value`; its exit code.
fn take_with(value: &str) -> i32 {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .env(MODE, "take")
        .env(ENDPOINTS_VAR, value)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.wait().unwrap().code().unwrap()
}

fn garbage_variables_are_typed_errors() {
    let me = std::process::id();
    assert_eq!(take_with("garbage"), 11);
    assert_eq!(take_with(&format!("ppid={me};jobs=1:spsc.receiver.0")), 11);
    assert_eq!(take_with(&format!("ppid={me};jobs=3:spsc.nobody.0")), 11);
    assert_eq!(take_with("ppid=1;jobs=3:spsc.receiver.0"), 12);
    assert_eq!(take_with(&format!("ppid={me};other=3:spsc.receiver.0")), 13);
    // Not open in the child (std opens nothing of ours without FD_CLOEXEC).
    assert_eq!(
        take_with(&format!("ppid={me};jobs=900:spsc.receiver.0")),
        14
    );
    // Open in the child, but not a memfd: a file this test lets through exec on purpose.
    let file = std::fs::File::open("/proc/self/stat").unwrap();
    let fd = file.as_raw_fd();
    // SAFETY: F_SETFD on a descriptor we own touches no memory.
    assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }, 0);
    assert_eq!(
        take_with(&format!("ppid={me};jobs={fd}:spsc.receiver.0")),
        14
    );
    drop(file);
    let mut plain = std::process::Command::new(std::env::current_exe().unwrap());
    plain
        .env(MODE, "take")
        .env_remove(ENDPOINTS_VAR)
        .stderr(Stdio::null());
    assert_eq!(plain.status().unwrap().code(), Some(10));
}

fn wrong_endpoint_type_and_second_take_are_typed_errors() {
    // A sender passed where the child asks for a receiver.
    let (tx, _rx) = Builder::<Spsc>::new(4096).create_memfd().unwrap();
    let mut take = command("take");
    take.stderr(Stdio::null());
    take.pass("jobs", tx).unwrap();
    let mut child = take.spawn().unwrap();
    assert_eq!(
        child.wait_timeout(DEADLINE).unwrap(),
        Some(ExitStatus::Exited(15))
    );

    let (_tx, rx) = Builder::<Spsc>::new(4096).create_memfd().unwrap();
    let mut command = command("take-twice");
    command.pass("jobs", rx).unwrap();
    let mut child = command.spawn().unwrap();
    assert_eq!(
        child.wait_timeout(DEADLINE).unwrap(),
        Some(ExitStatus::Exited(20 + 13))
    );
}

fn anonymous_channel_cannot_be_passed() {
    let (_tx, rx) = Builder::<Spsc>::new(4096).create().unwrap();
    let mut command = command("take");
    let err = command.pass("jobs", rx).unwrap_err();
    assert!(matches!(
        err,
        shm_fork::exec::ExecError::Transfer {
            source: shm_channel::transfer::TransferError::NotFdBacked,
            ..
        }
    ));
    let (_tx, rx) = Builder::<Spsc>::new(4096).create_memfd().unwrap();
    assert!(matches!(
        command.pass("bad name", rx),
        Err(shm_fork::exec::ExecError::BadName(_))
    ));
}

/// A select over receivers of all three flavors rebuilt in an exec'd child (its own
/// mapping of each memfd, its own membarrier registration) is woken by our sends.
fn a_select_in_an_exec_child_receives_from_three_flavors() {
    let (senders, (spsc, mpsc, news)) = common::three_channels();
    let (results, mut rx) = Builder::<Spsc>::new(4096).create_memfd().unwrap();
    let mut command = command("select");
    command.pass("spsc", spsc).unwrap();
    command.pass("mpsc", mpsc).unwrap();
    command.pass("broadcast", news).unwrap();
    command.pass("results", results).unwrap();
    let mut child = command.spawn().unwrap();
    common::feed_three(senders);
    assert_eq!(
        rx.recv_timeout(DEADLINE).unwrap(),
        common::select_three_complete()
    );
    assert_eq!(
        child.wait_timeout(DEADLINE).unwrap(),
        Some(ExitStatus::Exited(0))
    );
}
