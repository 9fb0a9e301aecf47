//! Service B's settings: `[server]` and `[upstream]` (how B calls A).

use serde::{Deserialize, Serialize};
use service_runtime::config::{Invalid, ServerSettings};
use url::Url;

/// Everything in config/service-b.toml.
///
/// Env overrides: `SERVICE_B_SERVER__PORT=0`, `SERVICE_B_UPSTREAM__TIMEOUT_MS=500`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where B listens.
    pub server: ServerSettings,
    /// How B calls A.
    pub upstream: UpstreamSettings,
}

/// `[upstream]`: A's address and the deadline of each call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSettings {
    /// A's base URL, `http://host:port`. An IP, not `localhost`: no name lookup per call.
    pub url: String,
    /// The whole call's budget: connect, head and body.
    pub timeout_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            server: ServerSettings::on_port(8081),
            upstream: UpstreamSettings {
                url: "http://127.0.0.1:8080".to_owned(),
                timeout_ms: 1000,
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
}

impl service_runtime::config::Settings for Settings {
    fn validate(&self) -> Result<(), Invalid> {
        self.server.validate()?;
        self.upstream.base_url()?;
        Invalid::check_range("upstream.timeout_ms", self.upstream.timeout_ms, 1..=600_000)
    }

    fn server(&self) -> &ServerSettings {
        &self.server
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
}
