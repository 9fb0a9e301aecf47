//! Driving the real services from outside: both services' integration tests,
//! and the lab's demo and benchmark.
//!
//! # Layout
//!
//! - [`Proc`]: a real service binary, started on a free port with a temporary
//!   config, its log lines collected, waited on by events (never by sleeps).
//! - [`http`]: a tiny blocking HTTP/1.1 client that also sends raw bytes.
//! - [`edge`]: checks of the HTTP edge both services share (refusals, HTTP/1.0).
//! - [`fake`]: a fake A that misbehaves the ways a real peer can.
//! - [`nginx`]: a real nginx on a free port, for the proxy tests that need one.
//! - [`upstream`]: a real upstream that mirrors what it received, for A as a proxy.

// Two `unsafe` blocks: `Launch::descriptor_limit`'s `pre_exec` (unix) and
// `Proc::terminate`'s Ctrl+Break (Windows); none elsewhere.
#![deny(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms)]

pub mod edge;
pub mod fake;
pub mod http;
pub mod nginx;
pub mod upstream;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a test waits for any one event before it fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A built binary of this workspace (`name.exe` on Windows): next to the
/// running executable (the lab launcher), or one folder up from a test
/// executable in `deps/`.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("executable path");
    let here = exe.parent().expect("executable folder");
    let file = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    let path = if here.ends_with("deps") {
        here.parent().unwrap_or(here).join(file)
    } else {
        here.join(file)
    };
    assert!(
        path.exists(),
        "{} is not built; run the whole suite with `cargo test --workspace`",
        path.display()
    );
    path
}

/// Log lines a service printed so far, and a way to wait for the next.
#[derive(Debug, Default)]
struct Lines {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
}

impl Lines {
    fn push(&self, line: String) {
        self.lines.lock().unwrap().push(line);
        self.grew.notify_all();
    }

    /// Waits until some line (from index `from`) matches; returns it.
    fn wait(
        &self,
        from: usize,
        matches: &dyn Fn(&str) -> bool,
        patience: Duration,
    ) -> Option<String> {
        let deadline = Instant::now() + patience;
        let mut lines = self.lines.lock().unwrap();
        loop {
            if let Some(found) = lines.iter().skip(from).find(|l| matches(l)) {
                return Some(found.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            lines = self.grew.wait_timeout(lines, left).unwrap().0;
        }
    }
}

/// A running service process. Killed when dropped.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    /// `http://127.0.0.1:PORT`, from the start line.
    pub url: String,
    stdout: Arc<Lines>,
    stderr: Arc<Mutex<String>>,
    /// The config file the service reads (edit it to test reloads).
    pub config: PathBuf,
    _dir: Arc<tempfile::TempDir>,
}

/// A service that exited before its start line.
#[derive(Debug)]
pub struct Exited {
    /// The exit code.
    pub code: Option<i32>,
    /// What it printed on stderr.
    pub stderr: String,
}

/// How to start a service.
#[derive(Debug, Clone)]
pub struct Launch {
    /// Words before the binary, e.g. `ip netns exec NS`.
    wrapper: Vec<String>,
    binary: PathBuf,
    config: String,
    env: Vec<(String, String)>,
    dir: Option<Arc<tempfile::TempDir>>,
    keep_lines: bool,
    config_file: Option<PathBuf>,
    /// No `--config`: the service looks for this default path in its folder.
    no_file: Option<PathBuf>,
    /// `RLIMIT_NOFILE` (soft, hard) set in the child before it runs.
    #[cfg_attr(not(unix), allow(dead_code))]
    nofile: Option<(u64, u64)>,
}

impl Launch {
    /// `binary` with `config` as its TOML file; the caller chooses the port (usually 0).
    pub fn new(binary: impl Into<PathBuf>, config: &str) -> Self {
        Self {
            wrapper: Vec::new(),
            binary: binary.into(),
            config: config.to_owned(),
            env: Vec::new(),
            dir: None,
            keep_lines: true,
            config_file: None,
            no_file: None,
            nofile: None,
        }
    }

    /// Starts the service with this descriptor limit (`ulimit -n`), soft and
    /// hard, set in the child between fork and exec (Unix only; elsewhere
    /// the limit is not set and the test should not rely on it).
    pub fn descriptor_limit(mut self, soft: u64, hard: u64) -> Self {
        self.nofile = Some((soft, hard));
        self
    }

    /// Passes `--config path` as it is (the `config` given to [`Launch::new`]
    /// is then not written): for layouts a test builds itself, such as the
    /// symlinks of a Kubernetes ConfigMap. [`Proc::config`] is then `path`.
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_file = Some(path.into());
        self
    }

