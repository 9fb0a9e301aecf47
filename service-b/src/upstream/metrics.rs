//! B's metrics about its calls to A: calls and their durations by outcome
//! (`ok` or the KIND), attempts, retries denied, connections opened and
//! found stale, and the breaker's state.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use service_runtime::metrics::latency_histogram;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct KindLabel {
    pub(super) kind: &'static str,
}

/// B's metrics about A: calls by outcome, attempts, connections, the breaker.
#[derive(Debug, Clone)]
pub(super) struct UpstreamMetrics {
    /// `upstream_calls_total`, by `ok` or KIND.
    pub(super) calls: Family<KindLabel, Counter>,
    /// `upstream_call_duration_seconds`, by `ok` or KIND.
    pub(super) latency: Family<KindLabel, Histogram, fn() -> Histogram>,
    /// `upstream_attempts_total`.
    pub(super) attempts: Counter,
    /// `upstream_retries_denied_total`.
    pub(super) retries_denied: Counter,
    /// `upstream_connections_opened_total`, counted by the pool.
    pub(super) opened: Counter,
    /// `upstream_stale_connections_total`, counted by the pool.
    pub(super) stale: Counter,
    /// `circuit_breaker_state`, set by the breaker.
    pub(super) breaker: Gauge,
}

impl UpstreamMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let me = Self {
            calls: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            attempts: Counter::default(),
            retries_denied: Counter::default(),
            opened: Counter::default(),
            stale: Counter::default(),
            breaker: Gauge::default(),
        };
        registry.register(
            "upstream_calls",
            "Calls to A by outcome: ok or the error KIND",
            me.calls.clone(),
        );
        registry.register(
            "upstream_call_duration_seconds",
            "Duration of calls to A (retries included) by outcome",
            me.latency.clone(),
        );
        registry.register(
            "upstream_attempts",
            "Requests sent to A, retries included",
            me.attempts.clone(),
        );
        registry.register(
            "upstream_retries_denied",
            "Retries not made because the retry budget was spent",
            me.retries_denied.clone(),
        );
        registry.register(
            "upstream_connections_opened",
            "TCP connections opened to A (keep-alive keeps this low)",
            me.opened.clone(),
        );
        registry.register(
            "upstream_stale_connections",
            "Reused connections A had closed when B sent on them; the request went again on a fresh one",
            me.stale.clone(),
        );
        registry.register(
            "circuit_breaker_state",
            "The circuit breaker: 0 closed, 1 open, 2 half-open",
            me.breaker.clone(),
        );
        me
    }
}
