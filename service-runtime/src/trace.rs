//! W3C trace context: a request's trace id comes from its `traceparent` header,
//! or is made fresh, so B's and A's log lines for one call share a `trace_id`.
//!
//! Spans are fastrace's. By default (`[trace] report = "off"`) they go nowhere
//! and the ids still tie the log lines together; `report = "log"` writes each
//! finished span as an `event=span` line, for seeing where a call's time went;
//! `report = "otlp"` sends them to an OpenTelemetry collector (`otlp.rs`).

use std::time::Duration;

use fastrace::collector::{Reporter, SpanContext, SpanId, SpanRecord, TraceId};
use fastrace::Span;
use http_types::Request;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::config::Invalid;
use crate::log::Line;
use crate::wire::TRACEPARENT;

/// Where finished spans go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Report {
    /// Nowhere (trace ids still appear on every request line).
    #[default]
    Off,
    /// One `event=span` log line per finished span.
    Log,
    /// OTLP/HTTP (JSON) to `[trace] endpoint`, e.g. an OpenTelemetry Collector or Jaeger.
    Otlp,
}

/// `[trace]` in both services' configs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceSettings {
    /// `off` (default), `log` or `otlp`.
    pub report: Report,
    /// With `otlp`: the collector's base URL; spans are POSTed to `<endpoint>/v1/traces`.
    pub endpoint: String,
    /// With `otlp`: the longest one export may take (connect, send, answer);
    /// past it that batch is dropped and counted, never retried.
    pub timeout_ms: u64,
}

impl Default for TraceSettings {
    fn default() -> Self {
        Self {
            report: Report::Off,
            // The OTLP/HTTP port every collector (and Jaeger) listens on by default.
            endpoint: "http://127.0.0.1:4318".to_owned(),
            timeout_ms: 2000,
        }
    }
}

impl TraceSettings {
    /// Checks every `[trace]` key, even when `report` does not use them, so a
    /// typo is caught before it matters.
    pub fn validate(&self) -> Result<(), Invalid> {
        self.traces_url()?;
        Invalid::check_range("trace.timeout_ms", self.timeout_ms, 1..=60_000)
    }

    /// `<endpoint>/v1/traces`, checked: plain `http` with a host (the exporter
    /// speaks no TLS; a collector sidecar or node agent is reached in the clear).
    pub fn traces_url(&self) -> Result<Url, Invalid> {
        let mut url =
            Invalid::check_http_url("trace.endpoint", &self.endpoint, "http://127.0.0.1:4318")?;
        // As OTEL_EXPORTER_OTLP_ENDPOINT: a base URL, the signal's path appended.
        let path = format!("{}/v1/traces", url.path().trim_end_matches('/'));
        url.set_path(&path);
        Ok(url)
    }

    /// The export timeout as a `Duration`.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// Starts span reporting as `settings` say (already validated), for `service`.
pub fn init(service: &'static str, settings: &TraceSettings) {
    match settings.report {
        Report::Off => {}
        Report::Log => fastrace::set_reporter(
            LogReporter { service },
            fastrace::collector::Config::default(),
        ),
        Report::Otlp => {
            if let Ok(url) = settings.traces_url() {
                fastrace::set_reporter(
                    crate::otlp::Exporter::start(service, url, settings.timeout()),
                    fastrace::collector::Config::default(),
                );
            }
        }
    }
}

/// Hands every finished span to the reporter and, with `otlp`, waits up to
/// the export timeout for them to be sent: at exit, so the last second's
/// spans are not lost.
pub fn flush() {
    fastrace::flush();
    crate::otlp::drain();
}

/// Writes finished spans as log lines.
struct LogReporter {
    service: &'static str,
}

/// Keys of a span line that a property may not take: a property named so
/// is written `property.<key>`, so every key of a line appears once.
const SPAN_LINE_KEYS: &[&str] = &[
    "ts",
    "service",
    "event",
    "name",
    "trace_id",
    "span_id",
    "parent_id",
    "duration_us",
];

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
            // Each property as a key of its own, the last value of a key
            // set twice winning, as in OTLP: a JSON line parses to what it says.
            let props = &span.properties;
            for (i, (key, value)) in props.iter().enumerate() {
                if props[i + 1..].iter().any(|(later, _)| later == key) {
                    continue;
                }
                let key = crate::log::safe_key(key);
                line = if SPAN_LINE_KEYS.contains(&key.as_str()) {
                    line.field(&format!("property.{key}"), value)
                } else {
                    line.field(&key, value)
                };
            }
            line.emit();
        }
    }
}

