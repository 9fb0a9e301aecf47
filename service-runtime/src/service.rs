//! A service's life from `main`: load the config or exit 2, bind or exit 1, print
//! the start line, serve until SIGINT/SIGTERM (SIGHUP goes to the service's
//! own hook), drain, flush, exit 0.

use std::future::Future;

use http_types::Request;

use crate::cli::{exit_with, Args};
use crate::config::{ConfigSource, Loaded, Settings, EXIT_BAD_CONFIG};
use crate::connection::Context;
use crate::http::Reply;
use crate::log::Line;
use crate::metrics::HttpMetrics;
use crate::server::{self, Limits, Stopped, EXIT_START_FAILED};
use crate::signals;

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
}

impl Service {
    /// Parses the command line and loads the settings; a bad config exits with code 2.
    pub fn load<T: Settings>(&self) -> (ConfigSource, Loaded<T>) {
        signals::install();
        let source =
            Args::parse_as(self.binary).config_source(self.default_config, self.env_prefix);
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
        server::block_on(threads, async {
            let listener = match server::bind(settings.addr()).await {
                Ok(l) => l,
                Err(e) => exit_with(self.binary, EXIT_START_FAILED, format!("{e:#}")),
            };
            let url = match listener.local_addr() {
                Ok(addr) => format!("http://{addr}"),
                Err(e) => exit_with(self.binary, EXIT_START_FAILED, e),
            };
            Line::new(name)
                .str("event", "start")
                .str("url", &url)
                .str("config", &source.describe_origin(loaded.file_found))
                .num("threads", threads)
                .emit();
            let stop = async {
                let signal = signals::until_stop(on_hangup).await;
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
                timeout: settings.header_timeout(),
            };
            let stopped = server::serve(listener, ctx, Limits::from(settings), stop).await;
            Line::new(name)
                .str("event", "stopped")
                .num("drained", stopped == Stopped::Drained)
                .emit();
        });
        crate::trace::flush();
        crate::log::flush();
        std::process::exit(0)
    }
}
