//! B's keep-alive connections to A: surf's backend, built on `async_h1::connect`.
//!
//! surf's own h1 pool was unsafe here: a call abandoned at its
//! deadline put its connection back with the late answer unread, and the next
//! call read that answer as its own. This pool keeps three rules instead:
//!
//! 1. A connection returns to the pool only after a complete answer was read
//!    from it. A call that fails or is abandoned (its future dropped at the
//!    deadline) drops its connection, and with it any late answer.
//! 2. Before reuse, a pooled connection is checked without blocking: if A closed
//!    it (A restarted, or its idle timeout passed) or it holds stray bytes, it is
//!    discarded and the next one (or a fresh one) is used. A connection idle for
//!    `upstream.idle_timeout_ms` is discarded too, before A's own idle timeout
//!    (`server.header_timeout_ms`) can close it under a request: a close that
//!    races the reuse would be reported as A's `connection_reset`.
//! 3. Failures are reported as facts ([`Failure`]): could not connect, closed
//!    early, or not HTTP. `classify.rs` turns those into the contract's KINDs.
//!    They travel inside surf's error type, because surf's backend trait
//!    (`HttpClient::send`) can return no other; `classify.rs` downcasts them.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_h1::client;
use http_client::{Config, HttpClient, Request, Response};
use http_types::Body;
use prometheus_client::metrics::counter::Counter;
use smol::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use smol::Async;

use crate::classify::{closed_early, Closed, Failure};

/// The largest answer body B reads from A. A's echo of the longest URI it
/// accepts is far smaller; anything bigger is not the answer B expects.
pub const MAX_BODY_BYTES: u64 = 1024 * 1024;

/// A pool of keep-alive connections to one upstream (A), used as surf's backend.
#[derive(Debug)]
pub struct Pool {
    /// `host:port` of A, as in `upstream.url`.
    authority: String,
    /// The address when `upstream.url` names an IP: no lookup per call.
    addr: Option<SocketAddr>,
    /// Idle connections, with when each became idle.
    idle: Mutex<Vec<(Conn, Instant)>>,
    /// Idle connections kept (`upstream.max_idle_connections`); more are closed
    /// after their answer.
    max_idle: usize,
    /// How long a connection may sit idle and still be reused.
    idle_timeout: Duration,
    opened: Counter,
    config: Config,
}

impl Pool {
    /// A pool for `host:port` keeping up to `max_idle` idle connections for at
    /// most `idle_timeout` each, counting the connections it opens in `opened`.
    pub fn new(
        host: &str,
        port: u16,
        (max_idle, idle_timeout): (usize, Duration),
        opened: Counter,
    ) -> Self {
        let addr = host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, port));
        Self {
            authority: format!("{host}:{port}"),
            addr,
            idle: Mutex::new(Vec::new()),
            max_idle,
            idle_timeout,
            opened,
            config: Config::new(),
        }
    }

    /// A live idle connection, if there is one; dead ones are discarded on the way.
    fn checkout(&self) -> Option<Conn> {
        loop {
            let (conn, since) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()?;
            if since.elapsed() < self.idle_timeout && conn.is_idle_and_open() {
                return Some(conn);
            }
        }
    }

    fn checkin(&self, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.max_idle {
            idle.push((conn, Instant::now()));
        }
    }

    async fn connect(&self) -> Result<Conn, Failure> {
        let addr = match self.addr {
            Some(addr) => addr,
            None => resolve(&self.authority).await.map_err(Failure::Connect)?,
        };
        let stream = Async::<TcpStream>::connect(addr)
            .await
            .map_err(Failure::Connect)?;
        // Without it, http-client's default, each request waits on Nagle.
        let _ = stream.get_ref().set_nodelay(true);
        self.opened.inc();
        Ok(Conn {
            io: Arc::new(stream),
            eof: Arc::new(AtomicBool::new(false)),
        })
    }
}

async fn resolve(authority: &str) -> io::Result<SocketAddr> {
    smol::net::resolve(authority)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{authority}: no address")))
}

