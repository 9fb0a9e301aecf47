//! What A did for each call, from A's log lines joined to the calls by
//! `trace_id`, set beside what B said; and the matrix of the two, with the
//! cells the contract forbids flagged.
//!
//! This is where an experiment checks itself: a run whose calls "succeeded"
//! while A was failing them, or where B blamed A for a call A never saw, is
//! caught here rather than believed. The join is pure (lines in, rows out)
//! so that a unit test can feed it logs that contradict each other.
//!
//! What B may say for what A did is an exhaustive match over the outcomes
//! ([`Outcome`], B's own KINDs): a new KIND does not compile until this
//! file says whether B may report it for a call A never saw.

use std::collections::{BTreeMap, HashMap};

use service_b::kind::Kind;

use super::load::Call;
use super::logs::{ALine, BLine, Logs};
use super::outcome::Outcome;

/// What A did with (the last attempt of) a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ADid {
    Answered,
    Delayed,
    Failed,
    BadBody,
    Stalled,
    Dropped,
    Reset,
    Garbage,
    Truncated,
    Abandoned,
    ClientClosed,
    Aborted,
    NeverReached,
    /// No line, but A was SIGKILLed while the call was in flight: its line
    /// may have died with it.
    LostAtKill,
    Other,
}

impl ADid {
    pub fn as_str(self) -> &'static str {
        match self {
            ADid::Answered => "answered",
            ADid::Delayed => "delayed",
            ADid::Failed => "failed with a status",
            ADid::BadBody => "answered a bad body",
            ADid::Stalled => "stalled its body",
            ADid::Dropped => "dropped",
            ADid::Reset => "reset",
            ADid::Garbage => "garbage",
            ADid::Truncated => "truncated",
            ADid::Abandoned => "abandoned",
            ADid::ClientClosed => "client_closed",
            ADid::Aborted => "aborted at shutdown",
            ADid::NeverReached => "never reached",
            ADid::LostAtKill => "no line (A killed)",
            ADid::Other => "other",
        }
    }

    fn of(line: &ALine) -> Self {
        let has = |f: &str| {
            line.fault
                .as_deref()
                .is_some_and(|all| all.split(',').any(|x| x == f))
        };
        match line.status.as_str() {
            "ok" if has("bad_body") => ADid::BadBody,
            "ok" if has("body_delay") || has("trickle") => ADid::Stalled,
            "ok" if has("delay") => ADid::Delayed,
            "ok" => ADid::Answered,
            "error" => ADid::Failed,
            "dropped" => ADid::Dropped,
            "reset" => ADid::Reset,
            "garbage" => ADid::Garbage,
            "truncated" => ADid::Truncated,
            "abandoned" => ADid::Abandoned,
            "client_closed" => ADid::ClientClosed,
            "aborted" => ADid::Aborted,
            _ => ADid::Other,
        }
    }
}

/// When A's line was written, against B's deadline for the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timing {
    InTime,
    /// Within [`TOLERANCE_MS`] of the deadline: either reading is allowed.
    AtDeadline,
    Late,
    /// No line, or a line written before the body (a stall): not judged.
    Unjudged,
}

/// Log timestamps have millisecond resolution and the two services' clocks
/// start a call a little apart: within this of the deadline, do not judge.
const TOLERANCE_MS: f64 = 25.0;

/// One call with both sides.
#[derive(Debug, Clone)]
pub struct Joined {
    pub a_did: ADid,
    pub timing: Timing,
    /// A's lines for this trace id (one per attempt that reached A).
    pub a_requests: usize,
    pub a_status: Option<String>,
    pub a_fault: Option<String>,
    pub a_latency_ms: Option<f64>,
    /// Requests B made to A (B's log line, else B's answer).
    pub attempts: Option<u32>,
    /// Why this cell is forbidden, if it is.
    pub forbidden: Option<&'static str>,
}

impl Joined {
    /// The matrix row: what A did, and whether after B's deadline.
    pub fn row(&self) -> String {
        match self.timing {
            Timing::Late => format!("{}, after B's deadline", self.a_did.as_str()),
            _ => self.a_did.as_str().to_owned(),
        }
    }
}

