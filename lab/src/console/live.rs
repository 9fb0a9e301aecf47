//! The console's live state, built from nothing but the lines `cargo lab up`
//! prints: the services' own log lines and the launcher's `lab | ...` lines.
//!
//! What it guarantees:
//!
//! - **No new instrumentation.** Every number shown comes from a line a
//!   student could read in the terminal: B's `endpoint=/call-echo` lines
//!   (outcome, latency, `detail`), A's `endpoint=/echo` lines (joined to B's
//!   by `trace_id`), A's `event=config_*` lines, the start lines, and the
//!   launcher's own lines (who stopped, who exited with which status).
//! - **Bounded memory, whatever the services print.** A fixed window of
//!   [`WINDOW_S`] seconds, at most [`SAMPLES_PER_SECOND`] latencies kept per
//!   second, [`ROWS`] recent calls, [`A_RECENT`] of A's lines waiting for B's,
//!   and a few recent events; a line longer than [`MAX_LINE`] is cut before it
//!   is read ([`logfmt`](super::logfmt)). A line that is not logfmt (or JSON) is ignored, never an error.
//! - **Pure.** Time comes in as an argument (seconds since the console
//!   started), so the tests drive it without a clock.

use std::collections::{BTreeMap, VecDeque};

use super::fault::is_default;
use super::logfmt::{cut, fields, MAX_LINE};
use super::view::{Event, Life, Row, SecondOut, Snapshot};

/// Seconds of history the charts show: the last minute.
pub const WINDOW_S: u64 = 60;
/// Latencies kept per second for p50/p99: beyond this a second's quantiles
/// come from its first calls (the lab's load is at most a few hundred a second).
pub const SAMPLES_PER_SECOND: usize = 2000;
/// Recent calls shown as rows.
pub const ROWS: usize = 20;
/// A's request lines kept for the B line with the same `trace_id`: A logs
/// before B on a normal answer, after B on a timeout (A logs when it stops
/// waiting), so both orders are joined.
pub const A_RECENT: usize = 512;
/// Recent events kept per list (A's config events, the launcher's lines).
pub const EVENTS: usize = 12;
/// One second of B's calls.
#[derive(Debug, Clone, Default)]
struct Second {
    t: u64,
    counts: BTreeMap<String, u32>,
    latencies: Vec<u32>,
}

/// Everything the page shows, built line by line.
#[derive(Debug, Clone)]
pub struct Live {
    seconds: VecDeque<Second>,
    rows: VecDeque<Row>,
    a_recent: VecDeque<(String, String)>,
    a_config: VecDeque<Event>,
    lab: VecDeque<Event>,
    a: Life,
    b: Life,
    /// Bumped on every change the page would show.
    version: u64,
}

impl Default for Live {
    fn default() -> Self {
        let unknown = Life {
            state: "unknown".into(),
            ..Life::default()
        };
        Self {
            seconds: VecDeque::with_capacity(WINDOW_S as usize + 1),
            rows: VecDeque::with_capacity(ROWS),
            a_recent: VecDeque::with_capacity(A_RECENT),
            a_config: VecDeque::new(),
            lab: VecDeque::new(),
            a: unknown.clone(),
            b: unknown,
            version: 0,
        }
    }
}

/// Pushes `item`, dropping the oldest beyond `cap`.
fn push_capped<T>(q: &mut VecDeque<T>, cap: usize, item: T) {
    if q.len() == cap {
        q.pop_front();
    }
    q.push_back(item);
}

impl Live {
    /// Takes one line the launcher printed: `who` is `A`, `B` or `lab`;
    /// `now_s` is seconds since the console started.
    pub fn line(&mut self, who: &str, line: &str, now_s: u64) {
        match who {
            "lab" => self.lab_line(cut(line, MAX_LINE), now_s),
            "A" | "B" => match fields(line) {
                Some(f) if f.contains_key("service") => {
                    self.service_line(who, &f, cut(line, MAX_LINE), now_s)
                }
                // Not a log line: a start-up failure on stderr (a bad config,
                // a port taken). Shown with the launcher's lines.
                _ if !line.trim().is_empty() => {
                    let text = format!("{who} | {}", cut(line, MAX_LINE));
                    self.note(text, now_s);
                }
                _ => {}
            },
            _ => {}
        }
    }

