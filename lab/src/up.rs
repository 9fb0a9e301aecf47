//! `cargo lab up`: A and B side by side in one terminal, each stopped and
//! started again by a typed command while the other keeps running.
//!
//! Commands, one per line on the launcher's standard input: `a stop`,
//! `a start`, `a restart` (and the same for `b`), `status`, `help`, `quit`.
//! The console (`console/`) sees every line printed here and types the
//! same commands from its buttons.
//! Ctrl+C stops both: on unix it reaches the services too (they share the
//! terminal's process group) and the launcher asks each once more; on
//! Windows they are in process groups of their own, and the launcher sends
//! each Ctrl+Break (`procs::terminate`). Each drains its requests and exits,
//! and the launcher waits for them.
//!
//! A child is signalled only while it has not been reaped: until `try_wait`
//! has seen it exit, its PID stays its own (a zombie keeps it), so a signal
//! can never reach a process that reused the number.

use std::io::BufRead as _;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use crate::procs::{self, terminate, Stop};

/// `println!` that never panics: with its terminal gone the launcher must
/// still stop its children.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let line = format!($($arg)*);
        crate::console::tee(&line);
        let _ = writeln!(std::io::stdout(), "{line}");
    }};
}

/// One of the two services, as the launcher knows it.
struct Slot {
    name: &'static str,
    binary: &'static str,
    /// `None` once reaped: there is nothing left to signal.
    child: Option<Child>,
    /// Asked to stop (by a command or Ctrl+C): its exit is expected.
    stopping: bool,
    /// Start again once the old process has exited (`restart`).
    restart: bool,
}

/// What the launcher reads from its terminal.
enum Input {
    Line(String),
    /// Standard input closed (not a terminal, or Ctrl+D): no more commands.
    Closed,
}

const HELP: &str =
    "commands: a stop | a start | a restart | b stop | b start | b restart | status | quit";

/// Runs until Ctrl+C, SIGTERM or `quit`, or until both services have exited
/// with no terminal left to start them again.
pub fn run(console: &crate::console::Options) -> anyhow::Result<()> {
    procs::build()?;
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;

    let (lines_tx, lines) = mpsc::channel();
    let (input_tx, input) = mpsc::channel();
    // The console's buttons type the same commands.
    let typed = input_tx.clone();
    let console = crate::console::start(console, move |c| typed.send(Input::Line(c)).is_ok());
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if input_tx.send(Input::Line(line)).is_err() {
                return;
            }
        }
        // Fails only once the launcher stopped listening: nothing to tell.
        let _ = input_tx.send(Input::Closed);
    });

    let mut slots = [Slot::new("A", "service-a"), Slot::new("B", "service-b")];
    for slot in &mut slots {
        slot.start(&lines_tx)?;
    }
    say!("lab | {HELP}");
    if let Some(url) = &console {
        say!("lab | console: open {url}");
    }
    let mut typing = true;
    let mut quitting = false;
    loop {
        match lines.recv_timeout(Duration::from_millis(50)) {
            Ok((prefix, line)) => say!("{prefix} | {line}"),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                unreachable!("the launcher holds a sender")
            }
        }
        while let Ok(got) = input.try_recv() {
            match got {
                // The console still takes commands.
                Input::Closed => typing = console.is_some(),
                Input::Line(line) => {
                    if command(&line, &mut slots, &lines_tx)? {
                        quitting = true;
                    }
                }
            }
        }
        if stop.swap(false, Ordering::Relaxed) {
            quitting = true;
        }
        if quitting {
            for slot in &mut slots {
                slot.restart = false;
                // Once each: a stopped one has nothing to signal.
                if slot.child.is_some() {
                    slot.stop();
                }
            }
        }
        for slot in &mut slots {
            slot.reap(&lines_tx, quitting)?;
        }
        let all_gone = slots.iter().all(|s| s.child.is_none());
        if all_gone && (quitting || !typing) {
            break;
        }
    }
    // Lines still in the pipe after the last exit.
    while let Ok((prefix, line)) = lines.try_recv() {
        say!("{prefix} | {line}");
    }
    Ok(())
}

