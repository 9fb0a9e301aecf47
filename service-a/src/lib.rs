//! Service A: echoes `msg` (or forwards to `[proxy] upstream`), and misbehaves
//! as `[fault]` in its config says.
//!
//! A library with a thin `main.rs` over [`run`], so that A's vocabulary is
//! written once, here, and read by others: the lab checks an experiment's
//! `[fault]` keys against [`fault::FaultSettings`]'s own instead of keeping
//! a list that nothing would tie to A's. The header names are the runtime's
//! (`service_runtime::wire`), shared with B. A library rather than a small
//! vocabulary crate both would use: the keys stay beside the struct that
//! reads them, with the tests that tie the two, and nothing else of A's is
//! public.
//!
//! # Layout
//!
//! - `echo`: the endpoints and their log lines.
//! - `app`: the shared state: the faults in force, where they came from, metrics.
//! - [`fault`]: every injected fault, decided per request, applied to any answer.
//! - `proxy`: proxy mode, A in front of another service (`[proxy] upstream`).
//! - `slow_body`: answer bodies that stall or trickle.
//! - `reload`: what an edit of the config file does while A runs.
//! - `admin`: the control API, faults read and changed over HTTP.
//! - `config`: the settings and their limits.

#![forbid(unsafe_code)]
#![warn(rust_2018_idioms)]
// Nothing reachable from a request may panic; tests may unwrap (clippy.toml).
#![deny(clippy::unwrap_used)]

mod admin;
mod app;
mod config;
mod echo;
pub mod fault;
mod proxy;
mod reload;
mod slow_body;

use std::sync::Arc;

use service_runtime::cli::{exit_with, Help};
use service_runtime::connection::Context;
use service_runtime::log::Line;
use service_runtime::metrics::{HttpMetrics, Registry};
use service_runtime::server::{Limits, ServerSettings, EXECUTOR, EXIT_START_FAILED};
use service_runtime::service::Service;

use crate::app::App;
use crate::config::Settings;
use crate::fault::Faults;

const SERVICE: Service = Service {
    name: "A",
    binary: "service-a",
    default_config: "config/service-a.toml",
    env_prefix: "SERVICE_A_",
    descriptors_per_connection: 1,
    keep_bodies: false,
    help: Help {
        about: "Service A of the failure lab: echoes GET /echo?msg=... on 127.0.0.1:8080, \
                and misbehaves as [fault] in its config says (slow, failing, dropping, \
                stalling). Edits of [fault] apply while it runs, within 350 ms of a save.",
        env_example: "SERVICE_A_FAULT__DELAY_MS=1500",
    },
};

/// Runs the service: reads its config (the command line, the file, the
/// environment), serves until asked to stop, flushes, exits.
pub fn run() {
    let (source, loaded) = SERVICE.load::<Settings>();
    let upstream = proxy::Upstream::new(&loaded.settings.proxy);
    // As a proxy, a client's connection may hold one to the upstream too.
    let service = Service {
        keep_bodies: upstream.is_some(),
        descriptors_per_connection: if upstream.is_some() { 2 } else { 1 },
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
    if let Ok(Some(addr)) = loaded.settings.admin.addr() {
        serve_admin(addr, app.clone(), &loaded.settings.server);
    }
    let metrics = app.http.clone();
    let on_hangup = move || {
        let _ = hangup.try_send(());
    };
    service.serve(&source, &loaded, metrics, on_hangup, move |req| {
        echo::handle(app.clone(), req)
    });
}

/// Starts the control API on `addr` (exit 1 if it cannot listen there); it
/// serves until A exits.
fn serve_admin(addr: std::net::SocketAddr, app: Arc<App>, server: &ServerSettings) {
    let listener = match smol::block_on(service_runtime::server::bind(addr)) {
        Ok(listener) => listener,
        Err(e) => exit_with(
            SERVICE.binary,
            EXIT_START_FAILED,
            format!("the control API ([admin] listen): {e:#}"),
        ),
    };
    let url = listener
        .local_addr()
        .map_or_else(|_| addr.to_string(), |a| a.to_string());
    let ctx = Context {
        handler: move |req| admin::handle(app.clone(), req),
        metrics: HttpMetrics::register(&mut Registry::default()),
        service: "A",
        timeout: server.client_timeout(),
        keep_bodies: true,
    };
    let limits = Limits {
        max_connections: admin::MAX_ADMIN_CONNECTIONS as usize,
        shutdown_grace: server.shutdown_grace(),
    };
    EXECUTOR
        .spawn(service_runtime::server::serve(
            listener,
            ctx,
            limits,
            std::future::pending::<()>(),
        ))
        .detach();
    Line::new("A")
        .str("event", "admin_start")
        .str("url", &format!("http://{url}"))
        .emit();
}
