//! `[upstream]`: A's address, the deadline of each call, the retries and the
//! pool's bounds; each key checked with its range.

use serde::{Deserialize, Serialize};
use service_runtime::config::Invalid;
use url::Url;

use crate::kind::Kind;

/// `[upstream]`: A's address, the deadline of each call, and retries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSettings {
    /// A's base URL, `http://host:port`. An IP, not `localhost`: no name lookup per call.
    pub url: String,
    /// The whole call's budget: connect, head and body, retries included.
    pub timeout_ms: u64,
    /// Calls to A after the first, for failures listed in `retry_on`.
    pub retries: u32,
    /// Which KINDs are retried; `timeout` never is.
    pub retry_on: Vec<Kind>,
    /// Backoff before retry n is random in 0..=min(backoff_max_ms, backoff_base_ms * 2^(n-1)).
    pub backoff_base_ms: u64,
    /// The cap of one backoff.
    pub backoff_max_ms: u64,
    /// Idle keep-alive connections to A kept for reuse.
    pub max_idle_connections: u32,
    /// How long a kept connection may sit idle and still be reused: keep it
    /// under A's `server.client_timeout_ms`, after which A closes it.
    pub idle_timeout_ms: u64,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8080".to_owned(),
            timeout_ms: 1000,
            retries: 0,
            retry_on: vec![Kind::ConnectionRefused, Kind::ConnectionReset],
            backoff_base_ms: 25,
            backoff_max_ms: 250,
            max_idle_connections: 128,
            idle_timeout_ms: 5000,
        }
    }
}

impl UpstreamSettings {
    /// The URL, checked: `http`, with a host and nothing after the path.
    pub fn base_url(&self) -> Result<Url, Invalid> {
        Invalid::check_http_url("upstream.url", &self.url, "http://127.0.0.1:8080")
    }

    /// Checks every `[upstream]` key.
    pub fn validate(&self) -> Result<(), Invalid> {
        self.base_url()?;
        Invalid::check_range("upstream.timeout_ms", self.timeout_ms, 1..=600_000)?;
        Invalid::check_range("upstream.retries", self.retries, 0..=10)?;
        let never = [Kind::Timeout, Kind::CircuitOpen, Kind::BOverloaded];
        if self.retry_on.iter().any(|k| never.contains(k)) {
            return Err(Invalid {
                key: "upstream.retry_on",
                value: format!(
                    "{:?}",
                    self.retry_on.iter().map(|k| k.as_str()).collect::<Vec<_>>()
                ),
                expected: "kinds among connection_refused, connection_reset, upstream_status, \
                           bad_response, unreachable (a timeout has spent the budget; \
                           circuit_open and b_overloaded never called A)"
                    .to_owned(),
            });
        }
        Invalid::check_range("upstream.backoff_base_ms", self.backoff_base_ms, 1..=60_000)?;
        Invalid::check_range(
            "upstream.backoff_max_ms",
            self.backoff_max_ms,
            self.backoff_base_ms..=60_000,
        )?;
        Invalid::check_range(
            "upstream.max_idle_connections",
            self.max_idle_connections,
            0..=65_536,
        )?;
        Invalid::check_range(
            "upstream.idle_timeout_ms",
            self.idle_timeout_ms,
            1..=600_000,
        )
    }
}
