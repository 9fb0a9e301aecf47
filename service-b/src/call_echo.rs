//! B's endpoints: `/health`, `/ready`, `/call-echo` and `/metrics`, with one
//! log line per request.

use std::sync::Arc;

use http_types::{Request, Response, StatusCode};
use serde::Serialize;
use service_runtime::exchange::Exchange;
use service_runtime::http::{self, allow_get, json, query_param, ApiError, Reply};
use service_runtime::metrics::{self, HttpMetrics, Registry};

use crate::config::Settings;
use crate::upstream::{CallError, Forward, Upstream};

/// B's shared state.
#[derive(Debug)]
pub struct App {
    /// The one client for every call to A.
    pub upstream: Upstream,
    registry: Registry,
    /// Requests by endpoint and status (the server counts refused ones here too).
    pub http: HttpMetrics,
}

impl App {
    /// B's state for `settings`: the client to A and the metrics.
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry);
        let upstream = Upstream::new(&settings.upstream, &settings.circuit_breaker, &mut registry)?;
        Ok(Self {
            upstream,
            registry,
            http,
        })
    }
}

/// `{"service_a":{"echo":"X"},"service_b":"ok"}`
#[derive(Serialize)]
struct Echoed<'a> {
    service_a: EchoOfA<'a>,
    service_b: &'static str,
}

#[derive(Serialize)]
struct EchoOfA<'a> {
    echo: &'a str,
}

/// `{"service_b":"ok","service_a":"unavailable","error":KIND,"http_status":N,"detail":"...","attempts":1}`
#[derive(Serialize)]
struct Unavailable<'a> {
    service_b: &'static str,
    service_a: &'static str,
    error: &'static str,
    http_status: u16,
    detail: &'a str,
    attempts: u32,
}

/// `/ready`'s body, both ways.
#[derive(Serialize)]
struct Ready {
    status: &'static str,
    service_a: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
}

/// Answers one request and logs it. Every failure is an answer.
pub async fn handle(app: Arc<App>, req: Request) -> Reply {
    let mut exchange = Exchange::begin("B", &req, &app.http);
    let (endpoint, res, failure, attempts) = match (exchange.path(), allow_get(req.method())) {
        ("/health" | "/ready" | "/call-echo" | "/metrics", Err(e)) => {
            ("other", e.into_response(), None, None)
        }
        ("/health", Ok(())) => ("/health", http::health(), None, None),
        ("/metrics", Ok(())) => ("/metrics", metrics::render(&app.registry), None, None),
        ("/ready", Ok(())) => {
            let (res, failure) = ready(&app, &forward(&exchange, &req)).await;
            ("/ready", res, failure, None)
        }
        ("/call-echo", Ok(())) => {
            let (res, failure, attempts) = call_echo(&app, &req, &forward(&exchange, &req)).await;
            ("/call-echo", res, failure, attempts)
        }
        _ => ("other", ApiError::not_found().into_response(), None, None),
    };
    exchange.endpoint = endpoint;

    let ok = res.status().is_success();
    // The contract logs a failed call with its KIND's status (504 for a timeout).
    let http_status = failure
        .as_ref()
        .map_or(res.status().into(), |e| e.http_status);
    exchange.finish(if ok { "ok" } else { "error" }, http_status, |line| {
        let line = match &failure {
            None => line,
            Some(e) => line.str("error", e.kind.as_str()).str("detail", &e.detail),
        };
        match attempts {
            Some(n) => line.num("attempts", n),
            None => line,
        }
    });
    Reply::Send(res)
}

/// What a call to A carries from B's request: the trace and the fault headers.
fn forward(exchange: &Exchange, req: &Request) -> Forward {
    Forward {
        trace_id: exchange.trace_id.clone(),
        traceparent: Some(exchange.traceparent()),
        faults: Forward::faults_of(req),
    }
}

/// `/call-echo?msg=X`: A's echo of X, or 503 saying precisely what went wrong.
async fn call_echo(
    app: &App,
    req: &Request,
    forward: &Forward,
) -> (Response, Option<CallError>, Option<u32>) {
    let msg = match query_param(req.url().query(), "msg") {
        Ok(msg) => msg.unwrap_or_default(),
        Err(e) => return (e.into_response(), None, None),
    };
    let url = match app.upstream.echo_url(&msg, forward) {
        Ok(url) => url,
        Err(e) => return (e.into_response(), None, None),
    };
    match app.upstream.echo(url, forward).await {
        Ok((echo, attempts)) => (
            json(
                StatusCode::Ok,
                &Echoed {
                    service_a: EchoOfA { echo: &echo },
                    service_b: "ok",
                },
            ),
            None,
            Some(attempts),
        ),
        Err(e) => {
            let body = Unavailable {
                service_b: "ok",
                service_a: "unavailable",
                error: e.kind.as_str(),
                http_status: e.http_status,
                detail: &e.detail,
                attempts: e.attempts,
            };
            let attempts = Some(e.attempts);
            (
                json(StatusCode::ServiceUnavailable, &body),
                Some(e),
                attempts,
            )
        }
    }
}

/// `/ready`: 200 when A's `/health` answers in time, else 503 with the KIND.
async fn ready(app: &App, forward: &Forward) -> (Response, Option<CallError>) {
    match app.upstream.health(forward).await {
        Ok(()) => {
            let body = Ready {
                status: "ok",
                service_a: "ok",
                error: None,
            };
            (json(StatusCode::Ok, &body), None)
        }
        Err(e) => {
            let body = Ready {
                status: "degraded",
                service_a: "unavailable",
                error: Some(e.kind.as_str()),
            };
            (json(StatusCode::ServiceUnavailable, &body), Some(e))
        }
    }
}
