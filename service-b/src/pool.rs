//! B's keep-alive connections to A: surf's backend, writing requests and
//! reading answers with the runtime's bounded decoder (`service_runtime::answer`).
//!
//! What each part does: surf is B's client API (a `surf::Request` in, a
//! `surf::Response` out, its error type); this pool is surf's `HttpClient`,
//! and it writes the request head itself and hands the socket to
//! `answer::read_answer`, which reads the answer within fixed bounds. The
//! exact status travels beside the `Response` as an `ExactStatus` extension,
//! since http-types cannot name every status an upstream may send.
//!
//! surf's own h1 pool was unsafe here: a call abandoned at its
//! deadline put its connection back with the late answer unread, and the next
//! call read that answer as its own. This pool keeps five rules instead:
//!
//! 1. A connection returns to the pool only after a complete final answer was
//!    read from it (interim `1xx` answers skipped), framed by length or chunks,
//!    with nothing after it. A call that fails or is abandoned (its future
//!    dropped at the deadline) drops its connection, and with it any late answer.
//! 2. Before reuse, a pooled connection is checked without blocking: if A closed
//!    it (A restarted, or its idle timeout passed) or it holds bytes no request
//!    asked for, it is closed and the next one (or a fresh one) is used. A
//!    connection idle for `upstream.idle_timeout_ms` is discarded too, before
//!    A's own idle timeout (`server.client_timeout_ms`) can close it under a
//!    request.
//! 3. After an answer on a *reused* connection that came out of step with its
//!    recent ones ([`OUT_OF_STEP`]), the connection rests before it is handed
//!    out again, for [`REST_FACTOR`] times the slowest of its last [`RECENT`]
//!    exchanges (another idle connection, or a fresh one, serves meanwhile;
//!    with [`MAX_RESTING`] resting, the one whose rest ends first serves);
//!    rule 2's check then runs on it. Of the rested ones, the one idle longest
//!    goes first. This is what breaks the chain below.
//! 4. A reused connection that fails before any byte of its answer arrived
//!    (closed or reset: A closed it as B sent, the race rule 2 cannot close)
//!    is dropped and the request is sent once more on a fresh connection,
//!    within the same deadline, as Go's transport and hyper do for idempotent
//!    requests (B sends only GETs without a body). It is not an attempt
//!    against A and costs no retry budget; `upstream_stale_connections_total`
//!    counts it. A `drop` fault that A applies to a request on a reused
//!    connection therefore reaches A twice, as it would behind Go or hyper.
//! 5. Failures are reported as facts ([`Failure`]): could not connect, closed
//!    early, a read failed, or not HTTP. `classify.rs` turns those into the contract's KINDs.
//!    They travel inside surf's error type, because surf's backend trait
//!    (`HttpClient::send`) can return no other; `classify.rs` downcasts them.
//!
//! # An upstream that answers what nobody asked
//!
//! HTTP/1.1 ties an answer to a request only by order. An upstream that sends
//! an answer nobody asked for (a second answer after the first, a late one)
//! shifts every later answer on that connection by one. What is guaranteed:
//!
//! - Unasked bytes that arrive while a connection is idle, or with the answer
//!   before it, close the connection (rules 1 and 2): they are never read as
//!   an answer.
//! - The shift is cut short, though not always at once (this is a bound in
//!   practice, not a proof). The caller that read the
//!   forged answer was on a reused connection and got it out of step (at
//!   once, or after a wait no request of its takes), so the connection rests
//!   (rule 3), and its own displaced answer, which A sends about one exchange's time
//!   later, lands while it rests and closes it at the next check. Measured
//!   with a hostile upstream sending a second answer 50 ms after the first,
//!   mixed with late, slow and extra answers, 8 callers × 40 calls, three
//!   runs: 15, 20 and 21 wrong answers, of which 0, 1 and 4 were not the
//!   forged one itself (a chained echo, or an answer held back 1.2 s); before
//!   rule 3, 22, 12 and 50, most of them chained (`n1_5` answered with
//!   `n1_4`'s echo, `n1_6` with `n1_5`'s, ...). Resting after *every* answer
//!   gave none in three runs, but up to three times the connections (19 for 4
//!   steady callers, and the soak's descriptors grew by 31): the bound here
//!   is the trade between the two.
//!
//! What remains inherent to HTTP/1.1 keep-alive (Go's transport and hyper have
//! the same window): bytes that arrive after the check of rule 2, once B has
//! sent its request, are that request's answer to B, so the one caller whose
//! request crosses a forged answer receives it. A displaced answer held back
//! longer than the rest can still reach the next caller, and an upstream that
//! holds each answer until the next request arrives is, on the wire, a
//! correct one: rule 3 defeats answers that arrive on their own schedule, not
//! an upstream that lies in step. Only `Connection: close` per request (half
//! the throughput) or HTTP/2's stream ids remove the window.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http_client::{Config, HttpClient, Request, Response};
use http_types::headers::{HeaderName, HeaderValue};
use http_types::{Body, StatusCode};
use prometheus_client::metrics::counter::Counter;
use service_runtime::answer::{
    closed_early, push_field, read_answer, start_request, Answer, Closed, Failure, ReadBuf,
};
use smol::io::AsyncWriteExt as _;
use smol::Async;

