//! The numbers of a run and its folder: per phase the calls by outcome,
//! latency percentiles, retry amplification, breaker changes and the
//! expectations met or not; the matrix; `report.md` and `calls.csv`.
//!
//! Percentiles come from hdrhistogram (exact to 3 significant digits at any
//! size, where sorting millions of latencies would not be); the CSV is the raw
//! data, so a student can redo any of this in a spreadsheet.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use hdrhistogram::Histogram;

use super::join::{Joined, Logs, Matrix};
use super::load::{Call, Probe};
use super::scenario::{Experiment, OUTCOMES};

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

/// One expectation's result.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub phase: String,
    pub what: String,
    pub measured: String,
    pub met: bool,
}

/// The numbers of one phase.
#[derive(Debug, Clone)]
pub struct PhaseStats {
    pub name: String,
    pub start_s: f64,
    pub end_s: f64,
    pub calls: usize,
    pub by_kind: BTreeMap<String, usize>,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// B's attempts per call (B's count of requests to A).
    pub attempts_per_call: f64,
    /// A's log lines per call: the load A actually saw.
    pub a_requests_per_call: f64,
    pub breaker_changes: Vec<(f64, String)>,
    pub breaker_at_end: String,
    pub probes: usize,
    pub probes_not_200: usize,
    pub health_p99_ms: f64,
    pub a_in_flight_max: u32,
    pub events: Vec<Event>,
}

impl PhaseStats {
    pub fn share(&self, kind: &str) -> f64 {
        if self.calls == 0 {
            return 0.0;
        }
        *self.by_kind.get(kind).unwrap_or(&0) as f64 / self.calls as f64
    }
}

/// A histogram of ms values, kept in µs (1 µs .. 1 h, 3 significant digits).
pub fn histogram(values: impl Iterator<Item = f64>) -> Option<Histogram<u64>> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).ok()?;
    for v in values {
        let _ = h.record(((v * 1000.0).round() as u64).clamp(1, 3_600_000_000));
    }
    Some(h)
}

/// The `q` quantile of `h` in ms (0 when empty).
pub fn quantile_ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_quantile(q) as f64 / 1000.0
    }
}

/// Most requests A worked on at once in `[from, to)` ms, from its lines'
/// end times and latencies. Lines have millisecond resolution: each request
/// is taken to start half a millisecond before its latency says, so that a
/// 0 ms request still counts.
fn a_in_flight_max(logs: &Logs, from: f64, to: f64) -> u32 {
    let mut edges: Vec<(f64, i32)> = Vec::new();
    for l in &logs.a {
        let start = l.end_ms - l.latency_ms - 0.5;
        if l.end_ms >= from && start < to {
            edges.push((start, 1));
            edges.push((l.end_ms, -1));
        }
    }
    // Ends before starts at the same instant: a request that ended as the
    // next began did not overlap it.
    edges.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        max = max.max(now);
    }
    max.max(0) as u32
}

/// The numbers of every phase.
pub fn phase_stats(run: &Run<'_>) -> Vec<PhaseStats> {
    let e = run.experiment;
    let starts = e.phase_starts();
    let mut state = "closed".to_owned();
    e.phases
        .iter()
        .enumerate()
        .map(|(i, phase)| {
            let (start_s, end_s) = (starts[i], starts[i] + phase.seconds);
            let (from, to) = (start_s * 1000.0, end_s * 1000.0);
            let mine: Vec<(&Call, &Joined)> = run
                .calls
                .iter()
                .zip(run.joined)
                .filter(|(c, _)| c.phase == i)
                .collect();
            let mut by_kind = BTreeMap::new();
            for (c, _) in &mine {
                *by_kind.entry(c.kind.clone()).or_insert(0) += 1;
            }
            let h = histogram(mine.iter().map(|(c, _)| c.latency_ms));
            let q = |q: f64| h.as_ref().map_or(0.0, |h| quantile_ms(h, q));
            let n = mine.len().max(1) as f64;
            let attempts: u32 = mine.iter().map(|(_, j)| j.attempts.unwrap_or(0)).sum();
            let a_requests: usize = mine.iter().map(|(_, j)| j.a_requests).sum();
            let breaker_changes: Vec<(f64, String)> = run
                .logs
                .circuit
                .iter()
                .filter(|c| c.at_ms >= from && c.at_ms < to)
                .map(|c| (c.at_ms / 1000.0, c.state.clone()))
                .collect();
            if let Some((_, last)) = breaker_changes.last() {
                state = last.clone();
            }
            let probes: Vec<&Probe> = run
                .probes
                .iter()
                .filter(|p| p.at_ms >= from && p.at_ms < to)
                .collect();
            let ph = histogram(probes.iter().map(|p| p.latency_ms));
            PhaseStats {
                name: phase.name.clone(),
                start_s,
                end_s,
                calls: mine.len(),
                by_kind,
                p50_ms: q(0.5),
                p99_ms: q(0.99),
                max_ms: q(1.0),
                attempts_per_call: attempts as f64 / n,
                a_requests_per_call: a_requests as f64 / n,
                breaker_changes,
                breaker_at_end: state.clone(),
                probes: probes.len(),
                probes_not_200: probes.iter().filter(|p| p.status != 200).count(),
                health_p99_ms: ph.as_ref().map_or(0.0, |h| quantile_ms(h, 0.99)),
                a_in_flight_max: a_in_flight_max(run.logs, from, to),
                events: run
                    .events
                    .iter()
                    .filter(|ev| ev.at_ms >= from && ev.at_ms < to)
                    .cloned()
                    .collect(),
            }
        })
        .collect()
}

