//! A child's output stream (stdout or stderr) as lines, collected by a
//! thread of its own as they arrive, and waited on by event (a condition
//! variable), never by sleeping.
//!
//! A line that is not UTF-8 is kept lossily rather than ending the stream;
//! the stream's end (the child exited or closed it) is a state of its own,
//! so a wait for a line that will never come returns at once.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long any one wait on a service lasts (its ready line, a log line, its
/// exit) before it is an error: a service on a busy 2-core machine starts in
/// well under a second, so ten seconds means something is wrong, not slow.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// How many of the last lines are kept for error messages, even when the
/// lines themselves are not (a load test's millions).
const TAIL: usize = 8;

/// Which lines are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keep {
    /// Every line.
    All,
    /// The first line only (a service's ready line, which carries its URL),
    /// and the [`TAIL`].
    First,
}

/// What a wait found.
#[derive(Debug)]
pub(crate) enum Waited {
    /// The first matching line.
    Found(String),
    /// The stream ended with no matching line.
    Ended,
    /// No matching line within the patience.
    TimedOut,
}

#[derive(Debug, Default)]
struct State {
    lines: Vec<String>,
    tail: VecDeque<String>,
    ended: bool,
}

/// Lines read so far, and a way to wait for the next.
#[derive(Debug, Default)]
pub(crate) struct Output {
    state: Mutex<State>,
    grew: Condvar,
}

impl Output {
    /// Starts a thread that reads `from` line by line into a new [`Output`];
    /// with `echo`, each line is also printed on this process's stderr.
    pub(crate) fn read(from: impl Read + Send + 'static, keep: Keep, echo: bool) -> Arc<Self> {
        let out = Arc::new(Self::default());
        let sink = out.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(from);
            let mut buf = Vec::new();
            let mut first = true;
            // A read error ends the stream as its end does.
            while reader.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                let text = String::from_utf8_lossy(&buf);
                let line = text.trim_end_matches(['\n', '\r']).to_owned();
                buf.clear();
                if echo {
                    eprintln!("{line}");
                }
                sink.push(line, keep == Keep::All || first);
                first = false;
            }
            sink.end();
        });
        out
    }

    /// The state; a panic elsewhere while holding the lock cannot leave it
    /// half-changed (each change is one push or one flag), so a poisoned
    /// lock is used as it is.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, line: String, keep: bool) {
        let mut state = self.state();
        if state.tail.len() == TAIL {
            state.tail.pop_front();
        }
        state.tail.push_back(line.clone());
        if keep {
            state.lines.push(line);
        }
        drop(state);
        self.grew.notify_all();
    }

    fn end(&self) {
        self.state().ended = true;
        self.grew.notify_all();
    }

    /// Every kept line so far.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.state().lines.clone()
    }

    /// How many lines are kept so far.
    pub(crate) fn len(&self) -> usize {
        self.state().lines.len()
    }

    /// Whether the stream has ended (every line is in).
    pub(crate) fn ended(&self) -> bool {
        self.state().ended
    }

    /// The last few lines read, kept or not, one per line: for messages.
    pub(crate) fn tail(&self) -> String {
        let state = self.state();
        state.tail.iter().map(|l| format!("{l}\n")).collect()
    }

    /// Every kept line, each ended by a newline.
    pub(crate) fn text(&self) -> String {
        let state = self.state();
        state.lines.iter().map(|l| format!("{l}\n")).collect()
    }

    /// Waits until a kept line from index `from` on matches, the stream ends,
    /// or `patience` passes.
    pub(crate) fn wait(
        &self,
        from: usize,
        matches: &dyn Fn(&str) -> bool,
        patience: Duration,
    ) -> Waited {
        let deadline = Instant::now() + patience;
        let mut state = self.state();
        loop {
            if let Some(found) = state.lines.iter().skip(from).find(|l| matches(l)) {
                return Waited::Found(found.clone());
            }
            if state.ended {
                return Waited::Ended;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return Waited::TimedOut;
            };
            state = self
                .grew
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Waits until the stream has ended, up to `patience`; whether it has.
    pub(crate) fn wait_end(&self, patience: Duration) -> bool {
        let deadline = Instant::now() + patience;
        let mut state = self.state();
        while !state.ended {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            state = self
                .grew
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines are found as they arrive; the end is seen at once, not waited out.
    #[test]
    fn waits_end_with_a_line_or_the_end() {
        let out = Output::read(&b"one\r\ntwo\nbad \xff byte\n"[..], Keep::All, false);
        assert!(out.wait_end(Duration::from_secs(10)));
        assert_eq!(out.lines(), ["one", "two", "bad \u{fffd} byte"]);
        let started = Instant::now();
        assert!(matches!(
            out.wait(0, &|l| l == "two", Duration::from_secs(10)),
            Waited::Found(l) if l == "two"
        ));
        assert!(matches!(
            out.wait(2, &|l| l == "two", Duration::from_secs(10)),
            Waited::Ended
        ));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    /// With [`Keep::First`] only the first line is kept, but the tail is
    /// still there for messages.
    #[test]
    fn keeps_the_first_line_and_a_tail() {
        let text: String = (0..100).map(|n| format!("line {n}\n")).collect();
        let out = Output::read(std::io::Cursor::new(text), Keep::First, false);
        assert!(out.wait_end(Duration::from_secs(10)));
        assert_eq!(out.lines(), ["line 0"]);
        assert_eq!(out.tail().lines().count(), TAIL);
        assert!(out.tail().ends_with("line 99\n"));
    }
}
