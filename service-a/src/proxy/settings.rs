//! `[proxy]`: whether A forwards, where, and the bounds of its pool to the
//! upstream; each key checked with its range.

use serde::{Deserialize, Serialize};
use service_runtime::config::Invalid;

/// The longest `timeout_ms` (ten minutes): a longer wait is a typo.
const MAX_TIMEOUT_MS: u64 = 600_000;

/// The most idle connections kept: more would only hold descriptors.
const MAX_IDLE: u32 = 4096;

/// `[proxy]`: absent (or `upstream = ""`), A echoes; set, A forwards every
/// request but its own `/health` and `/metrics` to `upstream`. Restart to change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxySettings {
    /// `http://host:port` of the service A stands in front of; empty: echo.
    pub upstream: String,
    /// The longest one exchange with the upstream may take (connect, send,
    /// whole answer); past it, A answers 504.
    pub timeout_ms: u64,
    /// Idle keep-alive connections kept to the upstream.
    pub max_idle_connections: u32,
    /// An idle connection older than this is not reused: below the
    /// upstream's own idle timeout, so a close never races a reuse.
    pub idle_timeout_ms: u64,
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self {
            upstream: String::new(),
            timeout_ms: 30_000,
            max_idle_connections: 64,
            idle_timeout_ms: 2_000,
        }
    }
}

impl ProxySettings {
    /// Checks every `[proxy]` key.
    pub fn validate(&self) -> Result<(), Invalid> {
        if !self.upstream.is_empty() {
            let url =
                Invalid::check_http_url("proxy.upstream", &self.upstream, "http://127.0.0.1:9000")?;
            if !matches!(url.path(), "" | "/") {
                return Err(Invalid {
                    key: "proxy.upstream",
                    value: format!("{:?}", self.upstream),
                    expected:
                        "an origin only (http://host:port): A forwards each request's own path"
                            .to_owned(),
                });
            }
        }
        Invalid::check_range("proxy.timeout_ms", self.timeout_ms, 1..=MAX_TIMEOUT_MS)?;
        Invalid::check_range(
            "proxy.max_idle_connections",
            self.max_idle_connections,
            0..=MAX_IDLE,
        )?;
        Invalid::check_range(
            "proxy.idle_timeout_ms",
            self.idle_timeout_ms,
            1..=MAX_TIMEOUT_MS,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[proxy]`: an origin only, http only; limits named.
    #[test]
    fn settings_are_checked() {
        let with = |upstream: &str| ProxySettings {
            upstream: upstream.to_owned(),
            ..ProxySettings::default()
        };
        assert!(with("").validate().is_ok());
        assert!(with("http://127.0.0.1:9000").validate().is_ok());
        assert!(with("http://localhost:9000/").validate().is_ok());
        for bad in [
            "https://x",
            "127.0.0.1:9000",
            "http://x/api",
            "http://x?q=1",
        ] {
            assert_eq!(
                with(bad).validate().unwrap_err().key,
                "proxy.upstream",
                "{bad}"
            );
        }
        let zero = ProxySettings {
            timeout_ms: 0,
            ..ProxySettings::default()
        };
        assert_eq!(zero.validate().unwrap_err().key, "proxy.timeout_ms");
    }
}
