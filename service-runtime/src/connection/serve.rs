//! The loop of one connection: a head, its body, the handler, the answer;
//! again, until either side is done. It decides what the bytes mean and
//! what to log; the waits themselves are `conn.rs`'s.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use http_types::headers::CONNECTION;
use http_types::{Method, Request, StatusCode};
use smol::channel::Receiver;
use smol::future::FutureExt as _;

use crate::connection::clock::Clock;
use crate::connection::conn::{Answer, BodyError, Conn, Cut, Wait};
use crate::connection::transport::Transport;
use crate::head::{self, Framing};
use crate::http::{ApiError, Reply};
use crate::log::Line;
use crate::metrics::HttpMetrics;

/// The answer to `Expect: 100-continue`, sent before reading the body.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

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
/// answered, with `Connection: close`). Every wait is timed by `clock`.
pub async fn serve<S, C, H, Fut>(io: S, clock: C, ctx: &Context<H>, stop: &Receiver<()>)
where
    S: Transport,
    C: Clock,
    H: Fn(Request) -> Fut,
    Fut: Future<Output = Reply>,
{
    let mut conn = Conn::new(io, clock, ctx.timeout);
    // One wait on `stop` for the whole connection: a fresh one per request
    // would register a fresh listener each time.
    let mut stopped = std::pin::pin!(async {
        let _ = stop.recv().await;
    });
    let mut answered = false;

    loop {
        // 1. The head, within the timeout from now.
        conn.watchdog.progress();
        let began = conn.watchdog.clock().now();
        let mut head = loop {
            if conn.end > conn.start {
                match head::parse(conn.unused()) {
                    Ok(Some(head)) => break head,
                    Ok(None) => {}
                    Err(refusal) => {
                        let target = refusal.target.as_deref().unwrap_or("-");
                        return refuse(conn, ctx, refusal.error, target, began).await;
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
                    let error = timed_out("request head", ctx.timeout);
                    return refuse(conn, ctx, error, "-", began).await;
                }
            }
        };
        conn.start += head.len;

        // 2. The body, skipped (or kept, for a service that asks). It (and
        // the `100 Continue` before it) must be done within the timeout from now.
        if head.framing != Framing::Empty {
            let path = head.request.url().path().to_owned();
            conn.watchdog.progress();
            // Logs the request if the service is stopped while it is here.
            let in_flight = InFlight {
                ctx,
                clock: conn.watchdog.clock().clone(),
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
                return log_refusal(ctx, &error, &path, latency(&conn, began));
            }
            let skipped = conn.skip_body(head.framing, ctx.keep_bodies).await;
            in_flight.disarm();
            match skipped {
                Ok(body) if ctx.keep_bodies => head.request.set_body(body),
                Ok(_) => {}
                Err(BodyError::Refused(error)) => {
                    return refuse(conn, ctx, error, &path, began).await
                }
                Err(BodyError::TimedOut) => {
                    let error = timed_out("request body", ctx.timeout);
                    return refuse(conn, ctx, error, &path, began).await;
                }
                Err(BodyError::Closed) => {
                    let error = ApiError::bad_request(
                        "the client closed the connection before the request body was complete",
                    );
                    return log_refusal(ctx, &error, &path, latency(&conn, began));
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

/// The 408 for a client that let `what` stall past `timeout`.
fn timed_out(what: &str, timeout: Duration) -> ApiError {
    ApiError {
        status: StatusCode::RequestTimeout,
        message: format!("{what} not received within {} ms", timeout.as_millis()).into(),
    }
}

/// Time since `began`, on the connection's clock.
fn latency<S: Transport, C: Clock>(conn: &Conn<S, C>, began: Instant) -> Duration {
    conn.watchdog.clock().now().saturating_duration_since(began)
}

/// Answers `error`, logs and counts it, and closes after a short linger.
async fn refuse<S: Transport, C: Clock, H>(
    mut conn: Conn<S, C>,
    ctx: &Context<H>,
    error: ApiError,
    target: &str,
    began: Instant,
) {
    log_refusal(ctx, &error, target, latency(&conn, began));
    let res = error.into_response();
    if conn
        .answer(Answer::Whole(res), Method::Get, true, false)
        .await
        .is_ok()
    {
        conn.linger().await;
    }
}

/// The log line and count of a request the loop refused.
fn log_refusal<H>(ctx: &Context<H>, error: &ApiError, target: &str, latency: Duration) {
    let code = u16::from(error.status);
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
struct InFlight<'a, H, C: Clock> {
    ctx: &'a Context<H>,
    clock: C,
    path: &'a str,
    began: Instant,
    armed: bool,
}

impl<H, C: Clock> InFlight<'_, H, C> {
    /// The request left this stage on its own: nothing to log here.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl<H, C: Clock> Drop for InFlight<'_, H, C> {
    fn drop(&mut self) {
        if self.armed {
            let latency = self.clock.now().saturating_duration_since(self.began);
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