#[http_client::async_trait]
impl HttpClient for Pool {
    async fn send(&self, req: Request) -> Result<Response, http_types::Error> {
        let conn = match self.checkout() {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        let (res, reusable) = exchange(conn.clone(), req).await?;
        if reusable {
            self.checkin(conn);
        }
        Ok(res)
    }

    fn set_config(&mut self, config: Config) -> http_types::Result<()> {
        self.config = config;
        Ok(())
    }

    fn config(&self) -> &Config {
        &self.config
    }
}

/// Writes `req`, reads the whole answer, and says whether the connection can be reused.
async fn exchange(conn: Conn, req: Request) -> Result<(Response, bool), Failure> {
    let eof = conn.eof.clone();
    let failed = |e: http_types::Error| describe(e, &eof);
    // async_h1::client::connect, minus the 8 KiB buffer its io::copy allocates
    // per call: the request head is a few hundred bytes, written at once.
    let mut head = Vec::with_capacity(512);
    let mut writer = conn.clone();
    client::Encoder::new(req)
        .read_to_end(&mut head)
        .await
        .map_err(|e| failed(e.into()))?;
    writer
        .write_all(&head)
        .await
        .map_err(|e| failed(e.into()))?;
    // A cannot have answered yet: wait for its answer rather than try a read
    // that would fail (a syscall per call).
    conn.io.readable().await.map_err(|e| failed(e.into()))?;
    let mut res = client::decode(conn).await.map_err(failed)?;

    let declared = res.len();
    let framed = declared.is_some() || res.header("transfer-encoding").is_some();
    let close = res
        .header("connection")
        .is_some_and(|v| v.as_str().eq_ignore_ascii_case("close"));

    let mut bytes = Vec::with_capacity(declared.unwrap_or(512).min(MAX_BODY_BYTES as usize));
    let read = res
        .take_body()
        .take(MAX_BODY_BYTES + 1)
        .read_to_end(&mut bytes)
        .await;
    match (read, declared) {
        (Ok(_), _) => {}
        // The connection ended inside a body of announced length: say how short.
        (Err(e), Some(announced))
            if closed_early(e.kind()).is_some() || eof.load(Ordering::Relaxed) =>
        {
            return Err(Failure::Closed(Closed::ShortBody {
                got: bytes.len(),
                announced,
            }))
        }
        (Err(e), _) => return Err(describe(e.into(), &eof)),
    }
    if bytes.len() as u64 > MAX_BODY_BYTES {
        return Err(Failure::Malformed(format!(
            "answer body larger than {MAX_BODY_BYTES} bytes"
        )));
    }
    if let Some(announced) = declared.filter(|len| *len != bytes.len()) {
        return Err(Failure::Closed(Closed::ShortBody {
            got: bytes.len(),
            announced,
        }));
    }
    res.set_body(Body::from_bytes(bytes));
    Ok((res, framed && !close))
}

/// Classifies an error from async-h1 by what happened on the socket: an EOF or a
/// reset means A closed early; anything else means the bytes were not HTTP.
fn describe(e: http_types::Error, eof: &AtomicBool) -> Failure {
    if let Some(how) = e
        .downcast_ref::<io::Error>()
        .and_then(|io| closed_early(io.kind()))
    {
        return Failure::Closed(how);
    }
    if eof.load(Ordering::Relaxed) {
        return Failure::Closed(Closed::Fin);
    }
    Failure::Malformed(e.to_string())
}

/// One TCP connection to A, noting whether A has closed its side.
#[derive(Debug, Clone)]
struct Conn {
    io: Arc<Async<TcpStream>>,
    /// Set when a read returned end-of-stream: A closed the connection.
    eof: Arc<AtomicBool>,
}

impl Conn {
    /// True if the connection is open with nothing unread: safe to send on.
    fn is_idle_and_open(&self) -> bool {
        let mut byte = [0u8; 1];
        // The socket is non-blocking: WouldBlock means open and quiet. Ok(0) is
        // A's FIN; Ok(1) is a stray byte no request asked for.
        match self.io.get_ref().peek(&mut byte) {
            Err(e) => e.kind() == io::ErrorKind::WouldBlock,
            Ok(_) => false,
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut &*self.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(0)) = polled {
            if !buf.is_empty() {
                self.eof.store(true, Ordering::Relaxed);
            }
        }
        polled
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.io).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.io).poll_close(cx)
    }
}
