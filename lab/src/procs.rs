//! The lab's one module for child processes: building the services,
//! starting them with their output prefixed, and asking them to stop. No
//! shell-outs (`kill` is not there on Windows); every step returns `Result`
//! with what failed in words.
//!
//! Stopping is graceful where the platform allows it:
//! - unix: SIGTERM (through rustix), as Ctrl+C in the service's own terminal
//!   would do; it drains and exits.
//! - Windows: there is no SIGTERM. Each child is started in its own process
//!   group (`CREATE_NEW_PROCESS_GROUP`), so Ctrl+Break can be sent to it
//!   alone (`GenerateConsoleCtrlEvent`); the services treat it as a stop. This
//!   needs a console shared with the child; where there is none (the lab run
//!   without one, or an emulator that cannot deliver it) the child is killed
//!   and [`Stop::Killed`] says so, for the lab to tell its user.
//!
//! A child is asked to stop only while it has not been reaped (no `wait` or
//! `try_wait` has seen it exit): until then its PID stays its own.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Sender;
use std::thread;
use std::time::Instant;

use anyhow::{bail, Context as _};

/// Builds both service binaries in the profile this launcher was built with
/// (skipped when `LAB_NO_BUILD` is set: the caller built them already), and
/// says so first: a first build takes minutes, and cargo's own progress
/// does not say what it is building for.
pub fn build() -> anyhow::Result<()> {
    if std::env::var_os("LAB_NO_BUILD").is_some() {
        return Ok(());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let profile = if release() { "release" } else { "debug" };
    println!(
        "lab | building service-a and service-b ({profile}); the first time takes \
         minutes (see the README's \"First build\"), later ones seconds"
    );
    let started = Instant::now();
    let mut cmd = Command::new(cargo);
    // Not --quiet: cargo's progress is how a student sees the build is alive.
    cmd.args(["build", "-p", "service-a", "-p", "service-b"]);
    if release() {
        cmd.arg("--release");
    }
    let status = cmd.status().context("running cargo build")?;
    if !status.success() {
        bail!("cargo build failed ({status})");
    }
    println!(
        "lab | built in {:.0} s",
        started.elapsed().as_secs_f64().ceil()
    );
    Ok(())
}

/// Whether this launcher (and so the services it builds) is a release build.
pub fn release() -> bool {
    target_dir().ends_with("release")
}

/// `target/<profile>/`: where this launcher and the services are built.
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("target/debug"))
}

/// The path of a service binary beside this launcher (`service-a.exe` on
/// Windows), or what to run if it is not built.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = target_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        bail!(
            "{} is not built; `cargo build -p {name}` builds it",
            path.display()
        );
    }
    Ok(path)
}

/// A command for `path` that [`terminate`] can stop gracefully: on Windows
/// it starts in a process group of its own, so that Ctrl+Break reaches it
/// alone (and the terminal's Ctrl+C reaches only the lab, which stops it).
pub fn command(path: impl AsRef<std::ffi::OsStr>) -> Command {
    #[allow(unused_mut)]
    let mut cmd = Command::new(path);
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt as _;
        /// `CREATE_NEW_PROCESS_GROUP` (winbase.h).
        const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
        cmd.creation_flags(CREATE_NEW_PROCESS_GROUP);
    }
    cmd
}

/// Starts `binary` with `args` and `env`; each line it prints goes to `lines`
/// as `(prefix, line)`.
pub fn spawn(
    prefix: &'static str,
    binary: &str,
    args: &[&str],
    env: &[(&str, String)],
    lines: Sender<(&'static str, String)>,
) -> anyhow::Result<Child> {
    let path = self::binary(binary)?;
    let mut cmd = command(&path);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", path.display()))?;
    if let Some(out) = child.stdout.take() {
        forward(prefix, out, lines.clone());
    }
    if let Some(err) = child.stderr.take() {
        forward(prefix, err, lines);
    }
    Ok(child)
}

fn forward(
    prefix: &'static str,
    from: impl Read + Send + 'static,
    to: Sender<(&'static str, String)>,
) {
    thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if to.send((prefix, line)).is_err() {
                break;
            }
        }
    });
}