/// Carries out one typed command; true for `quit`.
fn command(
    line: &str,
    slots: &mut [Slot; 2],
    lines: &mpsc::Sender<(&'static str, String)>,
) -> anyhow::Result<bool> {
    let words: Vec<String> = line.split_whitespace().map(str::to_lowercase).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        [] => {}
        ["quit" | "exit" | "q"] => return Ok(true),
        ["status"] => {
            for slot in slots.iter() {
                let state = match &slot.child {
                    Some(child) if slot.stopping => format!("stopping (pid {})", child.id()),
                    Some(child) => format!("running (pid {})", child.id()),
                    None => "stopped".to_owned(),
                };
                say!("lab | {} {state}", slot.name);
            }
        }
        ["help" | "?"] => say!("lab | {HELP}"),
        [who, what] => {
            let Some(slot) = slots.iter_mut().find(|s| s.name.eq_ignore_ascii_case(who)) else {
                say!("lab | no service {who:?}; {HELP}");
                return Ok(false);
            };
            match *what {
                "stop" => slot.stop(),
                "start" if slot.child.is_some() => {
                    say!(
                        "lab | {} is already running; `{who} restart` to restart it",
                        slot.name
                    );
                }
                "start" => slot.start(lines)?,
                "restart" => {
                    slot.restart = true;
                    slot.stop();
                    if slot.child.is_none() {
                        slot.restart = false;
                        slot.start(lines)?;
                    }
                }
                other => say!("lab | {other:?} is not something a service can do; {HELP}"),
            }
        }
        _ => say!("lab | not understood: {line:?}; {HELP}"),
    }
    Ok(false)
}

impl Slot {
    fn new(name: &'static str, binary: &'static str) -> Self {
        Self {
            name,
            binary,
            child: None,
            stopping: false,
            restart: false,
        }
    }

    fn start(&mut self, lines: &mpsc::Sender<(&'static str, String)>) -> anyhow::Result<()> {
        self.child = Some(procs::spawn(
            self.name,
            self.binary,
            &[],
            &[],
            lines.clone(),
        )?);
        self.stopping = false;
        Ok(())
    }

    /// Asks it to stop as Ctrl+C in its own terminal would (SIGTERM, or
    /// Ctrl+Break on Windows): it drains and exits. Says how, and says so
    /// where the platform could only kill it.
    fn stop(&mut self) {
        match &mut self.child {
            Some(child) if !self.stopping => match terminate(child) {
                Ok(how @ Stop::Asked(_)) => {
                    say!("lab | stopping {} {}", self.name, how.describe());
                    self.stopping = true;
                }
                Ok(Stop::Killed) => {
                    say!("lab | {} {}", self.name, Stop::Killed.describe());
                    self.stopping = true;
                }
                // Still running: said so, and a later `stop` tries again.
                Err(e) => say!(
                    "lab | could not stop {}: {e}; it is still running",
                    self.name
                ),
            },
            Some(_) => {}
            None if !self.restart => say!("lab | {} is not running", self.name),
            None => {}
        }
    }

    /// Reaps the child if it exited, says so, and restarts it if asked.
    fn reap(
        &mut self,
        lines: &mpsc::Sender<(&'static str, String)>,
        quitting: bool,
    ) -> anyhow::Result<()> {
        let Some(child) = &mut self.child else {
            return Ok(());
        };
        let Some(status) = child.try_wait()? else {
            return Ok(());
        };
        self.child = None;
        let other = if self.name == "A" { "B" } else { "A" };
        if quitting {
            say!("lab | {} exited ({status})", self.name);
        } else if self.restart {
            self.restart = false;
            say!("lab | {} exited ({status}); starting it again", self.name);
            self.start(lines)?;
        } else {
            say!(
                "lab | {} exited ({status}); {other} keeps running. `{} start` starts it again",
                self.name,
                self.name.to_lowercase()
            );
        }
        Ok(())
    }
}
