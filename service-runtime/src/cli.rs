//! The command line both services share (`--config PATH`, `--help`) and how they die at start-up.

use std::path::{Path, PathBuf};

use clap::{CommandFactory as _, FromArgMatches as _, Parser};

use crate::config::ConfigSource;

/// The options; the words around them in `--help` come from [`Args::parse_as`].
// `--version` prints the binary's name and the workspace version: the image
// test runs it to prove the binary loads through the image's own loader.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// TOML config file [default: config/<binary>.toml, looked for in the
    /// working directory and then in each folder above it, as cargo finds
    /// Cargo.toml; built-in defaults if there is none]
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

/// What a service's `--help` says around the options: each service writes
/// its own and passes it in, so the runtime knows no service by name.
#[derive(Debug, Clone, Copy)]
pub struct Help {
    /// What the service does, in a paragraph: the first thing `--help` prints.
    pub about: &'static str,
    /// One env override worth showing, e.g. `SERVICE_A_FAULT__DELAY_MS=1500`.
    pub env_example: &'static str,
}

impl Args {
    /// Parses the command line of `binary`, whose `--help` says what the
    /// service does (`help`), where its config is and which environment
    /// variables (`env_prefix`) override it.
    pub fn parse_as(binary: &'static str, env_prefix: &str, help: Help) -> Self {
        let Help { about, env_example } = help;
        let after = format!(
            "Endpoints: GET / lists them.\n\
             Config: config/{binary}.toml lists every key with its default and range.\n\
             Environment: {env_prefix}<SECTION>__<KEY> overrides a key of the file, \
             e.g. {env_example}; {env_prefix}SERVER__PORT=0 picks a free port.\n\
             Exit codes: 0 stopped by SIGINT/SIGTERM (Ctrl+C/Ctrl+Break on Windows), 1 cannot listen, 2 bad config."
        );
        let matches = Self::command()
            .name(binary)
            .bin_name(binary)
            .about(about)
            .after_help(after)
            .get_matches();
        Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }

    /// Where the settings come from: `--config`, or `default_path` found in
    /// the working directory or the nearest folder above it that has it.
    pub fn config_source(&self, default_path: &str, env_prefix: &'static str) -> ConfigSource {
        let path = match &self.config {
            Some(path) => path.clone(),
            None => std::env::current_dir()
                .ok()
                .and_then(|cwd| find_upwards(&cwd, Path::new(default_path)))
                .unwrap_or_else(|| default_path.into()),
        };
        ConfigSource {
            path,
            explicit: self.config.is_some(),
            env_prefix,
        }
    }
}

/// `relative` in `dir` or the nearest folder above it that has it: from
/// `service-a/`, `config/service-a.toml` is `../config/service-a.toml`. The
/// working directory's own is returned as given, so start lines stay short.
fn find_upwards(dir: &Path, relative: &Path) -> Option<PathBuf> {
    if dir.join(relative).is_file() {
        return Some(relative.to_path_buf());
    }
    // Bounded by the depth of `dir`.
    dir.ancestors()
        .skip(1)
        .map(|up| up.join(relative))
        .find(|candidate| candidate.is_file())
}

/// Prints `binary: message` on stderr and exits with `code`: for start-up failures,
/// which happen before the first log line.
pub fn exit_with(binary: &str, code: i32, message: impl std::fmt::Display) -> ! {
    crate::log::flush();
    eprintln!("{binary}: {message}");
    std::process::exit(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default config is found in the folder itself or the nearest one
    /// above; nowhere means none.
    #[test]
    fn finds_config_upwards() {
        // A name of its own: no tempfile dependency for one test.
        let root = std::env::temp_dir().join(format!("find-upwards-{}", std::process::id()));
        let deep = root.join("service-a/src");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::create_dir_all(root.join("config")).unwrap();
        let rel = Path::new("config/service-a.toml");
        let none = find_upwards(&deep, rel);
        std::fs::write(root.join(rel), "").unwrap();
        let above = find_upwards(&deep, rel);
        let here = find_upwards(&root, rel);
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(none, None);
        assert_eq!(above, Some(root.join(rel)));
        assert_eq!(here, Some(rel.to_path_buf()));
    }
}