    /// Starts the service without `--config` in an empty folder, so that its
    /// default file (`default`, e.g. `config/service-a.toml`) is missing and
    /// it runs on built-in defaults. [`Proc::config`] is where that file
    /// would be (creating it there is picked up); pass the port by env.
    pub fn without_file(mut self, default: &str) -> Self {
        self.no_file = Some(default.into());
        self
    }

    /// Reads but no longer keeps log lines after the start line: for load
    /// tests, where keeping millions of lines would cost the machine more than
    /// the service does.
    pub fn discard_lines(mut self) -> Self {
        self.keep_lines = false;
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

    /// Starts it and waits for the start line; panics with stderr if it exits instead.
    pub fn start(self) -> Proc {
        match self.try_start() {
            Ok(p) => p,
            Err(e) => panic!("service exited with {:?}: {}", e.code, e.stderr),
        }
    }

    /// Starts it; `Err` if it exits before printing its start line.
    pub fn try_start(self) -> Result<Proc, Exited> {
        let dir = self
            .dir
            .unwrap_or_else(|| Arc::new(tempfile::tempdir().expect("temp dir")));
        let config = match (self.config_file, &self.no_file) {
            (_, Some(default)) => dir.path().join(default),
            (Some(path), None) => path,
            (None, None) => {
                let config = dir.path().join("service.toml");
                std::fs::write(&config, &self.config).expect("write config");
                config
            }
        };
        let mut cmd = match self.wrapper.split_first() {
            Some((first, rest)) => {
                let mut cmd = command(first);
                cmd.args(rest).arg(&self.binary);
                cmd
            }
            None => command(&self.binary),
        };
        if self.no_file.is_none() {
            cmd.arg("--config").arg(&config);
        }
        cmd.current_dir(dir.path())
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
        let mut child = cmd.spawn().expect("spawn service");

        let stdout = Arc::new(Lines::default());
        let out = child.stdout.take().expect("stdout");
        let sink = stdout.clone();
        let keep = self.keep_lines;
        std::thread::spawn(move || {
            // The start line is always kept: it carries the URL.
            let mut first = true;
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("TEST_LOG").is_some() {
                    eprintln!("{line}");
                }
                if keep || first {
                    first = false;
                    sink.push(line);
                }
            }
            sink.push("<eof>".to_owned());
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().expect("stderr");
        let err_sink = stderr.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(err).read_to_string(&mut text);
            err_sink.lock().unwrap().push_str(&text);
        });

        let is_start = |l: &str| l.contains("event=start") || l.contains(r#""event":"start""#);
        let start = stdout.wait(0, &|l| is_start(l) || l == "<eof>", PATIENCE);
        match start {
            Some(line) if is_start(&line) => {
                let url = field(&line, "url")
                    .or_else(|| {
                        let v: serde_json::Value = serde_json::from_str(&line).ok()?;
                        v["url"].as_str().map(str::to_owned)
                    })
                    .expect("start line has a url");
                Ok(Proc {
                    child,
                    url,
                    stdout,
                    stderr,
                    config,
                    _dir: dir,
                })
            }
            None => {
                let _ = child.kill();
                panic!(
                    "no start line within {PATIENCE:?}: {:#?}",
                    stdout.lines.lock().unwrap()
                );
            }
            _ => {
                let status = child.wait().expect("wait");
                // stderr's reader ends with the process; give it a moment to drain.
                let deadline = Instant::now() + Duration::from_secs(2);
                while stderr.lock().unwrap().is_empty() && Instant::now() < deadline {
                    std::thread::yield_now();
                }
                let text = stderr.lock().unwrap().clone();
                Err(Exited {
                    code: status.code(),
                    stderr: text,
                })
            }
        }
    }
}

/// Sets `RLIMIT_NOFILE` in the child `cmd` starts, before it execs.
#[cfg(unix)]
#[allow(unsafe_code)]
fn set_descriptor_limit(cmd: &mut Command, soft: u64, hard: u64) {
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

impl Proc {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `host:port` of the service.
    pub fn authority(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// The port the service listens on.
    pub fn port(&self) -> u16 {
        self.authority()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in url")
    }

    /// Every stdout line so far.
    pub fn lines(&self) -> Vec<String> {
        self.stdout.lines.lock().unwrap().clone()
    }

    /// How many lines so far: pass to [`Proc::wait_line_after`] to see only new ones.
    pub fn line_count(&self) -> usize {
        self.stdout.lines.lock().unwrap().len()
    }

    /// Waits for a line containing every one of `parts`; panics after [`PATIENCE`].
    pub fn wait_line(&self, parts: &[&str]) -> String {
        self.wait_line_after(0, parts)
    }

    /// Like [`Proc::wait_line`], considering only lines from index `from` on.
    pub fn wait_line_after(&self, from: usize, parts: &[&str]) -> String {
        self.stdout
            .wait(from, &|l| parts.iter().all(|p| l.contains(p)), PATIENCE)
            .unwrap_or_else(|| panic!("no line with {parts:?} in {:#?}", self.lines()))
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
            let from = self.line_count();
            let _ = self.stdout.wait(from, &|l| matching(l), left);
        }
    }

    /// Rewrites the config file in place (the service may reload it).
    pub fn write_config(&self, toml: &str) {
        std::fs::write(&self.config, toml).expect("rewrite config");
    }

    /// Asks it to stop as Ctrl+C would: SIGTERM, or Ctrl+Break on Windows
    /// (see [`terminate`]).
    pub fn terminate(&self) {
        terminate(&self.child).expect("ask the service to stop");
    }

    /// Sends SIGHUP (unix only: Windows has no such signal).
    #[cfg(unix)]
    pub fn hangup(&self) {
        use rustix::process::{kill_process, Pid, Signal};
        kill_process(Pid::from_child(&self.child), Signal::HUP).expect("send SIGHUP");
    }

    /// The child process, for a caller with its own process control (the lab).
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Waits for the process to exit, up to [`PATIENCE`].
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "service did not exit");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Kills the process at once (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What the service printed on stderr.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// A launch in the same temporary folder, e.g. to restart on the same port.
    pub fn relaunch(&self, binary: impl Into<PathBuf>, config: &str) -> Launch {
        Launch {
            dir: Some(self._dir.clone()),
            ..Launch::new(binary, config)
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The value of `key=` in a logfmt line (bare or quoted, quotes kept unescaped).
pub fn field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[start..];
    if let Some(quoted) = rest.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = quoted.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.push(chars.next()?),
                '"' => return Some(out),
                c => out.push(c),
            }
        }
        None
    } else {
        Some(rest.split(' ').next().unwrap_or("").to_owned())
    }
}

/// The value of a sample in Prometheus text, e.g.
/// `metric(&text, "upstream_calls_total{kind=\"timeout\"}")`; 0 when absent.
pub fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}

