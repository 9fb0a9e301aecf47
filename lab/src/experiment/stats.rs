//! The numbers of a run: per phase the calls by outcome, latency
//! percentiles, retry amplification, breaker changes, `/health` probes and
//! how many requests A worked on at once; and the outcomes that occurred.
//!
//! Percentiles come from hdrhistogram (exact to 3 significant digits at any
//! size, where sorting millions of latencies would not be). Pure: a run's
//! record in, numbers out; the report and the charts both read them.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use super::join::Joined;
use super::load::{Call, Probe};
use super::logs::Logs;
use super::outcome::Outcome;
use super::record::{Event, Run};

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

/// The outcomes that occurred, in the contract's order.
pub fn kinds_seen(calls: &[Call]) -> Vec<String> {
    let mut seen: Vec<String> = Outcome::all()
        .map(Outcome::as_str)
        .filter(|k| calls.iter().any(|c| c.kind == *k))
        .map(str::to_owned)
        .collect();
    for c in calls {
        if !seen.contains(&c.kind) {
            seen.push(c.kind.clone());
        }
    }
    seen
}
