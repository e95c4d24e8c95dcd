//! `shm-bench`: see the library crate `shm_bench` and `shm-bench --help`.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;
use shm_bench::cli::Cli;
use shm_bench::report::{csv, json, plot, table};
use shm_bench::runner;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (json_path, csv_path, plot_path) = (cli.json.clone(), cli.csv.clone(), cli.plot.clone());
    let config = cli.into_config();
    let report = match runner::run(&config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("shm-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", table::render(&report));
    let _ = std::io::stdout().flush();
    let mut status = ExitCode::SUCCESS;
    let outputs = [
        (json_path, json::write as fn(&_, &_) -> _),
        (csv_path, csv::write),
        (plot_path, plot::write),
    ];
    for (path, write) in outputs {
        if let Some(path) = path {
            match write(&report, &path) {
                Ok(()) => eprintln!("wrote {}", path.display()),
                Err(e) => {
                    eprintln!("shm-bench: {e}");
                    status = ExitCode::FAILURE;
                }
            }
        }
    }
    status
}