/// How many times the slowest of its [`RECENT`] exchanges a reused connection rests after an
/// out-of-step answer (rule 3). A displaced answer comes about one exchange's
/// time after the forged one; twice that leaves room for an upstream's jitter.
/// Resting after every answer instead cost up to three times the connections
/// under steady load; after out-of-step ones only, a few more.
pub const REST_FACTOR: u32 = 2;

/// How many of a connection's latest exchanges set its rest (rule 3): more
/// than one, because the exchange that read a forged answer may have been
/// short; not all of them, because one exchange slowed by a busy machine
/// would make the connection rest long for good.
pub const RECENT: usize = 8;

/// How far from its recent exchanges an exchange must be to be out of step
/// (rule 3): four times faster than the fastest or slower than the slowest.
/// A busy machine's jitter crosses it now and then, and costs only that rest;
/// at 2 it crossed often enough to double the connections of 4 steady callers.
pub const OUT_OF_STEP: u32 = 4;

/// The most resting connections that make B open a fresh one rather than
/// cut a rest short (rule 3): it bounds what rests cost in connections (and
/// descriptors) under load, when out-of-step answers are jitter, not forgery.
pub const MAX_RESTING: usize = 4;

/// A pool of keep-alive connections to one upstream (A), used as surf's backend.
#[derive(Debug)]
pub struct Pool {
    /// `host:port` of A, as in `upstream.url`.
    authority: String,
    /// The address when `upstream.url` names an IP: no lookup per call.
    addr: Option<SocketAddr>,
    /// Idle connections, the longest idle first.
    idle: Mutex<Vec<Idle>>,
    /// Idle connections kept (`upstream.max_idle_connections`); more are closed
    /// after their answer.
    max_idle: usize,
    /// How long a connection may sit idle and still be reused.
    idle_timeout: Duration,
    counters: PoolCounters,
    config: Config,
}

/// What the pool counts, for B's `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct PoolCounters {
    /// TCP connections opened to A.
    pub opened: Counter,
    /// Reused connections that A had closed when B sent on them: the request
    /// went again on a fresh connection (rule 4).
    pub stale: Counter,
}

/// An idle connection: since when, and from when it may be handed out (rule 3).
#[derive(Debug)]
struct Idle {
    conn: Conn,
    since: Instant,
    ready_at: Instant,
}

impl Pool {
    /// A pool for `host:port` keeping up to `max_idle` idle connections for at
    /// most `idle_timeout` each, counting what it does in `counters`.
    pub fn new(
        host: &str,
        port: u16,
        (max_idle, idle_timeout): (usize, Duration),
        counters: PoolCounters,
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
            counters,
            config: Config::new(),
        }
    }

    /// A live idle connection that has rested, if there is one; expired and
    /// dead ones are closed on the way. The one idle longest goes first, so
    /// under load every connection rests as long as the pool allows (rule 3).
    fn checkout(&self) -> Option<Conn> {
        loop {
            let conn = {
                let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                idle.retain(|i| now.duration_since(i.since) < self.idle_timeout);
                let ready = idle.iter().position(|i| i.ready_at <= now);
                // Past MAX_RESTING resting ones, the first to be ready serves.
                let at = ready.or_else(|| {
                    (idle.len() >= MAX_RESTING)
                        .then(|| (0..idle.len()).min_by_key(|&i| idle[i].ready_at))
                        .flatten()
                })?;
                idle.remove(at).conn
            };
            if conn.is_idle_and_open() {
                return Some(conn);
            }
        }
    }

    /// Back to the pool after a complete answer, handed out again only after
    /// `rest` (rule 3).
    fn checkin(&self, conn: Conn, rest: Duration) {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.max_idle {
            idle.push(Idle {
                conn,
                since: now,
                ready_at: now + rest,
            });
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
        self.counters.opened.inc();
        Ok(Conn {
            io: stream,
            buf: ReadBuf::default(),
            recent: [Duration::ZERO; RECENT],
            exchanges: 0,
        })
    }

    /// One request and its answer on `conn`, timed; a complete answer that
    /// allows it puts the connection back in the pool.
    async fn round_trip(
        &self,
        mut conn: Conn,
        req: &Request,
        reused: bool,
    ) -> (Result<Answer, Failure>, Option<Conn>) {
        let started = Instant::now();
        match send_and_read(&mut conn, req, &self.authority).await {
            Ok(answer) => {
                let took = started.elapsed();
                let out_of_step = reused && conn.out_of_step(took);
                conn.recent[conn.exchanges % RECENT] = took;
                conn.exchanges += 1;
                if answer.reusable {
                    let rest = if out_of_step {
                        conn.recent.iter().max().copied().unwrap_or_default() * REST_FACTOR
                    } else {
                        Duration::ZERO
                    };
                    self.checkin(conn, rest);
                }
                (Ok(answer), None)
            }
            Err(failure) => (Err(failure), Some(conn)),
        }
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
        if let Some(conn) = self.checkout() {
            let before = conn.buf.received();
            match self.round_trip(conn, &req, true).await {
                (Ok(answer), _) => return Ok(into_response(answer)),
                // Rule 4: A closed it as B sent; no byte of an answer came.
                (Err(Failure::Closed(Closed::Fin | Closed::Reset)), Some(conn))
                    if conn.buf.received() == before =>
                {
                    self.counters.stale.inc();
                }
                (Err(failure), _) => return Err(failure.into()),
            }
        }
        let conn = self.connect().await?;
        match self.round_trip(conn, &req, false).await {
            (Ok(answer), _) => Ok(into_response(answer)),
            (Err(failure), _) => Err(failure.into()),
        }
    }

    fn set_config(&mut self, config: Config) -> http_types::Result<()> {
        self.config = config;
        Ok(())
    }

    fn config(&self) -> &Config {
        &self.config
    }
}

