//! Service A: echoes `msg` (or forwards to `[proxy] upstream`), and misbehaves
//! as `[fault]` in its config says.
//!
//! # Layout
//!
//! - `echo`: the endpoints and their log lines.
//! - `fault`: every injected fault, decided per request, applied to any answer.
//! - `proxy`: proxy mode, A in front of another service (`[proxy] upstream`).
//! - `slow_body`: answer bodies that stall or trickle.
//! - `reload`: what an edit of the config file does while A runs.
//! - `config`: the settings and their limits.

#![forbid(unsafe_code)]
#![warn(rust_2018_idioms)]
// Nothing reachable from a request may panic; tests may unwrap (clippy.toml).
#![deny(clippy::unwrap_used)]

mod config;
mod echo;
mod fault;
mod proxy;
mod reload;
mod slow_body;

use std::sync::Arc;

use service_runtime::server::EXECUTOR;
use service_runtime::service::Service;

use crate::config::Settings;
use crate::echo::App;
use crate::fault::Faults;

const SERVICE: Service = Service {
    name: "A",
    binary: "service-a",
    default_config: "config/service-a.toml",
    env_prefix: "SERVICE_A_",
    descriptors_per_connection: 1,
    keep_bodies: false,
};

fn main() {
    let (source, loaded) = SERVICE.load::<Settings>();
    let upstream = proxy::Upstream::new(&loaded.settings.proxy);
    let service = Service {
        keep_bodies: upstream.is_some(),
        ..SERVICE
    };
    let app = Arc::new(
        App::new(
            Faults::new(loaded.settings.fault.clone()),
            loaded.settings.server.max_connections as usize,
        )
        .proxying(upstream),
    );
    let (hangup, hangups) = smol::channel::unbounded();
    let target = reload::Reload {
        source: source.clone(),
        app: app.clone(),
        running: loaded.settings.clone(),
    };
    EXECUTOR
        .spawn(service_runtime::reload::watch(
            source.clone(),
            loaded.snapshot.clone(),
            hangups,
            target,
        ))
        .detach();
    let metrics = app.http.clone();
    let on_hangup = move || {
        let _ = hangup.try_send(());
    };
    service.serve(&source, &loaded, metrics, on_hangup, move |req| {
        echo::handle(app.clone(), req)
    });
}
