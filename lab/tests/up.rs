//! `cargo lab up` end to end: typed commands stop and start A while B runs.

use std::io::Write as _;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use testkit::fake::free_port;
use testkit::http::get;

mod common;

/// The launcher's output, line by line, waited on by content.
struct Output {
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    /// Lines before this one are not waited on: they came before a command.
    from: usize,
}

impl Output {
    /// From now on, wait only on lines still to come.
    fn mark(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.from = self.seen.len();
    }

    /// Waits for a line since the last mark containing every one of `parts`.
    fn wait(&mut self, parts: &[&str]) -> String {
        let matches = |l: &String| parts.iter().all(|p| l.contains(p));
        if let Some(line) = self.seen[self.from..].iter().find(|l| matches(l)) {
            return line.clone();
        }
        let deadline = Instant::now() + testkit::PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {parts:?} in {:#?}", self.seen),
            }
        }
    }
}

/// `a stop` stops A alone (B answers connection_refused, /health 200),
/// `status` says so, `a start` brings A back on its port (B answers 200
/// again), `b restart` restarts B, and `quit` stops both; no signal ever goes
/// to a reaped child (the lab would say it "could not stop" it).
#[test]
fn typed_commands_stop_and_start_each_service() {
    let (a_port, b_port) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let lab = common::lab_up(dir.path(), a_port, b_port)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lab up");
    // A failed assertion must not leave the launcher and its services behind:
    // asked to stop (as Ctrl+C would), it stops both.
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            // Only while not reaped: its PID is ours until then.
            if let Ok(None) = self.0.try_wait() {
                let _ = service_procs::stop::ask_to_stop(&self.0);
                let _ = self.0.wait();
            }
        }
    }
    let mut lab = Stop(lab);
    let mut typed = lab.0.stdin.take().unwrap();
    let mut type_line = |line: &str| writeln!(typed, "{line}").unwrap();
    let mut out = Output {
        lines: common::lines(lab.0.stdout.take().unwrap()),
        seen: Vec::new(),
        from: 0,
    };
    out.wait(&["A | ", "event=start"]);
    out.wait(&["B | ", "event=start"]);
    let call = format!("http://127.0.0.1:{b_port}/call-echo?msg=hi");
    assert_eq!(get(&call).status, 200);

    out.mark();
    type_line("a stop");
    out.wait(&["lab | A exited"]);
    let reply = get(&call);
    assert_eq!(reply.status, 503);
    assert_eq!(reply.json()["error"], "connection_refused");
    assert_eq!(
        get(&format!("http://127.0.0.1:{b_port}/health")).status,
        200
    );
    out.mark();
    type_line("status");
    out.wait(&["lab | A stopped"]);
    out.wait(&["lab | B running"]);
    // Stopping what is already stopped signals nothing.
    out.mark();
    type_line("a stop");
    out.wait(&["lab | A is not running"]);

    out.mark();
    type_line("a start");
    out.wait(&["A | ", "event=start", &format!(":{a_port}")]);
    assert_eq!(get(&call).status, 200);

    out.mark();
    type_line("b restart");
    out.wait(&["lab | B exited"]);
    out.wait(&["B | ", "event=start"]);
    assert_eq!(get(&call).status, 200);

    type_line("quit");
    let deadline = Instant::now() + testkit::PATIENCE;
    let status = loop {
        if let Some(status) = lab.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "lab up did not quit");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut lab.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.is_empty(), "{stderr}");
    out.mark();
    assert!(
        !out.seen.iter().any(|l| l.contains("could not stop")),
        "{:#?}",
        out.seen
    );
}