    fn life(&mut self, who: &str) -> Option<&mut Life> {
        match who {
            "A" | "a" => Some(&mut self.a),
            "B" | "b" => Some(&mut self.b),
            _ => None,
        }
    }

    fn service_line(&mut self, who: &str, f: &BTreeMap<String, String>, raw: &str, now_s: u64) {
        let get = |k: &str| f.get(k).map(String::as_str);
        match (who, get("event"), get("endpoint")) {
            (_, Some("start"), _) => {
                if let Some(life) = self.life(who) {
                    life.state = "running".into();
                    life.url = f.get("url").cloned();
                    life.config = f.get("config").cloned();
                }
            }
            (_, Some("stopping"), _) => {
                if let Some(life) = self.life(who) {
                    life.state = "stopping".into();
                }
            }
            (
                "A",
                Some(event @ ("config_reloaded" | "config_error" | "config_restart_needed")),
                _,
            ) => {
                let text = config_text(event, f);
                push_capped(
                    &mut self.a_config,
                    EVENTS,
                    Event {
                        t: now_s,
                        event: event.to_owned(),
                        text,
                    },
                );
            }
            ("A", None, Some("/echo")) => {
                let Some(trace) = f.get("trace_id") else {
                    return;
                };
                if let Some(row) = self.rows.iter_mut().rev().find(|r| &r.trace_id == trace) {
                    row.a_line = Some(raw.to_owned());
                } else {
                    push_capped(
                        &mut self.a_recent,
                        A_RECENT,
                        (trace.clone(), raw.to_owned()),
                    );
                }
            }
            ("B", None, Some("/call-echo")) => self.b_call(f, raw, now_s),
            _ => return,
        }
        self.version += 1;
    }

    fn b_call(&mut self, f: &BTreeMap<String, String>, raw: &str, now_s: u64) {
        let get = |k: &str| f.get(k).map(String::as_str);
        let kind = match (get("error"), get("status")) {
            (Some(kind), _) => kind,
            (None, Some(status)) => status,
            (None, None) => "unknown",
        }
        .to_owned();
        let latency_ms = get("latency_ms").and_then(|l| l.parse().ok());
        self.count(&kind, latency_ms, now_s);
        let trace_id = f.get("trace_id").cloned().unwrap_or_default();
        let a_line = self
            .a_recent
            .iter()
            .position(|(t, _)| *t == trace_id && !trace_id.is_empty())
            .and_then(|i| self.a_recent.remove(i))
            .map(|(_, line)| line);
        let clock = get("ts")
            .and_then(|ts| ts.get(11..23))
            .unwrap_or_default()
            .to_owned();
        let row = Row {
            t: now_s,
            clock,
            kind,
            http_status: get("http_status").and_then(|s| s.parse().ok()),
            latency_ms,
            detail: f.get("detail").cloned().unwrap_or_default(),
            trace_id,
            b_line: raw.to_owned(),
            a_line,
        };
        push_capped(&mut self.rows, ROWS, row);
    }

    /// Counts one outcome in second `now_s` (and forgets seconds out of the window).
    pub fn count(&mut self, kind: &str, latency_ms: Option<u32>, now_s: u64) {
        while self
            .seconds
            .front()
            .is_some_and(|s| s.t + WINDOW_S <= now_s)
        {
            self.seconds.pop_front();
        }
        if self.seconds.back().is_none_or(|s| s.t < now_s) {
            push_capped(
                &mut self.seconds,
                WINDOW_S as usize + 1,
                Second {
                    t: now_s,
                    ..Second::default()
                },
            );
        }
        // A late count (its second already closed) goes into the newest one.
        let Some(second) = self.seconds.back_mut() else {
            return;
        };
        *second.counts.entry(kind.to_owned()).or_default() += 1;
        if let Some(ms) = latency_ms {
            if second.latencies.len() < SAMPLES_PER_SECOND {
                second.latencies.push(ms);
            }
        }
        self.version += 1;
    }

