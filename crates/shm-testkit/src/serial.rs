//! Running a test binary's tests one after another on its main thread.
//!
//! Code that refuses to fork a process with more than one thread (`shm-fork`'s safe entry
//! points) cannot be tested under libtest, which runs tests on threads. Such a test
//! binary sets `harness = false` in its `Cargo.toml` and its `main` calls
//! [`run_serially`] with its tests: no other thread ever exists, and no two tests fork at
//! once.

use std::any::Any;
use std::panic;

/// Runs the `tests` (name, function) that the command line selects, in order, on this
/// thread; prints a line per test and a summary; exits the process: 0 if none failed, 1
/// otherwise. A test fails by panicking.
///
/// Arguments that do not start with `-` filter by name, as libtest's do: `cargo test
/// --test failures -- watchdog` runs the tests whose name contains `watchdog`.
pub fn run_serially(tests: &[(&str, fn())]) -> ! {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let selected: Vec<_> = tests
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    let mut failures = 0;
    for &&(name, test) in &selected {
        let verdict = match panic::catch_unwind(test) {
            Ok(()) => "ok".to_string(),
            Err(payload) => {
                failures += 1;
                format!("FAILED: {}", panic_message(payload.as_ref()))
            }
        };
        println!("test {name} ... {verdict}");
    }
    println!(
        "{} passed, {failures} failed, {} filtered out",
        selected.len() - failures,
        tests.len() - selected.len()
    );
    std::process::exit(i32::from(failures > 0))
}

/// The message a panic carried (`panic!`'s `&str` or `String`), or an empty string.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    match payload.downcast_ref::<&str>() {
        Some(message) => message.to_string(),
        None => payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default(),
    }
}