/// How [`terminate`] reached a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Asked to stop, as Ctrl+C would: it drains its requests and exits.
    /// The name of what was sent (`SIGTERM`, `Ctrl+Break`).
    Asked(&'static str),
    /// Killed at once: the platform could not ask (requests in flight are
    /// cut, its last log lines may be missing).
    Killed,
}

impl Stop {
    /// For the lab's messages: `(SIGTERM)`, `(Ctrl+Break)`, or that it was
    /// killed and why.
    pub fn describe(self) -> String {
        match self {
            Stop::Asked(how) => format!("({how})"),
            Stop::Killed => {
                "(killed: Ctrl+Break could not be delivered here, so it did not drain)".to_owned()
            }
        }
    }
}

/// Asks `child` to stop (see the module's doc for how, per platform). Only
/// for a child not yet reaped. `Err` if it could neither be asked nor
/// killed.
pub fn terminate(child: &mut Child) -> anyhow::Result<Stop> {
    ask_to_stop(child)
}

/// Asks the process `pid` to stop, for processes the lab did not start as
/// a [`Child`] (nginx's worker in the benchmark). Unix: SIGTERM. Windows:
/// Ctrl+Break, which reaches only a process that leads its own group.
pub fn terminate_pid(pid: u32) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use rustix::process::{kill_process, Pid, Signal};
        let id = i32::try_from(pid).ok().and_then(Pid::from_raw);
        let id = id.with_context(|| format!("{pid} is not a process id"))?;
        kill_process(id, Signal::TERM)
            .with_context(|| format!("sending SIGTERM to process {pid}"))?;
        Ok(())
    }
    #[cfg(windows)]
    {
        if ctrl_break(pid) {
            return Ok(());
        }
        bail!("Windows refused Ctrl+Break to process {pid}")
    }
    #[cfg(not(any(unix, windows)))]
    bail!("this platform has no way to ask process {pid} to stop")
}

#[cfg(unix)]
fn ask_to_stop(child: &mut Child) -> anyhow::Result<Stop> {
    use rustix::process::{kill_process, Pid, Signal};
    kill_process(Pid::from_child(child), Signal::TERM)
        .with_context(|| format!("sending SIGTERM to process {}", child.id()))?;
    Ok(Stop::Asked("SIGTERM"))
}

#[cfg(windows)]
fn ask_to_stop(child: &mut Child) -> anyhow::Result<Stop> {
    if ctrl_break(child.id()) {
        return Ok(Stop::Asked("Ctrl+Break"));
    }
    kill(child)
}

#[cfg(not(any(unix, windows)))]
fn ask_to_stop(child: &mut Child) -> anyhow::Result<Stop> {
    kill(child)
}

/// The fallback where a child cannot be asked: kill it.
#[cfg(not(unix))]
fn kill(child: &mut Child) -> anyhow::Result<Stop> {
    child
        .kill()
        .with_context(|| format!("killing process {}", child.id()))?;
    Ok(Stop::Killed)
}