/// Every expectation of every phase, and the matrix's own: no forbidden cell.
pub fn verdicts(run: &Run<'_>, stats: &[PhaseStats], matrix: &Matrix) -> Vec<Verdict> {
    let mut out = Vec::new();
    for (phase, s) in run.experiment.phases.iter().zip(stats) {
        let x = &phase.expect;
        let mut add = |what: String, measured: String, met: bool| {
            out.push(Verdict {
                phase: s.name.clone(),
                what,
                measured,
                met,
            })
        };
        for (kind, min) in &x.share_min {
            let v = s.share(kind);
            add(
                format!("share of {kind} ≥ {min}"),
                format!("{v:.3}"),
                v >= *min,
            );
        }
        for (kind, max) in &x.share_max {
            let v = s.share(kind);
            add(
                format!("share of {kind} ≤ {max}"),
                format!("{v:.3}"),
                v <= *max,
            );
        }
        if let Some(max) = x.p99_ms_max {
            add(
                format!("p99 ≤ {max} ms"),
                format!("{:.1} ms", s.p99_ms),
                s.p99_ms <= max,
            );
        }
        if let Some(min) = x.p99_ms_min {
            add(
                format!("p99 ≥ {min} ms"),
                format!("{:.1} ms", s.p99_ms),
                s.p99_ms >= min,
            );
        }
        if x.b_health == Some(true) {
            add(
                "B's /health answers 200 throughout".into(),
                format!("{} of {} probes not 200", s.probes_not_200, s.probes),
                s.probes_not_200 == 0 && s.probes > 0,
            );
        }
        if let Some(max) = x.health_p99_ms_max {
            add(
                format!("/health p99 ≤ {max} ms"),
                format!("{:.1} ms", s.health_p99_ms),
                s.health_p99_ms <= max && s.probes > 0,
            );
        }
        if let Some(state) = &x.breaker {
            add(
                format!("breaker {state} at the end"),
                s.breaker_at_end.clone(),
                &s.breaker_at_end == state,
            );
        }
        for state in &x.breaker_seen {
            let seen: Vec<&str> = s
                .breaker_changes
                .iter()
                .map(|(_, st)| st.as_str())
                .collect();
            add(
                format!("breaker entered {state}"),
                if seen.is_empty() {
                    "no change".into()
                } else {
                    seen.join(" → ")
                },
                seen.contains(&state.as_str()),
            );
        }
        if let Some(max) = x.a_requests_per_call_max {
            add(
                format!("A's requests per call ≤ {max}"),
                format!("{:.2}", s.a_requests_per_call),
                s.a_requests_per_call <= max,
            );
        }
        if let Some(max) = x.a_in_flight_max {
            add(
                format!("A works on ≤ {max} requests at once"),
                s.a_in_flight_max.to_string(),
                s.a_in_flight_max <= max,
            );
        }
    }
    let forbidden = matrix.forbidden_calls();
    out.push(Verdict {
        phase: "all".into(),
        what: "no call in a cell the contract forbids".into(),
        measured: format!("{forbidden} calls"),
        met: forbidden == 0,
    });
    out
}

