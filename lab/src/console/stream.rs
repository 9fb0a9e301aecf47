//! The live state as Server-Sent Events (`GET /api/events`): a snapshot
//! when something changed, and at least every second (the charts' window
//! moves on), checked every [`TICK`]; at most [`MAX_STREAMS`] at once.
//! The outcomes and their colours go with each snapshot, from
//! [`Outcome`], so the page lists no KIND of its own.

use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use http_types::{Body, Response, StatusCode};
use serde_json::json;
use service_runtime::http::{ApiError, Reply};
use smol::io::AsyncRead;
use smol::Timer;
use std::future::Future as _;

use super::shared::Shared;
use super::tee::say;
use crate::experiment::outcome::Outcome;

/// How often the event stream looks for news: the live view is at most this
/// late. A snapshot goes out when something changed, and at least every
/// second (the charts' window moves on).
pub const TICK: Duration = Duration::from_millis(250);

/// Event streams at once: one per open tab. Past it a new stream is
/// answered 503 (the open ones, the page's user's among them, keep running)
/// and the refusal is said once until a stream closes.
pub const MAX_STREAMS: usize = 8;

/// Every outcome (`ok`, B's KINDs, `no_answer`) in the experiment's order,
/// with the charts' colours: the page lists no KIND of its own.
fn kinds() -> serde_json::Value {
    Outcome::all()
        .map(|o| {
            let (r, g, b) = o.colour();
            json!({ "name": o.as_str(), "colour": format!("#{r:02x}{g:02x}{b:02x}") })
        })
        .collect()
}

/// `text/event-stream` of the live state, or a 503 (and the connection
/// closed) when [`MAX_STREAMS`] are open.
pub fn events(shared: Arc<Shared>) -> Reply {
    let taken = shared
        .streams
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_STREAMS).then_some(n + 1)
        });
    if taken.is_err() {
        // Said once per episode: a flood of streams is one line, not a flood.
        if !shared.streams_refusing.swap(true, Ordering::AcqRel) {
            say(&format!(
                "refused an event stream: {MAX_STREAMS} are open, the most the console \
                 serves; close a tab (further refusals are not said until one closes)"
            ));
        }
        let mut res = ApiError {
            status: StatusCode::ServiceUnavailable,
            message: format!(
                "{MAX_STREAMS} event streams are open, the most the console serves: close a tab"
            )
            .into(),
        }
        .into_response();
        // Closed at once: a flood of refused streams must not hold slots
        // for the head timeout.
        res.insert_header("connection", "close");
        return Reply::Send(res);
    }
    let stream = Events {
        _slot: StreamSlot(shared.clone()),
        shared,
        timer: Timer::after(Duration::ZERO),
        buf: Vec::new(),
        pos: 0,
        sent_version: u64::MAX,
        sent_at: None,
    };
    let mut res = Response::new(StatusCode::Ok);
    res.set_body(Body::from_reader(smol::io::BufReader::new(stream), None));
    res.insert_header("content-type", "text/event-stream");
    Reply::Stream(res)
}

/// One of the [`MAX_STREAMS`], given back when the stream's body is dropped
/// (the browser left, or the connection was cut).
struct StreamSlot(Arc<Shared>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::AcqRel);
        self.0.streams_refusing.store(false, Ordering::Release);
    }
}

/// The event stream's body: a snapshot when the state changed (or a second
/// passed), checked every [`TICK`]. Endless; the loop ends it when the
/// browser leaves.
struct Events {
    /// Held for the stream's life, given back on drop.
    _slot: StreamSlot,
    shared: Arc<Shared>,
    timer: Timer,
    buf: Vec<u8>,
    pos: usize,
    sent_version: u64,
    sent_at: Option<Instant>,
}

impl Events {
    /// The next event, if there is news.
    fn news(&mut self) -> Option<Vec<u8>> {
        let now = self.shared.now_s();
        let live = self.shared.live();
        let stale = self
            .sent_at
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        if live.version() == self.sent_version && !stale {
            return None;
        }
        self.sent_version = live.version();
        self.sent_at = Some(Instant::now());
        let snapshot = json!({
            "live": live.snapshot(now),
            "deadline_ms": self.shared.deadline_ms.load(Ordering::Relaxed),
            "rate": self.shared.steady.rate(),
            "load_skipped": self.shared.steady.skipped(),
            "kinds": kinds(),
        });
        drop(live);
        Some(format!("data: {snapshot}\n\n").into_bytes())
    }
}

impl AsyncRead for Events {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            if self.pos < self.buf.len() {
                let n = out.len().min(self.buf.len() - self.pos);
                let from = self.pos;
                out[..n].copy_from_slice(&self.buf[from..from + n]);
                self.pos += n;
                return Poll::Ready(Ok(n));
            }
            if Pin::new(&mut self.timer).poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.timer.set_after(TICK);
            if let Some(event) = self.news() {
                self.buf = event;
                self.pos = 0;
            }
        }
    }
}