    fn lab_line(&mut self, line: &str, now_s: u64) {
        // "A exited (exit status: 0); B keeps running. ..." and the like.
        for (who, name) in [("A", "A "), ("B", "B ")] {
            let Some(rest) = line.strip_prefix(name) else {
                continue;
            };
            if let Some(status) = rest.strip_prefix("exited (") {
                let end = status.find(");").or_else(|| status.rfind(')'));
                let status = &status[..end.unwrap_or(status.len())];
                if let Some(life) = self.life(who) {
                    life.state = "stopped".into();
                    life.last_exit = Some(status.to_owned());
                }
            }
        }
        if let Some(who) = line.strip_prefix("stopping ").and_then(|r| r.get(..1)) {
            if let Some(life) = self.life(who) {
                life.state = "stopping".into();
            }
        }
        self.note(line.to_owned(), now_s);
    }

    /// A line for the page's list of the launcher's lines.
    fn note(&mut self, text: String, now_s: u64) {
        push_capped(
            &mut self.lab,
            EVENTS,
            Event {
                t: now_s,
                event: "lab".into(),
                text,
            },
        );
        self.version += 1;
    }

    /// Changes so far: the stream sends a snapshot only when this moved.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The row of B's call with this trace id, if its line came.
    pub fn row(&self, trace_id: &str) -> Option<&Row> {
        self.rows.iter().rev().find(|r| r.trace_id == trace_id)
    }

    /// What the page draws, at `now_s`: one entry per second of the window
    /// (oldest first, empty seconds included), the rows (newest first), the
    /// events, and both services' lives.
    pub fn snapshot(&self, now_s: u64) -> Snapshot<'_> {
        // Always the whole window, so the page's time axis stands still;
        // seconds before the console started are empty.
        let from = now_s as i64 - (WINDOW_S as i64 - 1);
        let seconds = (from..=now_s as i64)
            .map(|t| {
                let s = self.seconds.iter().find(|s| s.t as i64 == t);
                let mut lat: Vec<u32> = s.map(|s| s.latencies.clone()).unwrap_or_default();
                lat.sort_unstable();
                SecondOut {
                    t,
                    counts: s.map(|s| s.counts.clone()).unwrap_or_default(),
                    p50: quantile(&lat, 0.50),
                    p99: quantile(&lat, 0.99),
                }
            })
            .collect();
        Snapshot {
            now: now_s,
            seconds,
            rows: self.rows.iter().rev().collect(),
            a_config: self.a_config.iter().rev().collect(),
            lab: self.lab.iter().rev().collect(),
            a: &self.a,
            b: &self.b,
        }
    }
}