/// Joins each call to A's and B's lines by trace id. `kills_ms`: when A was
/// SIGKILLed; `timeout_ms`: B's budget.
pub fn join(calls: &[Call], logs: &Logs, kills_ms: &[f64], timeout_ms: u64) -> Vec<Joined> {
    let mut a_by: HashMap<&str, Vec<&ALine>> = HashMap::new();
    for line in &logs.a {
        a_by.entry(line.trace_id.as_str()).or_default().push(line);
    }
    let b_by: HashMap<&str, &BLine> = logs.b.iter().map(|l| (l.trace_id.as_str(), l)).collect();
    calls
        .iter()
        .map(|call| {
            let mut lines = a_by
                .get(call.trace_id.as_str())
                .cloned()
                .unwrap_or_default();
            lines.sort_by(|x, y| x.end_ms.total_cmp(&y.end_ms));
            let b_line = b_by.get(call.trace_id.as_str());
            let attempts = b_line.and_then(|b| b.attempts).or(call.attempts);
            // B's own start of the call when it logged one, else our send.
            let b_start = b_line.map_or(call.sent_ms, |b| b.end_ms - b.latency_ms);
            let deadline = b_start + timeout_ms as f64;
            // The last attempt reached A only if A has a line for every attempt.
            let last = match attempts {
                Some(n) if (lines.len() as u32) < n => None,
                _ => lines.last().copied(),
            };
            let end_ms = call.scheduled_ms + call.latency_ms;
            let (a_did, timing) = match last {
                None if kills_ms
                    .iter()
                    .any(|k| *k >= call.sent_ms - 10.0 && *k <= end_ms + 100.0) =>
                {
                    (ADid::LostAtKill, Timing::Unjudged)
                }
                None => (ADid::NeverReached, Timing::Unjudged),
                Some(line) => {
                    let did = ADid::of(line);
                    let timing = if did == ADid::Stalled {
                        Timing::Unjudged
                    } else if line.end_ms > deadline + TOLERANCE_MS {
                        Timing::Late
                    } else if line.end_ms >= deadline - TOLERANCE_MS {
                        Timing::AtDeadline
                    } else {
                        Timing::InTime
                    };
                    (did, timing)
                }
            };
            Joined {
                a_did,
                timing,
                a_requests: lines.len(),
                a_status: last.map(|l| format!("{} {}", l.status, l.http_status)),
                a_fault: last.and_then(|l| l.fault.clone()),
                a_latency_ms: last.map(|l| l.latency_ms),
                attempts,
                forbidden: forbidden(a_did, timing, &call.kind),
            }
        })
        .collect()
}

/// Why B's `kind` contradicts what A did, or `None` if the contract allows it.
/// A name the lab does not know (a B of another build) is never allowed.
pub fn forbidden(a_did: ADid, timing: Timing, kind: &str) -> Option<&'static str> {
    let said = Outcome::from_name(kind);
    // B's own failure to answer the load generator says nothing about A.
    if said == Some(Outcome::NoAnswer) {
        return None;
    }
    let in_time = match said {
        Some(said) => said_in_time(a_did, said)?,
        None if matches!(a_did, ADid::LostAtKill | ADid::Other) => return None,
        None => false,
    };
    // Past B's deadline, B can only have said timeout.
    let late_ok = said == Some(Outcome::Failed(Kind::Timeout));
    let allowed = match timing {
        Timing::Late => late_ok,
        Timing::AtDeadline => late_ok || in_time,
        Timing::InTime | Timing::Unjudged => in_time,
    };
    if allowed {
        return None;
    }
    use Kind::{BOverloaded, CircuitOpen, ConnectionRefused, Timeout, Unreachable};
    use Outcome::{Failed, Ok};
    Some(match (a_did, timing, said) {
        (_, Timing::Late, _) => "A answered after B's deadline, so B can only have said timeout",
        (ADid::NeverReached, _, Some(Ok)) => "B says A echoed, but A never saw the call",
        (ADid::NeverReached, _, _) => "B blames an answer of A's, but A never saw the call",
        (_, _, Some(Failed(Timeout))) => "A finished in time, but B said timeout",
        (_, _, Some(Failed(CircuitOpen))) => "B says it did not call A, but A saw the call",
        (_, _, Some(Failed(ConnectionRefused | Unreachable | BOverloaded))) => {
            "B says it could not reach A, but A saw the call"
        }
        (ADid::Answered | ADid::Delayed, _, _) => "A answered in time, but B reported a failure",
        (_, _, Some(Ok)) => "A failed the call, but B said ok",
        _ => "B's KIND does not match what A did",
    })
}

