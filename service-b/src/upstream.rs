//! B's calls to A: the client, the deadline, and what went wrong.
//!
//! - The client is surf over [`Pool`], B's own keep-alive pool (see `pool.rs`
//!   for why not surf's).
//! - The deadline: the whole call (connect, head **and body**) races one
//!   `smol::Timer`. surf's own timeout covers only the write and the head; a
//!   stalled or trickling body would run past it.
//! - What went wrong: every failure becomes one [`ErrorKind`] of the contract,
//!   in [`classify`].
//! - Around each call: the circuit breaker (`breaker.rs`) and retries within the
//!   same deadline and a retry budget (`retry.rs`).

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use http_types::{Method, Request, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use service_runtime::head::{MAX_HEADERS, MAX_HEAD_BYTES};
use service_runtime::http::ApiError;
use service_runtime::log::Line;
use service_runtime::wire;
use service_runtime::metrics::latency_histogram;
use smol::future::FutureExt as _;
use smol::Timer;
use url::Url;

use crate::breaker::{Breaker, State};
use crate::config::{BreakerSettings, UpstreamSettings};
use crate::pool::{Failure, Pool};
use crate::retry::Retry;


/// Header fields B adds to each request to A besides forwarded ones (host,
/// content-length, date, traceparent, x-request-timeout-ms, and a spare).
const OWN_HEADERS: usize = 6;

/// Bytes of a request head to A kept for the fields B adds itself.
const HEAD_ROOM: usize = 256;

/// What went wrong with a call to A: the contract's KINDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No complete answer (connect, head and body) within the budget.
    Timeout,
    /// Nothing listens at A's address.
    ConnectionRefused,
    /// A closed or reset the connection before a complete answer.
    ConnectionReset,
    /// A answered a non-2xx status.
    UpstreamStatus,
    /// A's 2xx answer is not the JSON expected, or not valid HTTP.
    BadResponse,
    /// Any other failure to connect (name lookup, no route).
    Unreachable,
    /// The circuit breaker is open: A was not called.
    CircuitOpen,
    /// B itself is out of file descriptors or local ports: A was not called,
    /// and is not to blame.
    BOverloaded,
}

impl ErrorKind {
    /// The name in answers, logs and metrics: `timeout`, `connection_refused`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::ConnectionRefused => "connection_refused",
            ErrorKind::ConnectionReset => "connection_reset",
            ErrorKind::UpstreamStatus => "upstream_status",
            ErrorKind::BadResponse => "bad_response",
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::CircuitOpen => "circuit_open",
            ErrorKind::BOverloaded => "b_overloaded",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed call: its kind, the status that kind stands for, and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// 504 for a timeout, 502 for reset or bad answer, A's own status for
    /// `upstream_status`, 503 otherwise.
    pub http_status: u16,
    /// A sentence for a human.
    pub detail: String,
    /// Calls made to A (0 when the breaker refused).
    pub attempts: u32,
    /// Whether this failure says something about A's health (for the
    /// breaker). Not so for B's own trouble, nor for A's 4xx to a caller's
    /// bad header: A answered, correctly.
    pub against_a: bool,
}

impl CallError {
    /// An error of `kind` with the status that kind stands for.
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        let http_status = match kind {
            ErrorKind::Timeout => 504,
            ErrorKind::ConnectionReset | ErrorKind::BadResponse => 502,
            ErrorKind::ConnectionRefused
            | ErrorKind::Unreachable
            | ErrorKind::UpstreamStatus
            | ErrorKind::CircuitOpen
            | ErrorKind::BOverloaded => 503,
        };
        Self {
            kind,
            http_status,
            detail: detail.into(),
            attempts: 1,
            against_a: kind != ErrorKind::BOverloaded,
        }
    }

    /// The same error, not counted as A's failure by the breaker: B's own
    /// trouble, or A refusing what the caller sent.
    pub fn not_against_a(mut self) -> Self {
        self.against_a = false;
        self
    }

    /// The same error with another status (A's own, for `upstream_status`).
    pub fn with_status(mut self, http_status: u16) -> Self {
        self.http_status = http_status;
        self
    }
}

