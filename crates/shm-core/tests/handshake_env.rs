//! The `SHM_IPC_HANDSHAKE` override as a real process sees it: this test binary runs
//! itself again with the variable set, so the harness's own environment is never changed
//! (`set_var` in a multi-threaded process races every `getenv`).

use std::process::Command;

use shm_core::notify::{register_process, Handshake, HANDSHAKE_ENV};

/// Set in the re-run child: the handshake (as its `u32`) it must find preferred.
const EXPECT: &str = "SHM_CORE_TEST_EXPECTED_HANDSHAKE";
const THIS_TEST: &str = "preferred_handshake_follows_the_environment_variable";

#[test]
fn preferred_handshake_follows_the_environment_variable() {
    if let Some(expected) = std::env::var_os(EXPECT) {
        // The re-run child (a fresh exec, so not yet registered): check and report.
        let expected: u32 = expected.to_str().unwrap().parse().unwrap();
        assert_eq!(Handshake::preferred().to_u32(), expected);
        return;
    }
    let native = match register_process() {
        Ok(()) => Handshake::Membarrier,
        Err(err) => {
            eprintln!("membarrier handshake unavailable here ({err}): expecting the fallback");
            Handshake::SeqCst
        }
    };
    let cases = [
        (Some("seqcst"), Handshake::SeqCst),
        (Some("SeqCst"), Handshake::SeqCst),
        (Some("membarrier"), native),
        (Some("something else"), native),
        (None, native),
    ];
    for (value, expected) in cases {
        let mut child = Command::new(std::env::current_exe().unwrap());
        child
            .args(["--exact", THIS_TEST, "--test-threads=1"])
            .env(EXPECT, expected.to_u32().to_string());
        match value {
            Some(value) => child.env(HANDSHAKE_ENV, value),
            None => child.env_remove(HANDSHAKE_ENV),
        };
        let output = child.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{HANDSHAKE_ENV}={value:?}: expected {expected:?}\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        // The filter must have matched the test, or the run proves nothing.
        assert!(stdout.contains("1 passed"), "{value:?}: {stdout}");
    }
}
