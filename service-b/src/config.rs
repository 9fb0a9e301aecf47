//! Service B's settings: `[server]`, `[upstream]` (how B calls A) and `[circuit_breaker]`.

use serde::{Deserialize, Serialize};
use service_runtime::config::{Invalid, ServerSettings};
use service_runtime::log::LogSettings;
use service_runtime::trace::TraceSettings;
use url::Url;

use crate::upstream::ErrorKind;

/// Everything in config/service-b.toml.
///
/// Env overrides: `SERVICE_B_SERVER__PORT=0`, `SERVICE_B_UPSTREAM__TIMEOUT_MS=500`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where B listens.
    pub server: ServerSettings,
    /// How log lines are written.
    pub log: LogSettings,
    /// Where spans go.
    pub trace: TraceSettings,
    /// How B calls A.
    pub upstream: UpstreamSettings,
    /// When B stops calling A for a while.
    pub circuit_breaker: BreakerSettings,
}

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
    pub retry_on: Vec<ErrorKind>,
    /// Backoff before retry n is random in 0..=min(backoff_max_ms, backoff_base_ms * 2^(n-1)).
    pub backoff_base_ms: u64,
    /// The cap of one backoff.
    pub backoff_max_ms: u64,
    /// Idle keep-alive connections to A kept for reuse.
    pub max_idle_connections: u32,
}

/// `[circuit_breaker]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerSettings {
    /// Off by default: every call goes to A.
    pub enabled: bool,
    /// Failed calls in a row that open the breaker.
    pub failure_threshold: u32,
    /// How long it stays open before one trial call.
    pub open_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            server: ServerSettings::on_port(8081),
            log: LogSettings::default(),
            trace: TraceSettings::default(),
            upstream: UpstreamSettings {
                url: "http://127.0.0.1:8080".to_owned(),
                timeout_ms: 1000,
                retries: 0,
                retry_on: vec![ErrorKind::ConnectionRefused, ErrorKind::ConnectionReset],
                backoff_base_ms: 25,
                backoff_max_ms: 250,
                max_idle_connections: 128,
            },
            circuit_breaker: BreakerSettings {
                enabled: false,
                failure_threshold: 5,
                open_ms: 5000,
            },
        }
    }
}

impl UpstreamSettings {
    /// The URL, checked: `http`, with a host and nothing after the path.
    pub fn base_url(&self) -> Result<Url, Invalid> {
        let invalid = || Invalid {
            key: "upstream.url",
            value: format!("{:?}", self.url),
            expected: "an http:// URL with a host, e.g. \"http://127.0.0.1:8080\"".to_owned(),
        };
        let url = Url::parse(&self.url).map_err(|_| invalid())?;
        let plain = url.scheme() == "http"
            && url.host_str().is_some()
            && url.query().is_none()
            && url.fragment().is_none()
            && url.username().is_empty();
        if plain {
            Ok(url)
        } else {
            Err(invalid())
        }
    }

    fn validate(&self) -> Result<(), Invalid> {
        self.base_url()?;
        Invalid::check_range("upstream.timeout_ms", self.timeout_ms, 1..=600_000)?;
        Invalid::check_range("upstream.retries", self.retries, 0..=10)?;
        if self.retry_on.contains(&ErrorKind::Timeout)
            || self.retry_on.contains(&ErrorKind::CircuitOpen)
        {
            return Err(Invalid {
                key: "upstream.retry_on",
                value: format!(
                    "{:?}",
                    self.retry_on.iter().map(|k| k.as_str()).collect::<Vec<_>>()
                ),
                expected: "kinds among connection_refused, connection_reset, upstream_status, \
                           bad_response, unreachable (a timeout has spent the budget; \
                           circuit_open never called A)"
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
        )
    }
}

impl service_runtime::config::Settings for Settings {
    fn validate(&self) -> Result<(), Invalid> {
        self.server.validate()?;
        self.upstream.validate()?;
        let cb = &self.circuit_breaker;
        Invalid::check_range(
            "circuit_breaker.failure_threshold",
            cb.failure_threshold,
            1..=10_000,
        )?;
        Invalid::check_range("circuit_breaker.open_ms", cb.open_ms, 1..=3_600_000)
    }

    fn server(&self) -> &ServerSettings {
        &self.server
    }

    fn log(&self) -> &LogSettings {
        &self.log
    }

    fn trace(&self) -> &TraceSettings {
        &self.trace
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use service_runtime::config::Settings as _;

    fn with_url(url: &str) -> Settings {
        let mut s = Settings::default();
        s.upstream.url = url.to_owned();
        s
    }

    /// Only plain http:// URLs with a host are accepted.
    #[test]
    fn upstream_url_must_be_http() {
        assert!(with_url("http://127.0.0.1:8080").validate().is_ok());
        assert!(with_url("http://[::1]:8080/").validate().is_ok());
        for bad in [
            "https://127.0.0.1",
            "127.0.0.1:8080",
            "ftp://x",
            "http://",
            "http://a/?q=1",
        ] {
            let err = with_url(bad).validate().unwrap_err();
            assert_eq!(err.key, "upstream.url", "{bad}");
        }
    }

    /// A zero timeout would fail every call: refused with the allowed range.
    #[test]
    fn timeout_zero_is_refused() {
        let mut s = Settings::default();
        s.upstream.timeout_ms = 0;
        let err = s.validate().unwrap_err();
        assert_eq!(
            (err.key, err.expected.as_str()),
            ("upstream.timeout_ms", "1..=600000")
        );
    }

    /// The shipped config/service-b.toml is valid and writes out exactly the defaults.
    #[test]
    fn shipped_config_is_the_defaults() {
        let source = service_runtime::config::ConfigSource {
            path: concat!(env!("CARGO_MANIFEST_DIR"), "/../config/service-b.toml").into(),
            explicit: true,
            env_prefix: "SERVICE_B_TEST_UNUSED_",
        };
        let loaded = source
            .load::<Settings>()
            .expect("config/service-b.toml loads");
        assert_eq!(loaded.settings, Settings::default());
    }

    /// A timeout is never retried, so listing it is a mistake worth naming.
    #[test]
    fn timeout_is_never_retried() {
        let mut s = Settings::default();
        s.upstream.retry_on.push(ErrorKind::Timeout);
        assert_eq!(s.validate().unwrap_err().key, "upstream.retry_on");
    }
}
