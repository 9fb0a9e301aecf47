//! One request's telemetry, the same in both services: its trace and span,
//! its clock, and at the end its log line and its metrics.
//!
//! Every request that reached a handler gets exactly one line. A handler
//! ends its request's telemetry with [`RequestTelemetry::finish`]; one
//! dropped before that (the handler's future dropped because the client
//! closed, or because the shutdown grace ran out) writes its own line as it
//! goes: `status=client_closed http_status=499` (nginx's code for it) or
//! `status=aborted http_status=0`. Which of the two is told by the server
//! through [`grace_expired`]: this module reads no other module's state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use fastrace::collector::SpanContext;
use fastrace::Span;
use http_types::Request;

use crate::log::Line;
use crate::metrics::HttpMetrics;
use crate::otlp::SPAN_KIND;
use crate::trace;
use crate::wire::CLIENT_CLOSED;

/// Set once the shutdown grace has run out and the server is cutting the
/// requests still in flight. Process-wide, as a shutdown is.
static GRACE_EXPIRED: AtomicBool = AtomicBool::new(false);

/// Says that the shutdown grace has run out (the server calls it): every
/// request cut from now on is logged `status=aborted`, not `client_closed`.
pub fn grace_expired() {
    GRACE_EXPIRED.store(true, Ordering::Relaxed);
}

/// The telemetry of one request being served.
#[derive(Debug)]
pub struct RequestTelemetry {
    service: &'static str,
    /// The trace this request belongs to (the caller's, or fresh).
    pub trace: SpanContext,
    /// This request's root span.
    pub span: Span,
    /// The trace id as logged, formatted once.
    pub trace_id: String,
    /// The endpoint's fixed name for metrics (`/echo`, ...); `other` until
    /// the handler routes the request.
    pub endpoint: &'static str,
    /// The path as requested, for the log line.
    path: String,
    metrics: HttpMetrics,
    /// Fields for this request's line, whichever way it ends (see [`keep`](Self::keep)).
    kept: Vec<(&'static str, String)>,
    started: Instant,
    finished: bool,
}

impl RequestTelemetry {
    /// Starts the clock and the span for `req`, to be counted in `metrics`.
    pub fn begin(service: &'static str, req: &Request, metrics: &HttpMetrics) -> Self {
        let trace = trace::incoming(req);
        Self {
            service,
            trace,
            span: Span::root(service, trace).with_property(|| (SPAN_KIND, "server")),
            trace_id: trace::trace_id(&trace),
            endpoint: "other",
            path: req.url().path().to_owned(),
            metrics: metrics.clone(),
            kept: Vec::new(),
            started: Instant::now(),
            finished: false,
        }
    }

    /// Adds `key=value` to this request's line, whichever way the request
    /// ends: answered, or cut short by its client or by a shutdown (A's
    /// `fault=delay` on a 499 says what A was doing when the client left).
    pub fn keep(&mut self, key: &'static str, value: String) {
        self.kept.push((key, value));
    }

    /// The path as requested.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// This request's span as a parent, for spans of work it does downstream
    /// (B's calls to A).
    pub fn context(&self) -> SpanContext {
        trace::context(&self.span, self.trace)
    }

    /// Writes the request's log line (`status`, `http_status`, then `extra`
    /// fields before `latency_ms`) and records its metrics, where `code` is
    /// the status that went out on the wire (B logs a timeout as 504 but
    /// answers it 503; `http_requests_total{code}` says what was sent).
    pub fn finish(
        mut self,
        status: &'static str,
        http_status: u16,
        code: u16,
        extra: impl FnOnce(Line) -> Line,
    ) {
        self.finished = true;
        self.write(status, http_status, code, extra);
    }

    fn write(
        &self,
        status: &'static str,
        http_status: u16,
        code: u16,
        extra: impl FnOnce(Line) -> Line,
    ) {
        let latency = self.started.elapsed();
        self.span.add_properties(|| {
            [
                ("http.route", self.endpoint.to_owned()),
                ("http.response.status_code", http_status.to_string()),
            ]
        });
        let mut line = Line::new(self.service)
            .client("endpoint", &self.path)
            .str("status", status)
            .num("http_status", http_status);
        for (key, value) in &self.kept {
            line = line.str(key, value);
        }
        extra(line)
            .num("latency_ms", latency.as_millis())
            .str("trace_id", &self.trace_id)
            .emit();
        self.metrics.record(self.endpoint, code, latency);
    }
}

impl Drop for RequestTelemetry {
    /// The line of a request whose handler never finished it.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let (status, http_status, error) = if std::thread::panicking() {
            ("error", 500, "the handler panicked; answered 500")
        } else if GRACE_EXPIRED.load(Ordering::Relaxed) {
            ("aborted", 0, "the shutdown grace ran out before the answer")
        } else {
            (
                "client_closed",
                CLIENT_CLOSED,
                "the client closed the connection before the answer",
            )
        };
        self.write(status, http_status, http_status, |line| {
            line.str("error", error)
        });
    }
}
