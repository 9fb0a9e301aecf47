//! [`Launch`]: how to start one service binary (its config, environment,
//! folder) and [`Launch::start`], which starts it and waits for its ready
//! line: the `event=start` line (or its JSON form) that carries the URL it
//! listens on.
//!
//! What start guarantees: it returns a [`Service`] whose ready line was
//! seen, or an [`Error`] that names the service and says what it did
//! instead: exited (its code and stderr: a config it refuses, a port
//! taken), printed no ready line within [`PATIENCE`] (its last output), or
//! could not be run at all (not built, with the `cargo build` that builds
//! it). A child that fails to become ready is killed and reaped, never
//! left running.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::logfmt::field;
use crate::output::{Keep, Output, Waited, PATIENCE};
use crate::service::Service;
use crate::stop::{command, reap};

/// How long an exited child's stderr may take to reach its end, once the
/// child is gone: its reader drains what the pipe still holds.
const STDERR_DRAIN: Duration = Duration::from_secs(2);

/// How to start a service.
#[derive(Debug, Clone)]
pub struct Launch {
    /// Words before the binary, e.g. `ip netns exec NS`.
    wrapper: Vec<String>,
    binary: PathBuf,
    config: String,
    env: Vec<(String, String)>,
    dir: Option<Arc<tempfile::TempDir>>,
    keep: Keep,
    echo: bool,
    patience: Duration,
    config_file: Option<PathBuf>,
    /// No `--config`: the service looks for this default path in its folder.
    no_file: Option<PathBuf>,
    /// `RLIMIT_NOFILE` (soft, hard) set in the child before it runs.
    #[cfg_attr(not(unix), allow(dead_code))]
    nofile: Option<(u64, u64)>,
}

impl Launch {
    /// `binary` with `config` as its TOML file, written to a folder of the
    /// launch's own; the caller chooses the port in it (usually 0).
    pub fn new(binary: impl Into<PathBuf>, config: &str) -> Self {
        Self {
            wrapper: Vec::new(),
            binary: binary.into(),
            config: config.to_owned(),
            env: Vec::new(),
            dir: None,
            keep: Keep::All,
            echo: false,
            patience: PATIENCE,
            config_file: None,
            no_file: None,
            nofile: None,
        }
    }

    /// Starts the service with this descriptor limit (`ulimit -n`), soft and
    /// hard, set in the child between fork and exec (unix only; elsewhere
    /// the limit is not set and a caller should not rely on it).
    pub fn descriptor_limit(mut self, soft: u64, hard: u64) -> Self {
        self.nofile = Some((soft, hard));
        self
    }

