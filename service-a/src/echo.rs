//! A's endpoints: `/health` (never faulted), `/echo` (faulted as `[fault]` says)
//! and `/metrics`, with one log line per request.

use std::sync::Arc;

use arc_swap::ArcSwap;
use http_types::{Body, Request, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde::Serialize;
use service_runtime::http::{self, json, query_param, route, Reply, Routes};
use service_runtime::metrics::{self, HttpMetrics, Registry};
use service_runtime::telemetry::RequestTelemetry;

use crate::fault::apply::{self, Base, Outcome};
use crate::fault::{Faults, Plan, SlowBudget};
use crate::proxy::Upstream;
use crate::slow_body::{Ending, SlowBody};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FaultLabel {
    fault: &'static str,
}

/// A's shared state: the faults in force (swapped whole on each reload),
/// the budget of header-slowed requests, and metrics.
#[derive(Debug)]
pub struct App {
    /// Read once per request; replaced by the config watcher.
    pub faults: ArcSwap<Faults>,
    /// Requests slowed by their own `x-fault-*` headers, in flight.
    pub(crate) slowed: Arc<SlowBudget>,
    registry: Registry,
    /// Requests by endpoint and status (the server counts refused ones here too).
    pub http: HttpMetrics,
    injected: Family<FaultLabel, Counter>,
    /// The service A stands in front of, in proxy mode.
    pub upstream: Option<Upstream>,
    upstream_errors: Family<KindLabel, Counter>,
    /// Where the faults in force came from; set with them.
    source: std::sync::Mutex<Source>,
    changes: Family<SourceLabel, Counter>,
    active: Family<SourceLabel, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: &'static str,
}

/// Where the faults in force came from: the config file, or the control API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The config file (at start, and at each saved change).
    File,
    /// The control API (`[admin]`), until the file next changes.
    Api,
}

impl Source {
    /// `file` or `api`, in answers, log lines and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Source::File => "file",
            Source::Api => "api",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

impl App {
    /// State with `faults` in force, for a server of `max_connections`.
    pub fn new(faults: Faults, max_connections: usize) -> Self {
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry);
        let injected = Family::<FaultLabel, Counter>::default();
        registry.register(
            "faults_injected",
            "Faults injected into /echo requests, by name (as in x-fault-injected and the log's fault=), and abandoned delays",
            injected.clone(),
        );
        let upstream_errors = Family::<KindLabel, Counter>::default();
        registry.register(
            "proxy_upstream_errors",
            "Proxied requests the upstream failed (A answered 502 or 504 itself), by KIND",
            upstream_errors.clone(),
        );
        let changes = Family::<SourceLabel, Counter>::default();
        registry.register(
            "faults_changes",
            "Changes of the faults in force, by source: a saved edit of the file, or the control API",
            changes.clone(),
        );
        let active = Family::<SourceLabel, Gauge>::default();
        registry.register(
            "faults_source",
            "1 for where the faults in force came from (file or api), 0 for the other",
            active.clone(),
        );
        active.get_or_create(&SourceLabel { source: "file" }).set(1);
        active.get_or_create(&SourceLabel { source: "api" }).set(0);
        Self {
            source: std::sync::Mutex::new(Source::File),
            changes,
            active,
            upstream: None,
            upstream_errors,
            faults: ArcSwap::from_pointee(faults),
            slowed: Arc::new(SlowBudget::new(max_connections)),
            registry,
            http,
            injected,
        }
    }

    /// Puts `faults` in force, from `source`: the next request reads them.
    pub fn put_faults(&self, faults: Faults, source: Source) {
        let mut now = self.source.lock().unwrap_or_else(|p| p.into_inner());
        self.faults.store(Arc::new(faults));
        *now = source;
        for s in [Source::File, Source::Api] {
            let on = i64::from(s == source);
            self.active
                .get_or_create(&SourceLabel { source: s.name() })
                .set(on);
        }
        self.changes
            .get_or_create(&SourceLabel {
                source: source.name(),
            })
            .inc();
    }

