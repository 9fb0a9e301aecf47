//! One connection's life: read a head, skip its body, ask the handler, write
//! the answer; again, until either side is done.
//!
//! async-h1 writes our answers (its `Encoder` is sound); reading is done
//! here, because its server `decode` is not (see `head.rs`). What this loop
//! guarantees, whatever a client sends:
//!
//! 1. **Bounded memory.** Each connection has one buffer of
//!    [`MAX_HEAD_BYTES`], allocated once and kept across its requests. Heads
//!    are parsed in it; bodies pass through it and are dropped (or, for a
//!    service that keeps them, A as a proxy, kept up to `MAX_BODY_BYTES`); bytes read
//!    ahead stay in it for the next request, so pipelined requests are
//!    answered in order and nothing read is lost.
//! 2. **Bounded waits.** Each wait on the client has the timeout
//!    (`server.header_timeout_ms`) in all, not per read: a head, from the
//!    moment the loop starts waiting for it (an idle keep-alive connection is
//!    closed then); the rest of a request (a `100 Continue` and the body),
//!    from the end of its head; an answer, or each piece of a streamed one,
//!    from when it is ready to send. A client that trickles a byte now and
//!    then holds a slot no longer than one that sends nothing. One timer per
//!    connection does all this ([`Watchdog`]).
//! 3. **Nothing closes in silence.** A refused head or body gets its status
//!    (400, 408, 413, 414, 431, 501, 505) with a JSON error, one log line and
//!    a count in `http_requests_total`; then the connection is closed after
//!    a short linger, so the client can read the answer.
//! 4. **A client that leaves is noticed.** While the handler works, the
//!    socket is watched: on EOF or an error the handler's future is dropped
//!    at once (its exchange logs `status=client_closed http_status=499`).
//!    A half-close (the client shuts its sending side) counts as leaving, as
//!    in nginx. When pipelined bytes fill the buffer, the peer's FIN is
//!    still seen, by polling for `POLLRDHUP` every [`RDHUP_EVERY`] (where
//!    the platform has no `POLLRDHUP`, only a full close or a reset is seen
//!    then: see [`HUNG_UP`]).
//! 5. **The handler says what it wants** with a [`Reply`]; a handler that
//!    panics is answered 500 and the service lives on.

use std::future::Future;
use std::io;
use std::net::{Shutdown, TcpStream};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::time::{Duration, Instant};

use async_h1::server::Encoder;
use http_types::headers::CONNECTION;
use http_types::{Method, Request, Response, StatusCode};
use rustix::event::PollFlags;
use smol::channel::Receiver;
use smol::future::FutureExt as _;
use smol::io::{AsyncReadExt as _, AsyncWriteExt as _};
use smol::{Async, Timer};

use crate::body::Skip;
use crate::head::{self, Framing, MAX_HEAD_BYTES};
use crate::http::{ApiError, Reply};
use crate::log::Line;
use crate::metrics::HttpMetrics;

/// How often a connection whose buffer is full checks whether its client
/// has gone (see [`Conn::until_hangup`]).
const RDHUP_EVERY: Duration = Duration::from_millis(20);

/// What `poll` reports when a client has gone though unread bytes wait
/// before its FIN. `POLLRDHUP` (the peer shut its sending side) exists on
/// Linux, Android, FreeBSD and illumos. Elsewhere (macOS, Windows) only
/// `POLLHUP` is there: a client that closes or resets is seen where the
/// platform reports that as `POLLHUP` or `POLLERR`; one that only
/// half-closes behind a full buffer may be seen only when the handler has
/// finished. Not checked there by CI (macOS cannot run here, and Wine's poll
/// is Linux's underneath); docs/robustness.md says so.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "illumos"
))]
const HUNG_UP: PollFlags = PollFlags::RDHUP.union(PollFlags::HUP);
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "illumos"
)))]
const HUNG_UP: PollFlags = PollFlags::HUP;

/// The events asked of `poll`; only [`HUNG_UP`] and `POLLERR` in the answer
/// count. `POLLHUP` and `POLLERR` are reported whether asked or not, but
/// macOS's poll is built on kqueue, which watches a socket only for the
/// events asked and carries a peer's EOF on a read watch: so reading is
/// asked too (the buffered bytes make it true at once; ignored). Windows'
/// `WSAPoll` refuses a request for `POLLHUP` (`WSAEINVAL`): there only
/// readable data is asked.
#[cfg(not(windows))]
const WATCH: PollFlags = HUNG_UP.union(PollFlags::IN);
#[cfg(windows)]
const WATCH: PollFlags = PollFlags::RDNORM;

