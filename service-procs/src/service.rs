//! [`Service`]: a service process that printed its ready line, with its
//! log lines as they come, waits on them that end in a line or an
//! [`Error`] naming the service and its last output (never a panic, never
//! a sleep), its config file to rewrite, and the ways to stop it.
//!
//! A `Service` owns its child: dropping it kills and reaps the process, so
//! no service outlives the program (or test) that started it.

use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::output::{Output, Waited, PATIENCE};
use crate::stop::{reap, terminate, Stop};

/// A running service process. Killed when dropped.
#[derive(Debug)]
pub struct Service {
    /// Its binary's name, e.g. `service-a`, for messages.
    pub(crate) name: String,
    pub(crate) child: Child,
    /// `http://127.0.0.1:PORT`, from the ready line.
    pub url: String,
    pub(crate) port: u16,
    pub(crate) stdout: Arc<Output>,
    pub(crate) stderr: Arc<Output>,
    /// The config file the service reads (rewrite it to make it reload).
    pub config: PathBuf,
    pub(crate) dir: Arc<tempfile::TempDir>,
}

impl Service {
    /// Its binary's name, e.g. `service-a`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `host:port` of the service.
    pub fn authority(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// The port the service listens on (from its ready line).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every stdout line kept so far.
    pub fn lines(&self) -> Vec<String> {
        self.stdout.lines()
    }

    /// How many lines so far: pass to [`Service::wait_line_after`] to see only new ones.
    pub fn line_count(&self) -> usize {
        self.stdout.len()
    }

    /// What the service printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Whether its stdout has ended: it exited, and every line is in.
    pub fn output_ended(&self) -> bool {
        self.stdout.ended()
    }

    /// Its last few lines of output (stdout, then stderr), for messages.
    pub fn last_output(&self) -> String {
        format!("{}{}", self.stdout.tail(), self.stderr.tail())
    }

    /// Waits up to `patience` for a line from index `from` on that `matches`.
    /// `Err` names the service, `waited_for` and its last output when the
    /// patience runs out or its output ends first.
    pub fn wait_for(
        &self,
        from: usize,
        matches: &dyn Fn(&str) -> bool,
        waited_for: &str,
        patience: Duration,
    ) -> Result<String, Error> {
        match self.stdout.wait(from, matches, patience) {
            Waited::Found(line) => Ok(line),
            Waited::Ended => Err(Error::Ended {
                service: self.name.clone(),
                waited_for: waited_for.to_owned(),
                last_output: self.last_output(),
            }),
            Waited::TimedOut => Err(Error::Silent {
                service: self.name.clone(),
                waited_for: waited_for.to_owned(),
                patience,
                last_output: self.last_output(),
            }),
        }
    }

    /// Waits up to [`PATIENCE`] for a line, from index `from` on, that
    /// contains every one of `parts`.
    pub fn wait_line_after(&self, from: usize, parts: &[&str]) -> Result<String, Error> {
        self.wait_for(
            from,
            &|l| parts.iter().all(|p| l.contains(p)),
            &format!("a line with {parts:?}"),
            PATIENCE,
        )
    }

    /// Rewrites the config file in place (the service may reload it).
    pub fn write_config(&self, toml: &str) -> Result<(), Error> {
        std::fs::write(&self.config, toml)
            .map_err(|e| Error::io(format!("rewriting {}", self.config.display()), e))
    }

    /// Asks it to stop as Ctrl+C would, or kills it where the platform
    /// cannot ask (see [`crate::stop`]); says which.
    pub fn terminate(&mut self) -> Result<Stop, Error> {
        terminate(&mut self.child)
    }

    /// Sends SIGHUP (unix only: Windows has no such signal).
    #[cfg(unix)]
    pub fn hangup(&self) -> Result<(), Error> {
        crate::stop::hangup(&self.child)
    }

    /// The child process, for a caller with process control of its own.
    pub fn child(&self) -> &Child {
        &self.child
    }

    /// Waits up to `patience` for the process to exit and its output to end
    /// (every line in); its exit status.
    pub fn wait_exit(&mut self, patience: Duration) -> Result<ExitStatus, Error> {
        let deadline = Instant::now() + patience;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Ok(None) => {
                    return Err(Error::StillRunning {
                        service: self.name.clone(),
                        patience,
                    })
                }
                Err(e) => {
                    return Err(Error::io(format!("waiting for {} to exit", self.name), e));
                }
            }
        };
        // The pipes close with the process; their readers drain what is left.
        let left = deadline.saturating_duration_since(Instant::now());
        self.stdout.wait_end(left.max(Duration::from_secs(1)));
        Ok(status)
    }

    /// Whether the process has exited (it is then reaped: it will not be
    /// signalled again).
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Kills the process at once (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        reap(&mut self.child);
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}
