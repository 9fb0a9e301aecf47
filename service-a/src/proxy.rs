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
//!
//! # Layout
//!
//! - this file: the pool of connections to the upstream, one round trip on it.
//! - `settings`: `[proxy]` and its limits.
//! - `message`: the request as it goes up, the answer as it comes back.
//! - `error`: an upstream's failure as A's own 502 or 504, with its KIND.

mod error;
mod message;
pub mod settings;

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http_types::{Method, Request};
use service_runtime::answer::{closed_early, read_answer_to, Answer, Closed, Failure, ReadBuf};
use smol::future::FutureExt as _;
use smol::io::AsyncWriteExt as _;
use smol::{Async, Timer};

use self::error::UpstreamError;
use self::message::{encode_head, into_base};
use self::settings::ProxySettings;
use crate::fault::apply::Base;

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
        let answer = async {
            let answer = self.round_trip(&head, body, head_only, req.method()).await;
            Some(answer)
        };
        let timed_out = async {
            Timer::after(self.timeout).await;
            None
        };
        match answer.or(timed_out).await {
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

    /// The request sent and its whole answer read, on a pooled connection
    /// or a fresh one. A pooled
    /// connection the upstream closed just as it was reused is retried once
    /// on a fresh connection, for methods that may be repeated (RFC 9110
    /// §9.2.2), as nginx's `proxy_next_upstream` does.
    async fn round_trip(
        &self,
        head: &[u8],
        body: &[u8],
        head_only: bool,
        method: Method,
    ) -> Result<Answer, Failure> {
        if let Some(mut conn) = self.checkout() {
            match send_and_read(&mut conn, head, body, head_only).await {
                Ok(answer) => return Ok(self.done(conn, answer)),
                Err(Failure::Closed(Closed::Fin | Closed::Reset)) if idempotent(method) => {}
                Err(other) => return Err(other),
            }
        }
        let mut conn = self.connect().await?;
        let answer = send_and_read(&mut conn, head, body, head_only).await?;
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
async fn send_and_read(
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
