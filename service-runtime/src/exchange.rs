//! The bookkeeping of one request, the same in both services: its trace and
//! span, its clock, and at the end its log line and its metrics.

use std::time::Instant;

use fastrace::collector::SpanContext;
use fastrace::Span;
use http_types::Request;

use crate::log::Line;
use crate::metrics::HttpMetrics;
use crate::trace;

/// One request being served.
#[derive(Debug)]
pub struct Exchange {
    service: &'static str,
    /// The trace this request belongs to (the caller's, or fresh).
    pub trace: SpanContext,
    /// This request's root span.
    pub span: Span,
    /// The trace id as logged, formatted once.
    pub trace_id: String,
    started: Instant,
}

/// How a request ended, for its log line and metrics.
#[derive(Debug, Clone, Copy)]
pub struct Ending<'a> {
    /// A fixed name for metrics (`/echo`, ..., `other` for unknown paths).
    pub endpoint: &'static str,
    /// The path as requested, for the log line.
    pub path: &'a str,
    /// `ok`, `error`, `dropped`, `abandoned`.
    pub status: &'static str,
    /// The status logged (0 when no answer was sent).
    pub http_status: u16,
}

impl Exchange {
    /// Starts the clock and the span for `req`.
    pub fn begin(service: &'static str, req: &Request) -> Self {
        let trace = trace::incoming(req);
        Self {
            service,
            trace,
            span: trace::request_span(service, trace),
            trace_id: trace::trace_id(&trace),
            started: Instant::now(),
        }
    }

    /// The `traceparent` to send downstream from inside this request.
    pub fn traceparent(&self) -> String {
        trace::outgoing(&self.span, self.trace)
    }

    /// Writes the request's log line (with `extra` fields before `latency_ms`)
    /// and records its metrics.
    pub fn finish(
        self,
        ending: Ending<'_>,
        metrics: &HttpMetrics,
        extra: impl FnOnce(Line) -> Line,
    ) {
        let latency = self.started.elapsed();
        let line = Line::new(self.service)
            .str("endpoint", ending.path)
            .str("status", ending.status)
            .num("http_status", ending.http_status);
        extra(line)
            .num("latency_ms", latency.as_millis())
            .str("trace_id", &self.trace_id)
            .emit();
        metrics.record(ending.endpoint, ending.http_status, latency);
    }
}