/// The outcomes that occurred, in the contract's order.
pub fn kinds_seen(calls: &[Call]) -> Vec<String> {
    let mut seen: Vec<String> = OUTCOMES
        .iter()
        .filter(|k| calls.iter().any(|c| c.kind == **k))
        .map(|k| (*k).to_owned())
        .collect();
    for c in calls {
        if !seen.contains(&c.kind) {
            seen.push(c.kind.clone());
        }
    }
    seen
}

/// What happened to A at a phase's start, in words.
fn phase_action(run: &Run<'_>, i: usize) -> String {
    let p = &run.experiment.phases[i];
    let mut parts = Vec::new();
    if let Some(a) = p.action {
        parts.push(match a.as_str() {
            "stop" => "A stopped (SIGTERM)".to_owned(),
            "kill" => "A killed (SIGKILL)".to_owned(),
            _ => "A started again".to_owned(),
        });
    }
    if let Some(f) = &p.fault {
        let keys: Vec<String> = f.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        parts.push(if keys.is_empty() {
            "[fault] cleared".to_owned()
        } else {
            format!("[fault] {}", keys.join(", "))
        });
    }
    for (k, v) in &p.headers {
        parts.push(format!("`{k}: {v}`"));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join("; ")
    }
}

/// The table of phases (the one the README shows).
pub fn phase_table(run: &Run<'_>, stats: &[PhaseStats]) -> String {
    let kinds = kinds_seen(run.calls);
    let mut t = String::new();
    let _ = write!(t, "| phase | seconds | at its start | calls |");
    for k in &kinds {
        let _ = write!(t, " {k} |");
    }
    let _ = writeln!(
        t,
        " p50 ms | p99 ms | max ms | attempts/call | A requests/call | breaker |"
    );
    let _ = write!(t, "| --- | --- | --- | ---: |");
    for _ in &kinds {
        let _ = write!(t, " ---: |");
    }
    let _ = writeln!(t, " ---: | ---: | ---: | ---: | ---: | --- |");
    for (i, s) in stats.iter().enumerate() {
        let _ = write!(
            t,
            "| {} | {:.1}–{:.1} | {} | {} |",
            s.name,
            s.start_s,
            s.end_s,
            phase_action(run, i),
            s.calls
        );
        for k in &kinds {
            let _ = write!(t, " {} |", s.by_kind.get(k).unwrap_or(&0));
        }
        let breaker = if s.breaker_changes.is_empty() {
            s.breaker_at_end.clone()
        } else {
            s.breaker_changes
                .iter()
                .map(|(_, st)| st.as_str())
                .collect::<Vec<_>>()
                .join(" → ")
        };
        let _ = writeln!(
            t,
            " {:.1} | {:.1} | {:.1} | {:.2} | {:.2} | {} |",
            s.p50_ms, s.p99_ms, s.max_ms, s.attempts_per_call, s.a_requests_per_call, breaker
        );
    }
    t
}

/// The matrix as a Markdown table; forbidden cells marked ✗, and listed
/// below with their reason and a trace id to grep for.
pub fn matrix_table(run: &Run<'_>, matrix: &Matrix) -> String {
    let kinds = kinds_seen(run.calls);
    let mut rows: Vec<&String> = matrix.cells.keys().map(|(r, _)| r).collect();
    rows.dedup();
    let mut t = String::new();
    let _ = write!(t, "| what A did ↓ / what B said → |");
    for k in &kinds {
        let _ = write!(t, " {k} |");
    }
    let _ = writeln!(t);
    let _ = write!(t, "| --- |");
    for _ in &kinds {
        let _ = write!(t, " ---: |");
    }
    let _ = writeln!(t);
    for row in rows {
        let _ = write!(t, "| {row} |");
        for k in &kinds {
            match matrix.cells.get(&(row.clone(), k.clone())) {
                None => {
                    let _ = write!(t, " |");
                }
                Some(c) if c.forbidden.is_some() => {
                    let _ = write!(t, " **{} ✗** |", c.count);
                }
                Some(c) => {
                    let _ = write!(t, " {} |", c.count);
                }
            }
        }
        let _ = writeln!(t);
    }
    let bad: Vec<_> = matrix
        .cells
        .iter()
        .filter_map(|(key, c)| c.forbidden.map(|why| (key, c, why)))
        .collect();
    if bad.is_empty() {
        let _ = writeln!(
            t,
            "\nNo call in a forbidden cell: what B said matches what A did."
        );
    } else {
        let _ = writeln!(t, "\nForbidden cells (each a contradiction to debug):\n");
        for ((row, kind), c, why) in bad {
            let _ = writeln!(
                t,
                "- **{row} / {kind}** ({} calls): {why}. Example: `grep trace_id={}`",
                c.count, c.example
            );
        }
    }
    t
}