impl Proc {
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

/// A command for `program` that [`terminate`] can stop gracefully: on
/// Windows it starts in a process group of its own, so that Ctrl+Break can
/// be sent to it alone.
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    #[allow(unused_mut)]
    let mut cmd = Command::new(program);
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt as _;
        /// `CREATE_NEW_PROCESS_GROUP` (winbase.h).
        const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
        cmd.creation_flags(CREATE_NEW_PROCESS_GROUP);
    }
    cmd
}

/// Asks a child to stop as Ctrl+C would. Unix: SIGTERM. Windows: Ctrl+Break
/// to its process group (it must have been started by [`command`]); `Err`
/// where Windows refuses (no console shared with the child). Only for a
/// child not yet reaped: until then its PID cannot be another process's.
pub fn terminate(child: &Child) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use rustix::process::{kill_process, Pid, Signal};
        Ok(kill_process(Pid::from_child(child), Signal::TERM)?)
    }
    #[cfg(windows)]
    {
        #[allow(unsafe_code)]
        // SAFETY: a plain Win32 call with two integers; no memory is shared.
        let sent = unsafe {
            use windows_sys::Win32::System::Console::{GenerateConsoleCtrlEvent, CTRL_BREAK_EVENT};
            GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, child.id())
        };
        if sent == 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = child;
        Err(std::io::ErrorKind::Unsupported.into())
    }
}

/// Resident memory of process `pid` in KiB, from /proc; `None` where there
/// is no /proc (macOS, Windows): a test then skips its memory bound and
/// says so, rather than compare `0 <= bound`.
pub fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Open file descriptors of process `pid`, from /proc; `None` where there
/// is no /proc (see [`rss_kib`]).
pub fn open_fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count())
}

/// Says on stderr that a test skipped a check this platform cannot make
/// (`cargo test -- --nocapture` shows it; the test passes on what it could
/// check).
pub fn skipped(what: &str) {
    eprintln!(
        "SKIPPED on {}: {what} (no /proc here to measure it)",
        std::env::consts::OS
    );
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
