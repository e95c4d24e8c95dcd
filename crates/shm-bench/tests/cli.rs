//! The command line: bad arguments are rejected (by the parser and by the binary, with
//! exit code 2), good ones make the expected configuration. Nothing here forks through
//! the harness, so this binary keeps libtest (the others are `harness = false`, see
//! `common`).

use std::process::Command;

use clap::Parser;
use shm_bench::cli::Cli;
use shm_bench::Pattern;

#[test]
fn bad_arguments_are_rejected() {
    let bad: &[&[&str]] = &[
        &["--transports", "carrier-pigeon"],
        &["--transports", "pipe,nope"],
        &["--sizes", "0"],
        &["--sizes", "8,0"],
        &["--sizes", "lots"],
        &["--sizes", "1024m"],
        &["--reps", "0"],
        &["--reps", "-1"],
        &["--cpus", "0,4096"],
        &["--cpus", "0,0"],
        &["--cpus", "0"],
        &["--patterns", "broadcast"],
    ];
    for args in bad {
        let argv = std::iter::once("shm-bench").chain(args.iter().copied());
        assert!(Cli::try_parse_from(argv).is_err(), "accepted {args:?}");
    }
}

#[test]
fn good_arguments_make_the_expected_config() {
    let cli = Cli::try_parse_from([
        "shm-bench",
        "--quick",
        "--sizes",
        "4k,8,1MiB",
        "--transports",
        "unix-socket,pipe",
        "--reps",
        "7",
    ])
    .expect("valid arguments");
    let c = cli.into_config();
    assert_eq!(c.sizes, vec![8, 4096, 1 << 20]);
    assert_eq!(c.reps, 7);
    // Registry order, not argument order: that is the alternation order.
    let names: Vec<_> = c.transports.iter().map(|t| t.name()).collect();
    assert_eq!(names, ["pipe", "unix-socket"]);
    assert_eq!(c.patterns, Pattern::ALL.to_vec());
}

#[test]
fn binary_exits_with_code_2_on_bad_arguments() {
    let bin = env!("CARGO_BIN_EXE_shm-bench");
    for args in [["--transports", "nope"], ["--sizes", "0"], ["--reps", "0"]] {
        let out = Command::new(bin)
            .args(args)
            .output()
            .expect("run shm-bench");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("error"), "{args:?}: {err}");
    }
}
