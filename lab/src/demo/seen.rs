//! What the demo's run saw, call by call, from which the report is written:
//! each request with its answer and both services' log lines ([`Call`]),
//! each save of A's TOML with A's word that it applied it ([`Edit`]), and
//! the whole run ([`Seen`]). Also how one call or edit is shown in Markdown,
//! since the report and its appendix show them the same way.

use std::fmt::Write as _;
use std::time::Duration;

use service_procs::field;

use crate::client::Answer;

/// One request the demo sent and what came back.
pub struct Call {
    /// The `curl` command that sends the same request.
    pub command: String,
    /// The request, as the demo's client sent it.
    pub sent: String,
    /// The answer, as received.
    pub received: String,
    pub reply: Answer,
    /// B's line and, when B reached A, A's line with the same trace_id.
    pub b_line: String,
    pub a_line: Option<String>,
}

impl Call {
    pub fn json(&self) -> serde_json::Value {
        // A body that is not JSON has no fields: the report shows `?` and `-`
        // for them, beside the answer's own bytes.
        serde_json::from_str(&self.reply.body).unwrap_or_default()
    }

    pub fn kind(&self) -> String {
        self.json()
            .get("error")
            .and_then(|e| e.as_str())
            .unwrap_or("-")
            .to_owned()
    }

    pub fn body(&self, key: &str) -> String {
        self.json()
            .get(key)
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .unwrap_or_else(|| "?".to_owned())
    }

    pub fn ms(&self) -> u128 {
        self.reply.elapsed.as_millis()
    }

    pub fn b(&self, key: &str) -> String {
        field(&self.b_line, key).unwrap_or_else(|| "?".to_owned())
    }

    pub fn a(&self, key: &str) -> String {
        self.a_line
            .as_deref()
            .and_then(|l| field(l, key))
            .unwrap_or_else(|| "?".to_owned())
    }

    pub fn trace(&self) -> String {
        self.b("trace_id")
    }

    /// The exchange and its log lines, as a Markdown block.
    pub fn block(&self) -> String {
        let mut logs = format!("B | {}\n", self.b_line);
        match &self.a_line {
            Some(a) => {
                let _ = writeln!(logs, "A | {a}");
            }
            None => logs.push_str("A | (no line: B did not reach A)\n"),
        }
        format!(
            "`{}` sends the same request; the demo's client sent it and received \
             the answer in {} ms:\n\n```http\n{}{}\n```\n\n\
             B's and A's lines for this call (the same `trace_id`):\n\n```text\n{logs}```\n",
            self.command,
            self.ms(),
            self.sent,
            self.received.trim_end(),
        )
    }
}

/// A fault saved into A's TOML, and A's word that it applied it.
pub struct Edit {
    /// The `[fault]` lines saved; empty when the fault was cleared.
    pub fault: String,
    /// A's `config_reloaded` line, shortened to the keys that were saved.
    pub applied: String,
    /// From the save to A's line.
    pub after: Duration,
}

impl Edit {
    pub fn said(&self) -> String {
        let what = if self.fault.is_empty() {
            "A's `[fault]` section was emptied (the fault cleared: A answers normally again)"
                .to_owned()
        } else {
            format!("`{}` was saved under `[fault]` in A's TOML", self.fault)
        };
        format!(
            "{what}; A applied it without a restart, {} ms after the save \
             (its line, shortened to the keys saved):\n\n```text\nA | {}\n```\n",
            self.after.as_millis(),
            self.applied
        )
    }
}

/// Everything the run saw, from which the report is written.
#[derive(Default)]
pub struct Seen {
    /// How A was stopped: asked (it drained) or killed (Windows without a
    /// console to deliver Ctrl+Break).
    pub a_stop: Option<crate::procs::Stop>,
    pub ok: Option<Call>,
    pub ready: Option<Call>,
    pub slow: Option<Edit>,
    pub timeout: Option<Call>,
    pub healed: Option<Edit>,
    pub stop_lines: Vec<String>,
    pub a_last_before_stop: Option<String>,
    pub refused: Option<Call>,
    pub health: Option<Call>,
    pub not_ready: Option<Call>,
    pub a_lines_while_down: usize,
    pub restart_line: String,
    pub back: Option<Call>,
    pub ready_again: Option<Call>,
    pub stall: Option<Call>,
    pub stall_edits: Vec<Edit>,
    pub faults: Vec<(String, String, Call)>,
    pub b_metrics: Vec<String>,
    pub a_metrics: Vec<String>,
    pub breaker_failing: Vec<Call>,
    pub breaker_edit: Option<Edit>,
    pub breaker_open_line: Option<String>,
    pub breaker_open: Option<Call>,
    pub a_pids: Vec<u32>,
    pub b_pids: Vec<u32>,
}

/// A `config_reloaded` line with only the fields a reader needs: when, who,
/// the event, the file, and the keys that were saved.
pub fn shorten_reload(line: &str, keys: &[&str]) -> String {
    let mut words = line.split(' ');
    let mut out: Vec<String> = words.next().map(str::to_owned).into_iter().collect();
    let mut cut = false;
    for w in words {
        let key = w.split('=').next().unwrap_or("");
        if ["service", "event", "file"].contains(&key) || keys.contains(&key) {
            out.push(w.to_owned());
        } else {
            cut = true;
        }
    }
    if cut {
        out.push("…".to_owned());
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only the keys saved are kept from A's long reload line, and the cut is marked.
    #[test]
    fn reload_lines_are_shortened_to_the_keys_saved() {
        let line = "2026-12-02T03:00:00.000Z service=A event=config_reloaded file=target/lab-demo/service-a.toml delay_ms=1500 jitter_ms=0 fail=false";
        assert_eq!(
            shorten_reload(line, &["delay_ms"]),
            "2026-12-02T03:00:00.000Z service=A event=config_reloaded file=target/lab-demo/service-a.toml delay_ms=1500 …"
        );
    }
}
