//! The `SHM_IPC_HANDSHAKE` override as a real process sees it: this test binary runs
//! itself again with the variable set, so the harness's own environment is never changed
//! (`set_var` in a multi-threaded process races every `getenv`).

use shm_core::notify::{register_process, Handshake, HANDSHAKE_ENV};
use shm_testkit::rerun_alone;

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
        let expect = expected.to_u32().to_string();
        rerun_alone(
            THIS_TEST,
            &[(EXPECT, Some(&expect)), (HANDSHAKE_ENV, value)],
            &format!("{HANDSHAKE_ENV}={value:?}: expected {expected:?}"),
        );
    }
}
