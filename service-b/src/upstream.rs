//! B's calls to A: the client, the deadline, and the retries within it.
//!
//! - The client is surf over [`Pool`], B's own keep-alive pool (see `pool.rs`
//!   for why not surf's).
//! - The deadline: the whole call (connect, head **and body**, retries
//!   included) races one `smol::Timer`. surf's own timeout covers only the
//!   write and the head; a stalled or trickling body would run past it.
//! - What went wrong: `classify.rs` turns every failure into a KIND. A
//!   failure seen at or after the deadline is a `timeout` (B had stopped
//!   waiting, whichever event it processed first), and one the caller asked
//!   for with its `x-fault-*` headers is not held against A.
//! - A's status is read from the pool's `ExactStatus`, beside surf's
//!   `Response`: any 100..=599, named by http-types or not.
//! - Around each call: the circuit breaker (`breaker.rs`) and retries within
//!   the same deadline and a retry budget (`retry.rs`).

use std::time::{Duration, Instant};

use fastrace::collector::SpanContext;
use fastrace::Span;
use http_types::{Method, Request, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use service_runtime::config::Invalid;
use service_runtime::head::{MAX_HEADERS, MAX_HEAD_BYTES};
use service_runtime::http::ApiError;
use service_runtime::log::Line;
use service_runtime::metrics::latency_histogram;
use service_runtime::{otlp, trace, wire};
use smol::future::FutureExt as _;
use smol::Timer;
use url::Url;

use crate::answer::ExactStatus;
use crate::breaker::{Breaker, BreakerSettings, State};
use crate::classify;
use crate::kind::{CallError, ErrorKind};
use crate::pool::{Pool, PoolCounters};
use crate::retry::{Retry, Stop};

/// `[upstream]`: A's address, the deadline of each call, and retries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSettings {
    /// A's base URL, `http://host:port`. An IP, not `localhost`: no name lookup per call.
    pub url: String,
    /// The whole call's budget: connect, head and body, retries included.
    pub timeout_ms: u64,
    /// Calls to A after the first, for failures listed in `retry_on`.
    pub retries: u32,
    /// Which KINDs are retried; `timeout` never is.
    pub retry_on: Vec<ErrorKind>,
    /// Backoff before retry n is random in 0..=min(backoff_max_ms, backoff_base_ms * 2^(n-1)).
    pub backoff_base_ms: u64,
    /// The cap of one backoff.
    pub backoff_max_ms: u64,
    /// Idle keep-alive connections to A kept for reuse.
    pub max_idle_connections: u32,
    /// How long a kept connection may sit idle and still be reused: keep it
    /// under A's `server.client_timeout_ms`, after which A closes it.
    pub idle_timeout_ms: u64,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8080".to_owned(),
            timeout_ms: 1000,
            retries: 0,
            retry_on: vec![ErrorKind::ConnectionRefused, ErrorKind::ConnectionReset],
            backoff_base_ms: 25,
            backoff_max_ms: 250,
            max_idle_connections: 128,
            idle_timeout_ms: 5000,
        }
    }
}

impl UpstreamSettings {
    /// The URL, checked: `http`, with a host and nothing after the path.
    pub fn base_url(&self) -> Result<Url, Invalid> {
        Invalid::check_http_url("upstream.url", &self.url, "http://127.0.0.1:8080")
    }

