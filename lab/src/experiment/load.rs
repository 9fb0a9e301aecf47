//! The open-loop load on B's `/call-echo`, and the probe of B's `/health`.
//!
//! Open loop, as wrk2 does it: call `n` is due at `n / rate` seconds whatever
//! the answers before it did, and its latency counts from that due time, so a
//! stall shows as latency instead of as fewer calls (coordinated omission).
//! `max_in_flight` workers take the next due call as soon as they are free;
//! when all are busy the call waits, and the wait is in its latency. The load
//! stops by itself after the last phase: the number of calls is fixed before
//! it starts, and every wait on B is bounded.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::outcome::Outcome;

/// Every call as the load generator saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub n: u64,
    /// Index of the phase its due time falls in.
    pub phase: usize,
    /// Due time, ms from the start of the run.
    pub scheduled_ms: f64,
    /// When it was sent, ms from the start of the run (later than due if
    /// every worker was busy).
    pub sent_ms: f64,
    /// From the due time to the end of B's answer.
    pub latency_ms: f64,
    /// B's HTTP status; 0 when B did not answer.
    pub status: u16,
    /// `ok`, B's KIND, or `no_answer`.
    pub kind: String,
    /// Requests B made to A, from B's answer (B's log line fills it for `ok`).
    pub attempts: Option<u32>,
    pub trace_id: String,
    /// B's `detail`, or why there was no answer.
    pub detail: String,
}

/// A phase as the load sees it: start and end (s), and the fault headers
/// every call scheduled in it carries.
pub type PhaseLoad = (f64, f64, Vec<(String, String)>);

/// What to send.
#[derive(Debug, Clone)]
pub struct Plan {
    pub b: SocketAddr,
    pub rate: f64,
    pub max_in_flight: u32,
    pub msg: String,
    /// `(start s, end s, headers)` of each phase.
    pub phases: Vec<PhaseLoad>,
    /// How long to wait for B's answer before giving up on it.
    pub patience: Duration,
    /// Distinguishes this run's trace ids from any other's.
    pub run_id: u64,
}

impl Plan {
    fn total_calls(&self) -> u64 {
        let end = self.phases.last().map_or(0.0, |p| p.1);
        (end * self.rate).floor() as u64
    }

    fn phase_of(&self, at_s: f64) -> usize {
        self.phases
            .iter()
            .position(|(start, end, _)| at_s >= *start && at_s < *end)
            .unwrap_or(self.phases.len().saturating_sub(1))
    }
}

/// The trace id of call `n` in run `run_id`: 32 hex digits, never all zero.
pub fn trace_id(run_id: u64, n: u64) -> String {
    format!("{run_id:016x}{:016x}", n + 1)
}

/// Runs the whole load from `t0`; returns every call, in order of `n`.
pub fn run(plan: &Plan, t0: Instant) -> Vec<Call> {
    let total = plan.total_calls();
    let next = Arc::new(AtomicU64::new(0));
    let calls = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    std::thread::scope(|s| {
        for _ in 0..plan.max_in_flight.min(total.max(1) as u32) {
            let (next, calls) = (next.clone(), calls.clone());
            s.spawn(move || loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                let due = Duration::from_secs_f64(n as f64 / plan.rate);
                let now = t0.elapsed();
                if due > now {
                    std::thread::sleep(due - now);
                }
                let call = one(plan, n, due, t0);
                if let Ok(mut calls) = calls.lock() {
                    calls.push(call);
                }
            });
        }
    });
    let mut calls = std::mem::take(&mut *calls.lock().unwrap_or_else(|p| p.into_inner()));
    calls.sort_by_key(|c| c.n);
    calls
}

