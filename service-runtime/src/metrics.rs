//! `GET /metrics` in Prometheus text format, through prometheus-client.
//!
//! The runtime counts every request by endpoint and status and times it; each
//! service registers its own metrics (B's upstream KINDs and breaker, A's faults)
//! in the same [`Registry`] before serving. Recording is a hash lookup and an
//! atomic add: cheap enough for the hot path.

use std::time::Duration;

use http_types::{Mime, Response, StatusCode};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
pub use prometheus_client::registry::Registry;

/// Latency buckets in seconds: 0.5 ms to ~16 s, doubling, so both a 1 ms echo
/// and a 1 s timeout land in a bucket that tells them apart.
fn latency_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.0005, 2.0, 16)
}

/// A histogram with [`latency_buckets`], for `Family::new_with_constructor`.
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
        // Here so that every service that counts requests also shows its
        // span exporter's counters (process-wide; see `otlp.rs`).
        crate::otlp::register_metrics(registry);
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

/// The `/metrics` answer for `registry`.
pub fn render(registry: &Registry) -> Response {
    let mut text = String::with_capacity(4096);
    let mut res = Response::new(StatusCode::Ok);
    if encode(&mut text, registry).is_err() {
        res.set_status(StatusCode::InternalServerError);
    }
    res.set_body(text);
    res.set_content_type(Mime::from(
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
    ));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded requests show up in the text format with their labels.
    #[test]
    fn renders_requests() {
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry);
        http.record("/echo", 200, Duration::from_millis(1));
        http.record("/echo", 200, Duration::from_millis(2));
        let mut res = render(&registry);
        let text = smol::block_on(res.body_string()).unwrap();
        assert!(
            text.contains(r#"http_requests_total{endpoint="/echo",code="200"} 2"#),
            "{text}"
        );
        assert!(
            text.contains("http_request_duration_seconds_count{endpoint=\"/echo\"} 2"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
