//! A's endpoints: `/health` (never faulted) and `/echo` (faulted as `[fault]` says),
//! with one log line per request.

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use http_types::{Body, Request, Response, StatusCode};
use serde::Serialize;
use service_runtime::http::{self, allow_get, json, query_param, ApiError};
use service_runtime::log::Line;
use service_runtime::trace;
use smol::Timer;

use crate::fault::{Faults, Plan, StalledBody, HEADER_INJECTED};

/// A's shared state: the faults in force, swapped whole on each reload.
#[derive(Debug)]
pub struct App {
    /// Read once per request; replaced by the config watcher.
    pub faults: ArcSwap<Faults>,
}

impl App {
    /// State with `faults` in force.
    pub fn new(faults: Faults) -> Self {
        Self {
            faults: ArcSwap::from_pointee(faults),
        }
    }
}

/// What became of a request: an answer, or `None` for the `drop` fault
/// (the connection is closed without an answer).
type Outcome = Option<Response>;

/// Answers one request and logs it. `Err` only for a `drop` fault: async-h1 then
/// closes the connection without writing anything.
pub async fn handle(app: Arc<App>, req: Request) -> http_types::Result<Response> {
    let started = Instant::now();
    let trace = trace::incoming(&req);
    let _span = trace::request_span("A", trace);

    let path = req.url().path().to_owned();
    let (outcome, plan) = match path.as_str() {
        "/health" => (
            answer(allow_get(req.method()).map(|()| http::health())),
            None,
        ),
        "/echo" => match allow_get(req.method()) {
            Ok(()) => echo(&app, &req).await,
            Err(e) => (Some(e.into_response()), None),
        },
        _ => (Some(ApiError::not_found().into_response()), None),
    };

    let (status, http_status) = match &outcome {
        Some(res) if res.status().is_success() => ("ok", u16::from(res.status())),
        Some(res) => ("error", u16::from(res.status())),
        None => ("dropped", 0),
    };
    Line::new("A")
        .str("endpoint", &path)
        .str("status", status)
        .num("http_status", http_status)
        .num("latency_ms", started.elapsed().as_millis())
        .opt_str("fault", plan.as_ref().and_then(Plan::log_label).as_deref())
        .str("trace_id", &trace::trace_id(&trace))
        .emit();

    match outcome {
        Some(res) => Ok(res),
        None => Err(http_types::Error::from_str(
            StatusCode::InternalServerError,
            "injected drop",
        )),
    }
}

fn answer(result: Result<Response, ApiError>) -> Outcome {
    Some(result.unwrap_or_else(ApiError::into_response))
}

/// `/echo?msg=...`: the faults of this request, then the echo.
async fn echo(app: &App, req: &Request) -> (Outcome, Option<Plan>) {
    let msg = match query_param(req.url().query(), "msg") {
        Ok(msg) => msg.unwrap_or_default(),
        Err(e) => return (answer(Err(e)), None),
    };
    let plan = match app.faults.load().plan(req) {
        Ok(plan) => plan,
        Err(e) => return (answer(Err(e)), None),
    };

    if !plan.delay.is_zero() {
        Timer::after(plan.delay).await;
    }
    if plan.drop {
        return (None, Some(plan));
    }
    let mut res = match plan.fail {
        Some(status) => injected_failure(status),
        None => json(StatusCode::Ok, &Echo { echo: &msg }),
    };
    if !plan.body_delay.is_zero() {
        let bytes = res.take_body();
        let len = bytes.len();
        let bytes = bytes.into_bytes().await.unwrap_or_default();
        let stalled = StalledBody::new(bytes, plan.body_delay);
        res.set_body(Body::from_reader(smol::io::BufReader::new(stalled), len));
    }
    if let Some(injected) = plan.injected() {
        res.insert_header(HEADER_INJECTED, injected);
    }
    (Some(res), Some(plan))
}

#[derive(Serialize)]
struct Echo<'a> {
    echo: &'a str,
}

/// `{"error":"injected failure","status":N}` with status N.
fn injected_failure(status: StatusCode) -> Response {
    #[derive(Serialize)]
    struct Failure {
        error: &'static str,
        status: u16,
    }
    json(
        status,
        &Failure {
            error: "injected failure",
            status: status.into(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::FaultSettings;

    fn app(settings: FaultSettings) -> Arc<App> {
        Arc::new(App::new(Faults::new(settings)))
    }

    async fn body(res: &mut Response) -> String {
        res.body_string().await.unwrap()
    }

    fn get(url: &str) -> Request {
        Request::get(format!("http://a{url}").as_str())
    }

    /// The echo round-trips any UTF-8, as JSON.
    #[test]
    fn echo_round_trips() {
        smol::block_on(async {
            let a = app(FaultSettings::default());
            let mut res = handle(a.clone(), get("/echo?msg=%22q%22%5C%0A%F0%9F%8E%89+x"))
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::Ok);
            assert_eq!(res.content_type().unwrap().essence(), "application/json");
            assert_eq!(body(&mut res).await, r#"{"echo":"\"q\"\\\n🎉 x"}"#);
            let mut res = handle(a, get("/echo")).await.unwrap();
            assert_eq!(body(&mut res).await, r#"{"echo":""}"#);
        });
    }

    /// Unknown paths, other methods and non-UTF-8 get JSON 4xx answers.
    #[test]
    fn client_errors_are_json() {
        smol::block_on(async {
            let a = app(FaultSettings::default());
            let mut res = handle(a.clone(), get("/nope")).await.unwrap();
            assert_eq!(res.status(), StatusCode::NotFound);
            assert_eq!(body(&mut res).await, r#"{"error":"not found"}"#);
            let post = Request::post("http://a/echo");
            let res = handle(a.clone(), post).await.unwrap();
            assert_eq!(res.status(), StatusCode::MethodNotAllowed);
            assert_eq!(res["Allow"].as_str(), "GET, HEAD");
            let res = handle(a, get("/echo?msg=%FF")).await.unwrap();
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
            let mut res = handle(a.clone(), get("/echo?msg=x")).await.unwrap();
            assert_eq!(res.status(), StatusCode::ServiceUnavailable);
            assert_eq!(res[HEADER_INJECTED].as_str(), "fail");
            assert_eq!(
                body(&mut res).await,
                r#"{"error":"injected failure","status":503}"#
            );
            // /health is never faulted.
            let res = handle(a, get("/health")).await.unwrap();
            assert_eq!(res.status(), StatusCode::Ok);
        });
    }

    /// `drop` makes the handler fail, which closes the connection unanswered.
    #[test]
    fn drop_closes_without_answer() {
        smol::block_on(async {
            let a = app(FaultSettings {
                drop: true,
                ..FaultSettings::default()
            });
            assert!(handle(a, get("/echo?msg=x")).await.is_err());
        });
    }
}
