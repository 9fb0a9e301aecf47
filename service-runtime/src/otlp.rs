//! Finished spans sent to an OpenTelemetry collector as OTLP/HTTP with JSON
//! bodies (`POST <endpoint>/v1/traces`), without ever holding up a request.
//!
//! Two threads stand between a request and the collector. fastrace's own
//! collector thread hands each finished batch to [`Exporter::report`], which
//! only puts it on a bounded queue (`try_send`: when the queue is full the
//! batch is dropped). A sender thread of ours takes batches off the queue and
//! POSTs them with a blocking socket, every step bounded by `[trace]
//! timeout_ms`. So a collector that is down or slow costs requests nothing:
//! its spans are dropped and counted in `trace_spans_dropped_total`, never
//! retried, and the queue's bound caps the memory they can hold.
//!
//! The counters are process-wide statics, because fastrace allows one
//! reporter per process and it is set before any service registry exists;
//! [`register_metrics`] shows them in a service's `/metrics` (the runtime's
//! `HttpMetrics::register` calls it, so both services have them).

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{LazyLock, OnceLock};
use std::time::{Duration, Instant};

use fastrace::collector::{Reporter, SpanRecord};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use serde::Serialize;
use url::Url;

use crate::log::Line;
use crate::trace::SPAN_KIND;

/// Spans per POST: a busy second of a service is split into bodies of a
/// size every collector accepts (their defaults start at 4 MiB).
const BATCH_SPANS: usize = 512;

/// Batches waiting for the sender. With [`BATCH_SPANS`] this bounds what a
/// stalled collector can make the process hold: 16 × 512 spans.
const QUEUE_BATCHES: usize = 16;

/// The largest status line read from a collector's answer.
const MAX_STATUS_LINE: usize = 1024;

static DROPPED: LazyLock<Counter> = LazyLock::new(Counter::default);
static EXPORTED: LazyLock<Counter> = LazyLock::new(Counter::default);

/// The queue's sending end, kept for [`drain`] (fastrace owns the exporter).
static QUEUE: OnceLock<SyncSender<Job>> = OnceLock::new();

/// The export timeout, which also bounds [`drain`].
static TIMEOUT: OnceLock<Duration> = OnceLock::new();

/// Registers `trace_spans_exported_total` and `trace_spans_dropped_total`
/// in `registry`. Both stay 0 unless `[trace] report = "otlp"`.
pub fn register_metrics(registry: &mut Registry) {
    registry.register(
        "trace_spans_exported",
        "Spans the OTLP collector accepted ([trace] report = \"otlp\")",
        EXPORTED.clone(),
    );
    registry.register(
        "trace_spans_dropped",
        "Spans not exported: the queue to the collector was full, or the collector \
         was down, slow past trace.timeout_ms, or refused them",
        DROPPED.clone(),
    );
}

/// What the sender thread is asked to do.
enum Job {
    Send(Vec<SpanRecord>),
    /// Answer on the channel once every batch before this one is done.
    Flush(SyncSender<()>),
}

/// The fastrace reporter for `[trace] report = "otlp"`.
pub struct Exporter {
    queue: SyncSender<Job>,
}

impl Exporter {
    /// Starts the sender thread for `service` (its `service.name`), posting to `url`.
    pub fn start(service: &'static str, url: Url, timeout: Duration) -> Self {
        let (queue, jobs) = mpsc::sync_channel(QUEUE_BATCHES);
        let _ = QUEUE.set(queue.clone());
        let _ = TIMEOUT.set(timeout);
        let sender = Sender {
            service,
            target: Target::from(&url),
            timeout,
            failing: false,
        };
        let spawned = std::thread::Builder::new()
            .name("otlp-sender".to_owned())
            .spawn(move || sender.run(jobs));
        if let Err(e) = spawned {
            // Without the thread every batch is dropped (and counted) at once.
            Line::event("trace_export_failed")
                .str("error", &format!("cannot start the sender thread: {e}"))
                .emit();
        }
        Self { queue }
    }
}

impl Reporter for Exporter {
    fn report(&mut self, spans: Vec<SpanRecord>) {
        let mut spans = spans.into_iter().peekable();
        while spans.peek().is_some() {
            let batch: Vec<SpanRecord> = spans.by_ref().take(BATCH_SPANS).collect();
            match self.queue.try_send(Job::Send(batch)) {
                Ok(()) => {}
                Err(TrySendError::Full(Job::Send(batch)))
                | Err(TrySendError::Disconnected(Job::Send(batch))) => {
                    DROPPED.inc_by(batch.len() as u64);
                }
                Err(_) => {}
            }
        }
    }
}

/// Waits until the spans handed over so far are exported or dropped, at most
/// the export timeout plus a little: at exit, after `fastrace::flush`.
pub fn drain() {
    let (Some(queue), Some(timeout)) = (QUEUE.get(), TIMEOUT.get()) else {
        return;
    };
    let (done, wait) = mpsc::sync_channel(1);
    // A full queue means a stuck collector: blocking here would hold up exit
    // for every queued batch's timeout, so give up at once instead.
    if queue.try_send(Job::Flush(done)).is_ok() {
        let _ = wait.recv_timeout(*timeout + Duration::from_millis(100));
    }
}