    /// Checks every `[upstream]` key.
    pub fn validate(&self) -> Result<(), Invalid> {
        self.base_url()?;
        Invalid::check_range("upstream.timeout_ms", self.timeout_ms, 1..=600_000)?;
        Invalid::check_range("upstream.retries", self.retries, 0..=10)?;
        let never = [
            ErrorKind::Timeout,
            ErrorKind::CircuitOpen,
            ErrorKind::BOverloaded,
        ];
        if self.retry_on.iter().any(|k| never.contains(k)) {
            return Err(Invalid {
                key: "upstream.retry_on",
                value: format!(
                    "{:?}",
                    self.retry_on.iter().map(|k| k.as_str()).collect::<Vec<_>>()
                ),
                expected: "kinds among connection_refused, connection_reset, upstream_status, \
                           bad_response, unreachable (a timeout has spent the budget; \
                           circuit_open and b_overloaded never called A)"
                    .to_owned(),
            });
        }
        Invalid::check_range("upstream.backoff_base_ms", self.backoff_base_ms, 1..=60_000)?;
        Invalid::check_range(
            "upstream.backoff_max_ms",
            self.backoff_max_ms,
            self.backoff_base_ms..=60_000,
        )?;
        Invalid::check_range(
            "upstream.max_idle_connections",
            self.max_idle_connections,
            0..=65_536,
        )?;
        Invalid::check_range(
            "upstream.idle_timeout_ms",
            self.idle_timeout_ms,
            1..=600_000,
        )
    }
}

/// Header fields B adds to each request to A besides forwarded ones (host,
/// content-length, date, traceparent, x-request-timeout-ms, and a spare).
const OWN_HEADERS: usize = 6;

/// Bytes of a request head to A kept for the fields B adds itself.
const HEAD_ROOM: usize = 256;