/// The `q` quantile of sorted values (nearest rank); `None` for no values.
fn quantile(sorted: &[u32], q: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// A's config event in a line: the error, or the fault keys that are on.
fn config_text(event: &str, f: &BTreeMap<String, String>) -> String {
    match event {
        "config_error" => f.get("error").cloned().unwrap_or_default(),
        "config_restart_needed" => f.get("detail").cloned().unwrap_or_default(),
        _ => {
            // Only what is not at its default: "delay_ms=1500".
            let on: Vec<String> = f
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "ts" | "service" | "event" | "file"))
                .filter(|(k, v)| !is_default(k, v))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            if on.is_empty() {
                "no faults: A answers normally".to_owned()
            } else {
                on.join(" ")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B_OK: &str = "2026-12-02T03:00:01.250Z service=B endpoint=/call-echo status=ok http_status=200 latency_ms=3 trace_id=aaa";
    const A_OK: &str = "2026-12-02T03:00:01.249Z service=A endpoint=/echo status=ok http_status=200 latency_ms=0 trace_id=aaa";
    const B_TIMEOUT: &str = r#"2026-12-02T03:00:02.001Z service=B endpoint=/call-echo status=error http_status=504 error=timeout detail="A sent no answer within 1000 ms (\"slow\")" latency_ms=1001 trace_id=bbb"#;
    const A_LATE: &str = "2026-12-02T03:00:02.300Z service=A endpoint=/echo status=client_closed http_status=499 fault=delay latency_ms=1300 trace_id=bbb";

    /// B's calls are counted by KIND in their second, with A's line joined
    /// by trace id whichever of the two came first.
    #[test]
    fn joins_a_and_b_by_trace_id_in_both_orders() {
        let mut live = Live::default();
        live.line("A", A_OK, 5);
        live.line("B", B_OK, 5);
        live.line("B", B_TIMEOUT, 6);
        live.line("A", A_LATE, 6);
        let snap = live.snapshot(6);
        assert_eq!(snap.rows.len(), 2);
        assert_eq!(snap.rows[0].kind, "timeout");
        assert_eq!(snap.rows[0].a_line.as_deref(), Some(A_LATE));
        assert_eq!(snap.rows[0].latency_ms, Some(1001));
        assert_eq!(snap.rows[0].clock, "03:00:02.001");
        assert_eq!(snap.rows[1].kind, "ok");
        assert_eq!(snap.rows[1].a_line.as_deref(), Some(A_OK));
        let last = &snap.seconds[snap.seconds.len() - 1];
        assert_eq!(
            (last.t, last.counts["timeout"], last.p99),
            (6, 1, Some(1001))
        );
        assert_eq!(snap.seconds[snap.seconds.len() - 2].counts["ok"], 1);
        assert_eq!(snap.seconds.len(), WINDOW_S as usize);
    }

    /// Old seconds leave the window; nothing grows past its cap however
    /// many lines come.
    #[test]
    fn memory_stays_bounded() {
        let mut live = Live::default();
        for i in 0..10_000u64 {
            let b =
                format!("ts service=B endpoint=/call-echo status=ok latency_ms=1 trace_id=t{i}");
            live.line("B", &b, i / 50);
            live.line(
                "A",
                &format!("ts service=A endpoint=/echo trace_id=x{i}"),
                i / 50,
            );
        }
        assert!(live.seconds.len() <= WINDOW_S as usize + 1);
        assert_eq!(live.rows.len(), ROWS);
        assert_eq!(live.a_recent.len(), A_RECENT);
        let snap = live.snapshot(199);
        assert_eq!(snap.seconds[0].t, 140);
        assert_eq!(snap.seconds[0].counts["ok"], 50);
        // A huge line is cut, not kept whole.
        live.line("lab", &"x".repeat(MAX_LINE * 4), 200);
        assert_eq!(live.lab.back().unwrap().text.len(), MAX_LINE);
    }

    /// Start lines, the launcher's words and A's config events give the
    /// services' lives and what A made of the file.
    #[test]
    fn lives_and_config_events() {
        let mut live = Live::default();
        live.line("A", "ts service=A event=start url=http://127.0.0.1:8080 config=config/service-a.toml threads=2", 0);
        assert_eq!(live.a.state, "running");
        assert_eq!(live.a.config.as_deref(), Some("config/service-a.toml"));
        live.line("lab", "stopping A (SIGTERM)", 1);
        assert_eq!(live.a.state, "stopping");
        live.line(
            "lab",
            "A exited (exit status: 0); B keeps running. `a start` starts it again",
            2,
        );
        assert_eq!(live.a.state, "stopped");
        assert_eq!(live.a.last_exit.as_deref(), Some("exit status: 0"));
        live.line("lab", "B exited (signal: 9 (SIGKILL))", 2);
        assert_eq!(live.b.last_exit.as_deref(), Some("signal: 9 (SIGKILL)"));
        live.line("A", "ts service=A event=config_reloaded file=f delay_ms=1500 jitter_ms=0 fail=false fail_status=500 probability=1 allow_headers=true seed=none", 3);
        live.line("A", r#"ts service=A event=config_error file=f error="f: fault.probability = 1.5, expected 0.0..=1.0; keeping the last good settings""#, 4);
        let snap = live.snapshot(4);
        assert_eq!(snap.a_config[0].event, "config_error");
        assert!(snap.a_config[0].text.contains("fault.probability = 1.5"));
        assert_eq!(snap.a_config[1].text, "delay_ms=1500");
        // A start-up failure on stderr is shown with the launcher's lines.
        let bad =
            "service-a: bad config: config/service-a.toml: server.port = 70000, expected 0..=65535";
        live.line("A", bad, 5);
        assert_eq!(live.lab.back().unwrap().text, format!("A | {bad}"));
        assert_eq!(live.a.state, "stopped");
    }

    /// Quantiles by nearest rank; none without values (never a 0 that
    /// would draw as a fast second).
    #[test]
    fn quantiles() {
        assert_eq!(quantile(&[], 0.5), None);
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), Some(50));
        assert_eq!(quantile(&v, 0.99), Some(99));
        assert_eq!(quantile(&[7], 0.99), Some(7));
    }
}
