//! Service B's settings, composed: `[server]`, `[log]` and `[trace]` from the
//! runtime, `[upstream]` from `upstream.rs`, `[circuit_breaker]` from
//! `breaker.rs`. Each section is defined and checked beside its owner.

use serde::{Deserialize, Serialize};
use service_runtime::config::Invalid;
use service_runtime::log::LogSettings;
use service_runtime::server::ServerSettings;
use service_runtime::trace::TraceSettings;

use crate::breaker::BreakerSettings;
use crate::upstream::settings::UpstreamSettings;

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

impl Default for Settings {
    fn default() -> Self {
        Self {
            server: ServerSettings::on_port(8081),
            log: LogSettings::default(),
            trace: TraceSettings::default(),
            upstream: UpstreamSettings::default(),
            circuit_breaker: BreakerSettings::default(),
        }
    }
}

impl service_runtime::config::Validate for Settings {
    fn validate(&self) -> Result<(), Invalid> {
        self.server.validate()?;
        self.trace.validate()?;
        self.upstream.validate()?;
        self.circuit_breaker.validate()
    }
}

impl service_runtime::service::Settings for Settings {
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
    use crate::kind::Kind;
    use service_runtime::config::Validate as _;

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
        s.upstream.retry_on.push(Kind::Timeout);
        assert_eq!(s.validate().unwrap_err().key, "upstream.retry_on");
    }
}