/// What a call to A carries from B's request besides the URL, and the trace
/// id for B's own log lines about the call.
#[derive(Debug, Default, Clone)]
pub struct Forward {
    /// The trace id of B's request, for attempt and breaker log lines.
    pub trace_id: String,
    /// B's request span: each attempt's client span is its child, and A's
    /// request span the child of that (its `traceparent`).
    pub parent: Option<SpanContext>,
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

/// How a call to A went: its result, and how many requests A was sent for it
/// (0 when the breaker refused, more than 1 with retries).
#[derive(Debug)]
pub struct Call<T> {
    /// The answer, or what went wrong.
    pub result: Result<T, CallError>,
    /// Requests sent to A.
    pub attempts: u32,
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
    stale: Counter,
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
            stale: Counter::default(),
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
            "upstream_stale_connections",
            "Reused connections A had closed when B sent on them; the request went again on a fresh one",
            me.stale.clone(),
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
            (
                settings.max_idle_connections as usize,
                Duration::from_millis(settings.idle_timeout_ms),
            ),
            PoolCounters {
                opened: metrics.opened.clone(),
                stale: metrics.stale.clone(),
            },
        );
        let retry = Retry::new(
            settings.retries,
            settings.retry_on.clone(),
            Duration::from_millis(settings.backoff_base_ms),
            Duration::from_millis(settings.backoff_max_ms),
        );
        Ok(Self {
            client: surf::Client::with_http_client(pool),
            echo_url: base.join("echo")?,
            health_url: base.join("health")?,
            authority: format!("{host}:{port}"),
            timeout: Duration::from_millis(settings.timeout_ms),
            retry,
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

    /// A's echo at `url` (from [`echo_url`](Self::echo_url)), through the
    /// breaker and with retries.
    pub async fn echo(&self, url: Url, forward: &Forward) -> Call<String> {
        let started = Instant::now();
        let (ticket, change) = self.breaker.admit();
        self.log_breaker(change, forward);
        let call = match ticket {
            Err(retry_in) => Call {
                result: Err(CallError::new(
                    ErrorKind::CircuitOpen,
                    format!(
                        "circuit open after {} failed calls in a row; A not called; next trial in {} ms",
                        self.breaker.failures(),
                        retry_in.as_millis()
                    ),
                )),
                attempts: 0,
            },
            Ok(ticket) => {
                let call = self.call_with_retries(url, forward, classify::echo_body).await;
                let healthy = call.result.as_ref().map_or_else(|e| !e.against_a, |_| true);
                let change = self.breaker.record(ticket, healthy);
                self.log_breaker(change, forward);
                call
            }
        };
        let kind = match &call.result {
            Ok(_) => "ok",
            Err(e) => e.kind.as_str(),
        };
        self.metrics.calls.get_or_create(&KindLabel { kind }).inc();
        self.metrics
            .latency
            .get_or_create(&KindLabel { kind })
            .observe(started.elapsed().as_secs_f64());
        call
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
    ) -> Call<T> {
        let deadline = Instant::now() + self.timeout;
        self.retry.count_call();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut err = match self.attempt(url.clone(), forward, deadline, parse).await {
                Ok(answer) => {
                    return Call {
                        result: Ok(answer),
                        attempts,
                    }
                }
                Err(err) => err,
            };
            match self.retry.next(attempts, &err, deadline) {
                Ok(backoff) => {
                    Line::event("retry")
                        .num("attempt", attempts)
                        .str("error", err.kind.as_str())
                        .str("detail", &err.detail)
                        .num("backoff_ms", backoff.as_millis())
                        .str("trace_id", &forward.trace_id)
                        .emit();
                    Timer::after(backoff).await;
                }
                Err(stop) => {
                    if stop == Stop::BudgetSpent {
                        self.metrics.retries_denied.inc();
                    }
                    if attempts > 1 || matches!(stop, Stop::BudgetSpent | Stop::NoTimeLeft) {
                        err.detail =
                            format!("{} ({attempts} attempts; {})", err.detail, stop.as_str());
                    }
                    return Call {
                        result: Err(err),
                        attempts,
                    };
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
        // One CLIENT span per attempt, ended when this function returns (or its
        // future is dropped): retries show as siblings under B's request span.
        let span = forward.parent.map(|parent| {
            Span::root(format!("GET {}", url.path()), parent)
                .with_property(|| (otlp::SPAN_KIND, "client"))
        });
        let traceparent = forward
            .parent
            .zip(span.as_ref())
            .map(|(parent, span)| trace::outgoing(span, parent));
        let call = async {
            // A request built from the parsed Url: `client.get(&str)` would parse it again.
            let mut req = surf::Request::new(Method::Get, url);
            req.insert_header(wire::REQUEST_TIMEOUT_MS, remaining.as_millis().to_string());
            if let Some(tp) = &traceparent {
                req.insert_header(wire::TRACEPARENT, tp.as_str());
            }
            for (name, value) in &forward.faults {
                req.insert_header(name.as_str(), value.as_str());
            }
            let mut res = self
                .client
                .send(req)
                .await
                .map_err(|e| classify::surf_error(&e, &self.authority))?;
            // The pool has read the whole body already: taking it cannot fail.
            let body = res.take_body().into_bytes().await.unwrap_or_default();
            // The exact status, which http-types may not name (420, 599).
            let exact = res
                .ext::<ExactStatus>()
                .cloned()
                .unwrap_or_else(|| ExactStatus {
                    code: res.status().into(),
                    reason: String::new(),
                });
            if !(200..=299).contains(&exact.code) {
                let injected = res.header(wire::FAULT_INJECTED).is_some();
                return Err(classify::status(exact.code, &exact.reason, injected, &body));
            }
            parse(&body)
        };
        let expire = async {
            Timer::at(deadline).await;
            Err(classify::timeout(self.timeout.as_millis()))
        };
        let result = call.or(expire).await.map_err(|mut err| {
            // Whatever failed at or after the deadline, B had stopped waiting.
            if Instant::now() >= deadline {
                err = classify::at_deadline(err, self.timeout.as_millis());
            }
            if classify::asked_by_caller(&forward.faults, err.kind) {
                err = classify::caller_asked(err);
            }
            err
        });
        if let (Some(span), Err(e)) = (&span, &result) {
            span.add_property(|| ("error.type", e.kind.as_str()));
        }
        result
    }

    fn log_breaker(&self, change: Option<State>, forward: &Forward) {
        if let Some(state) = change {
            Line::event("circuit")
                .str("state", state.as_str())
                .num("failures", self.breaker.failures())
                .str("trace_id", &forward.trace_id)
                .emit();
        }
    }
}