fn one(plan: &Plan, n: u64, due: Duration, t0: Instant) -> Call {
    let at = due.as_secs_f64();
    let phase = plan.phase_of(at);
    let trace_id = trace_id(plan.run_id, n);
    let sent = t0.elapsed();
    let mut head = format!(
        "GET /call-echo?msg={}-{n} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\ntraceparent: 00-{trace_id}-{:016x}-01\r\n",
        plan.msg,
        plan.b,
        n + 1
    );
    for (name, value) in &plan.phases[phase].2 {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let answer = send_and_read_to_close(plan.b, head.as_bytes(), plan.patience);
    let latency_ms = (t0.elapsed() - due).as_secs_f64() * 1000.0;
    let (status, kind, attempts, detail) = match answer {
        Err(e) => (0, Outcome::NoAnswer.as_str().to_owned(), None, e),
        Ok((status, body)) => classify(status, &body),
    };
    Call {
        n,
        phase,
        scheduled_ms: at * 1000.0,
        sent_ms: sent.as_secs_f64() * 1000.0,
        latency_ms,
        status,
        kind,
        attempts,
        trace_id,
        detail,
    }
}

/// B's answer in the contract's words: `ok` for a 200 with A's echo, else
/// the KIND, attempts and detail of B's JSON error.
fn classify(status: u16, body: &str) -> (u16, String, Option<u32>, String) {
    let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let field = |k: &str| json.as_ref().and_then(|j| j.get(k));
    if status == 200 && field("service_a").and_then(|a| a.get("echo")).is_some() {
        return (status, Outcome::Ok.as_str().to_owned(), None, String::new());
    }
    match field("error").and_then(|e| e.as_str()) {
        Some(kind) => (
            status,
            kind.to_owned(),
            field("attempts").and_then(|a| a.as_u64()).map(|a| a as u32),
            field("detail")
                .and_then(|d| d.as_str())
                .unwrap_or_default()
                .to_owned(),
        ),
        None => (
            status,
            Outcome::NoAnswer.as_str().to_owned(),
            None,
            format!(
                "B answered {status} without a KIND: {}",
                body.chars().take(120).collect::<String>()
            ),
        ),
    }
}

/// The most header fields read in B's answer: B sends a handful; more is
/// not B, and the answer is refused rather than read on.
const MAX_HEADERS: usize = 32;

/// Sends one request on a fresh connection and reads the answer to its end
/// (the request says `Connection: close`), all within `patience`: the
/// status and body, or why not.
fn send_and_read_to_close(
    b: SocketAddr,
    head: &[u8],
    patience: Duration,
) -> Result<(u16, String), String> {
    let mut stream =
        TcpStream::connect_timeout(&b, patience).map_err(|e| format!("connect to B: {e}"))?;
    let deadline = Instant::now() + patience;
    stream
        .set_write_timeout(Some(patience))
        .and_then(|()| stream.write_all(head))
        .map_err(|e| format!("send to B: {e}"))?;
    let mut bytes = Vec::with_capacity(512);
    let mut buf = [0u8; 4096];
    // Bounded by the deadline: each read waits at most what is left of it.
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "no answer from B within {} ms",
                patience.as_millis()
            ));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| format!("read from B: {e}"))?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => bytes.extend_from_slice(&buf[..k]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read from B: {e}")),
        }
    }
    read_answer(&bytes)
}

/// B's whole answer read: its status and body, or why it is not one.
fn read_answer(bytes: &[u8]) -> Result<(u16, String), String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Response::new(&mut headers);
    let body_at = match head.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err("B closed before a complete head".to_owned()),
        Err(e) => return Err(format!("B's answer is not HTTP: {e}")),
    };
    let status = head
        .code
        .ok_or_else(|| "B's answer has no status".to_owned())?;
    Ok((
        status,
        String::from_utf8_lossy(&bytes[body_at..]).into_owned(),
    ))
}

/// One probe of B's `/health`.
#[derive(Debug, Clone)]
pub struct Probe {
    /// ms from the start of the run.
    pub at_ms: f64,
    /// 0 when B did not answer.
    pub status: u16,
    pub latency_ms: f64,
}

/// Probes B's `/health` every `every` until `stop` is set; bounded by `stop`
/// and, whatever happens, by `limit`.
pub fn probe_health(
    b: SocketAddr,
    t0: Instant,
    every: Duration,
    stop: &AtomicBool,
    limit: Duration,
) -> Vec<Probe> {
    let mut probes = Vec::new();
    let head = format!("GET /health HTTP/1.1\r\nHost: {b}\r\nConnection: close\r\n\r\n");
    while !stop.load(Ordering::Relaxed) && t0.elapsed() < limit {
        let at = t0.elapsed();
        let status = send_and_read_to_close(b, head.as_bytes(), Duration::from_secs(5))
            .map_or(0, |(s, _)| s);
        probes.push(Probe {
            at_ms: at.as_secs_f64() * 1000.0,
            status,
            latency_ms: (t0.elapsed() - at).as_secs_f64() * 1000.0,
        });
        std::thread::sleep(every);
    }
    probes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// B's answers are read in the contract's words.
    #[test]
    fn classifies_b_answers() {
        let ok = classify(200, r#"{"service_a":{"echo":"x"},"service_b":"ok"}"#);
        assert_eq!(ok.1, "ok");
        let err = classify(
            503,
            r#"{"service_b":"ok","service_a":"unavailable","error":"timeout","http_status":504,"detail":"d","attempts":2}"#,
        );
        assert_eq!((err.1.as_str(), err.2), ("timeout", Some(2)));
        assert_eq!(classify(414, "{}").1, "no_answer");
    }

    /// An answer is read by HTTP's grammar: the status of a real status
    /// line, whatever its reason phrase; bytes that only look like one in
    /// places, or a head cut short, are refused with why.
    #[test]
    fn reads_answers_by_the_grammar() {
        let ok = read_answer(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\n\r\n{}");
        assert_eq!(ok, Ok((503, "{}".to_owned())));
        let bare = read_answer(b"HTTP/1.1 200\r\n\r\n");
        assert_eq!(bare, Ok((200, String::new())));
        let garbage = read_answer(b"SSH-2.0 200 OpenSSH\r\n\r\n").unwrap_err();
        assert!(garbage.contains("not HTTP"), "{garbage}");
        let cut = read_answer(b"HTTP/1.1 200 OK\r\ncontent-le").unwrap_err();
        assert!(cut.contains("before a complete head"), "{cut}");
    }
}
