//! Where a service's settings come from ([`ConfigSource`]: a file and an env
//! prefix), what loading them gives ([`Loaded`]) or refuses ([`ConfigError`]),
//! and how a value's origin is named in a message: the file as the user typed
//! its path, or the env variable that set it.

use std::fmt;
use std::path::{Path, PathBuf};

use figment::Source;

use crate::config::file::{self, ReadError, Snapshot, Stamp};

/// Exit code for a config the service refuses to start with.
pub const EXIT_BAD_CONFIG: i32 = 2;

/// Where the settings come from: a TOML file and an env prefix.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    /// The TOML file.
    pub path: PathBuf,
    /// Given with `--config`: then a missing file is an error, not defaults.
    pub explicit: bool,
    /// e.g. `SERVICE_A_`; `__` separates section and key.
    pub env_prefix: &'static str,
}

/// Settings as loaded, with whether the file was there.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    /// The validated settings.
    pub settings: T,
    /// False when the default file was missing and built-in defaults were used.
    pub file_found: bool,
    /// The file as read for these settings: a watcher compares against it, so
    /// an edit made right after start is not missed.
    pub snapshot: Option<Snapshot>,
}

/// A config the service will not run with; its `Display` is the whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigSource {
    /// The stamp of what the path leads to now (following symlinks), without
    /// opening it: a watcher compares it with the last version read and does
    /// not read an unchanged file again.
    pub fn stamp(&self) -> Result<Stamp, ReadError> {
        file::stamp(&self.path)
    }

    /// Opens the path afresh (following symlinks as they are now) and reads
    /// the file once, like an untrusted one, with its stamp taken from the
    /// same open file: anything but a regular file is refused, before and
    /// after it is opened (a FIFO must not block), and more than
    /// [`MAX_CONFIG_BYTES`](crate::config::MAX_CONFIG_BYTES) is never read.
    pub fn read(&self) -> Result<Snapshot, ReadError> {
        file::read(&self.path)
    }

    /// Why the file could not be read, naming it: `PATH: no such file (given
    /// with --config)` or `PATH: REASON`.
    pub fn unreadable(&self, e: &ReadError) -> ConfigError {
        match e {
            ReadError::Missing => ConfigError(format!(
                "{}: no such file (given with --config)",
                self.path.display()
            )),
            e => ConfigError(format!("{}: {e}", self.path.display())),
        }
    }

    /// How the start line names the config: the path, or that defaults are in use.
    pub fn describe_origin(&self, file_found: bool) -> String {
        if file_found {
            self.path.display().to_string()
        } else {
            format!(
                "none ({} not found, built-in defaults)",
                self.path.display()
            )
        }
    }

    /// "config/service-a.toml" or "env SERVICE_A_FAULT__DELAY_MS": where a key's value came from.
    pub(super) fn origin(&self, md: &figment::Metadata, key: &str) -> String {
        match &md.source {
            Some(Source::File(path)) => relative(path).display().to_string(),
            Some(Source::Code(_)) => "built-in default".to_owned(),
            _ if key.is_empty() => md.name.to_string(),
            _ => format!(
                "env {}{}",
                self.env_prefix,
                key.replace('.', "__").to_ascii_uppercase()
            ),
        }
    }
}

/// figment makes file paths absolute; users typed them relative to the working dir.
pub(super) fn relative(path: &Path) -> &Path {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok())
        .unwrap_or(path)
}
