//! The async echo example end to end: a tokio server and two tokio client processes that
//! meet through the rendezvous, their channels' doorbells passed with the memfds.

use std::process::Command;

mod common;

#[test]
fn async_echo_service_across_unrelated_processes() {
    let output = Command::new(common::example_binary("tokio_echo"))
        .output()
        .expect("run the tokio_echo example (cargo test builds it)");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    // Two clients over shm channels (twice: default wait, parked) and two over unix sockets, each checking every echo.
    for mode in ["(shm)", "(shm, parked)", "(unix)"] {
        let clients = stdout
            .lines()
            .filter(|l| l.starts_with("client ") && l.contains(mode) && l.contains("intact"))
            .count();
        assert_eq!(clients, 2, "{stdout}");
    }
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("tokio_echo: ") && l.contains("every one intact")),
        "{stdout}"
    );
}
