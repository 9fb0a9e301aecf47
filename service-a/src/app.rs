//! A's shared state, one per process: the faults in force (swapped whole on
//! each reload or control-API change, read once per request), where they came
//! from, what running plans shares across requests, the upstream in proxy
//! mode, and A's metrics.
//!
//! Apart from the endpoints (`echo.rs`) because three modules change it
//! (`echo.rs` per request, `reload.rs` on a saved edit, `admin.rs` on the
//! control API) and none of them should have to import the others.

use arc_swap::ArcSwap;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use service_runtime::metrics::{HttpMetrics, Registry};

use crate::fault::apply::Injected;
use crate::fault::Faults;
use crate::proxy::Upstream;

/// A's shared state: the faults in force, what running them shares, and metrics.
#[derive(Debug)]
pub struct App {
    /// Read once per request; replaced by the config watcher.
    pub faults: ArcSwap<Faults>,
    /// Faults injected, counted, and the budget of header-slowed requests.
    pub injected: Injected,
    /// Rendered at `/metrics`.
    pub registry: Registry,
    /// Requests by endpoint and status (the server counts refused ones here too).
    pub http: HttpMetrics,
    /// The service A stands in front of, in proxy mode.
    pub upstream: Option<Upstream>,
    upstream_errors: Family<KindLabel, Counter>,
    /// Where the faults in force came from; set with them.
    source: std::sync::Mutex<Source>,
    changes: Family<SourceLabel, Counter>,
    active: Family<SourceLabel, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: &'static str,
}

/// Where the faults in force came from: the config file, or the control API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The config file (at start, and at each saved change).
    File,
    /// The control API (`[admin]`), until the file next changes.
    Api,
}

impl Source {
    /// `file` or `api`, in answers, log lines and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Source::File => "file",
            Source::Api => "api",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

impl App {
    /// State with `faults` in force, for a server of `max_connections`.
    pub fn new(faults: Faults, max_connections: usize) -> Self {
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry);
        let injected = Injected::register(&mut registry, max_connections);
        let upstream_errors = Family::<KindLabel, Counter>::default();
        registry.register(
            "proxy_upstream_errors",
            "Proxied requests the upstream failed (A answered 502 or 504 itself), by KIND",
            upstream_errors.clone(),
        );
        let changes = Family::<SourceLabel, Counter>::default();
        registry.register(
            "faults_changes",
            "Changes of the faults in force, by source: a saved edit of the file, or the control API",
            changes.clone(),
        );
        let active = Family::<SourceLabel, Gauge>::default();
        registry.register(
            "faults_source",
            "1 for where the faults in force came from (file or api), 0 for the other",
            active.clone(),
        );
        active.get_or_create(&SourceLabel { source: "file" }).set(1);
        active.get_or_create(&SourceLabel { source: "api" }).set(0);
        Self {
            source: std::sync::Mutex::new(Source::File),
            changes,
            active,
            upstream: None,
            upstream_errors,
            faults: ArcSwap::from_pointee(faults),
            injected,
            registry,
            http,
        }
    }

    /// Puts `faults` in force, from `source`: the next request reads them.
    pub fn put_faults(&self, faults: Faults, source: Source) {
        let mut now = self.source.lock().unwrap_or_else(|p| p.into_inner());
        self.faults.store(std::sync::Arc::new(faults));
        *now = source;
        for s in [Source::File, Source::Api] {
            let on = i64::from(s == source);
            self.active
                .get_or_create(&SourceLabel { source: s.name() })
                .set(on);
        }
        self.changes
            .get_or_create(&SourceLabel {
                source: source.name(),
            })
            .inc();
    }

    /// Where the faults in force came from.
    pub fn source(&self) -> Source {
        *self.source.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// In proxy mode: forwards to `upstream` (`None`: A echoes).
    pub fn proxying(mut self, upstream: Option<Upstream>) -> Self {
        self.upstream = upstream;
        self
    }

    /// Counts a proxied request the upstream failed, by its KIND.
    pub fn count_upstream_error(&self, kind: &'static str) {
        self.upstream_errors
            .get_or_create(&KindLabel { kind })
            .inc();
    }
}
