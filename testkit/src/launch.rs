//! [`Launch`]: how a test starts a service, over `service_procs::Launch`
//! (the one implementation), with a start that panics with the library's
//! message and a `try_start` that hands back only what a config test
//! checks: the exit code and stderr.

use std::path::PathBuf;

use crate::proc::Proc;

/// How to start a service.
#[derive(Debug, Clone)]
pub struct Launch(service_procs::Launch);

/// A service that exited before its start line.
#[derive(Debug)]
pub struct Exited {
    /// The exit code.
    pub code: Option<i32>,
    /// What it printed on stderr.
    pub stderr: String,
}

impl Launch {
    /// `binary` with `config` as its TOML file; the caller chooses the port (usually 0).
    /// Its lines are echoed on stderr when `TEST_LOG` is set.
    pub fn new(binary: impl Into<PathBuf>, config: &str) -> Self {
        let echo = std::env::var_os("TEST_LOG").is_some();
        Self(service_procs::Launch::new(binary, config).echo(echo))
    }

    /// Starts the service with this descriptor limit (`ulimit -n`), soft and
    /// hard, set in the child between fork and exec (Unix only; elsewhere
    /// the limit is not set and the test should not rely on it).
    pub fn descriptor_limit(self, soft: u64, hard: u64) -> Self {
        Self(self.0.descriptor_limit(soft, hard))
    }

    /// Passes `--config path` as it is (the `config` given to [`Launch::new`]
    /// is then not written): for layouts a test builds itself, such as the
    /// symlinks of a Kubernetes ConfigMap. [`Proc::config`] is then `path`.
    pub fn config_file(self, path: impl Into<PathBuf>) -> Self {
        Self(self.0.config_file(path))
    }

    /// Starts the service without `--config` in an empty folder, so that its
    /// default file (`default`, e.g. `config/service-a.toml`) is missing and
    /// it runs on built-in defaults. [`Proc::config`] is where that file
    /// would be (creating it there is picked up); pass the port by env.
    pub fn without_file(self, default: &str) -> Self {
        Self(self.0.without_file(default))
    }

    /// Reads but no longer keeps log lines after the start line: for load
    /// tests, where keeping millions of lines would cost the machine more than
    /// the service does.
    pub fn discard_lines(self) -> Self {
        Self(self.0.discard_lines())
    }

    /// Runs the binary through `wrapper` (e.g. `["ip", "netns", "exec", "ns1"]`).
    pub fn wrapped(self, wrapper: &[&str]) -> Self {
        Self(self.0.wrapped(wrapper))
    }

    /// Adds an environment variable.
    pub fn env(self, key: &str, value: &str) -> Self {
        Self(self.0.env(key, value))
    }

    /// Starts it and waits for the start line; panics with the library's
    /// message (its exit code and stderr, or its last output) if it does not.
    pub fn start(self) -> Proc {
        match self.0.start() {
            Ok(service) => Proc::from(service),
            Err(e) => panic!("{e}"),
        }
    }

    /// Starts it; `Err` if it exits before printing its start line; panics
    /// on any other failure (not built, no start line in time).
    pub fn try_start(self) -> Result<Proc, Exited> {
        match self.0.start() {
            Ok(service) => Ok(Proc::from(service)),
            Err(service_procs::Error::Exited { code, stderr, .. }) => Err(Exited { code, stderr }),
            Err(e) => panic!("{e}"),
        }
    }
}

impl From<service_procs::Launch> for Launch {
    fn from(launch: service_procs::Launch) -> Self {
        let echo = std::env::var_os("TEST_LOG").is_some();
        Self(launch.echo(echo))
    }
}

/// Starts `binary` with `toml` and checks that it refuses the config as the
/// contract says: exit code 2 before binding, one line naming the file and
/// containing `expected` (the key and what is allowed).
pub fn assert_bad_config(binary: impl Into<PathBuf>, toml: &str, expected: &str) {
    let exited = Launch::new(binary, toml)
        .try_start()
        .map(|p| p.url.clone())
        .expect_err(toml);
    assert_eq!(exited.code, Some(2), "{toml}: {}", exited.stderr);
    assert!(
        exited.stderr.contains("service.toml: "),
        "{toml}: {}",
        exited.stderr
    );
    assert!(
        exited.stderr.contains(expected),
        "{toml}: {}",
        exited.stderr
    );
    assert_eq!(exited.stderr.trim().lines().count(), 1, "{}", exited.stderr);
}