/// The answer to `Expect: 100-continue`, sent before reading the body.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// After a refusal, how long the loop keeps reading (and dropping) what the
/// client still sends before it closes, so that the close is a FIN the
/// client can read the answer before, not an RST that destroys it (nginx's
/// `lingering_time`, much shortened: the slot is held meanwhile).
const LINGER: Duration = Duration::from_millis(500);

/// What a connection's loop needs from its service.
#[derive(Debug)]
pub struct Context<H> {
    /// Answers each request.
    pub handler: H,
    /// Where refused requests are counted.
    pub metrics: HttpMetrics,
    /// `service=` of the loop's own log lines.
    pub service: &'static str,
    /// The longest wait on a client without progress.
    pub timeout: Duration,
    /// Hand each request's body to the handler (at most
    /// [`MAX_BODY_BYTES`](crate::head::MAX_BODY_BYTES), as checked while it is
    /// read); otherwise bodies are skipped unread.
    pub keep_bodies: bool,
}

/// Serves one connection until the client closes, breaks a rule, is too
/// slow, or `stop` is closed (between requests only: a request in flight is
/// answered, with `Connection: close`).
pub async fn serve<H, Fut>(socket: Async<TcpStream>, ctx: &Context<H>, stop: &Receiver<()>)
where
    H: Fn(Request) -> Fut,
    Fut: Future<Output = Reply>,
{
    // Answers are one write each; without this each would wait for the
    // peer's delayed ACK (~40 ms) whenever a write is split.
    let _ = socket.get_ref().set_nodelay(true);
    let mut conn = Conn {
        socket,
        buf: vec![0; MAX_HEAD_BYTES].into_boxed_slice(),
        start: 0,
        end: 0,
        watchdog: Watchdog::new(ctx.timeout),
    };
    // One wait on `stop` for the whole connection: a fresh one per request
    // would register a fresh listener each time.
    let mut stopped = std::pin::pin!(async {
        let _ = stop.recv().await;
    });
    let mut answered = false;

    loop {
        // 1. The head, within the timeout from now.
        conn.watchdog.progress();
        let began = Instant::now();
        let mut head = loop {
            if conn.end > conn.start {
                match head::parse(&conn.buf[conn.start..conn.end]) {
                    Ok(Some(head)) => break head,
                    Ok(None) => {}
                    Err(refusal) => {
                        let target = refusal.target.as_deref().unwrap_or("-");
                        return conn.refuse(ctx, refusal.error, target, began).await;
                    }
                }
            }
            conn.compact();
            let idle = conn.start == conn.end;
            // Between requests, a stop ends the connection; a keep-alive
            // client sends its next head only after our answer, so wait for
            // it rather than try a read that would fail.
            let stop = idle.then_some(stopped.as_mut());
            match conn.read(stop, idle && answered).await {
                Wait::Done(Ok(0) | Err(_)) | Wait::Stopped => return,
                Wait::Done(Ok(n)) => conn.end += n,
                Wait::TimedOut if idle => return,
                Wait::TimedOut => {
                    let error = timed_out("request head", ctx.timeout, StatusCode::RequestTimeout);
                    return conn.refuse(ctx, error, "-", began).await;
                }
            }
        };
        conn.start += head.len;

        // 2. The body, skipped: neither service reads one. It (and the
        // `100 Continue` before it) must be done within the timeout from now.
        if head.framing != Framing::Empty {
            let path = head.request.url().path().to_owned();
            conn.watchdog.progress();
            // Logs the request if the service is stopped while it is here.
            let in_flight = InFlight {
                ctx,
                path: &path,
                began,
                armed: true,
            };
            // HTTP/1.0 has no 100 (RFC 9110 §15.2): such a client just sends.
            if head.expect_continue && !head.http10 && conn.write_all(CONTINUE).await.is_err() {
                in_flight.disarm();
                let error = ApiError::bad_request(
                    "the client closed the connection before its request body",
                );
                return log_refusal(ctx, &error, &path, began);
            }
            let skipped = conn.skip_body(head.framing, ctx.keep_bodies).await;
            in_flight.disarm();
            match skipped {
                Ok(body) if ctx.keep_bodies => head.request.set_body(body),
                Ok(_) => {}
                Err(BodyError::Refused(error)) => {
                    return conn.refuse(ctx, error, &path, began).await
                }
                Err(BodyError::TimedOut) => {
                    let error = timed_out("request body", ctx.timeout, StatusCode::RequestTimeout);
                    return conn.refuse(ctx, error, &path, began).await;
                }
                Err(BodyError::Closed) => {
                    let error = ApiError::bad_request(
                        "the client closed the connection before the request body was complete",
                    );
                    return log_refusal(ctx, &error, &path, began);
                }
            }
        }

        // 3. The handler, dropped if the client leaves meanwhile.
        let method = head.request.method();
        let handled = AssertUnwindSafe((ctx.handler)(head.request)).catch_unwind();
        let handled = async { Some(handled.await) }.or(async {
            conn.until_closed().await;
            None
        });
        let res = match handled.await {
            None => return,
            // A FIN, as promised, even with unread bytes (which would make it an RST).
            Some(Ok(Reply::Close)) => return conn.linger().await,
            Some(Ok(Reply::Reset)) => return conn.reset(),
            Some(Ok(Reply::Raw(bytes))) => {
                conn.watchdog.progress();
                if conn.write_all(&bytes).await.is_ok() {
                    conn.linger().await;
                }
                return;
            }
            Some(Ok(Reply::Send(res))) => Answer::Whole(res),
            Some(Ok(Reply::Stream(res))) => Answer::Streamed(res),
            Some(Err(_panic)) => {
                Answer::Whole(ApiError::internal("internal error").into_response())
            }
        };

        // 4. The answer, then the next request unless either side closes.
        let close = !head.keep_alive
            || stop.is_closed()
            || res
                .get()
                .header(CONNECTION)
                .is_some_and(|c| c.as_str().eq_ignore_ascii_case("close"));
        let written = conn.answer(res, method, close, head.http10).await;
        match written {
            Ok(()) if !close => answered = true,
            Ok(()) => return conn.linger_if_unread().await,
            Err(Cut::TimedOut) => {
                return Line::new(ctx.service)
                    .str("event", "connection_cut")
                    .str(
                        "error",
                        &format!(
                            "the client read none of the answer for {} ms",
                            ctx.timeout.as_millis()
                        ),
                    )
                    .emit()
            }
            Err(Cut::Closed) => return,
        }
    }
}

