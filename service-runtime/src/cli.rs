//! The command line both services share (`--config PATH`) and how they die at start-up.

use std::path::PathBuf;

use clap::Parser;

use crate::config::ConfigSource;

/// Command-line arguments.
#[derive(Debug, Parser)]
pub struct Args {
    /// TOML config file [default: config/service-a.toml or config/service-b.toml,
    /// relative to the working directory; built-in defaults if it is missing]
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

impl Args {
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
