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
//!
//! # Layout
//!
//! - this file: the client, one call through the breaker and the retries.
//! - `settings`: `[upstream]` and its limits.
//! - `forward`: what a call carries from B's request, and whether it fits A.
//! - `metrics`: B's metrics about its calls to A.

pub mod forward;
mod metrics;
pub mod settings;

use std::time::{Duration, Instant};

use fastrace::Span;
use http_types::Method;
use prometheus_client::registry::Registry;
use service_runtime::answer::ExactStatus;
use service_runtime::http::ApiError;
use service_runtime::log::Line;
use service_runtime::{otlp, trace, wire};
use smol::future::FutureExt as _;
use smol::Timer;
use url::Url;

use self::forward::Forward;
use self::metrics::{KindLabel, UpstreamMetrics};
use self::settings::UpstreamSettings;
use crate::breaker::{Breaker, BreakerSettings, State};
use crate::classify;
use crate::kind::{CallError, Kind};
use crate::pool::{Pool, PoolCounters};
use crate::retry::{Retry, Stop};

/// How a call to A went: its result, and how many requests A was sent for it
/// (0 when the breaker refused, more than 1 with retries).
#[derive(Debug)]
pub struct Call<T> {
    /// The answer, or what went wrong.
    pub result: Result<T, CallError>,
    /// Requests sent to A.
    pub attempts: u32,
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
        forward.fits_a_head(&url)?;
        Ok(url)
    }

    /// A's echo at `url` (from [`echo_url`](Self::echo_url)), through the
    /// breaker and with retries.
    pub async fn echo(&self, url: Url, forward: &Forward) -> Call<String> {
        let started = Instant::now();
        let (ticket, change) = self.breaker.admit(started);
        self.log_breaker(change, forward);
        let call = match ticket {
            Err(retry_in) => Call {
                result: Err(CallError::new(
                    Kind::CircuitOpen,
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
                let change = self.breaker.record(ticket, healthy, Instant::now());
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
