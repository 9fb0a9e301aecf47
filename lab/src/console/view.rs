//! What the page sees of the live state: the rows, events, lives and
//! seconds it draws, as the event stream serializes them. Data only; the
//! live state ([`live`](super::live)) builds them.

use std::collections::BTreeMap;

use serde::Serialize;

/// One of B's calls, with A's line for the same trace when it came.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    /// Seconds since the console started, when B's line came.
    pub t: u64,
    /// The line's own timestamp (`HH:MM:SS.mmm`).
    pub clock: String,
    /// `ok`, B's KIND, or B's status word for a call B did not finish.
    pub kind: String,
    pub http_status: Option<u16>,
    pub latency_ms: Option<u32>,
    pub detail: String,
    pub trace_id: String,
    pub b_line: String,
    pub a_line: Option<String>,
}

/// A's (or the launcher's) event, as shown in the event lists.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    pub t: u64,
    /// `config_reloaded`, `config_error`, `config_restart_needed`; `lab`.
    pub event: String,
    pub text: String,
}

/// What the console knows of one service's life.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Life {
    /// `running`, `stopping`, `stopped`, or `unknown` before its first line.
    pub state: String,
    /// From its start line.
    pub url: Option<String>,
    /// From its start line: the config file it reads.
    pub config: Option<String>,
    /// The launcher's words for its last exit, e.g. `exit status: 0`.
    pub last_exit: Option<String>,
}

/// One second as the page draws it.
#[derive(Debug, Serialize)]
pub struct SecondOut {
    /// Seconds since the console started (negative: before it).
    pub t: i64,
    pub counts: BTreeMap<String, u32>,
    pub p50: Option<u32>,
    pub p99: Option<u32>,
}

/// The page's whole picture at one moment.
#[derive(Debug, Serialize)]
pub struct Snapshot<'a> {
    pub now: u64,
    pub seconds: Vec<SecondOut>,
    pub rows: Vec<&'a Row>,
    pub a_config: Vec<&'a Event>,
    pub lab: Vec<&'a Event>,
    pub a: &'a Life,
    pub b: &'a Life,
}
