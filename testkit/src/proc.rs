//! [`Proc`]: a started service, for tests. It is the library's
//! `service_procs::Service` (reached through `Deref` for everything that
//! cannot fail: `url`, `config`, `stderr`, ...; the most used are also
//! methods of its own, so `Proc::lines` names them) with the waits and
//! steps that can fail turned into panics carrying the library's message,
//! so that a test reads as a list of steps.

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::launch::Launch;
use crate::metrics::metric;
use service_procs::PATIENCE;

use crate::http;

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
        Launch::from(self.0.relaunch(binary, config))
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
