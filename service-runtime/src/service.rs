//! A service's life from `main`: load the config or exit 2, bind or exit 1, print
//! the start line, serve until SIGINT/SIGTERM (SIGHUP goes to the service's
//! own hook), drain, flush the log within what is left of the grace, exit 0.

use std::cell::Cell;
use std::future::Future;
use std::time::{Duration, Instant};

use http_types::Request;

use crate::cli::{exit_with, Args, Help};
use crate::config::{ConfigSource, Loaded, Validate, EXIT_BAD_CONFIG};
use crate::connection::Context;
use crate::http::Reply;
use crate::log::{Line, LogSettings};
use crate::metrics::HttpMetrics;
use crate::server::{self, Limits, ServerSettings, Stopped, EXIT_START_FAILED};
use crate::signals;
use crate::trace::TraceSettings;

/// The least time the last lines get at exit, even when the grace is spent.
const FINAL_FLUSH_FLOOR: Duration = Duration::from_millis(200);

/// What a service's whole settings give the runtime: the sections it reads
/// to run any service (`[server]`, `[log]`, `[trace]`), beside what the
/// loader needs of every settings type ([`Validate`]).
pub trait Settings: Validate {
    /// The `[server]` section.
    fn server(&self) -> &ServerSettings;

    /// The `[log]` section.
    fn log(&self) -> &LogSettings;

    /// The `[trace]` section.
    fn trace(&self) -> &TraceSettings;
}

/// Who a service is: its name in logs, its binary, its default config and env prefix.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    /// `A` or `B`: the `service=` of every log line.
    pub name: &'static str,
    /// The binary's name, for start-up error messages.
    pub binary: &'static str,
    /// The config file used when `--config` is not given.
    pub default_config: &'static str,
    /// Env override prefix, e.g. `SERVICE_A_`.
    pub env_prefix: &'static str,
    /// File descriptors one client connection costs: 1 for A, 2 for B (its
    /// connection to A too). With `server.max_connections` it sets the
    /// descriptor limit the service asks for at start.
    pub descriptors_per_connection: u64,
    /// Hand request bodies to the handler (A as a proxy); else they are skipped.
    pub keep_bodies: bool,
    /// What `--help` says the service does, and an env override to show.
    pub help: Help,
}

impl Service {
    /// Parses the command line and loads the settings; a bad config exits with code 2.
    pub fn load<T: Settings>(&self) -> (ConfigSource, Loaded<T>) {
        signals::install();
        let source = Args::parse_as(self.binary, self.env_prefix, self.help)
            .config_source(self.default_config, self.env_prefix);
        match source.load::<T>() {
            Ok(loaded) => {
                crate::log::init(self.name, loaded.settings.log().format);
                crate::log::init_clock(loaded.settings.log().time);
                crate::trace::init(self.name, loaded.settings.trace());
                (source, loaded)
            }
            Err(e) => exit_with(self.binary, EXIT_BAD_CONFIG, format!("bad config: {e}")),
        }
    }

    /// Binds `[server]`'s address (exit 1 if taken), prints the start line, and
    /// serves with `handler` until SIGINT/SIGTERM; then exits 0 once drained.
    /// Requests the server itself refuses are counted in `metrics`; each
    /// SIGHUP calls `on_hangup`.
    pub fn serve<T, H, Fut>(
        &self,
        source: &ConfigSource,
        loaded: &Loaded<T>,
        metrics: HttpMetrics,
        on_hangup: impl Fn(),
        handler: H,
    ) -> !
    where
        T: Settings,
        H: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        let settings = loaded.settings.server();
        let threads = settings.thread_count();
        let name = self.name;
        // When SIGINT/SIGTERM came: the grace counts from there, the final
        // flush of the log included.
        let stopping = Cell::new(None);
        server::block_on(threads, async {
            let listener = match server::bind(settings.addr()).await {
                Ok(l) => l,
                Err(e) => exit_with(self.binary, EXIT_START_FAILED, format!("{e:#}")),
            };
            let url = match listener.local_addr() {
                Ok(addr) => format!("http://{addr}"),
                Err(e) => exit_with(self.binary, EXIT_START_FAILED, e),
            };
            let max_connections = u64::from(settings.max_connections);
            let needed =
                max_connections * self.descriptors_per_connection + server::DESCRIPTOR_RESERVE;
            let descriptors = server::descriptor_limit(needed);
            Line::new(name)
                .str("event", "start")
                .str("url", &url)
                .str("config", &source.describe_origin(loaded.file_found))
                .num("threads", threads)
                .emit();
            if let Some(line) = server::descriptor_line(
                descriptors,
                max_connections,
                self.descriptors_per_connection,
            ) {
                line.emit();
            }
            let stop = async {
                let signal = signals::until_stop(on_hangup).await;
                stopping.set(Some(Instant::now()));
                Line::new(name)
                    .str("event", "stopping")
                    .str("signal", signal)
                    .num("grace_ms", settings.shutdown_grace_ms)
                    .emit();
            };
            let ctx = Context {
                handler,
                metrics,
                service: name,
                timeout: settings.client_timeout(),
                keep_bodies: self.keep_bodies,
            };
            let stopped = server::serve(listener, ctx, Limits::from(settings), stop).await;
            Line::new(name)
                .str("event", "stopped")
                .num("drained", stopped == Stopped::Drained)
                .emit();
        });
        crate::trace::flush();
        // Whatever is left of the grace, and never less than a moment: a
        // stdout nobody reads loses its last lines, never the exit.
        let grace = settings.shutdown_grace();
        let left = stopping
            .get()
            .map_or(grace, |at: Instant| grace.saturating_sub(at.elapsed()));
        crate::log::flush_within(left.max(FINAL_FLUSH_FLOOR));
        std::process::exit(0)
    }
}