    /// Where the faults in force came from.
    pub fn source(&self) -> Source {
        *self.source.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// In proxy mode: forwards to `upstream` (`None`: A echoes).
    pub fn proxying(mut self, upstream: Option<Upstream>) -> Self {
        self.upstream = upstream;
        self
    }

    pub(crate) fn count_faults(&self, plan: &Plan) {
        for fault in plan.names() {
            self.count(fault);
        }
    }

    pub(crate) fn count(&self, fault: &'static str) {
        self.injected.get_or_create(&FaultLabel { fault }).inc();
    }
}

/// In proxy mode, A's own endpoints: never forwarded, never faulted.
const OWN_IN_PROXY_MODE: [&str; 2] = ["/health", "/metrics"];

/// The endpoint's name in metrics for every forwarded request.
const PROXIED: &str = "proxied";

/// Proxy mode: the plan of this request run around the upstream's answer.
/// An upstream that fails is A's own 502/504, its KIND on the log line.
async fn proxied(
    app: &App,
    upstream: &Upstream,
    req: &mut Request,
    telemetry: &mut RequestTelemetry,
) -> Outcome {
    let body = req.take_body().into_bytes().await.unwrap_or_default();
    let plan = match app.faults.load().plan(req) {
        Ok(plan) => plan,
        Err(e) => return e.into(),
    };
    let req = &*req;
    let failed = std::sync::Mutex::new(None);
    let outcome = apply::run(app, req, telemetry, plan, || async {
        upstream.forward(req, &body).await.map_err(|e| {
            let kind = e.kind;
            let res = e.into_response(&upstream.url);
            *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(kind);
            Outcome::from(res)
        })
    })
    .await;
    if let Some(kind) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        app.upstream_errors.get_or_create(&KindLabel { kind }).inc();
        telemetry.keep("upstream_error", kind.to_owned());
    }
    outcome
}

/// `/echo?msg=...`: the plan of this request run around the echo.
async fn echo(app: &App, req: &Request, telemetry: &mut RequestTelemetry) -> Outcome {
    let msg = match query_param(req.url().query(), "msg") {
        Ok(msg) => msg.unwrap_or_default(),
        Err(e) => return e.into(),
    };
    let plan = match app.faults.load().plan(req) {
        Ok(plan) => plan,
        Err(e) => return e.into(),
    };
    apply::run(app, req, telemetry, plan, || async {
        Ok(Base {
            res: json(StatusCode::Ok, &Echo { echo: &msg }),
            code: 200,
        })
    })
    .await
}

#[derive(Serialize)]
struct Echo<'a> {
    echo: &'a str,
}

/// A's endpoints.
#[derive(Debug, Clone, Copy)]
enum Endpoint {
    Index,
    Health,
    Echo,
    Metrics,
}

/// Each path once: `GET /` lists them, and they name the endpoints in metrics.
const ROUTES: Routes<Endpoint> = &[
    ("/", Endpoint::Index),
    ("/health", Endpoint::Health),
    ("/echo", Endpoint::Echo),
    ("/metrics", Endpoint::Metrics),
];