/// Sends Ctrl+Break to the process group `group` (a child started by
/// [`command`] leads its own); false if Windows refused (no shared console).
#[cfg(windows)]
#[allow(unsafe_code)]
fn ctrl_break(group: u32) -> bool {
    use windows_sys::Win32::System::Console::{GenerateConsoleCtrlEvent, CTRL_BREAK_EVENT};
    // SAFETY: a plain Win32 call with two integers; no memory is shared.
    unsafe { GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, group) != 0 }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead as _, BufReader};
    use std::process::Stdio;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc};
    use std::time::{Duration, Instant};

    use super::*;

    /// Set in the environment of the child that [`sleeper`] plays.
    const CHILD: &str = "LAB_PROCS_TEST_CHILD";

    /// How long a test waits for the child to say or do something.
    const PATIENCE: Duration = Duration::from_secs(10);

    /// Not a test: the child that the tests below start (this test binary
    /// again, with [`CHILD`] set). It says `ready`, then waits up to a
    /// minute; on unix it answers SIGTERM by saying `stopping` and exiting 0,
    /// as the services do. Without [`CHILD`] it returns at once.
    #[test]
    #[ignore = "the child process of terminate's tests, run by them"]
    fn sleeper() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        let stop = Arc::new(AtomicBool::new(false));
        #[cfg(unix)]
        signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone()).unwrap();
        println!("ready");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        println!("stopping");
        std::process::exit(0);
    }

    /// Starts [`sleeper`] with [`command`], as the lab starts a service;
    /// returns it once it said `ready`, with its later lines.
    fn start_sleeper() -> (Child, mpsc::Receiver<String>) {
        let exe = std::env::current_exe().unwrap();
        let mut child = command(exe)
            .args([
                "--exact",
                "procs::tests::sleeper",
                "--ignored",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        wait_for(&rx, "ready");
        (child, rx)
    }

    fn wait_for(lines: &mpsc::Receiver<String>, what: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.trim() == what => return,
                Ok(_) => {}
                Err(e) => panic!("the child never said {what:?} ({e})"),
            }
        }
    }

    fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the child did not exit within {PATIENCE:?} of terminate");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// `terminate` ends a child on every platform, and says how: asked
    /// (SIGTERM on unix, Ctrl+Break on Windows) or killed.
    #[test]
    fn terminate_ends_a_child_and_says_how() {
        let (mut child, _lines) = start_sleeper();
        let how = terminate(&mut child).unwrap();
        wait_exit(&mut child);
        match how {
            Stop::Asked(name) => assert!(["SIGTERM", "Ctrl+Break"].contains(&name)),
            Stop::Killed if cfg!(unix) => panic!("killed, though unix can always ask"),
            Stop::Killed => {}
        }
    }

    /// On unix the child is asked, not killed: it sees SIGTERM, says so and
    /// exits 0, as a service drains and exits.
    #[cfg(unix)]
    #[test]
    fn terminate_on_unix_is_a_sigterm_the_child_handles() {
        let (mut child, lines) = start_sleeper();
        assert_eq!(terminate(&mut child).unwrap(), Stop::Asked("SIGTERM"));
        wait_for(&lines, "stopping");
        assert!(wait_exit(&mut child).success());
    }

    /// A binary that is not built is an error that says how to build it,
    /// with the platform's file name.
    #[test]
    fn a_missing_binary_says_how_to_build_it() {
        let e = binary("no-such-service").unwrap_err().to_string();
        let file = format!("no-such-service{}", std::env::consts::EXE_SUFFIX);
        assert!(e.contains(&file), "{e}");
        assert!(e.contains("`cargo build -p no-such-service`"), "{e}");
    }

    /// The lab's words for each outcome: a kill is never passed off as a
    /// graceful stop.
    #[test]
    fn a_stop_is_described_as_it_happened() {
        assert_eq!(Stop::Asked("SIGTERM").describe(), "(SIGTERM)");
        assert_eq!(Stop::Asked("Ctrl+Break").describe(), "(Ctrl+Break)");
        let killed = Stop::Killed.describe();
        assert!(
            killed.contains("killed") && killed.contains("did not drain"),
            "{killed}"
        );
    }

    /// A number that cannot be a process id is refused, not sent a signal.
    #[cfg(unix)]
    #[test]
    fn terminate_pid_refuses_what_is_not_a_pid() {
        for pid in [0, u32::MAX] {
            let e = terminate_pid(pid).unwrap_err().to_string();
            assert!(e.contains("is not a process id"), "{e}");
        }
    }
}
