//! B's endpoints: `/health`, `/ready` and `/call-echo`, with one log line per request.

use std::sync::Arc;
use std::time::Instant;

use http_types::{Request, Response, StatusCode};
use serde::Serialize;
use service_runtime::http::{self, allow_get, json, query_param, ApiError};
use service_runtime::log::Line;
use service_runtime::trace;

use crate::upstream::{CallError, Forward, Upstream};

/// B's shared state.
#[derive(Debug)]
pub struct App {
    /// The one client for every call to A.
    pub upstream: Upstream,
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
    let started = Instant::now();
    let trace = trace::incoming(&req);
    let span = trace::request_span("B", trace);
    let forward = Forward {
        traceparent: Some(trace::outgoing(&span, trace)),
        faults: Forward::faults_of(&req),
    };

    let path = req.url().path().to_owned();
    let (res, failure) = match (path.as_str(), allow_get(req.method())) {
        (_, Err(e)) if is_known(&path) => (e.into_response(), None),
        ("/health", Ok(())) => (http::health(), None),
        ("/ready", Ok(())) => ready(&app, &forward).await,
        ("/call-echo", Ok(())) => call_echo(&app, &req, &forward).await,
        _ => (ApiError::not_found().into_response(), None),
    };

    let line = Line::new("B").str("endpoint", &path);
    let line = match &failure {
        None => line
            .str(
                "status",
                if res.status().is_success() {
                    "ok"
                } else {
                    "error"
                },
            )
            .num("http_status", u16::from(res.status())),
        Some(e) => line
            .str("status", "error")
            .num("http_status", e.http_status)
            .str("error", e.kind.as_str())
            .str("detail", &e.detail),
    };
    line.num("latency_ms", started.elapsed().as_millis())
        .str("trace_id", &trace::trace_id(&trace))
        .emit();
    Ok(res)
}

fn is_known(path: &str) -> bool {
    matches!(path, "/health" | "/ready" | "/call-echo")
}

/// `/call-echo?msg=X`: A's echo of X, or 503 saying precisely what went wrong.
async fn call_echo(app: &App, req: &Request, forward: &Forward) -> (Response, Option<CallError>) {
    let msg = match query_param(req.url().query(), "msg") {
        Ok(msg) => msg.unwrap_or_default(),
        Err(e) => return (e.into_response(), None),
    };
    match app.upstream.echo(&msg, forward).await {
        Ok(echo) => (
            json(
                StatusCode::Ok,
                &Echoed {
                    service_a: EchoOfA { echo: &echo },
                    service_b: "ok",
                },
            ),
            None,
        ),
        Err(e) => {
            let body = Unavailable {
                service_b: "ok",
                service_a: "unavailable",
                error: e.kind.as_str(),
                http_status: e.http_status,
                detail: &e.detail,
                attempts: 1,
            };
            (json(StatusCode::ServiceUnavailable, &body), Some(e))
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
