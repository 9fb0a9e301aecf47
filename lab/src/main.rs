//! The lab's launcher, so a fresh clone needs nothing but cargo.
//!
//! # Layout
//!
//! - `up`: both services in one terminal, logs prefixed; typed commands stop
//!   and start each, Ctrl+C stops both.
//! - `demo`: every failure the real A can cause, written up as `lab-report.md`.
//! - `bench`: A and B beside nginx under wrk, and B's failure paths under load.
//! - `procs`: building the services and running them as child processes.

#![forbid(unsafe_code)]
#![warn(rust_2018_idioms)]

mod bench;
mod demo;
mod procs;
mod up;

use clap::{Parser, Subcommand};

/// Run the distributed-systems failure lab.
#[derive(Debug, Parser)]
#[command(name = "cargo lab")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start A (8080) and B (8081) with config/*.toml. Type `a stop`,
    /// `a start`, `b restart`, `status`, `quit`; Ctrl+C stops both.
    Up,
    /// Run every failure A can cause through B and write the lab report.
    Demo {
        /// B's deadline for each call to A (the course's: 1000).
        #[arg(long, default_value_t = 1000, value_name = "MS")]
        timeout_ms: u64,
        /// Where to write the report.
        #[arg(long, default_value = "lab-report.md", value_name = "PATH")]
        report: std::path::PathBuf,
        /// Use free ports even when 8080 and 8081 are free.
        #[arg(long)]
        free_ports: bool,
    },
    /// Benchmark A and B beside nginx (run with --release).
    Bench {
        /// Seconds of load per happy-path row, split over three rounds
        /// (failure rows: up to 5 s each).
        #[arg(long, default_value_t = 15)]
        seconds: u32,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Up => up::run(),
        Command::Demo {
            timeout_ms,
            report,
            free_ports,
        } => demo::run(demo::Options {
            timeout_ms,
            report,
            free_ports,
        }),
        Command::Bench { seconds } => bench::run(seconds),
    }
}
