//! A's endpoints: `/health` (never faulted), `/echo` (faulted as `[fault]` says)
//! and `/metrics`, with one log line per request.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http_types::headers::CONNECTION;
use http_types::{Body, Method, Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::Serialize;
use service_runtime::exchange::Exchange;
use service_runtime::http::{self, json, query_param, route, ApiError, Reply, Routes};
use service_runtime::metrics::{self, HttpMetrics, Registry};
use service_runtime::wire::{FAULT_INJECTED, REQUEST_TIMEOUT_MS};
use smol::Timer;

use crate::fault::{Broken, Faults, Plan, HEADER_SLOW_SHARE_PERCENT};
use crate::slow_body::{Ending, SlowBody};

/// How long past a caller's budget A keeps an injected delay going before it
/// gives up on the request. The margin lets the caller's own timer fire first,
/// so the caller reports its `timeout` rather than A's closed connection.
pub const ABANDON_MARGIN: Duration = Duration::from_millis(100);

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
    slowed: Arc<SlowBudget>,
    registry: Registry,
    /// Requests by endpoint and status (the server counts refused ones here too).
    pub http: HttpMetrics,
    injected: Family<FaultLabel, Counter>,
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
        Self {
            faults: ArcSwap::from_pointee(faults),
            slowed: Arc::new(SlowBudget::new(max_connections)),
            registry,
            http,
            injected,
        }
    }

    fn count_faults(&self, plan: &Plan) {
        for fault in plan.names() {
            self.count(fault);
        }
    }

    fn count(&self, fault: &'static str) {
        self.injected.get_or_create(&FaultLabel { fault }).inc();
    }
}

/// How many requests slowed by their own headers may be in flight: a share
/// ([`HEADER_SLOW_SHARE_PERCENT`]) of the connections, so the rest stay
/// free for other clients and for `/health`, `/ready` and `/metrics`.
#[derive(Debug)]
pub struct SlowBudget {
    in_flight: AtomicUsize,
    limit: usize,
}

impl SlowBudget {
    fn new(max_connections: usize) -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            limit: (max_connections * HEADER_SLOW_SHARE_PERCENT / 100).max(1),
        }
    }

    /// A slot, if one is free; it is given back when dropped.
    fn take(self: &Arc<Self>) -> Option<SlowSlot> {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if before >= self.limit {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(SlowSlot(self.clone()))
    }
}

/// One request's place in the [`SlowBudget`], held until its answer is
/// done (its body, when that is slowed too).
#[derive(Debug)]
pub struct SlowSlot(Arc<SlowBudget>);

impl Drop for SlowSlot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What became of a request.
enum Outcome {
    Answered(Box<Response>),
    /// Answered, the body slow (stalled or trickled): the head goes out at
    /// once, the body as [`SlowBody`] lets it.
    Slow {
        res: Box<Response>,
        bytes: Vec<u8>,
        stall: Duration,
        bytes_per_s: u64,
        /// The longest the trickle may take (the header cap's remainder).
        within: Option<Duration>,
        /// Held until the body is done, if headers slowed the request.
        slot: Option<SlowSlot>,
    },
    /// Bytes no encoder would write, then a close: garbage, a body cut
    /// short, a status http-types has no name for. With what to log.
    Raw {
        bytes: Vec<u8>,
        status: &'static str,
        http_status: u16,
    },
    /// The `drop` fault: closed without an answer (FIN).
    Dropped,
    /// The `reset` fault: reset without an answer (RST).
    Reset,
    /// The caller's budget ran out during an injected delay: A stopped waiting.
    Abandoned,
}

impl From<Response> for Outcome {
    fn from(res: Response) -> Self {
        Outcome::Answered(Box::new(res))
    }
}

