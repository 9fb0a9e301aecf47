//! One log line per event on stdout, that no client input can split.
//!
//! `2026-02-04T21:14:22.663Z service=A endpoint=/echo status=ok http_status=200 latency_ms=0`
//!
//! Times are UTC (the `Z`), so the lines of services on machines in different
//! zones sort and compare as they are; `[log] time = "local"` writes this
//! machine's local time with its offset instead (`2026-02-04T22:14:22.663+01:00`),
//! as Flask's logs do.
//!
//! logfmt by default; `[log] format = "json"` writes one JSON object per line
//! for log shippers. Either way a line is one line, whatever a client sent
//! (`log/line.rs`), and writing never blocks a request nor grows the process
//! past a bound: a slow or closed stdout costs lines, counted, never requests
//! or the exit (`log/writer.rs`).
//!
//! # Layout
//!
//! - `line`: a line as text, in logfmt or JSON, escaped; the process's format and clock.
//! - `writer`: the bounded queue and the thread that writes lines to stdout.

use serde::{Deserialize, Serialize};

mod line;
mod writer;

pub use line::{
    escape, init, init_clock, safe_key, truncate, Clock, Format, Line, Number, MAX_CLIENT_TEXT,
};
pub use writer::{flush, flush_within, FLUSH_LIMIT, QUEUE_BYTES};

/// `[log]` in both services' configs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `logfmt` (default) or `json`.
    pub format: Format,
    /// `utc` (default) or `local`.
    #[serde(default)]
    pub time: Clock,
}