/// Whether B may say `said` for a call A answered in time as `a_did`
/// (`None`: not judged, A's side is unknown).
fn said_in_time(a_did: ADid, said: Outcome) -> Option<bool> {
    use Kind::*;
    let failed = |kinds: &[Kind]| matches!(said, Outcome::Failed(k) if kinds.contains(&k));
    Some(match a_did {
        ADid::Answered | ADid::Delayed => said == Outcome::Ok,
        ADid::Failed => failed(&[UpstreamStatus]),
        ADid::BadBody | ADid::Garbage => failed(&[BadResponse]),
        ADid::Dropped | ADid::Reset | ADid::Truncated => failed(&[ConnectionReset]),
        ADid::Stalled => said == Outcome::Ok || failed(&[Timeout, ConnectionReset]),
        ADid::Abandoned | ADid::ClientClosed => failed(&[Timeout]),
        ADid::Aborted => failed(&[Timeout, ConnectionReset]),
        // Every KIND decided here: which can B say without A seeing the call?
        ADid::NeverReached => match said {
            Outcome::Ok | Outcome::NoAnswer => false,
            Outcome::Failed(kind) => match kind {
                Timeout | ConnectionRefused | ConnectionReset | Unreachable | CircuitOpen
                | BOverloaded => true,
                UpstreamStatus | BadResponse => false,
            },
        },
        ADid::LostAtKill | ADid::Other => return None,
    })
}

/// The matrix: row (what A did) × column (what B said) → count, with the
/// reason a cell is forbidden and one trace id to grep for.
#[derive(Debug, Default)]
pub struct Matrix {
    pub cells: BTreeMap<(String, String), Cell>,
}

#[derive(Debug, Default, Clone)]
pub struct Cell {
    pub count: usize,
    pub forbidden: Option<&'static str>,
    pub example: String,
}

