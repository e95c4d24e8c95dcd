//! Running one test of the current test binary again, alone, in a fresh process: for what
//! only a new process shows (an environment variable read once, a handler registered on
//! first use), without touching the harness's own process (`set_var` in a multi-threaded
//! process races every `getenv`).

use std::process::Command;

/// Runs the libtest test `name` of this binary alone (`--exact`, one thread) with the
/// environment changes `env` (`None` removes a variable), and asserts that it passed — and
/// that it ran: a filter that matched nothing would prove nothing. `what` goes into the
/// failure messages.
pub fn rerun_alone(name: &str, env: &[(&str, Option<&str>)], what: &str) {
    let mut child = Command::new(std::env::current_exe().expect("the test binary"));
    child.args(["--exact", name, "--test-threads=1"]);
    for (key, value) in env {
        match value {
            Some(value) => child.env(key, value),
            None => child.env_remove(key),
        };
    }
    let output = child.output().expect("run the test binary again");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{what}\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("1 passed"), "{what}: {stdout}");
}
