//! `GET /metrics` in the format the scraper asks for, through prometheus-client.
//!
//! prometheus-client writes OpenMetrics; a scraper that does not ask for it
//! (curl, promtool, Prometheus with OpenMetrics off) gets the Prometheus text
//! format 0.0.4, where a counter's `# HELP`/`# TYPE` must name the `_total`
//! series itself, or parsers see it as untyped and promtool finds no help.
//!
//! The runtime counts every request by endpoint and status and times it; each
//! service registers its own metrics (B's upstream KINDs and breaker, A's faults)
//! in the same [`Registry`] before serving. Recording is a hash lookup and an
//! atomic add: cheap enough for the hot path.
//!
//! The runtime's process-wide counters are defined here too, and counted by
//! their owners (the span exporter, the log writer, the accept loop): they
//! exist before any registry does (one stdout, one span reporter, per
//! process), and [`HttpMetrics::register`] shows them in every service's
//! `/metrics`. So this module needs none of its owners, and none of them
//! needs a registry.

use std::sync::LazyLock;
use std::time::Duration;

use http_types::{Request, Response, StatusCode};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
pub use prometheus_client::registry::Registry;

/// Spans the OTLP collector accepted (`otlp.rs`).
pub static SPANS_EXPORTED: LazyLock<Counter> = LazyLock::new(Counter::default);

/// Spans not exported: the exporter's queue was full, or the collector
/// failed (`otlp.rs`).
pub static SPANS_DROPPED: LazyLock<Counter> = LazyLock::new(Counter::default);

/// Log lines lost to a full queue or a failed write to stdout (`log.rs`).
pub static LOG_LINES_DROPPED: LazyLock<Counter> = LazyLock::new(Counter::default);

/// Accepts that failed for want of a resource (`server.rs`).
pub static ACCEPT_FAILURES: LazyLock<Counter> = LazyLock::new(Counter::default);

/// Shows the process-wide counters above in `registry`.
fn register_process_counters(registry: &mut Registry) {
    registry.register(
        "trace_spans_exported",
        "Spans the OTLP collector accepted ([trace] report = \"otlp\")",
        SPANS_EXPORTED.clone(),
    );
    registry.register(
        "trace_spans_dropped",
        "Spans not exported: the queue to the collector was full, or the collector \
         was down, slow past trace.timeout_ms, or refused them",
        SPANS_DROPPED.clone(),
    );
    registry.register(
        "log_lines_dropped",
        "Log lines lost: the queue to stdout was full (a slow or stuck reader), \
         or writing to stdout failed (closed)",
        LOG_LINES_DROPPED.clone(),
    );
    registry.register(
        "accept_failures",
        "Connections not accepted at the first try: out of file descriptors (ulimit -n) \
         or kernel memory; each was retried (event=accept_failed, once per episode)",
        ACCEPT_FAILURES.clone(),
    );
}

/// Latency buckets in seconds: 0.5 ms to ~16 s, doubling, so both a 1 ms echo
/// and a 1 s timeout land in a bucket that tells them apart.
fn latency_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.0005, 2.0, 16)
}

/// A histogram with `latency_buckets`, for `Family::new_with_constructor`.
pub fn latency_histogram() -> Histogram {
    Histogram::new(latency_buckets())
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabel {
    endpoint: &'static str,
}

/// Requests by endpoint and status, and their latency.
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<EndpointLabel, Histogram, fn() -> Histogram>,
}

impl HttpMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let me = Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        };
        registry.register(
            "http_requests",
            "Requests answered, by endpoint and HTTP status (0: closed without an answer)",
            me.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from request head to answer, by endpoint",
            me.latency.clone(),
        );
        // Here so that every service that counts requests also shows the
        // counters of its exporter, its log and its accept loop.
        register_process_counters(registry);
        me
    }

    /// Counts one request. `endpoint` must be one of a fixed set (unknown paths
    /// as `other`): labels are never taken from what a client sent.
    pub fn record(&self, endpoint: &'static str, code: u16, latency: Duration) {
        self.requests
            .get_or_create(&RequestLabels { endpoint, code })
            .inc();
        self.latency
            .get_or_create(&EndpointLabel { endpoint })
            .observe(latency.as_secs_f64());
    }
}