/// Answers one request and logs it; says what to do with the connection.
pub async fn handle(app: Arc<App>, mut req: Request) -> Reply {
    let mut telemetry = RequestTelemetry::begin("A", &req, &app.http);
    let own = OWN_IN_PROXY_MODE.contains(&telemetry.path());
    let outcome = match (&app.upstream, route(ROUTES, req.method(), telemetry.path())) {
        (Some(upstream), _) if !own => {
            telemetry.endpoint = PROXIED;
            proxied(&app, upstream, &mut req, &mut telemetry).await
        }
        (_, route) => match route {
            Err(e) => e.into(),
            Ok((name, endpoint)) => {
                telemetry.endpoint = name;
                match endpoint {
                    Endpoint::Index => http::index("A", ROUTES).into(),
                    Endpoint::Health => http::health().into(),
                    Endpoint::Metrics => metrics::render(&app.registry, &req).into(),
                    Endpoint::Echo => echo(&app, &req, &mut telemetry).await,
                }
            }
        },
    };

    let (status, http_status) = match &outcome {
        Outcome::Answered(res) | Outcome::Slow { res, .. } if res.status().is_success() => {
            ("ok", u16::from(res.status()))
        }
        Outcome::Answered(res) | Outcome::Slow { res, .. } => ("error", u16::from(res.status())),
        Outcome::Raw {
            status,
            http_status,
            ..
        } => (*status, *http_status),
        Outcome::Dropped => ("dropped", 0),
        Outcome::Reset => ("reset", 0),
        Outcome::Abandoned => ("abandoned", 0),
    };
    if let Outcome::Slow {
        mut res,
        bytes,
        stall,
        bytes_per_s,
        within,
        slot,
    } = outcome
    {
        // The line is written when the body is done (or cut short).
        let ending = Ending {
            telemetry,
            status,
            http_status,
            slot,
        };
        let len = bytes.len();
        let mut slow = SlowBody::new(bytes, stall, bytes_per_s, ending);
        if let Some(within) = within {
            slow = slow.trickle_within(within);
        }
        res.set_body(Body::from_reader(smol::io::BufReader::new(slow), Some(len)));
        return Reply::Stream(*res);
    }
    telemetry.finish(status, http_status, http_status, |line| line);

    match outcome {
        Outcome::Answered(res) => Reply::Send(*res),
        Outcome::Raw { bytes, .. } => Reply::Raw(bytes),
        Outcome::Dropped | Outcome::Abandoned => Reply::Close,
        Outcome::Reset => Reply::Reset,
        Outcome::Slow { .. } => Reply::Close,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::FaultSettings;
    use http_types::Response;
    use service_runtime::wire::FAULT_INJECTED;

    fn app(settings: FaultSettings) -> Arc<App> {
        Arc::new(App::new(Faults::new(settings), 1024))
    }

    async fn body(res: &mut Response) -> String {
        res.body_string().await.unwrap()
    }

    /// The answer a handler sends; panics on any other reply.
    async fn answer(a: &Arc<App>, req: Request) -> Response {
        match handle(a.clone(), req).await {
            Reply::Send(res) | Reply::Stream(res) => res,
            other => panic!("no answer: {other:?}"),
        }
    }

    /// The raw bytes a handler sends; panics on any other reply.
    async fn raw(a: &Arc<App>, req: Request) -> Vec<u8> {
        match handle(a.clone(), req).await {
            Reply::Raw(bytes) => bytes,
            other => panic!("not raw: {other:?}"),
        }
    }

    /// Statuses http-types cannot name go out exactly, body and length kept;
    /// a 1xx goes out as a head alone.
    #[test]
    fn any_status_goes_out_exactly() {
        smol::block_on(async {
            let failing = |code| {
                app(FaultSettings {
                    fail: true,
                    fail_status: code,
                    ..FaultSettings::default()
                })
            };
            let bytes = raw(&failing(420), get("/echo")).await;
            let text = String::from_utf8(bytes).unwrap();
            assert!(
                text.starts_with("HTTP/1.1 420 Enhance Your Calm\r\n"),
                "{text}"
            );
            assert!(text.contains("connection: close\r\n"), "{text}");
            assert!(
                text.ends_with(r#"{"error":"injected failure","status":420}"#),
                "{text}"
            );
            let bytes = raw(&failing(599), get("/echo")).await;
            assert!(bytes.starts_with(b"HTTP/1.1 599 Network Connect Timeout Error\r\n"));
            let bytes = raw(&failing(103), get("/echo")).await;
            let text = String::from_utf8(bytes).unwrap();
            assert!(text.starts_with("HTTP/1.1 103 Early Hints\r\n"), "{text}");
            assert!(
                text.ends_with("\r\n\r\n") && !text.contains("content-length"),
                "{text}"
            );
            // 204 and 304 carry no content: a head alone, no framing field.
            for (code, line) in [(204, "204 No Content"), (304, "304 Not Modified")] {
                let bytes = raw(&failing(code), get("/echo")).await;
                let text = String::from_utf8(bytes).unwrap();
                assert!(text.starts_with(&format!("HTTP/1.1 {line}\r\n")), "{text}");
                assert!(
                    text.ends_with("\r\n\r\n") && !text.contains("content-length"),
                    "{text}"
                );
            }
            // A named status is still an ordinary answer.
            let mut res = answer(&failing(503), get("/echo")).await;
            assert_eq!(res.status(), StatusCode::ServiceUnavailable);
            assert!(body(&mut res).await.contains("503"));
        });
    }

    /// Garbage is not HTTP; a truncated answer announces more than it sends.
    #[test]
    fn broken_answers() {
        smol::block_on(async {
            let garbage = raw(
                &app(FaultSettings {
                    garbage: true,
                    ..FaultSettings::default()
                }),
                get("/echo"),
            )
            .await;
            assert!(garbage.starts_with(b"NOT-HTTP ") && garbage.ends_with(b"\r\n\r\n"));

            let cut = raw(
                &app(FaultSettings {
                    truncate: true,
                    ..FaultSettings::default()
                }),
                get("/echo?msg=hello"),
            )
            .await;
            let text = String::from_utf8_lossy(&cut);
            assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
            assert!(text.contains("content-length: 16\r\n"), "{text}");
            assert!(text.ends_with("\r\n\r\n{\"echo\":"), "{text}");

            let reset = handle(
                app(FaultSettings {
                    reset: true,
                    ..FaultSettings::default()
                }),
                get("/echo"),
            )
            .await;
            assert!(matches!(reset, Reply::Reset));
        });
    }

    fn get(url: &str) -> Request {
        Request::get(format!("http://a{url}").as_str())
    }

    /// The echo round-trips any UTF-8, as JSON.
    #[test]
    fn echo_round_trips() {
        smol::block_on(async {
            let a = app(FaultSettings::default());
            let mut res = answer(&a, get("/echo?msg=%22q%22%5C%0A%F0%9F%8E%89+x")).await;
            assert_eq!(res.status(), StatusCode::Ok);
            assert_eq!(res.content_type().unwrap().essence(), "application/json");
            assert_eq!(body(&mut res).await, r#"{"echo":"\"q\"\\\n🎉 x"}"#);
            let mut res = answer(&a, get("/echo")).await;
            assert_eq!(body(&mut res).await, r#"{"echo":""}"#);
        });
    }

    /// Unknown paths, other methods and non-UTF-8 get JSON 4xx answers.
    #[test]
    fn client_errors_are_json() {
        smol::block_on(async {
            let a = app(FaultSettings::default());
            let mut res = answer(&a, get("/nope")).await;
            assert_eq!(res.status(), StatusCode::NotFound);
            assert_eq!(body(&mut res).await, r#"{"error":"not found"}"#);
            let post = Request::post("http://a/echo");
            let res = answer(&a, post).await;
            assert_eq!(res.status(), StatusCode::MethodNotAllowed);
            assert_eq!(res["Allow"].as_str(), "GET, HEAD");
            let res = answer(&a, get("/echo?msg=%FF")).await;
            assert_eq!(res.status(), StatusCode::BadRequest);
        });
    }

    /// `fail` answers fail_status with the contract's body and marks the answer.
    #[test]
    fn injected_failure_is_marked() {
        smol::block_on(async {
            let a = app(FaultSettings {
                fail: true,
                fail_status: 503,
                ..FaultSettings::default()
            });
            let mut res = answer(&a, get("/echo?msg=x")).await;
            assert_eq!(res.status(), StatusCode::ServiceUnavailable);
            assert_eq!(res[FAULT_INJECTED].as_str(), "fail");
            assert_eq!(
                body(&mut res).await,
                r#"{"error":"injected failure","status":503}"#
            );
            // /health is never faulted.
            let res = answer(&a, get("/health")).await;
            assert_eq!(res.status(), StatusCode::Ok);
        });
    }

    /// `drop` asks the loop to close the connection unanswered.
    #[test]
    fn drop_closes_without_answer() {
        smol::block_on(async {
            let a = app(FaultSettings {
                drop: true,
                ..FaultSettings::default()
            });
            assert!(matches!(handle(a, get("/echo?msg=x")).await, Reply::Close));
        });
    }
}