/// Writes `req` and reads its whole answer. Dropped at the deadline, it drops
/// the connection with it (rule 1).
async fn send_and_read(conn: &mut Conn, req: &Request, authority: &str) -> Result<Answer, Failure> {
    let mut head = Vec::with_capacity(512);
    encode(req, authority, &mut head);
    (&conn.io).write_all(&head).await.map_err(io_failure)?;
    // A cannot have answered yet: wait for its answer rather than try a read
    // that would fail (a syscall per call).
    conn.io.readable().await.map_err(io_failure)?;
    read_answer(&mut &conn.io, &mut conn.buf).await
}

fn io_failure(e: io::Error) -> Failure {
    match closed_early(e.kind()) {
        Some(how) => Failure::Closed(how),
        None => Failure::Read(e),
    }
}

/// The request head as it goes to A: B's calls are GETs without a body, so
/// the head is the whole request. `Host` is A's authority; every header
/// field of `req` follows as it is.
fn encode(req: &Request, authority: &str, out: &mut Vec<u8>) {
    let url = req.url();
    start_request(
        out,
        req.method().as_ref(),
        url.path(),
        url.query(),
        authority,
    );
    for (name, values) in req.iter() {
        for value in values.iter() {
            push_field(out, name.as_str(), value.as_str());
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// surf's `Response` for a decoded answer: the status if http-types names it
/// (else the first of its class), every header field that is ASCII, the
/// body, and the exact status as an [`ExactStatus`](service_runtime::answer::ExactStatus) extension, which is what
/// B reads.
fn into_response(answer: Answer) -> Response {
    let Answer { head, body, .. } = answer;
    let code = head.status.code;
    let named = StatusCode::try_from(code).unwrap_or(match code {
        100..=199 => StatusCode::Continue,
        200..=299 => StatusCode::Ok,
        300..=399 => StatusCode::MultipleChoice,
        400..=499 => StatusCode::BadRequest,
        _ => StatusCode::InternalServerError,
    });
    let mut res = Response::new(named);
    for (name, value) in head.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_string(name),
            HeaderValue::from_bytes(value),
        ) {
            res.append_header(name, value);
        }
    }
    res.ext_mut().insert(head.status);
    res.set_body(Body::from_bytes(body));
    res
}

/// One TCP connection to A, with its read buffer (bytes read ahead stay there).
#[derive(Debug)]
struct Conn {
    io: Async<TcpStream>,
    buf: ReadBuf,
    /// How long its last [`RECENT`] complete exchanges took: the slowest
    /// sets how long it rests (rule 3).
    recent: [Duration; RECENT],
    /// Complete exchanges it carried.
    exchanges: usize,
}

impl Conn {
    /// Whether an exchange that took `took` is out of step with the
    /// connection's recent ones: [`OUT_OF_STEP`] times faster than the fastest
    /// or slower than the slowest. An answer that was not this request's (a
    /// forged one already on its way, or a late one) comes at a time of the
    /// upstream's choosing, not after the usual work.
    fn out_of_step(&self, took: Duration) -> bool {
        let known = &self.recent[..self.exchanges.min(RECENT)];
        match (known.iter().min(), known.iter().max()) {
            (Some(&fastest), Some(&slowest)) => {
                took * OUT_OF_STEP < fastest || took > slowest * OUT_OF_STEP
            }
            _ => false,
        }
    }

    /// True if the connection is open with nothing unread: safe to send on.
    fn is_idle_and_open(&self) -> bool {
        let mut byte = [0u8; 1];
        // The socket is non-blocking: WouldBlock means open and quiet. Ok(0) is
        // A's FIN; Ok(1) is a stray byte no request asked for.
        self.buf.unread().is_empty()
            && match self.io.get_ref().peek(&mut byte) {
                Err(e) => e.kind() == io::ErrorKind::WouldBlock,
                Ok(_) => false,
            }
    }
}