/// The caller's trace context, or a fresh one when it sent none, several,
/// or one that is not valid per the W3C spec ([`parse_traceparent`]).
pub fn incoming(req: &Request) -> SpanContext {
    req.header(TRACEPARENT)
        .filter(|values| values.iter().count() == 1)
        .and_then(|values| parse_traceparent(values.last().as_str()))
        .unwrap_or_else(SpanContext::random)
}

/// A `traceparent` value per W3C Trace Context (level 1, section 3.2): two
/// lowercase hex digits of version (not `ff`), 32 of trace id and 16 of
/// parent id (neither all zeros), 2 of flags, joined by `-`. Version `00` is
/// exactly that; a later version may carry more after a further `-`.
/// fastrace's own parser takes `00-1-2-01`, a leading `+` and uppercase hex:
/// with it any caller could file its lines under any trace id.
pub fn parse_traceparent(value: &str) -> Option<SpanContext> {
    let bytes = value.as_bytes();
    let hex = |part: &[u8]| {
        part.iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    };
    if bytes.len() < 55 || !(bytes[2] == b'-' && bytes[35] == b'-' && bytes[52] == b'-') {
        return None;
    }
    let (version, trace, parent, flags) =
        (&bytes[..2], &bytes[3..35], &bytes[36..52], &bytes[53..55]);
    if ![version, trace, parent, flags].into_iter().all(hex) || version == b"ff" {
        return None;
    }
    match (version, bytes.get(55)) {
        (b"00", None) => {}
        (b"00", Some(_)) => return None,
        (_, None | Some(b'-')) => {}
        (_, Some(_)) => return None,
    }
    let trace_id = u128::from_str_radix(&value[3..35], 16).ok()?;
    let span_id = u64::from_str_radix(&value[36..52], 16).ok()?;
    let flags = u8::from_str_radix(&value[53..55], 16).ok()?;
    if trace_id == 0 || span_id == 0 {
        return None;
    }
    Some(SpanContext::new(TraceId(trace_id), SpanId(span_id)).sampled(flags & 1 == 1))
}

/// `span` (of `trace`) as the parent of further spans: its own context, or a
/// fresh span id in the same trace when spans are not collected.
pub fn context(span: &Span, trace: SpanContext) -> SpanContext {
    SpanContext::from_span(span)
        .unwrap_or_else(|| SpanContext::new(trace.trace_id, SpanId::random()))
        .sampled(true)
}

/// The `traceparent` to send downstream for work done inside `span`.
pub fn outgoing(span: &Span, trace: SpanContext) -> String {
    context(span, trace).encode_w3c_traceparent()
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

    /// The endpoint must be a plain http:// base URL; `/v1/traces` is appended once.
    #[test]
    fn endpoint_is_checked_and_extended() {
        let with = |endpoint: &str| TraceSettings {
            endpoint: endpoint.to_owned(),
            ..TraceSettings::default()
        };
        assert_eq!(
            with("http://127.0.0.1:4318").traces_url().unwrap().as_str(),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            with("http://otel-collector:4318/")
                .traces_url()
                .unwrap()
                .as_str(),
            "http://otel-collector:4318/v1/traces"
        );
        for bad in [
            "127.0.0.1:4318",
            "https://x:4318",
            "http://",
            "http://x/?a=1",
            "",
        ] {
            assert_eq!(
                with(bad).validate().unwrap_err().key,
                "trace.endpoint",
                "{bad}"
            );
        }
        assert!(TraceSettings::default().validate().is_ok());
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

    /// Only the W3C form is continued; anything else starts a new trace.
    #[test]
    fn traceparent_is_strict() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = parse_traceparent(good).unwrap();
        assert_eq!(trace_id(&ctx), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ctx.span_id.0, 0x00f0_67aa_0ba9_02b7);
        assert!(ctx.sampled);
        // A later version may carry more after a dash.
        assert!(parse_traceparent(&format!("01{}-extra", &good[2..])).is_some());
        for bad in [
            "00-1-2-01",
            "+0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473é-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
        // Two headers: a new trace, whatever they hold.
        let mut req = Request::get("http://x/echo");
        req.append_header(TRACEPARENT, good);
        req.append_header(TRACEPARENT, good);
        assert_ne!(
            trace_id(&incoming(&req)),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }
}
