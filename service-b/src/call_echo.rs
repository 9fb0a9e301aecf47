//! B's endpoints: `/health`, `/ready`, `/call-echo` and `/metrics`, with one
//! log line per request.

use std::sync::Arc;

use http_types::{Request, Response, StatusCode};
use serde::Serialize;
use service_runtime::exchange::{Ending, Exchange};
use service_runtime::http::{self, allow_get, json, query_param, ApiError};
use service_runtime::metrics::{self, HttpMetrics, Registry};

use crate::config::Settings;
use crate::upstream::{CallError, Forward, Upstream};

/// B's shared state.
#[derive(Debug)]
pub struct App {
    /// The one client for every call to A.
    pub upstream: Upstream,
    registry: Registry,
    http: HttpMetrics,
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

/// Answers one request and logs it. Never `Err`: every failure is an answer.
pub async fn handle(app: Arc<App>, req: Request) -> http_types::Result<Response> {
    let exchange = Exchange::begin("B", &req);
    let forward = Forward {
        trace_id: exchange.trace_id.clone(),
        traceparent: Some(exchange.traceparent()),
        faults: Forward::faults_of(&req),
    };

    let path = req.url().path().to_owned();
    let (endpoint, res, failure, attempts) = match (path.as_str(), allow_get(req.method())) {
        ("/health" | "/ready" | "/call-echo" | "/metrics", Err(e)) => {
            ("other", e.into_response(), None, None)
        }
        ("/health", Ok(())) => ("/health", http::health(), None, None),
        ("/metrics", Ok(())) => ("/metrics", metrics::render(&app.registry), None, None),
        ("/ready", Ok(())) => {
            let (res, failure) = ready(&app, &forward).await;
            ("/ready", res, failure, None)
        }
        ("/call-echo", Ok(())) => {
            let (res, failure, attempts) = call_echo(&app, &req, &forward).await;
            ("/call-echo", res, failure, attempts)
        }
        _ => ("other", ApiError::not_found().into_response(), None, None),
    };

    let ok = res.status().is_success();
    let ending = Ending {
        endpoint,
        path: &path,
        status: if ok { "ok" } else { "error" },
        // The contract logs a failed call with its KIND's status (504 for a timeout).
        http_status: failure
            .as_ref()
            .map_or(res.status().into(), |e| e.http_status),
    };
    exchange.finish(ending, &app.http, |line| {
        let line = match &failure {
            None => line,
            Some(e) => line.str("error", e.kind.as_str()).str("detail", &e.detail),
        };
        match attempts {
            Some(n) => line.num("attempts", n),
            None => line,
        }
    });
    Ok(res)
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
    match app.upstream.echo(&msg, forward).await {
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