/// The error for a client that let `what` stall past `timeout`.
fn timed_out(what: &str, timeout: Duration, status: StatusCode) -> ApiError {
    ApiError {
        status,
        message: format!("{what} not received within {} ms", timeout.as_millis()).into(),
    }
}

/// The log line and count of a request the loop refused.
fn log_refusal<H>(ctx: &Context<H>, error: &ApiError, target: &str, began: Instant) {
    let code = u16::from(error.status);
    let latency = began.elapsed();
    Line::new(ctx.service)
        .client("endpoint", target)
        .str("status", "error")
        .num("http_status", code)
        .str("error", &error.message)
        .num("latency_ms", latency.as_millis())
        .emit();
    ctx.metrics.record("other", code, latency);
}

/// A request whose head was read and whose handler has not started: if the
/// connection is dropped here (the shutdown grace ran out), it still gets
/// its line.
struct InFlight<'a, H> {
    ctx: &'a Context<H>,
    path: &'a str,
    began: Instant,
    armed: bool,
}

impl<H> InFlight<'_, H> {
    /// The request left this stage on its own: nothing to log here.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl<H> Drop for InFlight<'_, H> {
    fn drop(&mut self) {
        if self.armed {
            let latency = self.began.elapsed();
            Line::new(self.ctx.service)
                .client("endpoint", self.path)
                .str("status", "aborted")
                .num("http_status", 0)
                .str(
                    "error",
                    "the shutdown grace ran out while the request body was read",
                )
                .num("latency_ms", latency.as_millis())
                .emit();
            self.ctx.metrics.record("other", 0, latency);
        }
    }
}

/// The outcome of one wait on the client.
enum Wait<T> {
    Done(T),
    TimedOut,
    Stopped,
}

