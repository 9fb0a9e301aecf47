//! Asking a child to stop as Ctrl+C in its own terminal would, with no
//! shell-outs (`kill` is not there on Windows), and saying how it went.
//!
//! - unix: SIGTERM (through rustix); the services drain and exit.
//! - Windows: there is no SIGTERM. Each child is started in its own process
//!   group ([`command`] sets `CREATE_NEW_PROCESS_GROUP`), so Ctrl+Break can
//!   be sent to it alone (`GenerateConsoleCtrlEvent`); the services treat it
//!   as a stop. This needs a console shared with the child; where there is
//!   none (a launcher run without one, or an emulator that cannot deliver
//!   it) [`terminate`] kills the child and [`Stop::Killed`] says so.
//! - elsewhere: killed, and said so.
//!
//! A child is asked to stop only while it has not been reaped (no `wait` or
//! `try_wait` has seen it exit): until then its PID stays its own, so a
//! signal can never reach a process that reused the number.

use std::process::{Child, Command};

use crate::error::Error;

/// A command for `program` that [`terminate`] can stop gracefully: on
/// Windows it starts in a process group of its own, so that Ctrl+Break
/// reaches it alone (and a terminal's Ctrl+C reaches only its parent, which
/// stops it).
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
    /// For messages: `(SIGTERM)`, `(Ctrl+Break)`, or that it was killed and why.
    pub fn describe(self) -> String {
        match self {
            Stop::Asked(how) => format!("({how})"),
            Stop::Killed => {
                "(killed: Ctrl+Break could not be delivered here, so it did not drain)".to_owned()
            }
        }
    }
}

/// Asks `child` to stop, with no fallback: SIGTERM on unix, Ctrl+Break on
/// Windows (the child must have been started by [`command`]). Returns the
/// name of what was sent; `Err` where the platform refused (on Windows: no
/// console shared with the child). Only for a child not yet reaped.
pub fn ask_to_stop(child: &Child) -> Result<&'static str, Error> {
    let pid = child.id();
    #[cfg(unix)]
    {
        use rustix::process::{kill_process, Pid, Signal};
        kill_process(Pid::from_child(child), Signal::TERM)
            .map_err(|e| Error::io(format!("sending SIGTERM to process {pid}"), e.into()))?;
        Ok("SIGTERM")
    }
    #[cfg(windows)]
    {
        ctrl_break(pid)?;
        Ok("Ctrl+Break")
    }
    #[cfg(not(any(unix, windows)))]
    {
        Err(Error::io(
            format!("asking process {pid} to stop"),
            std::io::ErrorKind::Unsupported.into(),
        ))
    }
}

/// Asks `child` to stop (see the module's doc for how, per platform),
/// killing it where the platform cannot ask; says which. `Err` if it could
/// neither be asked nor killed: it may still be running. Only for a child
/// not yet reaped.
pub fn terminate(child: &mut Child) -> Result<Stop, Error> {
    match ask_to_stop(child) {
        Ok(how) => Ok(Stop::Asked(how)),
        // unix can always ask a child of its own: a refusal is a real failure.
        Err(e) if cfg!(unix) => Err(e),
        Err(_) => {
            child
                .kill()
                .map_err(|e| Error::io(format!("killing process {}", child.id()), e))?;
            Ok(Stop::Killed)
        }
    }
}

/// Kills and reaps a child that will not be used. Errors are ignored on
/// purpose: both fail only when the child has already exited and been
/// reaped, which is the state wanted.
pub(crate) fn reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Sends SIGHUP to `child` (unix only: Windows has no such signal).
#[cfg(unix)]
pub fn hangup(child: &Child) -> Result<(), Error> {
    use rustix::process::{kill_process, Pid, Signal};
    kill_process(Pid::from_child(child), Signal::HUP).map_err(|e| {
        Error::io(
            format!("sending SIGHUP to process {}", child.id()),
            e.into(),
        )
    })
}

/// Sends Ctrl+Break to the process group `group` (a child started by
/// [`command`] leads its own); `Err` if Windows refused (no shared console).
#[cfg(windows)]
#[allow(unsafe_code)]
fn ctrl_break(group: u32) -> Result<(), Error> {
    use windows_sys::Win32::System::Console::{GenerateConsoleCtrlEvent, CTRL_BREAK_EVENT};
    // SAFETY: a plain Win32 call with two integers; no memory is shared.
    if unsafe { GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, group) } == 0 {
        return Err(Error::io(
            format!("sending Ctrl+Break to process {group}"),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
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
    const CHILD: &str = "SERVICE_PROCS_TEST_CHILD";

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

    /// Starts [`sleeper`] with [`command`], as a service is started;
    /// returns it once it said `ready`, with its later lines.
    fn start_sleeper() -> (Child, mpsc::Receiver<String>) {
        let exe = std::env::current_exe().unwrap();
        let mut child = command(exe)
            .args([
                "--exact",
                "stop::tests::sleeper",
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

    /// A failed stop is an error naming the process, never a quiet "stopping":
    /// a child already reaped cannot be signalled (its PID may be another's).
    #[cfg(unix)]
    #[test]
    fn a_stop_that_fails_says_so() {
        let (mut child, _lines) = start_sleeper();
        child.kill().unwrap();
        child.wait().unwrap();
        let e = terminate(&mut child).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("sending SIGTERM to process {}: ", child.id())),
            "{e}"
        );
    }

    /// Each outcome in words: a kill is never passed off as a graceful stop.
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
}
