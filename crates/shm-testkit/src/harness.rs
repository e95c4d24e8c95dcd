//! A single-threaded test runner for `harness = false` test binaries.
//!
//! The safe fork APIs (`shm-fork`'s) refuse to fork a multi-threaded process, and libtest
//! runs tests on threads. A binary that forks through them declares `harness = false`, and
//! its `main` calls [`run`], which runs the tests one after another on the main thread (no
//! two tests ever fork at once), prints one line per test and a final
//! `N passed, M failed, K filtered out`, and exits non-zero if any failed.
//!
//! Arguments that do not start with `-` are name filters, as with libtest:
//! `cargo test -p shm-fork --test workers -- panics` runs the tests whose name contains
//! `panics`.

use std::panic::{self, AssertUnwindSafe};

/// Runs the `tests` selected by the command line's filters, in order, and exits the
/// process with their verdict.
pub fn run(tests: &[(&str, fn())]) -> ! {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut passed = 0;
    let mut failed = 0;
    let mut skipped = 0;
    for (name, test) in tests {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            skipped += 1;
            continue;
        }
        match panic::catch_unwind(AssertUnwindSafe(test)) {
            Ok(()) => {
                passed += 1;
                println!("test {name} ... ok");
            }
            Err(payload) => {
                failed += 1;
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                println!("test {name} ... FAILED: {message}");
            }
        }
    }
    println!("{passed} passed, {failed} failed, {skipped} filtered out");
    std::process::exit(i32::from(failed > 0))
}