/// Why an answer could not be written.
enum Cut {
    TimedOut,
    Closed,
}

/// Why a body could not be skipped.
enum BodyError {
    Refused(ApiError),
    TimedOut,
    Closed,
}

/// An answer ready to write.
enum Answer {
    Whole(Response),
    Streamed(Response),
}

impl Answer {
    fn get(&self) -> &Response {
        match self {
            Answer::Whole(res) | Answer::Streamed(res) => res,
        }
    }
}

/// A connection's socket and buffer: `buf[start..end]` is read but unused.
struct Conn {
    socket: Async<TcpStream>,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    watchdog: Watchdog,
}

impl Conn {
    /// Moves unused bytes to the front, so the buffer has room to read into.
    fn compact(&mut self) {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
    }

    /// One read into the free end of the buffer, within the watchdog.
    async fn read(
        &mut self,
        stop: Option<Pin<&mut impl Future<Output = ()>>>,
        wait_readable: bool,
    ) -> Wait<io::Result<usize>> {
        let Conn {
            socket,
            buf,
            end,
            watchdog,
            ..
        } = self;
        let read = async {
            if wait_readable {
                socket.readable().await?;
            }
            (&*socket).read(&mut buf[*end..]).await
        };
        let stopped = async {
            match stop {
                Some(stop) => {
                    stop.await;
                    Wait::Stopped
                }
                None => std::future::pending().await,
            }
        };
        async { Wait::Done(read.await) }
            .or(async {
                watchdog.expired().await;
                Wait::TimedOut
            })
            .or(stopped)
            .await
    }

    /// Skips a body of `framing`, each read making progress within the timeout.
    /// Skips a body of `framing` before the watchdog's deadline.
    /// Its data, when `keep` (else nothing is kept).
    async fn skip_body(&mut self, framing: Framing, keep: bool) -> Result<Vec<u8>, BodyError> {
        let mut skip = Skip::new(framing);
        let mut body = Vec::new();
        loop {
            let used = skip
                .feed_into(&self.buf[self.start..self.end], keep.then_some(&mut body))
                .map_err(BodyError::Refused)?;
            self.start += used;
            if skip.is_done() {
                return Ok(body);
            }
            self.compact();
            match self
                .read(None::<Pin<&mut std::future::Pending<()>>>, false)
                .await
            {
                Wait::Done(Ok(0) | Err(_)) => return Err(BodyError::Closed),
                Wait::Done(Ok(n)) => self.end += n,
                Wait::TimedOut | Wait::Stopped => return Err(BodyError::TimedOut),
            }
        }
    }