/// Writes `report.md` and `calls.csv` into `dir`.
pub fn write(
    dir: &Path,
    run: &Run<'_>,
    stats: &[PhaseStats],
    matrix: &Matrix,
    verdicts: &[Verdict],
) -> anyhow::Result<()> {
    let e = run.experiment;
    let mut md = String::new();
    let _ = writeln!(md, "# {}\n", e.title);
    let _ = writeln!(
        md,
        "`{}`, started {} (UTC). {} calls at {} calls/s to B's `/call-echo`, at most {} in flight; B's `timeout_ms = {}`; phases scaled ×{:.2}; the services' {} binaries on 127.0.0.1.\n",
        run.file.display(),
        run.started,
        run.calls.len(),
        e.rate,
        e.max_in_flight,
        e.timeout_ms,
        e.scale,
        run.build
    );
    let _ = writeln!(md, "Latency is counted from each call's scheduled start (open loop), so a stall shows as latency.\n");
    let _ = writeln!(md, "## Phases\n\n{}", phase_table(run, stats));
    let _ = writeln!(
        md,
        "![outcomes per 250 ms](timeline.svg)\n\n![latency per 250 ms](latency.svg)\n\n\
         The same charts as PNG, for documents that take no SVG: `timeline.png`, `latency.png`.\n"
    );
    let _ = writeln!(md, "## Expectations\n");
    let _ = writeln!(md, "| phase | expectation | measured | |");
    let _ = writeln!(md, "| --- | --- | --- | --- |");
    for v in verdicts {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            v.phase,
            v.what,
            v.measured,
            if v.met { "met" } else { "**NOT MET**" }
        );
    }
    let _ = writeln!(md, "\n## What A did against what B said\n");
    let _ = writeln!(md, "{}", matrix_table(run, matrix));
    let _ = writeln!(md, "## Per phase\n");
    for s in stats {
        let _ = writeln!(md, "### {} ({:.1}–{:.1} s)\n", s.name, s.start_s, s.end_s);
        for ev in &s.events {
            let _ = writeln!(md, "- {:.3} s: {}", ev.at_ms / 1000.0, ev.what);
        }
        for (at, state) in &s.breaker_changes {
            let _ = writeln!(md, "- {at:.3} s: B's breaker {state}");
        }
        let _ = writeln!(
            md,
            "- B's `/health`: {} probes, {} not 200, p99 {:.1} ms",
            s.probes, s.probes_not_200, s.health_p99_ms
        );
        let _ = writeln!(
            md,
            "- attempts per call {:.2} (B), requests per call seen by A {:.2}; A worked on at most {} at once\n",
            s.attempts_per_call, s.a_requests_per_call, s.a_in_flight_max
        );
    }
    std::fs::write(dir.join("report.md"), md).context("writing report.md")?;

    let mut w = csv::Writer::from_path(dir.join("calls.csv")).context("creating calls.csv")?;
    w.write_record([
        "n",
        "phase",
        "scheduled_ms",
        "sent_ms",
        "latency_ms",
        "status",
        "kind",
        "attempts",
        "trace_id",
        "a_did",
        "a_requests",
        "a_status",
        "a_fault",
        "a_latency_ms",
        "forbidden",
        "detail",
    ])?;
    for (c, j) in run.calls.iter().zip(run.joined) {
        w.write_record([
            c.n.to_string(),
            e.phases[c.phase].name.clone(),
            format!("{:.3}", c.scheduled_ms),
            format!("{:.3}", c.sent_ms),
            format!("{:.3}", c.latency_ms),
            c.status.to_string(),
            c.kind.clone(),
            j.attempts.map(|a| a.to_string()).unwrap_or_default(),
            c.trace_id.clone(),
            j.row(),
            j.a_requests.to_string(),
            j.a_status.clone().unwrap_or_default(),
            j.a_fault.clone().unwrap_or_default(),
            j.a_latency_ms.map(|l| l.to_string()).unwrap_or_default(),
            j.forbidden.unwrap_or_default().to_owned(),
            c.detail.clone(),
        ])?;
    }
    w.flush().context("writing calls.csv")?;
    Ok(())
}