/// Headers a call carries to A besides the URL, and the trace for log lines.
#[derive(Debug, Default, Clone)]
pub struct Forward {
    /// The trace id of B's request, for attempt and breaker log lines.
    pub trace_id: String,
    /// `traceparent` for A: same trace, B's call span as parent.
    pub traceparent: Option<String>,
    /// The caller's `x-fault-*` headers, passed on untouched.
    pub faults: Vec<(String, String)>,
}

impl Forward {
    /// Copies the `x-fault-*` headers of B's incoming request.
    pub fn faults_of(req: &Request) -> Vec<(String, String)> {
        req.iter()
            .filter(|(name, _)| name.as_str().starts_with(wire::FAULT_PREFIX))
            .map(|(name, values)| (name.as_str().to_owned(), values.last().as_str().to_owned()))
            .collect()
    }
}

/// A's `/echo` answer.
#[derive(Debug, Deserialize)]
struct EchoAnswer {
    echo: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// B's metrics about A: calls by outcome, attempts, connections, the breaker.
#[derive(Debug, Clone)]
struct UpstreamMetrics {
    calls: Family<KindLabel, Counter>,
    latency: Family<KindLabel, Histogram, fn() -> Histogram>,
    attempts: Counter,
    retries_denied: Counter,
    opened: Counter,
    breaker: Gauge,
}

impl UpstreamMetrics {
    fn register(registry: &mut Registry) -> Self {
        let me = Self {
            calls: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            attempts: Counter::default(),
            retries_denied: Counter::default(),
            opened: Counter::default(),
            breaker: Gauge::default(),
        };
        registry.register(
            "upstream_calls",
            "Calls to A by outcome: ok or the error KIND",
            me.calls.clone(),
        );
        registry.register(
            "upstream_call_duration_seconds",
            "Duration of calls to A (retries included) by outcome",
            me.latency.clone(),
        );
        registry.register(
            "upstream_attempts",
            "Requests sent to A, retries included",
            me.attempts.clone(),
        );
        registry.register(
            "upstream_retries_denied",
            "Retries not made because the retry budget was spent",
            me.retries_denied.clone(),
        );
        registry.register(
            "upstream_connections_opened",
            "TCP connections opened to A (keep-alive keeps this low)",
            me.opened.clone(),
        );
        registry.register(
            "circuit_breaker_state",
            "The circuit breaker: 0 closed, 1 open, 2 half-open",
            me.breaker.clone(),
        );
        me
    }
}

/// The client B uses for every call to A.
#[derive(Debug)]
pub struct Upstream {
    client: surf::Client,
    echo_url: Url,
    health_url: Url,
    /// Where A is, for messages.
    authority: String,
    timeout: Duration,
    retry: Retry,
    breaker: Breaker,
    metrics: UpstreamMetrics,
}

impl Upstream {
    /// A client for `[upstream]` and `[circuit_breaker]` (already validated),
    /// registering its metrics in `registry`.
    pub fn new(
        settings: &UpstreamSettings,
        breaker: &BreakerSettings,
        registry: &mut Registry,
    ) -> anyhow::Result<Self> {
        let base = settings.base_url()?;
        let host = base.host_str().unwrap_or("127.0.0.1");
        let port = base.port_or_known_default().unwrap_or(80);
        let metrics = UpstreamMetrics::register(registry);
        let pool = Pool::new(
            host,
            port,
            settings.max_idle_connections as usize,
            metrics.opened.clone(),
        );
        Ok(Self {
            client: surf::Client::with_http_client(pool),
            echo_url: base.join("echo")?,
            health_url: base.join("health")?,
            authority: format!("{host}:{port}"),
            timeout: Duration::from_millis(settings.timeout_ms),
            retry: Retry::new(settings),
            breaker: Breaker::new(breaker, metrics.breaker.clone()),
            metrics,
        })
    }

