//! What a run produced, as every later step reads it: the experiment, the
//! calls, the join with both services' logs, the probes of B's `/health`
//! and what happened to A, in one borrowed record.

use std::path::Path;

use super::join::Joined;
use super::load::{Call, Probe};
use super::logs::Logs;
use super::scenario::Experiment;

/// Something that happened to A during the run, at `at_ms`.
#[derive(Debug, Clone)]
pub struct Event {
    pub at_ms: f64,
    pub what: String,
}

/// Everything a run produced.
pub struct Run<'a> {
    pub experiment: &'a Experiment,
    pub file: &'a Path,
    pub calls: &'a [Call],
    pub joined: &'a [Joined],
    pub logs: &'a Logs,
    pub probes: &'a [Probe],
    pub events: &'a [Event],
    /// "release" or "debug": which build of the services ran.
    pub build: &'a str,
    pub started: String,
}