impl From<ApiError> for Outcome {
    fn from(e: ApiError) -> Self {
        e.into_response().into()
    }
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
pub async fn handle(app: Arc<App>, req: Request) -> Reply {
    let mut exchange = Exchange::begin("A", &req, &app.http);
    let outcome = match route(ROUTES, req.method(), exchange.path()) {
        Err(e) => e.into(),
        Ok((name, endpoint)) => {
            exchange.endpoint = name;
            match endpoint {
                Endpoint::Index => http::index("A", ROUTES).into(),
                Endpoint::Health => http::health().into(),
                Endpoint::Metrics => metrics::render(&app.registry, &req).into(),
                Endpoint::Echo => echo(&app, &req, &mut exchange).await,
            }
        }
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
            exchange,
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
    exchange.finish(status, http_status, http_status, |line| line);

    match outcome {
        Outcome::Answered(res) => Reply::Send(*res),
        Outcome::Raw { bytes, .. } => Reply::Raw(bytes),
        Outcome::Dropped | Outcome::Abandoned => Reply::Close,
        Outcome::Reset => Reply::Reset,
        Outcome::Slow { .. } => Reply::Close,
    }
}

/// `/echo?msg=...`: the faults of this request, then the echo. The faults'
/// names go on the request's line, however it ends.
async fn echo(app: &App, req: &Request, exchange: &mut Exchange) -> Outcome {
    let msg = match query_param(req.url().query(), "msg") {
        Ok(msg) => msg.unwrap_or_default(),
        Err(e) => return e.into(),
    };
    let plan = match app.faults.load().plan(req) {
        Ok(plan) => plan,
        Err(e) => return e.into(),
    };
    // Held through the delay and the body; refused at once past the budget.
    let slot = match plan.slowed_by_headers {
        false => None,
        true => match app.slowed.take() {
            Some(slot) => Some(slot),
            None => return over_budget(&app.slowed, exchange),
        },
    };
    app.count_faults(&plan);
    if let Some(label) = plan.label() {
        exchange.keep("fault", label);
    }

    if !plan.delay.is_zero() {
        match caller_budget(req) {
            Some(budget) if plan.delay > budget + ABANDON_MARGIN => {
                Timer::after(budget + ABANDON_MARGIN).await;
                app.count("abandoned");
                return Outcome::Abandoned;
            }
            _ => {
                Timer::after(plan.delay).await;
            }
        }
    }
    match plan.broken {
        Broken::Drop => Outcome::Dropped,
        Broken::Reset => Outcome::Reset,
        Broken::Garbage => Outcome::Raw {
            bytes: garbage(plan.garbage_seed),
            status: "garbage",
            http_status: 0,
        },
        _ => match answer(&plan, &msg, req.method()).await {
            Outcome::Slow {
                res,
                bytes,
                stall,
                bytes_per_s,
                within,
                slot: _,
            } => Outcome::Slow {
                res,
                bytes,
                stall,
                bytes_per_s,
                within,
                slot,
            },
            other => other,
        },
    }
}

/// The answer to a request whose headers ask to be slow while the budget
/// of such requests is spent: 429 at once, the connection closed (its slot
/// freed for others), and the request's line saying why.
fn over_budget(budget: &SlowBudget, exchange: &mut Exchange) -> Outcome {
    let why = format!(
        "{} requests slowed by x-fault-* headers are in flight, the most A allows \
         ({HEADER_SLOW_SHARE_PERCENT}% of server.max_connections); try again later",
        budget.limit
    );
    exchange.keep("refused", "header_fault_budget".to_owned());
    let refusal = ApiError {
        status: StatusCode::TooManyRequests,
        message: why.into(),
    };
    let mut res = refusal.into_response();
    res.insert_header("retry-after", "1");
    res.insert_header(CONNECTION, "close");
    res.into()
}

/// The answer a plan that answers at all gives: the echo or a failure,
/// marked, then cut short, slowed, or sent as is.
async fn answer(plan: &Plan, msg: &str, method: Method) -> Outcome {
    let mut res = match plan.fail {
        Some(code) => injected_failure(code, plan.retry_after),
        None if plan.broken == Broken::BadBody => bad_body(),
        None => json(StatusCode::Ok, &Echo { echo: msg }),
    };
    if let Some(label) = plan.label() {
        res.insert_header(FAULT_INJECTED, label);
    }
    // A status http-types cannot name (420, 599), an interim 1xx, or a 204 or
    // 304 (no content, and no `Content-Length` either): written here, byte by
    // byte, then the connection closes.
    let unnamed = plan
        .fail
        .filter(|&code| bodiless(code) || StatusCode::try_from(code).is_err());
    if let Some(code) = unnamed.filter(|_| plan.broken != Broken::Truncate) {
        res.insert_header(CONNECTION, "close");
        let Ok(bytes) = exact_status(res, code, method).await else {
            return Outcome::Dropped;
        };
        return Outcome::Raw {
            bytes,
            status: if (200..=299).contains(&code) {
                "ok"
            } else {
                "error"
            },
            http_status: code,
        };
    }
    if plan.broken == Broken::Truncate {
        let http_status = plan.fail.unwrap_or(u16::from(res.status()));
        res.insert_header(CONNECTION, "close");
        let encoded = match unnamed {
            Some(code) => exact_status(res, code, method).await,
            None => http::encode(res, method).await,
        };
        let Ok(mut bytes) = encoded else {
            return Outcome::Dropped;
        };
        let head = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(0, |i| i + 4);
        bytes.truncate(head + (bytes.len() - head) / 2);
        return Outcome::Raw {
            bytes,
            status: "truncated",
            http_status,
        };
    }
    if plan.body_delay.is_zero() && plan.bytes_per_s == 0 {
        return res.into();
    }
    let bytes = res.take_body().into_bytes().await.unwrap_or_default();
    Outcome::Slow {
        res: Box::new(res),
        bytes,
        stall: plan.body_delay,
        bytes_per_s: plan.bytes_per_s,
        within: plan.trickle_within,
        slot: None,
    }
}

/// Statuses that carry no content (RFC 9110 §15.2, §15.3.5, §15.4.5): a 1xx
/// (interim), 204 No Content and 304 Not Modified. An injected one is sent as
/// a head alone, without `Content-Length`, by [`exact_status`].
fn bodiless(code: u16) -> bool {
    code < 200 || code == 204 || code == 304
}

/// `res` on the wire with status `code` in its status line, whatever
/// http-types can name. A [`bodiless`] status is a head alone, without the
/// body's framing fields; other codes keep the body and its `Content-Length`.
async fn exact_status(res: Response, code: u16, method: Method) -> std::io::Result<Vec<u8>> {
    let encoded = http::encode(res, method).await?;
    let line_end = encoded.windows(2).position(|w| w == b"\r\n").unwrap_or(0);
    let head_end = encoded
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(encoded.len(), |i| i + 4);
    let mut bytes = format!("HTTP/1.1 {code} {}", reason(code)).into_bytes();
    if bodiless(code) {
        // The fields but the body's framing, then the blank line.
        for line in encoded[line_end..head_end].split(|&b| b == b'\n') {
            let lower = line.to_ascii_lowercase();
            if !lower.starts_with(b"content-length") && !lower.starts_with(b"transfer-encoding") {
                bytes.extend_from_slice(line);
                bytes.push(b'\n');
            }
        }
        bytes.truncate(bytes.len().saturating_sub(1));
        return Ok(bytes);
    }
    bytes.extend_from_slice(&encoded[line_end..]);
    Ok(bytes)
}

/// A reason phrase for a status http-types may not name: the ones servers
/// commonly send (nginx, Cloudflare, AWS), else a plain description.
fn reason(code: u16) -> &'static str {
    match code {
        // http-types 2.12 names it "Modified".
        304 => "Not Modified",
        420 => "Enhance Your Calm",
        499 => "Client Closed Request",
        520 => "Web Server Returned an Unknown Error",
        521 => "Web Server Is Down",
        522 => "Connection Timed Out",
        523 => "Origin Is Unreachable",
        524 => "A Timeout Occurred",
        525 => "SSL Handshake Failed",
        526 => "Invalid SSL Certificate",
        527 => "Railgun Error",
        598 => "Network Read Timeout Error",
        599 => "Network Connect Timeout Error",
        _ => StatusCode::try_from(code).map_or("Injected Failure", |s| s.canonical_reason()),
    }
}

/// Bytes that are not HTTP: a line no HTTP parser accepts, then seeded
/// random printable bytes, ending as a head would, so a client sees a
/// complete head it cannot parse (`bad_response`), not a short read.
fn garbage(seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut bytes = b"NOT-HTTP ".to_vec();
    bytes.extend((0..64).map(|_| rng.u8(b'!'..=b'~')));
    bytes.extend_from_slice(b"\r\n\r\n");
    bytes
}

/// A 200 whose body is not `{"echo": string}`: what a misrouted request
/// or a confused proxy answers.
fn bad_body() -> Response {
    let mut res = Response::new(StatusCode::Ok);
    res.set_body("<html><body>this is not the echo you are looking for</body></html>");
    res.set_content_type(http_types::mime::HTML);
    res
}

/// The caller's budget from `x-request-timeout-ms`, if it sent a sensible one.
fn caller_budget(req: &Request) -> Option<Duration> {
    let ms: u64 = req
        .header(REQUEST_TIMEOUT_MS)?
        .last()
        .as_str()
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_millis(ms))
}

#[derive(Serialize)]
struct Echo<'a> {
    echo: &'a str,
}

/// `{"error":"injected failure","status":N}` with status N (500 in the
/// `Response` when http-types cannot name N: [`exact_status`] writes N), and
/// `Retry-After` when asked.
fn injected_failure(code: u16, retry_after: Option<u64>) -> Response {
    #[derive(Serialize)]
    struct Failure {
        error: &'static str,
        status: u16,
    }
    let status = StatusCode::try_from(code).unwrap_or(StatusCode::InternalServerError);
    let mut res = json(
        status,
        &Failure {
            error: "injected failure",
            status: code,
        },
    );
    if let Some(seconds) = retry_after {
        res.insert_header("retry-after", seconds.to_string());
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::FaultSettings;

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