    /// The URL of A's echo of `msg`, refused (414/431, B's own answer) when
    /// the request to A would not fit A's limits on a request head: A would
    /// refuse it, and B would wrongly blame A.
    pub fn echo_url(&self, msg: &str, forward: &Forward) -> Result<Url, ApiError> {
        let mut url = self.echo_url.clone();
        url.query_pairs_mut().append_pair("msg", msg);
        // "GET " + path and query + " HTTP/1.1\r\n"
        let line = 4 + url.path().len() + url.query().map_or(0, |q| q.len() + 1) + 11;
        if line > MAX_HEAD_BYTES - HEAD_ROOM {
            return Err(ApiError {
                status: StatusCode::UriTooLong,
                message: format!(
                    "msg is too long to forward: the request to A would have a {line}-byte \
                     request line, over A's limit of {MAX_HEAD_BYTES} bytes for a whole head"
                )
                .into(),
            });
        }
        let fields: usize = forward
            .faults
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum();
        if forward.faults.len() + OWN_HEADERS > MAX_HEADERS
            || line + fields > MAX_HEAD_BYTES - HEAD_ROOM
        {
            return Err(ApiError {
                status: StatusCode::RequestHeaderFieldsTooLarge,
                message: format!(
                    "too many or too large x-fault-* headers to forward: A takes at most \
                     {MAX_HEADERS} header fields and {MAX_HEAD_BYTES} bytes of head, and B adds \
                     {OWN_HEADERS} fields of its own"
                )
                .into(),
            });
        }
        Ok(url)
    }

    /// A's echo at `url` (from [`echo_url`](Self::echo_url)). Returns the
    /// echo and the number of attempts it took.
    pub async fn echo(&self, url: Url, forward: &Forward) -> Result<(String, u32), CallError> {
        let started = Instant::now();

        let (ticket, change) = self.breaker.admit();
        self.log_breaker(change, forward);
        let result = match ticket {
            Err(retry_in) => Err(CallError {
                attempts: 0,
                ..CallError::new(
                    ErrorKind::CircuitOpen,
                    format!(
                        "circuit open after {} failed calls in a row; A not called; next trial in {} ms",
                        self.breaker.failures(),
                        retry_in.as_millis()
                    ),
                )
            }),
            Ok(ticket) => {
                let result = self.call_with_retries(url, forward, parse_echo).await;
                let healthy = result.as_ref().map_or_else(|e| !e.against_a, |_| true);
                let change = self.breaker.record(ticket, healthy);
                self.log_breaker(change, forward);
                result
            }
        };
        let kind = match &result {
            Ok(_) => "ok",
            Err(e) => e.kind.as_str(),
        };
        self.metrics.calls.get_or_create(&KindLabel { kind }).inc();
        self.metrics
            .latency
            .get_or_create(&KindLabel { kind })
            .observe(started.elapsed().as_secs_f64());
        result
    }

    /// Whether A's `/health` answers 2xx within the budget: one attempt, no
    /// breaker, so readiness shows A's state, not B's memory of it.
    pub async fn health(&self, forward: &Forward) -> Result<(), CallError> {
        let deadline = Instant::now() + self.timeout;
        self.attempt(self.health_url.clone(), forward, deadline, |_| Ok(()))
            .await
    }

    /// Calls A until it answers, a failure is not retryable, or the deadline,
    /// the retries or the retry budget run out.
    async fn call_with_retries<T>(
        &self,
        url: Url,
        forward: &Forward,
        parse: fn(&[u8]) -> Result<T, CallError>,
    ) -> Result<(T, u32), CallError> {
        let deadline = Instant::now() + self.timeout;
        self.retry.count_call();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let err = match self.attempt(url.clone(), forward, deadline, parse).await {
                Ok(answer) => return Ok((answer, attempts)),
                Err(err) => err,
            };
            match self.retry.next(attempts, &err, deadline) {
                Ok(backoff) => {
                    Line::new("B")
                        .str("event", "retry")
                        .num("attempt", attempts)
                        .str("error", err.kind.as_str())
                        .str("detail", &err.detail)
                        .num("backoff_ms", backoff.as_millis())
                        .str("trace_id", &forward.trace_id)
                        .emit();
                    Timer::after(backoff).await;
                }
                Err(stop) => {
                    use crate::retry::Stop;
                    if stop == Stop::BudgetSpent {
                        self.metrics.retries_denied.inc();
                    }
                    let mut err = CallError { attempts, ..err };
                    if attempts > 1 || matches!(stop, Stop::BudgetSpent | Stop::NoTimeLeft) {
                        err.detail =
                            format!("{} ({attempts} attempts; {})", err.detail, stop.as_str());
                    }
                    return Err(err);
                }
            }
        }
    }

