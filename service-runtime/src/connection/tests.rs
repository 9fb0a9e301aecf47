//! The loop's guarantees, in process: the real `serve` over the in-memory
//! duplex, on a clock the test advances. Nothing here sleeps: after each
//! step the executor runs until no task is ready, so the loop is exactly
//! where it waits, and "not before the timeout" is checked a millisecond
//! before it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_types::{Request, Response, StatusCode};
use prometheus_client::registry::Registry;
use smol::channel::Sender;
use smol::{LocalExecutor, Task};

use crate::connection::conn::{LINGER, RDHUP_EVERY};
use crate::connection::memory::{duplex, ClientEnd, ManualClock};
use crate::connection::serve::{serve, Context};
use crate::head::MAX_HEAD_BYTES;
use crate::http::Reply;
use crate::metrics::HttpMetrics;

/// The client timeout of every test here.
const TIMEOUT: Duration = Duration::from_millis(300);

const MS: Duration = Duration::from_millis(1);

/// Polls after which a loop that has not waited is a busy loop (one step
/// of a test takes a few dozen).
const MAX_TICKS: usize = 10_000;

/// One connection being served, and the test's hold on all it touches.
struct Served {
    ex: LocalExecutor<'static>,
    /// `None` once the test has cut the connection (as the end of a
    /// shutdown grace does).
    task: Option<Task<()>>,
    client: ClientEnd,
    clock: ManualClock,
    registry: Registry,
    /// Dropped to stop the loop between requests.
    stop: Option<Sender<()>>,
}

/// The default handler: 200 with the request's path as the body, except
/// `/wait` (never answers; sets `dropped` when its future is dropped),
/// `/panic`, `/close`, `/reset` and `/big` (64 KiB).
fn handler(dropped: Arc<AtomicBool>) -> impl Fn(Request) -> smol::future::Boxed<Reply> {
    move |req: Request| {
        let dropped = dropped.clone();
        Box::pin(async move {
            let path = req.url().path().to_owned();
            match path.as_str() {
                "/wait" => {
                    let _guard = SetOnDrop(dropped);
                    std::future::pending().await
                }
                "/panic" => panic!("a handler's bug"),
                "/close" => Reply::Close,
                "/reset" => Reply::Reset,
                "/big" => {
                    let mut res = Response::new(StatusCode::Ok);
                    res.set_body(vec![b'x'; 64 * 1024]);
                    Reply::Send(res)
                }
                _ => {
                    let mut res = Response::new(StatusCode::Ok);
                    res.set_body(path);
                    Reply::Send(res)
                }
            }
        })
    }
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Served {
    /// A connection whose directions hold `capacity` bytes each; `dropped`
    /// is set when a `/wait` handler is dropped.
    fn start(capacity: usize, dropped: Arc<AtomicBool>) -> Self {
        let (server, client) = duplex(capacity);
        let clock = ManualClock::new();
        let mut registry = Registry::default();
        let ctx = Context {
            handler: handler(dropped),
            metrics: HttpMetrics::register(&mut registry),
            service: "test",
            timeout: TIMEOUT,
            keep_bodies: false,
        };
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let ex = LocalExecutor::new();
        let task = ex.spawn({
            let clock = clock.clone();
            async move { serve(server, clock, &ctx, &stopped).await }
        });
        let served = Self {
            ex,
            task: Some(task),
            client,
            clock,
            registry,
            stop: Some(stop),
        };
        served.settle();
        served
    }

    fn new() -> Self {
        Self::start(1024 * 1024, Arc::default())
    }

    /// Runs the loop until it waits on the client or the clock; a loop that
    /// never waits (a busy loop) fails the test rather than hang it.
    fn settle(&self) {
        for _ in 0..MAX_TICKS {
            if !self.ex.try_tick() {
                return;
            }
        }
        panic!("the loop is still busy after {MAX_TICKS} polls: it never waits");
    }

    /// The client sends `bytes`; the loop runs until it waits again.
    fn send(&self, bytes: &[u8]) {
        self.client.send(bytes);
        self.settle();
    }

    /// Time moves on by `by`; the loop runs until it waits again.
    fn advance(&self, by: Duration) {
        self.clock.advance(by);
        self.settle();
    }

    /// What the server wrote since last asked, with each `date` masked.
    fn answers(&self) -> String {
        mask_dates(&String::from_utf8_lossy(&self.client.take()))
    }

    /// Whether `serve` has returned.
    fn ended(&self) -> bool {
        self.task.as_ref().is_none_or(Task::is_finished)
    }

    /// `http_requests_total{endpoint="other",code}`, as `/metrics` shows it.
    fn refused(&self, code: u16) -> f64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        let series = format!("http_requests_total{{endpoint=\"other\",code=\"{code}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&series))
            .map_or(0.0, |v| v.parse().unwrap())
    }
}

/// `date: <anything>` as `date: *`: the one field that changes.
fn mask_dates(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("\r\ndate: ") {
        out.push_str(&rest[..at]);
        out.push_str("\r\ndate: *");
        let after = &rest[at + 8..];
        rest = &after[after.find("\r\n").unwrap_or(after.len())..];
    }
    out.push_str(rest);
    out
}

/// The bytes of a 200 whose body is `path`, as the loop writes it.
fn ok(path: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-type: text/plain;charset=utf-8\r\n\
         date: *\r\n\r\n{path}",
        path.len()
    )
}

