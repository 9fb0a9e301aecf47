//! W3C trace context: a request's trace id comes from its `traceparent` header,
//! or is made fresh, so B's and A's log lines for one call share a `trace_id`.
//!
//! Spans are fastrace's. By default (`[trace] report = "off"`) they go nowhere
//! and the ids still tie the log lines together; `report = "log"` writes each
//! finished span as an `event=span` line, for seeing where a call's time went.

use fastrace::collector::{Reporter, SpanContext, SpanId, SpanRecord};
use fastrace::Span;
use http_types::Request;
use serde::{Deserialize, Serialize};

use crate::log::Line;

/// Where finished spans go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Report {
    /// Nowhere (trace ids still appear on every request line).
    #[default]
    Off,
    /// One `event=span` log line per finished span.
    Log,
}

/// `[trace]` in both services' configs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceSettings {
    /// `off` (default) or `log`.
    pub report: Report,
}

/// Starts span reporting as `settings` say, for `service`.
pub fn init(service: &'static str, settings: &TraceSettings) {
    if settings.report == Report::Log {
        fastrace::set_reporter(
            LogReporter { service },
            fastrace::collector::Config::default(),
        );
    }
}

/// Writes finished spans as log lines.
struct LogReporter {
    service: &'static str,
}

impl Reporter for LogReporter {
    fn report(&mut self, spans: Vec<SpanRecord>) {
        for span in spans {
            let mut line = Line::new(self.service)
                .str("event", "span")
                .str("name", &span.name)
                .str("trace_id", &format!("{:032x}", span.trace_id.0))
                .str("span_id", &format!("{:016x}", span.span_id.0))
                .str("parent_id", &format!("{:016x}", span.parent_id.0))
                .num("duration_us", span.duration_ns / 1000);
            for (key, value) in &span.properties {
                line = line.str("property", &format!("{key}={value}"));
            }
            line.emit();
        }
    }
}

/// The header that carries trace context between services.
pub use crate::wire::TRACEPARENT;

/// The caller's trace context, or a fresh one when it sent none (or a malformed one).
pub fn incoming(req: &Request) -> SpanContext {
    req.header(TRACEPARENT)
        .and_then(|v| SpanContext::decode_w3c_traceparent(v.last().as_str()))
        .unwrap_or_else(SpanContext::random)
}

/// The `traceparent` to send downstream for work done inside `span`.
pub fn outgoing(span: &Span, trace: SpanContext) -> String {
    SpanContext::from_span(span)
        .unwrap_or_else(|| SpanContext::new(trace.trace_id, SpanId::random()))
        .sampled(true)
        .encode_w3c_traceparent()
}

/// The trace id as logged: 32 lowercase hex digits.
pub fn trace_id(trace: &SpanContext) -> String {
    format!("{:032x}", trace.trace_id.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A caller's traceparent is continued; a bad one starts a fresh trace.
    #[test]
    fn continues_or_starts_a_trace() {
        let mut req = Request::get("http://x/echo");
        req.insert_header(
            TRACEPARENT,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        );
        assert_eq!(
            trace_id(&incoming(&req)),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );

        req.insert_header(TRACEPARENT, "garbage");
        let fresh = trace_id(&incoming(&req));
        assert_eq!(fresh.len(), 32);
        assert_ne!(fresh, "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    /// What B sends A carries the same trace id.
    #[test]
    fn outgoing_keeps_the_trace_id() {
        let ctx = SpanContext::random();
        let span = Span::root("test", ctx);
        let header = outgoing(&span, ctx);
        let back = SpanContext::decode_w3c_traceparent(&header).unwrap();
        assert_eq!(back.trace_id, ctx.trace_id);
    }
}