    /// One GET to A, body included, bounded by `deadline`; the parsed 2xx answer.
    async fn attempt<T>(
        &self,
        url: Url,
        forward: &Forward,
        deadline: Instant,
        parse: fn(&[u8]) -> Result<T, CallError>,
    ) -> Result<T, CallError> {
        self.metrics.attempts.inc();
        let remaining = deadline.saturating_duration_since(Instant::now());
        let call = async {
            // A request built from the parsed Url: `client.get(&str)` would parse it again.
            let mut req = surf::Request::new(Method::Get, url);
            req.insert_header(wire::REQUEST_TIMEOUT_MS, remaining.as_millis().to_string());
            if let Some(tp) = &forward.traceparent {
                req.insert_header(wire::TRACEPARENT, tp.as_str());
            }
            for (name, value) in &forward.faults {
                req.insert_header(name.as_str(), value.as_str());
            }
            let mut res = self
                .client
                .send(req)
                .await
                .map_err(|e| classify(&e, &self.authority))?;
            let body = res
                .body_bytes()
                .await
                .map_err(|e| classify(&e, &self.authority))?;
            if !res.status().is_success() {
                let injected = res.header(wire::FAULT_INJECTED).is_some();
                return Err(upstream_status(res.status(), injected, &body));
            }
            parse(&body)
        };
        let expire = async {
            Timer::at(deadline).await;
            Err(CallError::new(
                ErrorKind::Timeout,
                format!(
                    "no complete answer from A within {} ms",
                    self.timeout.as_millis()
                ),
            ))
        };
        call.or(expire).await
    }

    fn log_breaker(&self, change: Option<State>, forward: &Forward) {
        if let Some(state) = change {
            Line::new("B")
                .str("event", "circuit")
                .str("state", state.as_str())
                .num("failures", self.breaker.failures())
                .str("trace_id", &forward.trace_id)
                .emit();
        }
    }
}

/// A's `/echo` answer must be `{"echo": string}`.
fn parse_echo(body: &[u8]) -> Result<String, CallError> {
    serde_json::from_slice::<EchoAnswer>(body)
        .map(|answer| answer.echo)
        .map_err(|e| {
            CallError::new(
                ErrorKind::BadResponse,
                format!("A's answer is not the expected {{\"echo\": string}}: {e}"),
            )
        })
}

/// `upstream_status` for A's non-2xx answer, quoting the start of its body.
fn upstream_status(status: StatusCode, injected: bool, body: &[u8]) -> CallError {
    let text = String::from_utf8_lossy(body);
    let snippet: String = text.chars().take(200).collect();
    let origin = if injected {
        " (injected by A's [fault])"
    } else {
        ""
    };
    let err = CallError::new(
        ErrorKind::UpstreamStatus,
        format!(
            "A answered {} {}{origin}: {snippet}",
            u16::from(status),
            status.canonical_reason()
        ),
    )
    .with_status(status.into());
    if status.is_client_error() && !injected {
        // A refused what the caller sent (a bad x-fault-* header): A is fine.
        err.not_against_a()
    } else {
        err
    }
}