/// `Content-Type` of the Prometheus text format, the default.
pub const TEXT_0_0_4: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `Content-Type` of OpenMetrics text, for scrapers that ask for it.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `/metrics` answer for `registry`, in the format `req`'s `Accept` prefers.
pub fn render(registry: &Registry, req: &Request) -> Response {
    let accept = req.header("accept").map(|h| h.as_str());
    let mut open_metrics = String::with_capacity(4096);
    let mut res = Response::new(StatusCode::Ok);
    if encode(&mut open_metrics, registry).is_err() {
        res.set_status(StatusCode::InternalServerError);
    }
    let content_type = if wants_openmetrics(accept) {
        res.set_body(open_metrics);
        OPENMETRICS
    } else {
        res.set_body(to_text_0_0_4(&open_metrics));
        TEXT_0_0_4
    };
    // As written, not through `Mime`, which would reorder the parameters.
    res.insert_header("content-type", content_type);
    res
}

/// Whether `Accept` ranks OpenMetrics above the Prometheus text format (as
/// Prometheus itself sends it: `application/openmetrics-text;version=1.0.0,
/// ...,text/plain;version=0.0.4;q=0.5,*/*;q=0.1`). No header, or a tie: text.
fn wants_openmetrics(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return false };
    let (mut open, mut text) = (0.0_f32, 0.0_f32);
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.strip_prefix("q="))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "application/openmetrics-text" => open = open.max(q),
            "text/plain" | "text/*" | "*/*" => text = text.max(q),
            _ => {}
        }
    }
    open > 0.0 && open > text
}

/// OpenMetrics text as the Prometheus text format 0.0.4: a counter's `# HELP`
/// and `# TYPE` name its `_total` series, and `# UNIT` and `# EOF` go (0.0.4
/// has neither). prometheus-client writes no exemplars or `_created` here.
fn to_text_0_0_4(open_metrics: &str) -> String {
    let counters: Vec<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len());
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|tag| {
            let rest = line.strip_prefix(tag)?;
            let (name, tail) = rest.split_once(' ')?;
            (counters.contains(&name) && !name.ends_with("_total"))
                .then(|| format!("{tag}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(registry: &Registry, accept: Option<&str>) -> (String, String) {
        let mut req = Request::new(
            http_types::Method::Get,
            http_types::Url::parse("http://127.0.0.1/metrics").unwrap(),
        );
        if let Some(accept) = accept {
            req.insert_header("accept", accept);
        }
        let mut res = render(registry, &req);
        let kind = res.header("content-type").unwrap().as_str().to_owned();
        (kind, smol::block_on(res.body_string()).unwrap())
    }

    /// Recorded requests show up in the text format with their labels.
    #[test]
    fn renders_requests() {
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry);
        http.record("/echo", 200, Duration::from_millis(1));
        http.record("/echo", 200, Duration::from_millis(2));
        let (_, text) = scrape(&registry, None);
        assert!(
            text.contains(r#"http_requests_total{endpoint="/echo",code="200"} 2"#),
            "{text}"
        );
        assert!(
            text.contains("http_request_duration_seconds_count{endpoint=\"/echo\"} 2"),
            "{text}"
        );
    }

    /// Every registry a service counts requests in also shows the runtime's
    /// process-wide counters, though their owners never see a registry.
    #[test]
    fn shows_the_process_wide_counters() {
        let mut registry = Registry::default();
        HttpMetrics::register(&mut registry);
        let (_, text) = scrape(&registry, None);
        for name in [
            "trace_spans_exported_total",
            "trace_spans_dropped_total",
            "log_lines_dropped_total",
            "accept_failures_total",
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} counter\n")),
                "{name}: {text}"
            );
        }
    }

    /// Without an Accept asking for OpenMetrics the answer is 0.0.4 text whose
    /// counters are typed by their `_total` name; with one, OpenMetrics.
    #[test]
    fn negotiates_the_format() {
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry);
        http.record("/echo", 200, Duration::from_millis(1));
        for accept in [None, Some("*/*"), Some("text/plain;version=0.0.4")] {
            let (kind, text) = scrape(&registry, accept);
            assert_eq!(kind, TEXT_0_0_4, "{accept:?}");
            assert!(
                text.contains("# TYPE http_requests_total counter\n"),
                "{text}"
            );
            assert!(
                text.contains("# HELP http_requests_total Requests"),
                "{text}"
            );
            assert!(!text.contains("# EOF"), "{text}");
        }
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        for accept in [prometheus, "application/openmetrics-text"] {
            let (kind, text) = scrape(&registry, Some(accept));
            assert_eq!(kind, OPENMETRICS, "{accept}");
            assert!(text.contains("# TYPE http_requests counter\n"), "{text}");
            assert!(text.ends_with("# EOF\n"), "{text}");
        }
        let (kind, _) = scrape(
            &registry,
            Some("text/plain, application/openmetrics-text;q=0.5"),
        );
        assert_eq!(kind, TEXT_0_0_4);
    }
}
