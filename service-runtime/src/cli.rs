//! The command line both services share (`--config PATH`) and how they die at start-up.

use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser};

use crate::config::ConfigSource;

/// Command-line arguments.
// `--version` prints the binary's name and the workspace version: the image
// test runs it to prove the binary loads through the image's own loader.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// TOML config file [default: config/service-a.toml or config/service-b.toml,
    /// relative to the working directory; built-in defaults if it is missing]
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

impl Args {
    /// Parses the command line as `binary` (so `--help` and `--version` name
    /// the service, not this library); exits on `--help`, `--version` or a bad
    /// argument, as clap does.
    pub fn parse_as(binary: &'static str) -> Self {
        let matches = Self::command().name(binary).bin_name(binary).get_matches();
        Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }

    /// Where the settings come from: `--config`, or `default_path` if absent.
    pub fn config_source(&self, default_path: &str, env_prefix: &'static str) -> ConfigSource {
        ConfigSource {
            path: self.config.clone().unwrap_or_else(|| default_path.into()),
            explicit: self.config.is_some(),
            env_prefix,
        }
    }
}

/// Prints `binary: message` on stderr and exits with `code`: for start-up failures,
/// which happen before the first log line.
pub fn exit_with(binary: &str, code: i32, message: impl std::fmt::Display) -> ! {
    crate::log::flush();
    eprintln!("{binary}: {message}");
    std::process::exit(code)
}
