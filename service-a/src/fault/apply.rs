//! Applying one request's [`Plan`] around its answer, whichever mode A runs
//! in: the echo's answer, or the upstream's in proxy mode. Both modes go
//! through [`run`], so every fault means the same in both:
//!
//! 1. the request's slot in the header budget (429 past it), its faults
//!    counted and named on its log line;
//! 2. the delay (given up once the caller's `x-request-timeout-ms` is past);
//! 3. `fail`: the injected failure *instead of* the answer (in proxy mode the
//!    upstream is not called: a retry test sees no side effect);
//! 4. otherwise the answer is made (the echo, or the upstream called); then
//!    `drop`, `reset` or `garbage` *instead of sending it* (in proxy mode the
//!    upstream did the work and the answer is lost, as when a network fails
//!    after the fact);
//! 5. `bad_body` replaces its body; `truncate` cuts it; `body_delay` and the
//!    trickle slow it; `x-fault-injected` names what was done.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_types::headers::CONNECTION;
use http_types::{Method, Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::Serialize;
use service_runtime::http::{self, json, ApiError};
use service_runtime::metrics::Registry;
use service_runtime::telemetry::RequestTelemetry;
use service_runtime::wire::{FAULT_INJECTED, REQUEST_TIMEOUT_MS};
use smol::Timer;

use super::headers::{SlowBudget, SlowSlot, HEADER_SLOW_SHARE_PERCENT};
use super::plan::{Broken, Plan};

/// How long past a caller's budget A keeps an injected delay going before it
/// gives up on the request. The margin lets the caller's own timer fire first,
/// so the caller reports its `timeout` rather than A's closed connection.
pub const ABANDON_MARGIN: Duration = Duration::from_millis(100);

/// What running plans shares across requests: the count of faults
/// injected, by name, and the budget of requests slowed by their own headers.
#[derive(Debug)]
pub struct Injected {
    /// Requests slowed by their own `x-fault-*` headers, in flight.
    slowed: Arc<SlowBudget>,
    counts: Family<FaultLabel, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FaultLabel {
    fault: &'static str,
}

impl Injected {
    /// Counts registered in `registry` as `faults_injected_total`, and a
    /// budget for a server of `max_connections`.
    pub fn register(registry: &mut Registry, max_connections: usize) -> Self {
        let counts = Family::<FaultLabel, Counter>::default();
        registry.register(
            "faults_injected",
            "Faults injected into /echo requests, by name (as in x-fault-injected and the log's fault=), and abandoned delays",
            counts.clone(),
        );
        Self {
            slowed: Arc::new(SlowBudget::new(max_connections)),
            counts,
        }
    }

    fn count(&self, fault: &'static str) {
        self.counts.get_or_create(&FaultLabel { fault }).inc();
    }
}

/// What became of a request.
pub enum Outcome {
    Answered(Box<Response>),
    /// Answered, the body slow (stalled or trickled): the head goes out at
    /// once, the body as [`SlowBody`](crate::slow_body::SlowBody) lets it.
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

/// The answer before any fault touches it: the echo, or the upstream's.
#[derive(Debug)]
pub struct Base {
    /// The answer (status 500 as a stand-in when http-types cannot name `code`).
    pub res: Response,
    /// The exact status, 100..=599.
    pub code: u16,
}

/// Runs `plan` around the answer `base` makes (called only if the plan
/// answers at all without a failure; an `Err` is A's own answer, such as an
/// upstream's 502, sent as it is). The faults' names go on the request's
/// line, however it ends.
pub async fn run<F, Fut>(
    injected: &Injected,
    req: &Request,
    telemetry: &mut RequestTelemetry,
    plan: Plan,
    base: F,
) -> Outcome
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Base, Outcome>>,
{
    // Held through the delay and the body; refused at once past the budget.
    let slot = match plan.slowed_by_headers {
        false => None,
        true => match injected.slowed.take() {
            Some(slot) => Some(slot),
            None => return over_budget(&injected.slowed, telemetry),
        },
    };
    for fault in plan.names() {
        injected.count(fault);
    }
    if let Some(label) = plan.label() {
        telemetry.keep("fault", label);
    }

    if !plan.delay.is_zero() {
        match caller_budget(req) {
            Some(budget) if plan.delay > budget + ABANDON_MARGIN => {
                Timer::after(budget + ABANDON_MARGIN).await;
                injected.count("abandoned");
                return Outcome::Abandoned;
            }
            _ => {
                Timer::after(plan.delay).await;
            }
        }
    }
    let (res, code) = match plan.fail {
        Some(code) => (injected_failure(code, plan.retry_after), code),
        None => match base().await {
            Ok(Base { res, code }) => (res, code),
            Err(own) => return own,
        },
    };
    match plan.broken {
        Broken::Drop => Outcome::Dropped,
        Broken::Reset => Outcome::Reset,
        Broken::Garbage => Outcome::Raw {
            bytes: garbage(plan.garbage_seed),
            status: "garbage",
            http_status: 0,
        },
        Broken::BadBody => finish(&plan, bad_body(res), code, req.method(), slot).await,
        Broken::No | Broken::Truncate => finish(&plan, res, code, req.method(), slot).await,
    }
}

/// The answer to a request whose headers ask to be slow while the budget
/// of such requests is spent: 429 at once, the connection closed (its slot
/// freed for others), and the request's line saying why.
fn over_budget(budget: &SlowBudget, telemetry: &mut RequestTelemetry) -> Outcome {
    let why = format!(
        "{} requests slowed by x-fault-* headers are in flight, the most A allows \
         ({HEADER_SLOW_SHARE_PERCENT}% of server.max_connections); try again later",
        budget.limit
    );
    telemetry.keep("refused", "header_fault_budget".to_owned());
    let refusal = ApiError {
        status: StatusCode::TooManyRequests,
        message: why.into(),
    };
    let mut res = refusal.into_response();
    res.insert_header("retry-after", "1");
    res.insert_header(CONNECTION, "close");
    res.into()
}

/// The answer marked, then sent with its exact status, cut short, slowed,
/// or as it is.
async fn finish(
    plan: &Plan,
    mut res: Response,
    code: u16,
    method: Method,
    slot: Option<SlowSlot>,
) -> Outcome {
    if let Some(label) = plan.label() {
        res.insert_header(FAULT_INJECTED, label);
    }
    // A status http-types cannot name (420, 599), an interim 1xx, or a 204 or
    // 304 (no content, and no `Content-Length` either): written here, byte by
    // byte, then the connection closes.
    let unnamed = (bodiless(code) || StatusCode::try_from(code).is_err()).then_some(code);
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
            http_status: code,
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
        slot,
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

/// `res` with a body that is not what it should be (not the echo's JSON,
/// not the upstream's body): what a misrouted request or a confused proxy
/// answers. The status stays (200 for the echo).
fn bad_body(mut res: Response) -> Response {
    res.remove_header("content-encoding");
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