/// The bytes of a refusal: `status line`, `Connection: close`, `{"error": message}`.
fn refusal(status: &str, message: &str) -> String {
    let body = format!("{{\"error\":\"{message}\"}}");
    format!(
        "HTTP/1.1 {status}\r\nconnection: close\r\ncontent-length: {}\r\n\
         content-type: application/json\r\ndate: *\r\n\r\n{body}",
        body.len()
    )
}

/// The loop refused with `code`: the exact bytes of its answer, its count,
/// and a lingering close.
fn assert_refused(s: &Served, code: u16, status: &str, message: &str) {
    assert_eq!(s.answers(), refusal(status, message), "{code}");
    assert_eq!(s.refused(code), 1.0, "{code}");
    assert_lingers_then_ends(s);
}

/// A millisecond before the deadline for the request's `what`, nothing is
/// answered or closed; at the deadline, a 408.
fn assert_cut_a_ms_later(s: &Served, what: &str) {
    assert_eq!(s.answers(), "");
    assert!(!s.client.server_closed());
    s.advance(MS);
    let message = format!("request {what} not received within 300 ms");
    assert_refused(s, 408, "408 Request Timeout", &message);
}

/// After a refusal: the server half-closed, and ends once the client does
/// (it lingers for the client's FIN, at most `LINGER`).
fn assert_lingers_then_ends(s: &Served) {
    assert!(s.client.server_closed(), "no FIN after the answer");
    assert!(!s.ended(), "closed before the client could read the answer");
    s.advance(LINGER);
    assert!(s.ended(), "still lingering after {LINGER:?}");
    assert!(!s.client.was_reset());
}

/// Half a head is cut off with a 408 at the timeout, not a millisecond before.
#[test]
fn half_a_head_is_cut_at_the_timeout_not_before() {
    let s = Served::new();
    s.send(b"GET /a HTTP/1.1\r\nHo");

    s.advance(TIMEOUT - MS);
    assert_cut_a_ms_later(&s, "head");
}