    /// Completes when the client closes (EOF or error). Bytes it sends
    /// meanwhile (the next pipelined request) are kept while there is room;
    /// with the buffer full, a close can no longer be seen, so this waits on.
    async fn until_closed(&mut self) {
        loop {
            self.compact();
            if self.end == self.buf.len() {
                return self.until_hangup().await;
            }
            if self.socket.readable().await.is_err() {
                return;
            }
            match self.socket.get_ref().peek(&mut [0u8; 1]) {
                Ok(0) => return,
                Ok(_) => match (&self.socket).read(&mut self.buf[self.end..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => self.end += n,
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    }

    /// Completes when the peer has shut its side, though unread bytes wait
    /// before its FIN: `poll(POLLRDHUP)`, checked every [`RDHUP_EVERY`]
    /// (async-io has no wait for it; this runs only while the buffer is full).
    async fn until_hangup(&self) {
        use rustix::event::{poll, PollFd, Timespec};
        loop {
            Timer::after(RDHUP_EVERY).await;
            let mut fds = [PollFd::new(self.socket.get_ref(), WATCH)];
            let now = Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            match poll(&mut fds, Some(&now)) {
                Ok(_) if fds[0].revents().intersects(HUNG_UP | PollFlags::ERR) => return,
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                // A socket that cannot be polled is not a client that left:
                // the handler runs to its end, as on a platform without this.
                Err(_) => return std::future::pending().await,
            }
        }
    }

    /// Writes all of `bytes` before the watchdog's deadline (the caller
    /// marks when the answer was ready).
    async fn write_all(&mut self, bytes: &[u8]) -> Result<(), Cut> {
        let mut pos = 0;
        while pos < bytes.len() {
            let Conn {
                socket, watchdog, ..
            } = self;
            let wrote = async { Some((&*socket).write(&bytes[pos..]).await) }
                .or(async {
                    watchdog.expired().await;
                    None
                })
                .await;
            match wrote {
                Some(Ok(0) | Err(_)) => return Err(Cut::Closed),
                Some(Ok(n)) => pos += n,
                None => return Err(Cut::TimedOut),
            }
        }
        Ok(())
    }

    /// Writes an answer: whole in one write, or streamed piece by piece.
    async fn answer(
        &mut self,
        answer: Answer,
        method: Method,
        close: bool,
        http10: bool,
    ) -> Result<(), Cut> {
        let (mut res, streamed) = match answer {
            Answer::Whole(res) => (res, false),
            Answer::Streamed(res) => (res, true),
        };
        if close {
            res.insert_header(CONNECTION, "close");
        } else if http10 {
            res.insert_header(CONNECTION, "keep-alive");
        }
        if !streamed {
            // Head and body in one write: one packet, one wake-up of the client.
            let bytes = crate::http::encode(res, method)
                .await
                .map_err(|_| Cut::Closed)?;
            self.watchdog.progress();
            return self.write_all(&bytes).await;
        }
        let mut encoder = Encoder::new(res, method);
        // Each piece as it comes; a client that leaves during a stall is noticed.
        let mut piece = vec![0u8; 8 * 1024];
        loop {
            let read = async { Some(encoder.read(&mut piece).await) }.or(async {
                self.until_closed().await;
                None
            });
            match read.await {
                Some(Ok(0)) => return Ok(()),
                Some(Ok(n)) => {
                    self.watchdog.progress();
                    self.write_all(&piece[..n]).await?;
                }
                Some(Err(_)) | None => return Err(Cut::Closed),
            }
        }
    }

    /// Closes with an RST instead of a FIN: `SO_LINGER` of zero, then close.
    fn reset(self) {
        let _ = socket2::SockRef::from(self.socket.get_ref()).set_linger(Some(Duration::ZERO));
    }

    /// Answers `error`, logs and counts it, and closes after a short linger.
    async fn refuse<H>(mut self, ctx: &Context<H>, error: ApiError, target: &str, began: Instant) {
        log_refusal(ctx, &error, target, began);
        let res = error.into_response();
        if self
            .answer(Answer::Whole(res), Method::Get, true, false)
            .await
            .is_ok()
        {
            self.linger().await;
        }
    }

    /// Closes after an answer with `Connection: close`, lingering only if
    /// the client sent bytes we did not read (else the close would be an RST).
    async fn linger_if_unread(self) {
        if self.start < self.end {
            self.linger().await;
        }
    }

    /// Half-closes, then reads and drops what the client still sends, for at
    /// most [`LINGER`], so the close does not destroy the answer in flight.
    async fn linger(self) {
        let _ = self.socket.get_ref().shutdown(Shutdown::Write);
        let drain = async {
            let mut sink = [0u8; 4096];
            while matches!((&self.socket).read(&mut sink).await, Ok(n) if n > 0) {}
        };
        drain
            .or(async {
                Timer::after(LINGER).await;
            })
            .await;
    }
}

/// One timer per connection for every wait on the client.
///
/// Arming a timer costs a wake-up of the reactor; arming one per request (as
/// async-h1's loop does) costs one per request. This timer is armed once and,
/// when it fires, re-armed only if progress moved the deadline meanwhile.
struct Watchdog {
    timer: Timer,
    /// When `timer` fires (it fires once per arming).
    armed: Instant,
    since: Instant,
    timeout: Duration,
}

impl Watchdog {
    fn new(timeout: Duration) -> Self {
        let since = Instant::now();
        Self {
            timer: Timer::at(since + timeout),
            armed: since + timeout,
            since,
            timeout,
        }
    }

    /// The client made progress: the next deadline is a full timeout away.
    fn progress(&mut self) {
        self.since = Instant::now();
    }

    /// Completes once `timeout` has passed since the last progress.
    async fn expired(&mut self) {
        loop {
            let deadline = self.since + self.timeout;
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            if self.armed <= now {
                // It fired for an older deadline: arm it for this one.
                self.timer.set_at(deadline);
                self.armed = deadline;
            }
            (&mut self.timer).await;
        }
    }
}
