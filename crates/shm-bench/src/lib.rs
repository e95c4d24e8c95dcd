//! # shm-bench
//!
//! The benchmark harness of shm-ipc: it measures shared-memory transports against pipes
//! and unix sockets, next to the machine's physical floors (cache-line ping-pong between
//! two processes, a shared-futex round trip, one-core memcpy bandwidth), all in one run.
//!
//! Every scenario ([`run_scenario`]) runs between this process and a child forked with
//! `shm-fork`, the two pinned to different CPUs (or to one CPU). Repetitions alternate the
//! transports (A B A B …) so drift hits all alike; every figure is reported as the median
//! across repetitions with its min–max.
//!
//! The binary `shm-bench` is a thin wrapper over [`cli`] and [`runner::run`]:
//!
//! ```no_run
//! use shm_bench::{cli::Cli, runner};
//! use clap::Parser;
//!
//! let config = Cli::parse_from(["shm-bench", "--quick"]).into_config();
//! let report = runner::run(&config)?;
//! print!("{}", shm_bench::report::table::render(&report));
//! # Ok::<(), shm_bench::BenchError>(())
//! ```
//!
//! New transports implement [`transport::Transport`] in one module and are registered in
//! [`transport::TRANSPORTS`].

mod affinity;
mod child;
pub mod cli;
mod config;
mod error;
mod floors;
mod machine;
mod measure;
mod msg;
mod overhead;
mod payload;
pub mod report;
pub mod runner;
mod scenario;
mod shm;
mod stats;
mod summary;
pub mod transport;

pub use affinity::allowed_cpus;
pub use config::{Budget, Config, CpuPair, Pattern};
pub use error::BenchError;
pub use payload::Payload;
pub use scenario::{run_scenario, Sample};
