//! Service B: calls A with a deadline and says precisely what went wrong.
//!
//! A library with a thin `main.rs` over [`run`], so that B's vocabulary is
//! written once, here, and read by others: the lab imports [`kind`] (the
//! KINDs a call can end with) instead of keeping its own list of names that
//! nothing would tie to this one. A library rather than a small vocabulary
//! crate both would use: the lab matches on B's own [`kind::Kind`], so the
//! compiler makes it handle a new KIND, and the KINDs stay beside the code
//! that produces them. Everything else stays private to B.
//!
//! # Layout
//!
//! - `call_echo`: the endpoints and their log lines.
//! - `upstream`: the client, the deadline, the retries; `[upstream]`.
//! - `classify`: what went wrong, as a KIND: socket facts and A's answers in.
//! - [`kind`]: the KINDs themselves (the vocabulary every other module, and the lab, uses).
//! - `retry`: which failures are retried, the backoff, the retry budget.
//! - `breaker`: the circuit breaker; `[circuit_breaker]`.
//! - `pool`: keep-alive connections to A that never hand one call another's answer.
//! - `config`: the settings file, composed of the sections above.

#![forbid(unsafe_code)]
#![warn(rust_2018_idioms)]
// Nothing reachable from a request may panic; tests may unwrap (clippy.toml).
#![deny(clippy::unwrap_used)]

mod breaker;
mod call_echo;
mod classify;
mod config;
pub mod kind;
mod pool;
mod retry;
mod upstream;

use std::sync::Arc;

/// The breaker's states as B logs them (`event=circuit state=...`): read by
/// the lab, which checks an experiment's expectations against them.
pub use breaker::State as BreakerState;

use service_runtime::cli::{exit_with, Help};
use service_runtime::config::EXIT_BAD_CONFIG;
use service_runtime::log::Line;
use service_runtime::reload;
use service_runtime::server::EXECUTOR;
use service_runtime::service::Service;

use crate::call_echo::App;
use crate::config::Settings;

const SERVICE: Service = Service {
    name: "B",
    binary: "service-b",
    default_config: "config/service-b.toml",
    env_prefix: "SERVICE_B_",
    descriptors_per_connection: 2,
    keep_bodies: false,
    help: Help {
        about: "Service B of the failure lab: GET /call-echo?msg=... on 127.0.0.1:8081 \
                calls A with a deadline (upstream.timeout_ms, 1000 ms) and names what went \
                wrong with a KIND: timeout, connection_refused, connection_reset, \
                upstream_status, bad_response, unreachable, circuit_open, b_overloaded.",
        env_example: "SERVICE_B_UPSTREAM__TIMEOUT_MS=500",
    },
};

/// Runs the service: reads its config (the command line, the file, the
/// environment), serves until asked to stop, flushes, exits.
pub fn run() {
    let (source, loaded) = SERVICE.load::<Settings>();
    let app = App::new(&loaded.settings)
        .unwrap_or_else(|e| exit_with(SERVICE.binary, EXIT_BAD_CONFIG, format!("bad config: {e}")));
    let app = Arc::new(app);
    let metrics = app.http.clone();
    // B applies nothing live, but says which edited keys wait for a restart.
    let (hangup, hangups) = smol::channel::unbounded();
    let running = loaded.settings.clone();
    let watched = source.clone();
    let target = move |bytes: &[u8]| {
        let fresh = match watched.parse::<Settings>(Some(bytes)) {
            Ok(fresh) => fresh,
            Err(e) => return reload::config_error(&watched, &e.to_string()),
        };
        let keys = reload::changed_keys(&running, &fresh);
        if !keys.is_empty() {
            reload::line(&watched, "config_restart_needed")
                .str("keys", &keys.join(","))
                .str(
                    "detail",
                    "B reads its config only at start; restart B to apply these keys",
                )
                .emit();
        }
    };
    EXECUTOR
        .spawn(reload::watch(
            source.clone(),
            loaded.snapshot.clone(),
            hangups,
            target,
        ))
        .detach();
    let on_hangup = move || {
        Line::event("sighup")
            .str(
                "detail",
                "B reads its config only at start; restart B to apply changes \
                 (edited keys are named in event=config_restart_needed)",
            )
            .emit();
        let _ = hangup.try_send(());
    };
    SERVICE.serve(&source, &loaded, metrics, on_hangup, move |req| {
        call_echo::handle(app.clone(), req)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--help` lists the KINDs by name: every one of them, so that a new
    /// KIND cannot be missing from what a user reads first.
    #[test]
    fn help_names_every_kind() {
        for kind in kind::Kind::ALL {
            assert!(
                SERVICE.help.about.contains(kind.as_str()),
                "B's --help does not name the KIND {}",
                kind.as_str()
            );
        }
    }
}