/// Where the collector is, split once.
#[derive(Debug, Clone)]
struct Target {
    host: String,
    port: u16,
    /// The request target, e.g. `/v1/traces`.
    path: String,
    /// The `Host` header.
    authority: String,
}

impl From<&Url> for Target {
    fn from(url: &Url) -> Self {
        let host = url.host_str().unwrap_or("127.0.0.1");
        let port = url.port_or_known_default().unwrap_or(80);
        Self {
            // `[::1]` in a URL, `::1` for the resolver.
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            path: url.path().to_owned(),
            authority: format!("{host}:{port}"),
        }
    }
}

/// The sender thread's state.
struct Sender {
    service: &'static str,
    target: Target,
    timeout: Duration,
    /// Whether the last export failed: only a change is logged, so a dead
    /// collector costs one log line, not one per second.
    failing: bool,
}

impl Sender {
    fn run(mut self, jobs: Receiver<Job>) {
        loop {
            match jobs.recv_timeout(Duration::from_secs(3600)) {
                Ok(Job::Send(batch)) => self.export(&batch),
                Ok(Job::Flush(done)) => {
                    let _ = done.try_send(());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn export(&mut self, batch: &[SpanRecord]) {
        let body = encode(self.service, batch);
        let n = batch.len() as u64;
        match post(&self.target, &body, self.timeout) {
            Ok(()) => {
                EXPORTED.inc_by(n);
                if self.failing {
                    self.failing = false;
                    Line::event("trace_export_resumed")
                        .str("endpoint", &self.target.authority)
                        .emit();
                }
            }
            Err(e) => {
                DROPPED.inc_by(n);
                if !self.failing {
                    self.failing = true;
                    Line::event("trace_export_failed")
                        .str("endpoint", &self.target.authority)
                        .str("error", &e.to_string())
                        .str(
                            "detail",
                            "spans are dropped and counted in trace_spans_dropped_total \
                             until an export succeeds",
                        )
                        .emit();
                }
            }
        }
    }
}

/// One POST of `body`, every step within `timeout`; `Ok` on a 2xx answer.
fn post(target: &Target, body: &[u8], timeout: Duration) -> io::Result<()> {
    post_within(target, body, timeout).map_err(|e| match e.kind() {
        // A socket timeout reads "Resource temporarily unavailable": say what happened.
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "no answer within trace.timeout_ms = {} ms",
                timeout.as_millis()
            ),
        ),
        _ => e,
    })
}

fn post_within(target: &Target, body: &[u8], timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))
    };
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
    let mut stream = None;
    for addr in (target.host.as_str(), target.port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, left()?) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let mut stream = stream.ok_or(last)?;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        target.path,
        target.authority,
        body.len()
    );
    stream.set_write_timeout(Some(left()?))?;
    stream.write_all(head.as_bytes())?;
    stream.set_write_timeout(Some(left()?))?;
    stream.write_all(body)?;

    // Only the status line matters; the connection is closed after it.
    let mut line = Vec::with_capacity(64);
    let mut byte = [0u8; 256];
    while !line.windows(2).any(|w| w == b"\r\n") {
        stream.set_read_timeout(Some(left()?))?;
        let n = stream.read(&mut byte)?;
        if n == 0 || line.len() > MAX_STATUS_LINE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the collector closed without an HTTP status line",
            ));
        }
        line.extend_from_slice(&byte[..n]);
    }
    let status = String::from_utf8_lossy(&line);
    let code = status.split(' ').nth(1).unwrap_or("");
    if code.starts_with('2') && code.len() == 3 {
        Ok(())
    } else {
        let first = status.lines().next().unwrap_or("").trim();
        Err(io::Error::other(format!(
            "the collector answered {first:?}"
        )))
    }
}

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
fn encode(service: &str, spans: &[SpanRecord]) -> Vec<u8> {
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
    use std::net::TcpListener;

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

    /// A collector that accepts but never answers costs one timeout, not a hang.
    #[test]
    fn a_silent_collector_times_out() {
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = Url::parse(&format!(
            "http://{}/v1/traces",
            silent.local_addr().unwrap()
        ))
        .unwrap();
        let started = Instant::now();
        let err = post(&Target::from(&url), b"{}", Duration::from_millis(200)).unwrap_err();
        let took = started.elapsed();
        assert!(err.to_string().contains("no answer within"), "{err}");
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(2),
            "{took:?}: {err}"
        );
    }

    /// A non-2xx answer is an error naming the status line.
    #[test]
    fn a_refusal_is_an_error() {
        let collector = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = Url::parse(&format!(
            "http://{}/v1/traces",
            collector.local_addr().unwrap()
        ))
        .unwrap();
        let answer = std::thread::spawn(move || {
            let (mut s, _) = collector.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).unwrap();
            s.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
                .unwrap();
        });
        let err = post(&Target::from(&url), b"{}", Duration::from_secs(5)).unwrap_err();
        answer.join().unwrap();
        assert!(err.to_string().contains("503 Service Unavailable"), "{err}");
    }

    /// A full queue drops the batch at once and counts its spans.
    #[test]
    fn a_full_queue_drops_and_counts() {
        let (queue, _jobs) = mpsc::sync_channel(0);
        let mut exporter = Exporter { queue };
        let before = DROPPED.get();
        exporter.report(vec![record(0, "server"); 3]);
        assert!(DROPPED.get() >= before + 3);
    }
}
