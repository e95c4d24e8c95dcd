//! A single-threaded test runner and helpers shared by this crate's test binaries.
//!
//! The harness forks its benchmark children with `shm-fork`, whose safe entry points refuse
//! to fork a multi-threaded process; libtest runs tests on threads. So every test binary of
//! this crate is `harness = false`: its `main` calls [`run`], which runs the tests one after
//! another on the main thread (no two tests ever fork at once), prints one line per test
//! and a final `N passed, M failed`, and exits non-zero if any failed.
//!
//! Arguments that do not start with `-` are name filters, as with libtest:
//! `cargo test -p shm-bench --test failures -- watchdog` runs the tests whose name
//! contains `watchdog`.

#![allow(dead_code)]

use std::panic::{self, AssertUnwindSafe};

use shm_bench::affinity::allowed_cpus;
use shm_bench::CpuPair;

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

/// Two CPUs this test process may use (one, shared, on a single-CPU machine).
pub fn cpus() -> CpuPair {
    let allowed = allowed_cpus();
    let parent = allowed[0];
    let child = *allowed.get(1).unwrap_or(&parent);
    CpuPair { parent, child }
}
