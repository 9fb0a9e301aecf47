//! A run's folder for people and spreadsheets: `report.md` (the phases,
//! the expectations, the matrix of what A did against what B said, and
//! each phase's events) and `calls.csv` (every call, the raw data, so a
//! student can redo any of this in a spreadsheet). Rendering only: the
//! numbers are [`stats`](super::stats)', the verdicts
//! [`verdict`](super::verdict)'s.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;

use super::join::Matrix;
use super::record::Run;
use super::stats::{kinds_seen, PhaseStats};
use super::verdict::Verdict;

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
