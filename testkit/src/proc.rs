//! A service started by a test: [`Launch`], how to start it (over
//! `service_procs::Launch`, the one implementation), and [`Proc`], the
//! running service (the library's `service_procs::Service`, reached through
//! `Deref` for everything that cannot fail: `url`, `config`, `stderr`, ...;
//! the most used are also methods of its own, so `Proc::lines` names them).
//! Every step that can fail panics with the library's message, which names
//! the service and its last output, so that a test reads as a list of
//! steps; [`Launch::try_start`] hands back only what a config test checks.

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use service_procs::PATIENCE;

use crate::http;
use crate::metrics::metric;

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

/// A running service process. Killed when dropped.
#[derive(Debug)]
pub struct Proc(service_procs::Service);

impl From<service_procs::Service> for Proc {
    fn from(service: service_procs::Service) -> Self {
        Self(service)
    }
}

impl Deref for Proc {
    type Target = service_procs::Service;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Proc {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.0.pid()
    }

    /// The port the service listens on.
    pub fn port(&self) -> u16 {
        self.0.port()
    }

    /// Every stdout line so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lines()
    }

    /// How many lines so far: pass to [`Proc::wait_line_after`] to see only new ones.
    pub fn line_count(&self) -> usize {
        self.0.line_count()
    }

    /// Waits for a line containing every one of `parts`; panics after [`PATIENCE`].
    pub fn wait_line(&self, parts: &[&str]) -> String {
        self.wait_line_after(0, parts)
    }

    /// Like [`Proc::wait_line`], considering only lines from index `from` on.
    pub fn wait_line_after(&self, from: usize, parts: &[&str]) -> String {
        self.0
            .wait_line_after(from, parts)
            .unwrap_or_else(|e| panic!("{e}\nall lines: {:#?}", self.lines()))
    }

    /// Waits until `n` lines contain every one of `parts`; returns them.
    pub fn wait_lines(&self, n: usize, parts: &[&str]) -> Vec<String> {
        let matching = |l: &str| parts.iter().all(|p| l.contains(p));
        let deadline = Instant::now() + PATIENCE;
        loop {
            let found: Vec<String> = self.lines().into_iter().filter(|l| matching(l)).collect();
            if found.len() >= n {
                return found;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "fewer than {n} lines with {parts:?} in {:#?}",
                self.lines()
            );
            // A new matching line, the end of the output or the deadline.
            let _ = self
                .0
                .wait_for(self.line_count(), &matching, "another line", left);
        }
    }

    /// Rewrites the config file in place (the service may reload it).
    pub fn write_config(&self, toml: &str) {
        self.0.write_config(toml).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Asks it to stop as Ctrl+C would: SIGTERM, or Ctrl+Break on Windows;
    /// panics where the platform cannot ask (no kill passed off as a stop).
    pub fn terminate(&self) {
        service_procs::stop::ask_to_stop(self.0.child()).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Sends SIGHUP (unix only: Windows has no such signal).
    #[cfg(unix)]
    pub fn hangup(&self) {
        self.0.hangup().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Waits for the process to exit, up to [`PATIENCE`].
    pub fn wait_exit(&mut self) -> ExitStatus {
        self.0.wait_exit(PATIENCE).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A launch in the same temporary folder, e.g. to restart on the same port.
    pub fn relaunch(&self, binary: impl Into<PathBuf>, config: &str) -> Launch {
        Launch::from(service_procs::Launch::beside(&self.0, binary, config))
    }

    /// Waits until `/metrics` shows `sample` at `at_least` or more: for events
    /// with no log line of their own, such as "A has started an injected
    /// delay" (`faults_injected_total{fault="delay"}`). Polls every 5 ms.
    pub fn wait_metric(&self, sample: &str, at_least: f64) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = http::get(&format!("{}/metrics", self.url)).body;
            if metric(&text, sample) >= at_least {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{sample} stayed below {at_least}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