/// Which KIND a failed call is. The pool says what happened on the socket
/// ([`Failure`]); anything else is classified by the io errors in its chain.
pub fn classify(err: &surf::Error, authority: &str) -> CallError {
    if let Some(failure) = err.downcast_ref::<Failure>() {
        return match failure {
            Failure::Connect(e) if e.kind() == io::ErrorKind::ConnectionRefused => CallError::new(
                ErrorKind::ConnectionRefused,
                format!("nothing listens at {authority} (connection refused)"),
            ),
            Failure::Connect(e) if out_of_resources(e) => CallError::new(
                ErrorKind::BOverloaded,
                format!("B cannot open a connection to {authority}: B itself is out of resources ({e}); A was not called"),
            ),
            Failure::Connect(e) => CallError::new(
                ErrorKind::Unreachable,
                format!("cannot reach {authority}: {e}"),
            ),
            Failure::Closed(why) => CallError::new(
                ErrorKind::ConnectionReset,
                format!("A closed the connection before a complete answer ({why})"),
            ),
            Failure::Malformed(_) => CallError::new(ErrorKind::BadResponse, failure.to_string()),
        };
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err.as_ref());
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            let kind = match io.kind() {
                io::ErrorKind::ConnectionRefused => ErrorKind::ConnectionRefused,
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof => ErrorKind::ConnectionReset,
                io::ErrorKind::TimedOut => ErrorKind::Timeout,
                _ => ErrorKind::Unreachable,
            };
            return CallError::new(kind, format!("calling {authority}: {io}"));
        }
        source = e.source();
    }
    CallError::new(
        ErrorKind::BadResponse,
        format!("calling {authority}: {err}"),
    )
}

/// B's own limits, not A's fault: out of file descriptors (per process or
/// system-wide), of buffers, or of local ports to connect from.
fn out_of_resources(e: &io::Error) -> bool {
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    const ENOBUFS: i32 = 105;
    const EADDRNOTAVAIL: i32 = 99;
    matches!(
        e.raw_os_error(),
        Some(EMFILE | ENFILE | ENOBUFS | EADDRNOTAVAIL)
    ) || e.kind() == io::ErrorKind::OutOfMemory
}

#[cfg(test)]
mod tests {
    use super::*;

    fn surf_error(e: impl Into<anyhow::Error>) -> surf::Error {
        surf::Error::new(StatusCode::InternalServerError, e)
    }

    /// The pool's facts map onto the contract's KINDs and statuses.
    #[test]
    fn pool_failures_map_to_kinds() {
        let refused = Failure::Connect(io::ErrorKind::ConnectionRefused.into());
        let e = classify(&surf_error(refused), "127.0.0.1:1");
        assert_eq!((e.kind, e.http_status), (ErrorKind::ConnectionRefused, 503));
        assert_eq!(
            e.detail,
            "nothing listens at 127.0.0.1:1 (connection refused)"
        );

        let no_route = Failure::Connect(io::Error::other("no route"));
        assert_eq!(
            classify(&surf_error(no_route), "x").kind,
            ErrorKind::Unreachable
        );

        let closed = Failure::Closed("eof".into());
        let e = classify(&surf_error(closed), "x");
        assert_eq!((e.kind, e.http_status), (ErrorKind::ConnectionReset, 502));

        let no_fds = Failure::Connect(io::Error::from_raw_os_error(24));
        let e = classify(&surf_error(no_fds), "x");
        assert_eq!(
            (e.kind, e.http_status, e.against_a),
            (ErrorKind::BOverloaded, 503, false)
        );
        assert!(
            e.detail.contains("B itself is out of resources"),
            "{}",
            e.detail
        );

        let garbage = Failure::Malformed("Unsupported HTTP version".into());
        let e = classify(&surf_error(garbage), "x");
        assert_eq!((e.kind, e.http_status), (ErrorKind::BadResponse, 502));
    }

    /// Errors from elsewhere are classified by their io kind.
    #[test]
    fn io_errors_map_to_kinds() {
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(
            classify(&surf_error(reset), "x").kind,
            ErrorKind::ConnectionReset
        );
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(
            classify(&surf_error(refused), "x").kind,
            ErrorKind::ConnectionRefused
        );
    }

    /// A's non-2xx answer keeps A's status and says when A's faults caused it.
    #[test]
    fn upstream_status_keeps_a_status() {
        let e = upstream_status(
            StatusCode::ImATeapot,
            true,
            br#"{"error":"injected failure"}"#,
        );
        assert_eq!((e.kind, e.http_status), (ErrorKind::UpstreamStatus, 418));
        assert!(e.against_a, "an injected failure counts against A");
        let refused = upstream_status(StatusCode::BadRequest, false, b"{}");
        assert!(
            !refused.against_a,
            "A's 400 to a caller's header is not A's failure"
        );
        assert!(
            e.detail
                .starts_with("A answered 418 I'm a teapot (injected by A's [fault])"),
            "{}",
            e.detail
        );
    }
}
