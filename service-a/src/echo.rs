//! A's endpoints: `/health` (never faulted), `/echo` (faulted as `[fault]` says)
//! and `/metrics`, with one log line per request; in proxy mode every other
//! path is forwarded, faulted the same way. What became of a request (an
//! [`Outcome`]) is turned here into what the connection does ([`Reply`]).

use std::sync::Arc;

use http_types::{Body, Request, StatusCode};
use serde::Serialize;
use service_runtime::http::{self, json, query_param, route, Reply, Routes};
use service_runtime::metrics;
use service_runtime::telemetry::RequestTelemetry;

use crate::app::App;
use crate::fault::apply::{self, Base, Outcome};
use crate::proxy::Upstream;
use crate::slow_body::{Ending, SlowBody};

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
    let outcome = apply::run(&app.injected, req, telemetry, plan, || async {
        upstream.forward(req, &body).await.map_err(|e| {
            let kind = e.kind;
            let res = e.into_response(&upstream.url);
            *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(kind);
            Outcome::from(res)
        })
    })
    .await;
    if let Some(kind) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        app.count_upstream_error(kind);
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
    apply::run(&app.injected, req, telemetry, plan, || async {
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
    let reply = match outcome {
        Outcome::Slow {
            mut res,
            bytes,
            stall,
            bytes_per_s,
            within,
            slot,
        } => {
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
        Outcome::Answered(res) => Reply::Send(*res),
        Outcome::Raw { bytes, .. } => Reply::Raw(bytes),
        Outcome::Dropped | Outcome::Abandoned => Reply::Close,
        Outcome::Reset => Reply::Reset,
    };
    telemetry.finish(status, http_status, http_status, |line| line);
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::{FaultSettings, Faults};
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
