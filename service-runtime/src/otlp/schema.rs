//! OTLP/JSON: finished spans as the body of an OTLP/HTTP export
//! (opentelemetry-proto's `ExportTraceServiceRequest`), and the one span
//! property the exporter reads, [`SPAN_KIND`].

use fastrace::collector::SpanRecord;
use serde::Serialize;

/// Names the one place a span kind is carried: a property the OTLP exporter
/// turns into the span's kind (and the log reporter shows like any other).
pub const SPAN_KIND: &str = "span.kind";

// OTLP/JSON (opentelemetry-proto's ExportTraceServiceRequest in the protobuf
// JSON mapping, with the OTLP exceptions: ids in hex, enums as numbers,
// 64-bit integers as strings).

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Request<'a> {
    resource_spans: [ResourceSpans<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans<'a> {
    resource: Resource<'a>,
    scope_spans: [ScopeSpans<'a>; 1],
}

#[derive(Serialize)]
struct Resource<'a> {
    attributes: [KeyValue<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ScopeSpans<'a> {
    scope: Scope,
    spans: Vec<OtlpSpan<'a>>,
}

#[derive(Serialize)]
struct Scope {
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OtlpSpan<'a> {
    trace_id: String,
    span_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    parent_span_id: String,
    name: &'a str,
    kind: u8,
    start_time_unix_nano: String,
    end_time_unix_nano: String,
    attributes: Vec<KeyValue<'a>>,
}

#[derive(Serialize)]
struct KeyValue<'a> {
    key: &'a str,
    value: AnyValue<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AnyValue<'a> {
    string_value: &'a str,
}

/// OTLP's `SpanKind`: the request span of a service is `SERVER`, B's call
/// to A is `CLIENT`, anything else `INTERNAL`.
fn kind(value: &str) -> u8 {
    match value {
        "server" => 2,
        "client" => 3,
        _ => 1,
    }
}

/// The JSON body for `spans` of `service`.
pub fn encode(service: &str, spans: &[SpanRecord]) -> Vec<u8> {
    let spans = spans
        .iter()
        .map(|span| {
            let mut kind_value = "internal";
            let mut attributes = Vec::with_capacity(span.properties.len());
            for (key, value) in &span.properties {
                if key == SPAN_KIND {
                    kind_value = value;
                } else {
                    attributes.push(KeyValue {
                        key,
                        value: AnyValue {
                            string_value: value,
                        },
                    });
                }
            }
            OtlpSpan {
                trace_id: format!("{:032x}", span.trace_id.0),
                span_id: format!("{:016x}", span.span_id.0),
                // A root span's parent is 0: OTLP leaves the field out.
                parent_span_id: match span.parent_id.0 {
                    0 => String::new(),
                    id => format!("{id:016x}"),
                },
                name: &span.name,
                kind: kind(kind_value),
                start_time_unix_nano: span.begin_time_unix_ns.to_string(),
                end_time_unix_nano: (span.begin_time_unix_ns + span.duration_ns).to_string(),
                attributes,
            }
        })
        .collect();
    let request = Request {
        resource_spans: [ResourceSpans {
            resource: Resource {
                attributes: [KeyValue {
                    key: "service.name",
                    value: AnyValue {
                        string_value: service,
                    },
                }],
            },
            scope_spans: [ScopeSpans {
                scope: Scope {
                    name: "service-runtime",
                    version: env!("CARGO_PKG_VERSION"),
                },
                spans,
            }],
        }],
    };
    serde_json::to_vec(&request).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use fastrace::collector::{SpanId, TraceId};

    use super::*;

    fn record(parent: u64, kind: &'static str) -> SpanRecord {
        SpanRecord {
            trace_id: TraceId(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
            span_id: SpanId(0x00f0_67aa_0ba9_02b7),
            parent_id: SpanId(parent),
            begin_time_unix_ns: 1_000,
            duration_ns: 500,
            name: Cow::Borrowed("B"),
            properties: vec![
                (Cow::Borrowed(SPAN_KIND), Cow::Borrowed(kind)),
                (Cow::Borrowed("url.path"), Cow::Borrowed("/call-echo")),
            ],
            ..SpanRecord::default()
        }
    }

    /// Ids are hex, a root has no parent, the kind property becomes the kind,
    /// and the service is the resource's `service.name`.
    #[test]
    fn encodes_otlp_json() {
        let body = encode("B", &[record(0, "server"), record(7, "client")]);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let rs = &v["resourceSpans"][0];
        assert_eq!(
            rs["resource"]["attributes"][0],
            serde_json::json!({"key": "service.name", "value": {"stringValue": "B"}})
        );
        let spans = &rs["scopeSpans"][0]["spans"];
        assert_eq!(spans[0]["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(spans[0]["spanId"], "00f067aa0ba902b7");
        assert!(spans[0].get("parentSpanId").is_none(), "{}", spans[0]);
        assert_eq!(spans[0]["kind"], 2);
        assert_eq!(spans[1]["parentSpanId"], "0000000000000007");
        assert_eq!(spans[1]["kind"], 3);
        assert_eq!(spans[0]["startTimeUnixNano"], "1000");
        assert_eq!(spans[0]["endTimeUnixNano"], "1500");
        assert_eq!(
            spans[0]["attributes"],
            serde_json::json!([{"key": "url.path", "value": {"stringValue": "/call-echo"}}])
        );
    }
}
