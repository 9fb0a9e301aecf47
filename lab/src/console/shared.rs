//! What the console's parts share: the guard, the live state, the clock,
//! the way into `up`'s commands, the steady load and the stream count; and
//! where the services' config files are, from what their start lines say.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::Mutex;
use std::time::Instant;

use super::live::Live;
use super::token::Guard;
use super::traffic::Steady;

/// B's deadline when neither its file nor its environment says otherwise
/// (the contract's default `upstream.timeout_ms`).
pub(super) const DEFAULT_DEADLINE_MS: u64 = 1000;

/// What the server's handlers share.
pub struct Shared {
    pub(super) guard: Guard,
    pub(super) live: Mutex<Live>,
    pub(super) started: Instant,
    /// Types a command into `up`, as the student would; false once `up` is gone.
    pub(super) commands: Box<dyn Fn(String) -> bool + Send + Sync>,
    pub(super) steady: Steady,
    pub(super) deadline_ms: AtomicU64,
    /// Event streams open now (at most [`MAX_STREAMS`](super::stream::MAX_STREAMS)).
    pub(super) streams: AtomicUsize,
    /// A stream was refused since one last closed (the refusal was said).
    pub(super) streams_refusing: AtomicBool,
}

impl Shared {
    /// Seconds since the console started: the live view's clock.
    pub(super) fn now_s(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    pub(super) fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A's config file, as A's start line named it (relative to the
    /// launcher's folder, which is A's too).
    pub(super) fn a_config(&self) -> PathBuf {
        let said = self.live().snapshot(0).a.config.clone();
        config_path(said.as_deref(), "config/service-a.toml")
    }

    /// Where B listens, from its start line.
    pub(super) fn b_addr(&self) -> Option<SocketAddr> {
        let url = self.live().snapshot(0).b.url.clone()?;
        url.strip_prefix("http://")?.parse().ok()
    }
}
/// The file a start line's `config=` names: the path itself, or the path in
/// `none (PATH not found, built-in defaults)`; `default` if nothing was said.
fn config_path(said: Option<&str>, default: &str) -> PathBuf {
    match said {
        Some(s) => match s.strip_prefix("none (") {
            Some(rest) => PathBuf::from(rest.split(" not found").next().unwrap_or(default)),
            None => PathBuf::from(s),
        },
        None => PathBuf::from(default),
    }
}

/// B's deadline: `SERVICE_B_UPSTREAM__TIMEOUT_MS`, else B's file's
/// `upstream.timeout_ms`, else the default (figment's order, env first).
pub(super) fn b_deadline(config: Option<&str>) -> u64 {
    if let Some(ms) = std::env::var("SERVICE_B_UPSTREAM__TIMEOUT_MS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        return ms;
    }
    let path = config_path(config, "config/service-b.toml");
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|t| t.get("upstream")?.get("timeout_ms")?.as_integer())
        .and_then(|ms| u64::try_from(ms).ok())
        .unwrap_or(DEFAULT_DEADLINE_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config file is found in what the start line says, with or
    /// without a file.
    #[test]
    fn config_path_from_start_line() {
        assert_eq!(
            config_path(Some("config/service-a.toml"), "d"),
            PathBuf::from("config/service-a.toml")
        );
        assert_eq!(
            config_path(
                Some("none (config/service-a.toml not found, built-in defaults)"),
                "d"
            ),
            PathBuf::from("config/service-a.toml")
        );
        assert_eq!(config_path(None, "d"), PathBuf::from("d"));
    }
}
