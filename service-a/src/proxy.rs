//! Proxy mode: A in front of any HTTP/1.x service (`[proxy] upstream`).
//!
//! What A guarantees as a proxy:
//!
//! - **What goes up is the client's request**: its method, path, query,
//!   header fields and body, less what RFC 9110 §7.6.1 says a proxy must not
//!   pass on (the hop-by-hop fields: `Connection` and every field it names,
//!   `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`,
//!   `Upgrade`), less `Expect` (A has already answered `100 Continue` and
//!   read the body) and less A's own `x-fault-*` fields. `Host` becomes the
//!   upstream's (nginx's `proxy_set_header Host $proxy_host`); the body goes
//!   with a `Content-Length`. A body is at most the server side's
//!   `MAX_BODY_BYTES` (larger is a 413 before the upstream is called).
//! - **What comes back is read with the runtime's bounded decoder**
//!   (`service_runtime::answer`): any status 100..=599 exactly, a head of at
//!   most 8 KiB, a body of at most `MAX_BODY_BYTES`, one framing. Its
//!   hop-by-hop fields are dropped and its body re-framed by A.
//! - **Bounded keep-alive pool**: at most `max_idle_connections` idle
//!   connections, each reused only after a complete answer framed by length or
//!   chunks with nothing after it, and discarded after `idle_timeout_ms` idle
//!   or if the upstream closed it meanwhile. Connections in use are bounded by
//!   A's own `server.max_connections` (one upstream exchange per client
//!   connection at a time).
//! - **Memory is bounded per request in flight**: a request body and an
//!   answer body of at most `MAX_BODY_BYTES` (1 MiB) each, so at most about
//!   2 MiB times `server.max_connections` in the worst case (every client
//!   sending and receiving 1 MiB at once); lower `max_connections` where that
//!   is too much. Requests without bodies cost a few KiB.
//! - **An upstream that fails is A's own answer**, never taken for an
//!   injected fault (no `x-fault-injected`): `502` with
//!   `{"error": ..., "kind": ..., "upstream": ...}` when it cannot be reached
//!   or answers wrongly, `504` when it does not answer within `timeout_ms`.
//!   The KIND (`connection_refused`, `unreachable`, `connection_reset`,
//!   `bad_response`, `timeout`) is the `upstream_error=` of A's log line and
//!   the label of `proxy_upstream_errors_total`.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http_types::headers::{HeaderName, HeaderValue};
use http_types::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use service_runtime::answer::{
    closed_early, push_field, read_answer_to, start_request, Answer, Closed, Failure, ReadBuf,
};
use service_runtime::config::Invalid;
use service_runtime::http::json;
use service_runtime::wire::FAULT_PREFIX;
use smol::future::FutureExt as _;
use smol::io::AsyncWriteExt as _;
use smol::{Async, Timer};

use crate::fault::apply::Base;

/// The longest `timeout_ms` (ten minutes): a longer wait is a typo.
const MAX_TIMEOUT_MS: u64 = 600_000;

/// The most idle connections kept: more would only hold descriptors.
const MAX_IDLE: u32 = 4096;

/// `[proxy]`: absent (or `upstream = ""`), A echoes; set, A forwards every
/// request but its own `/health` and `/metrics` to `upstream`. Restart to change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxySettings {
    /// `http://host:port` of the service A stands in front of; empty: echo.
    pub upstream: String,
    /// The longest one exchange with the upstream may take (connect, send,
    /// whole answer); past it, A answers 504.
    pub timeout_ms: u64,
    /// Idle keep-alive connections kept to the upstream.
    pub max_idle_connections: u32,
    /// An idle connection older than this is not reused: below the
    /// upstream's own idle timeout, so a close never races a reuse.
    pub idle_timeout_ms: u64,
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self {
            upstream: String::new(),
            timeout_ms: 30_000,
            max_idle_connections: 64,
            idle_timeout_ms: 2_000,
        }
    }
}

