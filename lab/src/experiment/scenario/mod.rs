//! An experiment as the runner uses it: checked, its phases scaled, and
//! the services' TOML written from it.
//!
//! # Layout
//!
//! - this file: the checked [`Experiment`], its phases and expectations,
//!   and A's and B's config as TOML;
//! - [`parse`]: the file's format and its checks (every mistake caught
//!   before anything starts, with the key and what is allowed);
//! - [`file`](mod@file): reading the file, and a "did you mean" when there is none.

pub mod file;
pub mod parse;

use std::collections::BTreeMap;

use anyhow::Context as _;
use serde::Deserialize;

/// What a phase must show; every field is optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Smallest share (0..=1) of the phase's calls per outcome.
    #[serde(default)]
    pub share_min: BTreeMap<String, f64>,
    /// Largest share (0..=1) of the phase's calls per outcome.
    #[serde(default)]
    pub share_max: BTreeMap<String, f64>,
    /// p99 latency bounds (from the scheduled start), in ms.
    pub p99_ms_max: Option<f64>,
    /// Lower bound: a deadline that fires early is a bug too.
    pub p99_ms_min: Option<f64>,
    /// Every probe of B's `/health` in the phase answered 200.
    pub b_health: Option<bool>,
    /// p99 of the `/health` probes, in ms.
    pub health_p99_ms_max: Option<f64>,
    /// B's breaker state at the end of the phase.
    pub breaker: Option<String>,
    /// Breaker states B entered during the phase, each at least once.
    #[serde(default)]
    pub breaker_seen: Vec<String>,
    /// Requests A received per call (retry amplification), at most.
    pub a_requests_per_call_max: Option<f64>,
    /// Requests A worked on at once, from its log lines, at most.
    pub a_in_flight_max: Option<u32>,
}

/// What happens to A's process at a phase's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// SIGTERM: A finishes what is in flight (up to its grace) and exits.
    Stop,
    /// SIGKILL: A vanishes mid-request.
    Kill,
    /// A started again on the same port.
    Start,
}

impl Action {
    /// The word in the file and the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Stop => "stop",
            Action::Kill => "kill",
            Action::Start => "start",
        }
    }
}

/// One phase, checked, its duration already scaled.
#[derive(Debug, Clone)]
pub struct Phase {
    pub name: String,
    pub seconds: f64,
    /// The whole `[fault]` section to write to A's TOML at the phase's start.
    pub fault: Option<toml::Table>,
    pub action: Option<Action>,
    pub headers: Vec<(String, String)>,
    pub expect: Expect,
}

/// A checked experiment.
#[derive(Debug, Clone)]
pub struct Experiment {
    pub title: String,
    /// A is a proxy in front of a second A that echoes (`behind = "echo"`).
    pub behind_echo: bool,
    /// A's config without `[fault]` (the runner adds the port and the fault).
    pub a: toml::Table,
    /// A's `[fault]` before the first phase.
    pub a_fault: toml::Table,
    /// B's config (the runner adds the port and A's URL).
    pub b: toml::Table,
    /// Calls per second.
    pub rate: f64,
    pub max_in_flight: u32,
    pub msg: String,
    pub phases: Vec<Phase>,
    /// B's `upstream.timeout_ms`.
    pub timeout_ms: u64,
    /// The factor phase durations were multiplied by.
    pub scale: f64,
}

impl Experiment {
    /// Seconds from the start of the run to the end of its last phase.
    pub fn total_seconds(&self) -> f64 {
        self.phases.iter().map(|p| p.seconds).sum()
    }

    /// Start of each phase, in seconds from the start of the run.
    pub fn phase_starts(&self) -> Vec<f64> {
        let mut at = 0.0;
        self.phases
            .iter()
            .map(|p| {
                let start = at;
                at += p.seconds;
                start
            })
            .collect()
    }

    /// Puts A in front of `url` (`[proxy] upstream`).
    pub fn proxy_to(&mut self, url: &str) {
        set(
            &mut self.a,
            "proxy",
            "upstream",
            toml::Value::String(url.into()),
        );
    }

    /// A's TOML: its settings, `port`, and `fault` as its `[fault]`.
    pub fn a_toml(&self, port: u16, fault: &toml::Table) -> anyhow::Result<String> {
        let mut table = self.a.clone();
        set(
            &mut table,
            "server",
            "port",
            toml::Value::Integer(port.into()),
        );
        table.insert("fault".into(), toml::Value::Table(fault.clone()));
        toml::to_string(&table).context("writing A's config as TOML")
    }

    /// B's TOML: its settings, port 0 and A's URL.
    pub fn b_toml(&self, a_url: &str) -> anyhow::Result<String> {
        let mut table = self.b.clone();
        set(&mut table, "server", "port", toml::Value::Integer(0));
        set(
            &mut table,
            "upstream",
            "url",
            toml::Value::String(a_url.into()),
        );
        toml::to_string(&table).context("writing B's config as TOML")
    }
}

/// Sets `section.key`, making the section if needed.
fn set(table: &mut toml::Table, section: &str, key: &str, value: toml::Value) {
    let entry = table
        .entry(section)
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(t) = entry {
        t.insert(key.into(), value);
    }
}

/// How to shorten a run.
#[derive(Debug, Clone, Copy)]
pub enum Scale {
    /// As written.
    Full,
    /// Every phase times this factor (0 < F <= 1 shortens).
    Factor(f64),
    /// Scaled so that the whole run lasts about this many seconds.
    Seconds(f64),
}
