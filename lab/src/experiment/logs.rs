//! A's and B's log lines, read: A's `/echo` lines, B's `/call-echo` lines,
//! B's breaker changes and A's config events, each stamped with its time
//! from the start of the run. Lines of other kinds are skipped; a line
//! that cannot be read is skipped, never an error.

use std::time::SystemTime;

use service_procs::field;

/// A's line for one `/echo` request.
#[derive(Debug, Clone)]
pub struct ALine {
    pub trace_id: String,
    pub status: String,
    pub http_status: u16,
    pub fault: Option<String>,
    pub latency_ms: f64,
    /// When A wrote it, ms from the start of the run.
    pub end_ms: f64,
}

/// B's line for one `/call-echo`.
#[derive(Debug, Clone)]
pub struct BLine {
    pub trace_id: String,
    pub attempts: Option<u32>,
    pub latency_ms: f64,
    pub end_ms: f64,
}

/// A change of B's breaker (`event=circuit`).
#[derive(Debug, Clone)]
pub struct Circuit {
    pub at_ms: f64,
    pub state: String,
}

/// Both services' logs, parsed.
#[derive(Debug, Default)]
pub struct Logs {
    pub a: Vec<ALine>,
    pub b: Vec<BLine>,
    pub circuit: Vec<Circuit>,
    /// A's `event=config_reloaded` and `event=config_error` lines: (ms, line).
    pub a_config: Vec<(f64, String)>,
}

/// ms from `wall0` to the timestamp that starts a logfmt line.
fn at_ms(line: &str, wall0: SystemTime) -> Option<f64> {
    let ts = humantime::parse_rfc3339(line.split(' ').next()?).ok()?;
    Some(match ts.duration_since(wall0) {
        Ok(d) => d.as_secs_f64() * 1000.0,
        Err(e) => -e.duration().as_secs_f64() * 1000.0,
    })
}

fn num<T: std::str::FromStr>(line: &str, key: &str) -> Option<T> {
    field(line, key)?.parse().ok()
}

/// Parses A's and B's stdout lines; lines of other kinds are skipped.
pub fn parse_logs(a: &[String], b: &[String], wall0: SystemTime) -> Logs {
    let mut logs = Logs::default();
    for line in a {
        let Some(at) = at_ms(line, wall0) else {
            continue;
        };
        if line.contains(" event=config_reloaded") || line.contains(" event=config_error") {
            logs.a_config.push((at, line.clone()));
        }
        if field(line, "endpoint").as_deref() != Some("/echo") {
            continue;
        }
        let (Some(trace_id), Some(status)) = (field(line, "trace_id"), field(line, "status"))
        else {
            continue;
        };
        logs.a.push(ALine {
            trace_id,
            status,
            http_status: num(line, "http_status").unwrap_or(0),
            fault: field(line, "fault"),
            latency_ms: num(line, "latency_ms").unwrap_or(0.0),
            end_ms: at,
        });
    }
    for line in b {
        let Some(at) = at_ms(line, wall0) else {
            continue;
        };
        if field(line, "event").as_deref() == Some("circuit") {
            if let Some(state) = field(line, "state") {
                logs.circuit.push(Circuit { at_ms: at, state });
            }
            continue;
        }
        if field(line, "endpoint").as_deref() != Some("/call-echo") {
            continue;
        }
        let Some(trace_id) = field(line, "trace_id") else {
            continue;
        };
        logs.b.push(BLine {
            trace_id,
            attempts: num(line, "attempts"),
            latency_ms: num(line, "latency_ms").unwrap_or(0.0),
            end_ms: at,
        });
    }
    logs
}