impl ProxySettings {
    /// Checks every `[proxy]` key.
    pub fn validate(&self) -> Result<(), Invalid> {
        if !self.upstream.is_empty() {
            let url =
                Invalid::check_http_url("proxy.upstream", &self.upstream, "http://127.0.0.1:9000")?;
            if !matches!(url.path(), "" | "/") {
                return Err(Invalid {
                    key: "proxy.upstream",
                    value: format!("{:?}", self.upstream),
                    expected:
                        "an origin only (http://host:port): A forwards each request's own path"
                            .to_owned(),
                });
            }
        }
        Invalid::check_range("proxy.timeout_ms", self.timeout_ms, 1..=MAX_TIMEOUT_MS)?;
        Invalid::check_range(
            "proxy.max_idle_connections",
            self.max_idle_connections,
            0..=MAX_IDLE,
        )?;
        Invalid::check_range(
            "proxy.idle_timeout_ms",
            self.idle_timeout_ms,
            1..=MAX_TIMEOUT_MS,
        )?;
        Ok(())
    }
}

/// Why the upstream gave no usable answer: A's own 502 or 504.
#[derive(Debug)]
pub struct UpstreamError {
    /// The KIND, as B names the same failures: `connection_refused`,
    /// `unreachable`, `connection_reset`, `bad_response`, `timeout`.
    pub kind: &'static str,
    /// What happened, in words.
    pub detail: String,
}

impl UpstreamError {
    /// A's answer for it: 504 for a timeout, else 502, JSON.
    pub fn into_response(self, upstream: &str) -> Response {
        #[derive(Serialize)]
        struct Body<'a> {
            error: &'a str,
            kind: &'a str,
            upstream: &'a str,
        }
        let status = if self.kind == "timeout" {
            StatusCode::GatewayTimeout
        } else {
            StatusCode::BadGateway
        };
        json(
            status,
            &Body {
                error: &self.detail,
                kind: self.kind,
                upstream,
            },
        )
    }

    fn from_failure(failure: &Failure, authority: &str) -> Self {
        let peer = "the upstream";
        let (kind, detail) = match failure {
            Failure::Connect(e) if e.kind() == io::ErrorKind::ConnectionRefused => (
                "connection_refused",
                format!("nothing listens at {authority} (connection refused)"),
            ),
            Failure::Connect(e) => ("unreachable", format!("cannot reach {authority}: {e}")),
            Failure::Closed(_) | Failure::Read(_) => ("connection_reset", failure.describe(peer)),
            Failure::Malformed(_) => ("bad_response", failure.describe(peer)),
        };
        Self { kind, detail }
    }
}

/// The upstream and A's pool of connections to it.
#[derive(Debug)]
pub struct Upstream {
    /// As configured, for answers and log lines.
    pub url: String,
    /// `host:port`, the `Host` of every forwarded request.
    authority: String,
    /// The address when the URL names an IP: no lookup per request.
    addr: Option<SocketAddr>,
    idle: Mutex<Vec<(Conn, Instant)>>,
    max_idle: usize,
    idle_timeout: Duration,
    timeout: Duration,
}

/// One connection to the upstream, with its read buffer.
#[derive(Debug)]
struct Conn {
    io: Async<TcpStream>,
    buf: ReadBuf,
}

