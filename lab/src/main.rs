//! The lab's launcher, so a fresh clone needs nothing but cargo.
//!
//! # Layout
//!
//! - `up`: both services in one terminal, logs prefixed; typed commands stop
//!   and start each, Ctrl+C stops both.
//! - `demo`: the course's lab report, `lab-report.md`: the proofs and answers
//!   the course grades first, then every failure the real A can cause.
//! - `bench`: A and B beside nginx under wrk, and B's failure paths under load.
//! - `experiment`: timed phases of faults under steady load, checked and
//!   reported (`experiment/mod.rs` says how it is split).
//! - `console`: the page `up` serves on loopback: break A, watch B, live.
//! - `procs`: building the services, and `up`'s children with their output
//!   prefixed; launching and stopping a service is the `service-procs`
//!   library's (every step a `Result`, never a panic).
//! - `client`: the demo's and the bench's HTTP client, one `GET` at a time.

#![deny(unsafe_code)]
#![warn(rust_2018_idioms)]

mod bench;
mod client;
mod console;
mod demo;
mod experiment;
mod procs;
mod up;

use clap::{Parser, Subcommand};

/// Run the distributed-systems failure lab.
#[derive(Debug, Parser)]
#[command(name = "cargo lab", bin_name = "cargo lab")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start A (8080) and B (8081) with config/*.toml. Type `a stop`,
    /// `a start`, `b restart`, `status`, `quit`; Ctrl+C stops both. Also
    /// serves the console (its URL, with this run's token, is printed).
    Up {
        #[command(flatten)]
        console: console::Options,
    },
    /// Write the lab report to hand in: the course's proofs and answers, then
    /// every failure A can cause, from a real run of A and B.
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
        /// Replace the report even if you edited it (your changes are lost).
        #[arg(long)]
        overwrite: bool,
        /// Where the demo writes the services' configs (default: target/lab-demo).
        #[arg(long, value_name = "DIR", hide = true)]
        work_dir: Option<std::path::PathBuf>,
    },
    /// Benchmark A and B beside nginx (run with --release).
    Bench {
        /// Seconds of load per happy-path row, split over three rounds
        /// (failure rows: up to 5 s each).
        #[arg(long, default_value_t = 15)]
        seconds: u32,
    },
    /// Run an experiment file (experiments/*.toml) and write its report folder.
    Experiment {
        /// The experiment, e.g. experiments/course.toml.
        file: std::path::PathBuf,
        /// Exit 1 if any expectation is not met (for CI).
        #[arg(long)]
        check: bool,
        /// Multiply every phase's duration by this (0.25 = a quarter as long).
        #[arg(long, conflicts_with = "seconds")]
        scale: Option<f64>,
        /// Shorten (or stretch) the whole run to about this many seconds.
        #[arg(long)]
        seconds: Option<f64>,
        /// The report folder (default: runs/<name>-<UTC time>/).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

/// A failure ends with its message and causes on one line, as `Error: ...`,
/// and exit code 1; never with a backtrace (which `RUST_BACKTRACE=1` would add
/// to anyhow's report), since every error here is a message for a person.
fn main() {
    if let Err(e) = run(Cli::parse().command) {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Up { console } => up::run(&console),
        Command::Demo {
            timeout_ms,
            report,
            free_ports,
            overwrite,
            work_dir,
        } => demo::run(demo::Options {
            timeout_ms,
            report,
            free_ports,
            overwrite,
            work_dir,
        }),
        Command::Bench { seconds } => bench::run(seconds),
        Command::Experiment {
            file,
            check,
            scale,
            seconds,
            out,
        } => {
            let scale = match (scale, seconds) {
                (Some(f), _) => experiment::scenario::Scale::Factor(f),
                (None, Some(s)) => experiment::scenario::Scale::Seconds(s),
                (None, None) => experiment::scenario::Scale::Full,
            };
            let met = experiment::run(&experiment::Options { file, scale, out })?;
            if check && !met {
                eprintln!("lab | --check: an expectation was not met (see above)");
                std::process::exit(1);
            }
            Ok(())
        }
    }
}
