//! Each expectation of an experiment against what its run measured, met
//! or not, and the matrix's own: no call in a cell the contract forbids.

use super::join::Matrix;
use super::record::Run;
use super::stats::PhaseStats;

/// One expectation's result.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub phase: String,
    pub what: String,
    pub measured: String,
    pub met: bool,
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