impl Conn {
    /// Open, quiet and with nothing unread: safe to send on.
    fn is_idle_and_open(&self) -> bool {
        let mut byte = [0u8; 1];
        self.buf.unread().is_empty()
            && matches!(self.io.get_ref().peek(&mut byte),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

impl Upstream {
    /// The pool for `[proxy]`, or `None` when A echoes.
    pub fn new(settings: &ProxySettings) -> Option<Self> {
        if settings.upstream.is_empty() {
            return None;
        }
        let url = http_types::Url::parse(&settings.upstream).ok()?;
        let host = url.host_str()?.to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        let addr = host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, port));
        Some(Self {
            url: settings.upstream.trim_end_matches('/').to_owned(),
            authority: format!("{host}:{port}"),
            addr,
            idle: Mutex::new(Vec::new()),
            max_idle: settings.max_idle_connections as usize,
            idle_timeout: Duration::from_millis(settings.idle_timeout_ms),
            timeout: Duration::from_millis(settings.timeout_ms),
        })
    }

    /// Forwards `req` (its body already taken: `body`) and returns the
    /// upstream's answer, within `timeout_ms`.
    pub async fn forward(&self, req: &Request, body: &[u8]) -> Result<Base, UpstreamError> {
        let head = encode_head(req, &self.authority, body.len());
        let head_only = req.method() == Method::Head;
        let exchange = async {
            let answer = self.exchange(&head, body, head_only, req.method()).await;
            Some(answer)
        };
        let timed_out = async {
            Timer::after(self.timeout).await;
            None
        };
        match exchange.or(timed_out).await {
            Some(Ok(answer)) => into_base(answer),
            Some(Err(failure)) => Err(UpstreamError::from_failure(&failure, &self.authority)),
            None => Err(UpstreamError {
                kind: "timeout",
                detail: format!(
                    "the upstream at {} gave no complete answer within {} ms (proxy.timeout_ms)",
                    self.authority,
                    self.timeout.as_millis()
                ),
            }),
        }
    }

    /// One exchange on a pooled connection, or a fresh one. A pooled
    /// connection the upstream closed just as it was reused is retried once
    /// on a fresh connection, for methods that may be repeated (RFC 9110
    /// §9.2.2), as nginx's `proxy_next_upstream` does.
    async fn exchange(
        &self,
        head: &[u8],
        body: &[u8],
        head_only: bool,
        method: Method,
    ) -> Result<Answer, Failure> {
        if let Some(mut conn) = self.checkout() {
            match send(&mut conn, head, body, head_only).await {
                Ok(answer) => return Ok(self.done(conn, answer)),
                Err(Failure::Closed(Closed::Fin | Closed::Reset)) if idempotent(method) => {}
                Err(other) => return Err(other),
            }
        }
        let mut conn = self.connect().await?;
        let answer = send(&mut conn, head, body, head_only).await?;
        Ok(self.done(conn, answer))
    }

    fn done(&self, conn: Conn, answer: Answer) -> Answer {
        if answer.reusable {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < self.max_idle {
                idle.push((conn, Instant::now()));
            }
        }
        answer
    }

    fn checkout(&self) -> Option<Conn> {
        loop {
            let (conn, since) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()?;
            if since.elapsed() < self.idle_timeout && conn.is_idle_and_open() {
                return Some(conn);
            }
        }
    }

    async fn connect(&self) -> Result<Conn, Failure> {
        let addr = match self.addr {
            Some(addr) => addr,
            None => smol::net::resolve(self.authority.as_str())
                .await
                .map_err(Failure::Connect)?
                .into_iter()
                .next()
                .ok_or_else(|| {
                    Failure::Connect(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("{}: no address", self.authority),
                    ))
                })?,
        };
        let io = Async::<TcpStream>::connect(addr)
            .await
            .map_err(Failure::Connect)?;
        let _ = io.get_ref().set_nodelay(true);
        Ok(Conn {
            io,
            buf: ReadBuf::default(),
        })
    }
}

fn idempotent(method: Method) -> bool {
    matches!(
        method,
        Method::Get | Method::Head | Method::Options | Method::Trace | Method::Put | Method::Delete
    )
}

/// Writes the request and reads its whole answer.
async fn send(
    conn: &mut Conn,
    head: &[u8],
    body: &[u8],
    head_only: bool,
) -> Result<Answer, Failure> {
    let io_failure = |e: io::Error| match closed_early(e.kind()) {
        Some(how) => Failure::Closed(how),
        None => Failure::Read(e),
    };
    if body.is_empty() {
        (&conn.io).write_all(head).await.map_err(io_failure)?;
    } else {
        // One write for a small request: one packet, one wake-up upstream.
        let mut all = Vec::with_capacity(head.len() + body.len());
        all.extend_from_slice(head);
        all.extend_from_slice(body);
        (&conn.io).write_all(&all).await.map_err(io_failure)?;
    }
    read_answer_to(&mut &conn.io, &mut conn.buf, head_only).await
}

/// Whether a field is hop-by-hop (RFC 9110 §7.6.1), framing A redoes, or
/// `Expect` (answered by A already): never passed on in either direction.
fn hop_by_hop(name: &str) -> bool {
    const FIELDS: [&str; 10] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
        "expect",
    ];
    FIELDS.iter().any(|f| name.eq_ignore_ascii_case(f))
}

/// The fields a `Connection` header names: hop-by-hop too.
fn named_by_connection(connection: Option<&str>, name: &str) -> bool {
    connection.is_some_and(|c| {
        c.split(',')
            .any(|token| token.trim().eq_ignore_ascii_case(name))
    })
}

