//! The console's routes, served by `service-runtime`'s own HTTP loop (the
//! services' bounded reads, timeouts and connection limit), on one thread.
//!
//! Every request passes [`token`](super::token)'s rules first; a refusal is
//! a 403 and a `lab | console: refused ...` line. Request bodies are never
//! read (the loop skips them), so writes carry their few values in the query:
//! `POST /api/fault?delay_ms=1500`. Answers never carry a CORS header, forbid
//! framing, and send no Referer (the URL held the token).
//!
//! | route | what |
//! | --- | --- |
//! | `GET /`, `/console.css`, `/console.js` | the page |
//! | `GET /api/events` | Server-Sent Events: the live state ([`stream`](super::stream)) |
//! | `GET /api/fault` | the form's keys, their values in A's file, their defaults |
//! | `POST /api/fault?KEY=VALUE...` | writes them into A's file |
//! | `POST /api/service?name=a&action=stop` | types `a stop` into `cargo lab up` |
//! | `POST /api/call` | one call to B; its answer and both log lines |
//! | `POST /api/load?rate=N` | the steady load at N calls a second (0: off) |

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_types::{Method, Request, Response, StatusCode};
use serde_json::json;
use service_runtime::connection::Context;
use service_runtime::http::{ApiError, Reply};
use service_runtime::server::{self, Limits};
use smol::Timer;

use super::shared::Shared;
use super::stream::events;
use super::tee::say;
use super::token::{Asked, Grant};
use super::{fault, traffic};

const PAGE: &str = include_str!("../../console/index.html");
const CSS: &str = include_str!("../../console/console.css");
const JS: &str = include_str!("../../console/console.js");

/// Connections at once. The page needs a few (a tab's event stream and up
/// to six requests, a browser's own limit per host); the rest is room, so
/// that sockets which send nothing (each held at most [`CLIENT_TIMEOUT`])
/// cannot take every slot from the page's user (with 128, a flood of 1000
/// event streams from a slow client delayed the page's request 2.8 s; with
/// 256, 3 ms). Each connection costs a descriptor: [`spawn`] raises the
/// launcher's soft limit to cover them, as the services do (macOS's default
/// `ulimit -n` is 256).
pub const MAX_CONNECTIONS: usize = 256;

/// The longest wait on a client (a head, a stalled read of our answer). A
/// browser on loopback sends a head at once; a socket that sends nothing
/// frees its slot after this.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long `POST /api/call` waits for B's and A's log lines after B's
/// answer: the writer threads gather lines for a few milliseconds.
const LINES_WAIT: Duration = Duration::from_secs(2);

/// Serves the console on its own thread, for the rest of the launcher's life.
pub fn spawn(listener: std::net::TcpListener, shared: Arc<Shared>) -> anyhow::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = smol::net::TcpListener::try_from(listener)?;
    // Short of descriptors the console still serves, fewer at once (the
    // loop says `accept_failed`); nothing to stop the lab for.
    let _ = server::descriptor_limit(MAX_CONNECTIONS as u64 + server::DESCRIPTOR_RESERVE);
    std::thread::Builder::new()
        .name("console".into())
        .spawn(move || {
            server::block_on(1, async move {
                let ctx = Context {
                    handler: move |req| handle(shared.clone(), req),
                    metrics: metrics(),
                    service: "console",
                    timeout: CLIENT_TIMEOUT,
                    keep_bodies: false,
                };
                let limits = Limits {
                    max_connections: MAX_CONNECTIONS,
                    shutdown_grace: Duration::ZERO,
                };
                // Until the launcher exits: it owns the process.
                server::serve(listener, ctx, limits, std::future::pending()).await
            })
        })?;
    Ok(())
}

/// The loop counts refused requests; the console has no `/metrics` to show them.
fn metrics() -> service_runtime::metrics::HttpMetrics {
    let mut registry = prometheus_client::registry::Registry::default();
    service_runtime::metrics::HttpMetrics::register(&mut registry)
}

async fn handle(shared: Arc<Shared>, req: Request) -> Reply {
    let method = req.method();
    let path = req.url().path().to_owned();
    let query: Vec<(String, String)> = req
        .url()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let header = |name: &str| req.header(name).map(|v| v.as_str());
    let query_token = query
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.as_str());
    let asked = Asked {
        read_only: matches!(method, Method::Get | Method::Head),
        host: header("host"),
        origin: header("origin"),
        sec_fetch_site: header("sec-fetch-site"),
        cookie: header("cookie"),
        header_token: header("x-lab-token"),
        query_token,
    };
    let grant = match shared.guard.check(&asked) {
        Ok(grant) => grant,
        Err(why) => {
            say(&format!("refused {method} {path}: {why}"));
            return guarded(error(StatusCode::Forbidden, &format!("refused: {why}"))).into();
        }
    };
    if grant == Grant::Url && path == "/" {
        // The token into a cookie, and out of the address bar and history.
        let mut res = Response::new(StatusCode::SeeOther);
        res.insert_header("location", "/");
        res.insert_header("set-cookie", shared.guard.set_cookie());
        return guarded(res).into();
    }
    let mut res = match route(&shared, method, &path, &query).await {
        Ok(reply) => reply,
        Err(e) => return guarded(e.into_response()).into(),
    };
    if grant == Grant::Url {
        if let Reply::Send(r) | Reply::Stream(r) = &mut res {
            r.insert_header("set-cookie", shared.guard.set_cookie());
        }
    }
    match res {
        Reply::Send(r) => Reply::Send(guarded(r)),
        Reply::Stream(r) => Reply::Stream(guarded(r)),
        other => other,
    }
}

