//! B's endpoints: `/health`, `/ready`, `/call-echo` and `/metrics`, with one
//! log line per request.

use std::sync::Arc;

use http_types::{Request, Response, StatusCode};
use serde::Serialize;
use service_runtime::http::{self, json, query_param, route, Reply, Routes};
use service_runtime::metrics::{self, HttpMetrics, Registry};
use service_runtime::telemetry::RequestTelemetry;

use crate::config::Settings;
use crate::kind::CallError;
use crate::upstream::forward::Forward;
use crate::upstream::Upstream;

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

/// B's endpoints.
#[derive(Debug, Clone, Copy)]
enum Endpoint {
    Index,
    Health,
    Ready,
    CallEcho,
    Metrics,
}

/// Each path once: `GET /` lists them, and they name the endpoints in metrics.
const ROUTES: Routes<Endpoint> = &[
    ("/", Endpoint::Index),
    ("/health", Endpoint::Health),
    ("/ready", Endpoint::Ready),
    ("/call-echo", Endpoint::CallEcho),
    ("/metrics", Endpoint::Metrics),
];

/// What became of a request: B's answer and, for a call to A, how it went.
struct Outcome {
    res: Response,
    /// What went wrong with A, for the log line.
    failure: Option<CallError>,
    /// Requests sent to A, for `/call-echo`.
    attempts: Option<u32>,
}

impl From<Response> for Outcome {
    fn from(res: Response) -> Self {
        Self {
            res,
            failure: None,
            attempts: None,
        }
    }
}

/// Answers one request and logs it. Every failure is an answer.
pub async fn handle(app: Arc<App>, req: Request) -> Reply {
    let mut telemetry = RequestTelemetry::begin("B", &req, &app.http);
    let outcome = match route(ROUTES, req.method(), telemetry.path()) {
        Err(e) => e.into_response().into(),
        Ok((name, endpoint)) => {
            telemetry.endpoint = name;
            match endpoint {
                Endpoint::Index => http::index("B", ROUTES).into(),
                Endpoint::Health => http::health().into(),
                Endpoint::Metrics => metrics::render(&app.registry, &req).into(),
                Endpoint::Ready => ready(&app, &forward(&telemetry, &req)).await,
                Endpoint::CallEcho => call_echo(&app, &req, &forward(&telemetry, &req)).await,
            }
        }
    };

    let Outcome {
        res,
        failure,
        attempts,
    } = outcome;
    let ok = res.status().is_success();
    // The contract logs a failed call with its KIND's status (504 for a timeout).
    let http_status = failure
        .as_ref()
        .map_or(res.status().into(), |e| e.http_status);
    let sent = u16::from(res.status());
    telemetry.finish(if ok { "ok" } else { "error" }, http_status, sent, |line| {
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
fn forward(telemetry: &RequestTelemetry, req: &Request) -> Forward {
    Forward {
        trace_id: telemetry.trace_id.clone(),
        parent: Some(telemetry.context()),
        faults: Forward::faults_of(req),
    }
}

/// `/call-echo?msg=X`: A's echo of X, or 503 saying precisely what went wrong.
async fn call_echo(app: &App, req: &Request, forward: &Forward) -> Outcome {
    let msg = match query_param(req.url().query(), "msg") {
        Ok(msg) => msg.unwrap_or_default(),
        Err(e) => return e.into_response().into(),
    };
    let url = match app.upstream.echo_url(&msg, forward) {
        Ok(url) => url,
        Err(e) => return e.into_response().into(),
    };
    let call = app.upstream.echo(url, forward).await;
    let res = match &call.result {
        Ok(echo) => json(
            StatusCode::Ok,
            &Echoed {
                service_a: EchoOfA { echo },
                service_b: "ok",
            },
        ),
        Err(e) => json(
            StatusCode::ServiceUnavailable,
            &Unavailable {
                service_b: "ok",
                service_a: "unavailable",
                error: e.kind.as_str(),
                http_status: e.http_status,
                detail: &e.detail,
                attempts: call.attempts,
            },
        ),
    };
    Outcome {
        res,
        failure: call.result.err(),
        attempts: Some(call.attempts),
    }
}

/// `/ready`: 200 when A's `/health` answers in time, else 503 with the KIND.
async fn ready(app: &App, forward: &Forward) -> Outcome {
    match app.upstream.health(forward).await {
        Ok(()) => {
            let body = Ready {
                status: "ok",
                service_a: "ok",
                error: None,
            };
            json(StatusCode::Ok, &body).into()
        }
        Err(e) => {
            let body = Ready {
                status: "degraded",
                service_a: "unavailable",
                error: Some(e.kind.as_str()),
            };
            Outcome {
                res: json(StatusCode::ServiceUnavailable, &body),
                failure: Some(e),
                attempts: None,
            }
        }
    }
}