/// The request head as it goes upstream.
fn encode_head(req: &Request, authority: &str, body_len: usize) -> Vec<u8> {
    let url = req.url();
    let mut out = Vec::with_capacity(512);
    start_request(
        &mut out,
        req.method().as_ref(),
        url.path(),
        url.query(),
        authority,
    );
    let connection = req.header("connection").map(|v| v.as_str());
    for (name, values) in req.iter() {
        let name = name.as_str();
        if hop_by_hop(name)
            || name.starts_with(FAULT_PREFIX)
            || named_by_connection(connection, name)
        {
            continue;
        }
        for value in values.iter() {
            push_field(&mut out, name, value.as_str());
        }
    }
    let has_body =
        body_len > 0 || matches!(req.method(), Method::Post | Method::Put | Method::Patch);
    if has_body {
        out.extend_from_slice(format!("content-length: {body_len}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The upstream's answer as A's base answer: its exact status, its
/// end-to-end fields, its body.
fn into_base(answer: Answer) -> Result<Base, UpstreamError> {
    let Answer { head, body, .. } = answer;
    let code = head.status.code;
    if code == 101 {
        return Err(UpstreamError {
            kind: "bad_response",
            detail: "the upstream switched protocols (101): A proxies HTTP/1.x requests only"
                .to_owned(),
        });
    }
    let named = StatusCode::try_from(code)
        .ok()
        .filter(|_| code >= 200)
        .unwrap_or(StatusCode::InternalServerError);
    let mut res = Response::new(named);
    let connection = head
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
        .map(str::to_owned);
    for (name, value) in head.headers {
        if hop_by_hop(&name) || named_by_connection(connection.as_deref(), &name) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_string(name),
            HeaderValue::from_bytes(value),
        ) {
            res.append_header(name, value);
        }
    }
    res.set_body(body);
    Ok(Base { res, code })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hop-by-hop fields, those `Connection` names, and `x-fault-*` stay behind.
    #[test]
    fn hop_by_hop_fields_stay_behind() {
        let mut req = Request::post("http://a:1/orders/7?x=1&y=%20");
        req.insert_header("connection", "keep-alive, x-private");
        req.insert_header("x-private", "1");
        req.insert_header("keep-alive", "timeout=5");
        req.insert_header("te", "trailers");
        req.insert_header("upgrade", "h2c");
        req.insert_header("x-fault-status", "503");
        req.insert_header("expect", "100-continue");
        req.insert_header("x-end-to-end", "kept");
        let head = String::from_utf8(encode_head(&req, "127.0.0.1:9", 3)).unwrap();
        assert!(
            head.starts_with("POST /orders/7?x=1&y=%20 HTTP/1.1\r\nhost: 127.0.0.1:9\r\n"),
            "{head}"
        );
        for gone in [
            "connection",
            "x-private",
            "keep-alive",
            "te:",
            "upgrade",
            "x-fault",
            "expect",
        ] {
            assert!(!head.contains(gone), "{gone} in {head}");
        }
        assert!(head.contains("x-end-to-end: kept\r\n"), "{head}");
        assert!(head.ends_with("content-length: 3\r\n\r\n"), "{head}");
        // A GET without a body announces none.
        let get = String::from_utf8(encode_head(&Request::get("http://a/"), "h:1", 0)).unwrap();
        assert!(!get.contains("content-length"), "{get}");
    }

    /// `[proxy]`: an origin only, http only; limits named.
    #[test]
    fn settings_are_checked() {
        let with = |upstream: &str| ProxySettings {
            upstream: upstream.to_owned(),
            ..ProxySettings::default()
        };
        assert!(with("").validate().is_ok());
        assert!(with("http://127.0.0.1:9000").validate().is_ok());
        assert!(with("http://localhost:9000/").validate().is_ok());
        for bad in [
            "https://x",
            "127.0.0.1:9000",
            "http://x/api",
            "http://x?q=1",
        ] {
            assert_eq!(
                with(bad).validate().unwrap_err().key,
                "proxy.upstream",
                "{bad}"
            );
        }
        let zero = ProxySettings {
            timeout_ms: 0,
            ..ProxySettings::default()
        };
        assert_eq!(zero.validate().unwrap_err().key, "proxy.timeout_ms");
    }
}