impl Matrix {
    pub fn of<'a>(rows: impl Iterator<Item = (&'a Call, &'a Joined)>) -> Self {
        let mut m = Matrix::default();
        for (call, j) in rows {
            let cell = m.cells.entry((j.row(), call.kind.clone())).or_default();
            cell.count += 1;
            if cell.forbidden.is_none() && j.forbidden.is_some() {
                cell.forbidden = j.forbidden;
                cell.example = call.trace_id.clone();
            }
        }
        m
    }

    /// Calls in forbidden cells.
    pub fn forbidden_calls(&self) -> usize {
        self.cells
            .values()
            .filter(|c| c.forbidden.is_some())
            .map(|c| c.count)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::logs::parse_logs;
    use std::time::{Duration, SystemTime};

    fn call(n: u64, kind: &str, sent_ms: f64, latency_ms: f64) -> Call {
        Call {
            n,
            phase: 0,
            scheduled_ms: sent_ms,
            sent_ms,
            latency_ms,
            status: if kind == "ok" { 200 } else { 503 },
            kind: kind.into(),
            attempts: None,
            trace_id: format!("{:032x}", n + 1),
            detail: String::new(),
        }
    }

    /// A logfmt line stamped `ms` after `wall0`.
    fn stamp(wall0: SystemTime, ms: u64, rest: &str) -> String {
        let ts = humantime::format_rfc3339_millis(wall0 + Duration::from_millis(ms));
        format!("{ts} {rest}")
    }

    /// Logs that contradict B on purpose land in forbidden cells, each with
    /// its reason; the consistent ones do not.
    #[test]
    fn contradictory_logs_are_flagged() {
        let wall0 = humantime::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        let t = |n: u64| format!("{:032x}", n + 1);
        let a_line = |ms, n, status: &str, extra: &str| {
            stamp(
                wall0,
                ms,
                &format!("service=A endpoint=/echo status={status} http_status=200 latency_ms=5{extra} trace_id={}", t(n)),
            )
        };
        let b_line = |end_ms, n, lat, attempts| {
            stamp(
                wall0,
                end_ms,
                &format!("service=B endpoint=/call-echo status=error http_status=504 attempts={attempts} latency_ms={lat} trace_id={}", t(n)),
            )
        };
        let calls = vec![
            // 0: A answered at 105 ms, deadline 1100 ms, yet B said timeout.
            call(0, "timeout", 100.0, 1000.0),
            // 1: A never saw it, yet B said upstream_status.
            call(1, "upstream_status", 200.0, 3.0),
            // 2: A never saw it, yet B said ok.
            call(2, "ok", 300.0, 3.0),
            // 3: A failed it (500), yet B said ok.
            call(3, "ok", 400.0, 6.0),
            // 4: A saw it, yet B said circuit_open.
            call(4, "circuit_open", 500.0, 1.0),
            // 5: consistent: A delayed past the deadline, B timeout.
            call(5, "timeout", 600.0, 1000.0),
            // 6: consistent: A stopped, B connection_refused.
            call(6, "connection_refused", 700.0, 1.0),
            // 7: consistent: A reset, B connection_reset.
            call(7, "connection_reset", 800.0, 2.0),
            // 8: A answered after the deadline, yet B said upstream_status.
            call(8, "upstream_status", 900.0, 1000.0),
        ];
        let a = vec![
            a_line(105, 0, "ok", ""),
            stamp(wall0, 405, &format!("service=A endpoint=/echo status=error http_status=500 latency_ms=1 fault=fail trace_id={}", t(3))),
            a_line(501, 4, "ok", ""),
            a_line(2100, 5, "ok", " fault=delay"),
            a_line(802, 7, "reset", " fault=reset"),
            stamp(wall0, 2500, &format!("service=A endpoint=/echo status=error http_status=500 latency_ms=1600 fault=delay,fail trace_id={}", t(8))),
        ];
        let b = vec![
            b_line(1100, 0, 1000, 1),
            b_line(1600, 5, 1000, 1),
            b_line(1900, 8, 1000, 1),
        ];
        let logs = parse_logs(&a, &b, wall0);
        assert_eq!(logs.a.len(), 6);
        let joined = join(&calls, &logs, &[], 1000);
        let reasons: Vec<Option<&str>> = joined.iter().map(|j| j.forbidden).collect();
        assert_eq!(reasons[0], Some("A finished in time, but B said timeout"));
        assert_eq!(
            reasons[1],
            Some("B blames an answer of A's, but A never saw the call")
        );
        assert_eq!(
            reasons[2],
            Some("B says A echoed, but A never saw the call")
        );
        assert_eq!(reasons[3], Some("A failed the call, but B said ok"));
        assert_eq!(
            reasons[4],
            Some("B says it did not call A, but A saw the call")
        );
        assert_eq!(reasons[5], None, "{:?}", joined[5]);
        assert_eq!(reasons[6], None);
        assert_eq!(reasons[7], None);
        assert_eq!(
            reasons[8],
            Some("A answered after B's deadline, so B can only have said timeout")
        );
        assert_eq!(joined[5].row(), "delayed, after B's deadline");

        let matrix = Matrix::of(calls.iter().zip(&joined));
        assert_eq!(matrix.forbidden_calls(), 6);
        let cell = &matrix.cells[&("answered".to_owned(), "timeout".to_owned())];
        assert_eq!(cell.example, t(0));
    }

    /// A call with no line while A was SIGKILLed is not blamed on anyone, and
    /// a retried call is judged by its last attempt.
    #[test]
    fn kills_and_retries() {
        let wall0 = SystemTime::UNIX_EPOCH;
        let calls = vec![
            call(0, "ok", 100.0, 5.0),
            call(1, "connection_refused", 200.0, 30.0),
        ];
        let t1 = format!("{:032x}", 2);
        let a = vec![stamp(wall0, 205, &format!("service=A endpoint=/echo status=reset http_status=0 latency_ms=0 fault=reset trace_id={t1}"))];
        let b = vec![stamp(wall0, 230, &format!("service=B endpoint=/call-echo status=error http_status=503 attempts=2 latency_ms=30 trace_id={t1}"))];
        let logs = parse_logs(&a, &b, wall0);
        let joined = join(&calls, &logs, &[103.0], 1000);
        assert_eq!(joined[0].a_did, ADid::LostAtKill);
        assert_eq!(joined[0].forbidden, None);
        assert_eq!(joined[1].a_did, ADid::NeverReached);
        assert_eq!(joined[1].a_requests, 1);
        assert_eq!(joined[1].forbidden, None);
    }
}
