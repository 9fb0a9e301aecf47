//! The lab's launcher, so a fresh clone needs nothing but cargo.
//!
//! # Layout
//!
//! - `up`: both services in one terminal, logs prefixed, Ctrl+C stops both.
//! - `demo`: every failure B names, as a Markdown transcript.
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
    /// Start A (8080) and B (8081) with config/*.toml; Ctrl+C stops both.
    Up,
    /// Walk through every failure on free ports; print a Markdown transcript.
    Demo,
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
        Command::Demo => demo::run(),
        Command::Bench { seconds } => bench::run(seconds),
    }
}