/// Headers every answer carries: nothing cached, never framed by another
/// site, no Referer (the URL held the token), scripts and styles from here only.
fn guarded(mut res: Response) -> Response {
    res.insert_header("cache-control", "no-store");
    res.insert_header("x-content-type-options", "nosniff");
    res.insert_header("x-frame-options", "DENY");
    res.insert_header("referrer-policy", "no-referrer");
    res.insert_header(
        "content-security-policy",
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    );
    res
}

fn error(status: StatusCode, message: &str) -> Response {
    ApiError {
        status,
        message: message.to_owned().into(),
    }
    .into_response()
}

fn text(mime: &str, body: &'static str) -> Reply {
    let mut res = Response::new(StatusCode::Ok);
    res.set_body(body);
    res.insert_header("content-type", mime);
    Reply::Send(res)
}

fn ok(body: &serde_json::Value) -> Reply {
    Reply::Send(service_runtime::http::json(StatusCode::Ok, body))
}

async fn route(
    shared: &Arc<Shared>,
    method: Method,
    path: &str,
    query: &[(String, String)],
) -> Result<Reply, ApiError> {
    let reads = matches!(method, Method::Get | Method::Head);
    let posts = method == Method::Post;
    let wrong = || ApiError {
        status: StatusCode::MethodNotAllowed,
        message: format!("{method} {path} is not something the console does").into(),
    };
    match path {
        "/" if reads => Ok(text("text/html; charset=utf-8", PAGE)),
        "/console.css" if reads => Ok(text("text/css; charset=utf-8", CSS)),
        "/console.js" if reads => Ok(text("text/javascript; charset=utf-8", JS)),
        "/api/events" if reads => Ok(events(shared.clone())),
        "/api/fault" if reads => {
            let file = shared.a_config();
            let text = std::fs::read_to_string(&file).ok();
            Ok(ok(&json!({
                "file": file.display().to_string(),
                "fields": fault::FIELDS.iter().map(|(key, _)| key).collect::<Vec<_>>(),
                "values": fault::current(text.as_deref()),
                "defaults": fault::current(None),
            })))
        }
        "/api/fault" if posts => {
            let changes = fault::parse_form(query).map_err(ApiError::bad_request)?;
            let file = shared.a_config();
            let written = smol::unblock({
                let file = file.clone();
                move || fault::write(&file, &changes)
            })
            .await
            .map_err(|e| match e {
                fault::WriteError::NotToml(_) => ApiError {
                    status: StatusCode::Conflict,
                    message: e.to_string().into(),
                },
                fault::WriteError::Io(_) => ApiError::internal(e.to_string()),
            })?;
            say(&format!("wrote [fault] in {}", file.display()));
            Ok(ok(
                &json!({ "file": file.display().to_string(), "section": written }),
            ))
        }
        "/api/service" if posts => {
            let get = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.as_str());
            let command = match (get("name"), get("action")) {
                (Some(name @ ("a" | "b")), Some(action @ ("stop" | "start" | "restart"))) => {
                    format!("{name} {action}")
                }
                _ => {
                    return Err(ApiError::bad_request(
                        "expected name=a|b and action=stop|start|restart",
                    ))
                }
            };
            say(&format!("typed `{command}`"));
            if !(shared.commands)(command.clone()) {
                return Err(ApiError::internal("cargo lab up no longer takes commands"));
            }
            Ok(ok(&json!({ "typed": command })))
        }
        "/api/call" if posts => one_call(shared).await,
        "/api/load" if posts => {
            let rate = query
                .iter()
                .find(|(k, _)| k == "rate")
                .and_then(|(_, v)| v.trim().parse::<u32>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "expected rate=N, calls a second from 0 (off) to {}",
                        traffic::MAX_RATE
                    ))
                })?;
            let (b, live) = (shared.clone(), shared.clone());
            let rate = shared.steady.set(
                rate,
                move || b.b_addr(),
                move |call| {
                    let now = live.now_s();
                    live.live().count(&call.kind, None, now);
                },
            );
            say(&format!("steady load: {rate} calls a second"));
            Ok(ok(&json!({ "rate": rate })))
        }
        "/" | "/console.css" | "/console.js" | "/api/events" | "/api/fault" | "/api/service"
        | "/api/call" | "/api/load" => Err(wrong()),
        _ => Err(ApiError::not_found()),
    }
}

/// One call to B, then both services' lines for it (waited on briefly).
async fn one_call(shared: &Arc<Shared>) -> Result<Reply, ApiError> {
    let b = shared
        .b_addr()
        .ok_or_else(|| ApiError::bad_request("B has not started yet: no address to call"))?;
    let call = smol::unblock(move || traffic::one_call(b))
        .await
        .ok_or_else(|| ApiError::internal("the call was not made"))?;
    let waited = Instant::now();
    let row = loop {
        let row = shared.live().row(&call.trace_id).cloned();
        match row {
            Some(r) if r.a_line.is_some() || waited.elapsed() > LINES_WAIT => break Some(r),
            None if waited.elapsed() > LINES_WAIT => break None,
            _ => Timer::after(Duration::from_millis(20)).await,
        };
    };
    Ok(ok(&json!({
        "status": call.status,
        "kind": call.kind,
        "latency_ms": call.latency_ms.round(),
        "detail": call.detail,
        "trace_id": call.trace_id,
        "b_line": row.as_ref().map(|r| r.b_line.clone()),
        "a_line": row.and_then(|r| r.a_line),
    })))
}