    /// Passes `--config path` as it is (the `config` given to [`Launch::new`]
    /// is then not written). [`Service::config`] is then `path`.
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_file = Some(path.into());
        self
    }

    /// Starts the service without `--config` in an empty folder, so that its
    /// default file (`default`, e.g. `config/service-a.toml`) is missing and
    /// it runs on built-in defaults. [`Service::config`] is where that file
    /// would be; pass the port by env.
    pub fn without_file(mut self, default: &str) -> Self {
        self.no_file = Some(default.into());
        self
    }

    /// Reads but no longer keeps log lines after the ready line: for load,
    /// where keeping millions of lines would cost more than the service does.
    pub fn discard_lines(mut self) -> Self {
        self.keep = Keep::First;
        self
    }

    /// Also prints each of the service's lines on this process's stderr.
    pub fn echo(mut self, echo: bool) -> Self {
        self.echo = echo;
        self
    }

    /// Waits this long for the ready line instead of [`PATIENCE`].
    pub fn patience(mut self, patience: Duration) -> Self {
        self.patience = patience;
        self
    }

    /// Runs the binary through `wrapper` (e.g. `["ip", "netns", "exec", "ns1"]`).
    pub fn wrapped(mut self, wrapper: &[&str]) -> Self {
        self.wrapper = wrapper.iter().map(|w| (*w).to_owned()).collect();
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// A launch in the folder of `earlier`, e.g. to start it again on the
    /// same port with its config beside the old one.
    pub fn beside(earlier: &Service, binary: impl Into<PathBuf>, config: &str) -> Self {
        let mut launch = Self::new(binary, config);
        launch.dir = Some(earlier.dir.clone());
        launch
    }

    /// The service's name for messages: its binary's file name, e.g. `service-a`.
    fn name(&self) -> String {
        self.binary.file_stem().map_or_else(
            || self.binary.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        )
    }

    /// Starts it and waits for its ready line (see the module's doc).
    pub fn start(self) -> Result<Service, Error> {
        let name = self.name();
        let dir = match &self.dir {
            Some(dir) => dir.clone(),
            None => Arc::new(
                tempfile::tempdir()
                    .map_err(|e| Error::io(format!("creating a temporary folder for {name}"), e))?,
            ),
        };
        let config = match (&self.config_file, &self.no_file) {
            (_, Some(default)) => dir.path().join(default),
            (Some(path), None) => path.clone(),
            (None, None) => {
                let config = dir.path().join("service.toml");
                std::fs::write(&config, &self.config)
                    .map_err(|e| Error::io(format!("writing {}", config.display()), e))?;
                config
            }
        };
        let mut child = self.spawn(&config, dir.path())?;
        let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
            reap(&mut child);
            return Err(Error::io(
                format!("reading {name}'s output"),
                std::io::ErrorKind::BrokenPipe.into(),
            ));
        };
        let stdout = Output::read(out, self.keep, self.echo);
        let stderr = Output::read(err, Keep::All, self.echo);

        let is_ready = |l: &str| l.contains("event=start") || l.contains(r#""event":"start""#);
        let last_output = || format!("{}{}", stdout.tail(), stderr.tail());
        let line = match stdout.wait(0, &is_ready, self.patience) {
            Waited::Found(line) => line,
            Waited::TimedOut => {
                reap(&mut child);
                return Err(Error::Silent {
                    service: name,
                    waited_for: "its ready line".into(),
                    patience: self.patience,
                    last_output: last_output(),
                });
            }
            Waited::Ended => {
                let code = exit_code(&mut child);
                stderr.wait_end(STDERR_DRAIN);
                return Err(Error::Exited {
                    service: name,
                    code,
                    stderr: stderr.text(),
                });
            }
        };
        let Some((url, port)) = ready_url(&line) else {
            reap(&mut child);
            return Err(Error::Ended {
                service: name,
                waited_for: format!("a ready line with its url (it printed {line:?})"),
                last_output: last_output(),
            });
        };
        Ok(Service {
            name,
            child,
            url,
            port,
            stdout,
            stderr,
            config,
            dir,
        })
    }

    /// The child, started with its config in `dir`.
    fn spawn(&self, config: &Path, dir: &Path) -> Result<Child, Error> {
        let mut cmd = match self.wrapper.split_first() {
            Some((first, rest)) => {
                let mut cmd = command(first);
                cmd.args(rest).arg(&self.binary);
                cmd
            }
            None => command(&self.binary),
        };
        if self.no_file.is_none() {
            cmd.arg("--config").arg(config);
        }
        cmd.current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        #[cfg(unix)]
        if let Some((soft, hard)) = self.nofile {
            set_descriptor_limit(&mut cmd, soft, hard);
        }
        cmd.spawn().map_err(|e| {
            if self.wrapper.is_empty() && !self.binary.exists() {
                Error::NotBuilt {
                    path: self.binary.clone(),
                    package: self.name(),
                }
            } else {
                Error::io(format!("starting {}", self.binary.display()), e)
            }
        })
    }
}

/// The URL and port of a ready line (logfmt `url=` or JSON `"url"`).
fn ready_url(line: &str) -> Option<(String, u16)> {
    let url = field(line, "url").or_else(|| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        v["url"].as_str().map(str::to_owned)
    })?;
    let port = url.rsplit(':').next()?.trim_end_matches('/').parse().ok()?;
    Some((url, port))
}

/// The exit code of a child whose output ended: it has exited or is about
/// to. Killed if it has not within [`PATIENCE`] (it closed its output but
/// lives on), so that nothing is left running.
fn exit_code(child: &mut Child) -> Option<i32> {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(status)) => return status.code(),
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => break,
        }
    }
    reap(child);
    None
}

/// Sets `RLIMIT_NOFILE` in the child `cmd` starts, before it execs.
#[cfg(unix)]
#[allow(unsafe_code)]
fn set_descriptor_limit(cmd: &mut std::process::Command, soft: u64, hard: u64) {
    use rustix::process::{setrlimit, Resource, Rlimit};
    use std::os::unix::process::CommandExt as _;
    let limit = move || {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(soft),
                maximum: Some(hard),
            },
        )
        .map_err(std::io::Error::from)
    };
    // SAFETY: between fork and exec the closure makes one system call
    // (setrlimit): it allocates nothing and takes no lock, as `pre_exec` asks.
    unsafe {
        cmd.pre_exec(limit);
    }
}

#[cfg(test)]
mod tests {
    use super::ready_url;

    /// Both ready-line formats give the URL and its port.
    #[test]
    fn ready_lines_give_url_and_port() {
        let logfmt =
            "2026-01-01T00:00:00Z service=A event=start url=http://127.0.0.1:8080 config=x";
        assert_eq!(
            ready_url(logfmt),
            Some(("http://127.0.0.1:8080".to_owned(), 8080))
        );
        let json = r#"{"service":"B","event":"start","url":"http://[::1]:41234"}"#;
        assert_eq!(
            ready_url(json),
            Some(("http://[::1]:41234".to_owned(), 41234))
        );
        assert_eq!(ready_url("service=A event=start"), None);
    }
}