/// A body trickled a byte at a time has the timeout in all, from the end
/// of its head: bytes that come meanwhile do not move the deadline.
#[test]
fn a_trickled_body_is_cut_at_the_timeout_from_its_head() {
    let s = Served::new();
    s.send(b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nx");
    s.advance(TIMEOUT / 2);
    s.send(b"x");
    s.advance(TIMEOUT / 2 - MS);
    s.send(b"x");
    assert_cut_a_ms_later(&s, "body");
}

/// An idle keep-alive connection is closed at the timeout after its last
/// answer, silently (nothing to answer), and not before.
#[test]
fn an_idle_connection_closes_at_the_timeout() {
    let s = Served::new();
    s.send(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(s.answers(), ok("/a"));

    s.advance(TIMEOUT - MS);
    assert!(!s.client.server_closed());
    s.advance(MS);
    assert!(s.ended() && s.client.server_closed());
    assert_eq!(s.answers(), "");
}

/// A client that reads none of an answer is cut at the timeout.
#[test]
fn a_client_that_reads_nothing_is_cut_at_the_timeout() {
    let s = Served::start(1024, Arc::default());
    s.send(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n");

    s.advance(TIMEOUT - MS);
    assert!(!s.ended());
    s.advance(MS);
    assert!(s.ended());
}

/// Two requests in one write get two answers, in order; the connection
/// stays open for a third.
#[test]
fn pipelined_requests_are_answered_in_order() {
    let s = Served::new();
    s.send(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(s.answers(), ok("/one") + &ok("/two"));

    s.send(b"GET /three HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(s.answers(), ok("/three"));
    assert!(!s.ended());
}

/// A body is skipped byte-exact: the request behind it is answered.
#[test]
fn a_body_is_skipped_to_the_next_request() {
    let s = Served::new();
    s.send(b"POST /one HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nHELLOGET /two HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(s.answers(), ok("/one") + &ok("/two"));
}

/// A client that leaves while its handler works has the handler's future
/// dropped at once (its telemetry then logs 499), and nothing is written.
#[test]
fn a_client_that_leaves_drops_the_handler() {
    for leave in [ClientEnd::close, ClientEnd::shutdown] {
        let dropped = Arc::new(AtomicBool::new(false));
        let s = Served::start(1024 * 1024, dropped.clone());
        s.send(b"GET /wait HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(!dropped.load(Ordering::SeqCst));

        leave(&s.client);
        s.settle();
        assert!(dropped.load(Ordering::SeqCst), "the handler still runs");
        assert!(s.ended());
        assert_eq!(s.answers(), "");
    }
}

/// Behind a buffer full of pipelined bytes, a client's FIN is still seen,
/// within one probe ([`RDHUP_EVERY`]).
#[test]
fn a_client_that_leaves_behind_a_full_buffer_is_seen() {
    let dropped = Arc::new(AtomicBool::new(false));
    let s = Served::start(1024 * 1024, dropped.clone());
    let mut request = b"GET /wait HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
    request.resize(request.len() + MAX_HEAD_BYTES + 100, b'X');
    s.send(&request);
    s.client.shutdown();
    s.settle();
    assert!(!dropped.load(Ordering::SeqCst), "seen without the probe");

    s.advance(RDHUP_EVERY);
    assert!(
        dropped.load(Ordering::SeqCst),
        "not seen after {RDHUP_EVERY:?}"
    );
    assert!(s.ended());
}

/// Every head the loop refuses gets its status, its exact bytes, a count
/// and a lingering close.
#[test]
fn refusals_have_their_status_and_exact_bytes() {
    let long_line = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_HEAD_BYTES));
    let long_fields = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_HEAD_BYTES));
    let cases: [(&[u8], u16, &str, &str); 7] = [
        (
            b"GARBAGE\r\n\r\n",
            400,
            "400 Bad Request",
            "malformed request head (invalid token)",
        ),
        (
            b"GET /a HTTP/1.1\nHost: a\n\n",
            400,
            "400 Bad Request",
            "line ends in a bare LF; HTTP needs CRLF",
        ),
        (
            long_line.as_bytes(),
            414,
            "414 URI Too Long",
            "request line is over 8192 bytes",
        ),
        (
            long_fields.as_bytes(),
            431,
            "431 Request Header Fields Too Large",
            "request header fields are over 8192 bytes",
        ),
        (
            b"FOO /a HTTP/1.1\r\nHost: a\r\n\r\n",
            501,
            "501 Not Implemented",
            "method \\\"FOO\\\" is not implemented",
        ),
        (
            b"GET /a HTTP/2.0\r\nHost: a\r\n\r\n",
            505,
            "505 HTTP Version Not Supported",
            "only HTTP/1.0 and HTTP/1.1 are served",
        ),
        (
            b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n",
            413,
            "413 Payload Too Large",
            "request body of 2000000 bytes is over 1048576",
        ),
    ];
    for (bytes, code, status, message) in cases {
        let s = Served::new();
        s.send(bytes);
        assert_refused(&s, code, status, message);
    }
}

/// A handler that panics is answered 500, and the connection lives on.
#[test]
fn a_panicking_handler_is_answered_500() {
    let s = Served::new();
    s.send(b"GET /panic HTTP/1.1\r\nHost: a\r\n\r\n");
    let body = "{\"error\":\"internal error\"}";
    assert_eq!(
        s.answers(),
        format!(
            "HTTP/1.1 500 Internal Server Error\r\ncontent-length: {}\r\n\
             content-type: application/json\r\ndate: *\r\n\r\n{body}",
            body.len()
        )
    );
    s.send(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(s.answers(), ok("/a"));
}

/// `Reply::Close` closes with a FIN, `Reply::Reset` with an RST; neither writes.
#[test]
fn close_and_reset_are_done_as_asked() {
    let s = Served::new();
    s.send(b"GET /close HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(s.client.server_closed() && !s.client.was_reset());
    assert_eq!(s.answers(), "");

    let s = Served::new();
    s.send(b"GET /reset HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(s.ended() && s.client.was_reset());
    assert_eq!(s.answers(), "");
}

/// A stop ends an idle connection at once; a request in flight is answered
/// first, with `Connection: close`.
#[test]
fn a_stop_waits_for_the_request_in_flight() {
    let mut s = Served::new();
    s.send(b"GET /a HTTP/1.1\r\nHost: a\r\n");
    drop(s.stop.take());
    s.settle();
    assert!(!s.ended(), "a request half read was dropped");
    s.send(b"\r\n");
    assert!(s.answers().contains("connection: close\r\n"));
    assert!(s.ended());

    let mut s = Served::new();
    drop(s.stop.take());
    s.settle();
    assert!(s.ended() && s.client.server_closed());
}

/// A connection cut while its request body is read (the shutdown grace ran
/// out) still counts the request, as `0`: closed without an answer.
#[test]
fn a_request_cut_while_its_body_is_read_is_counted() {
    let mut s = Served::new();
    s.send(b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nx");
    assert_eq!(s.refused(0), 0.0);

    // A dropped task's future is dropped when the executor next runs.
    drop(s.task.take());
    s.settle();
    assert_eq!(s.refused(0), 1.0);
    assert!(s.client.server_closed());
    assert_eq!(s.answers(), "");
}
