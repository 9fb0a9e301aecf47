//! The experiment file's format and its checks: the TOML as written, read
//! into a checked [`Experiment`].
//!
//! Every mistake is caught here, with the key and what is allowed, rather
//! than half way through a run whose services are already up: a run that
//! dies at minute two on a typo in its last phase wastes the student's time
//! and leaves a half-written report. What is allowed is read from its
//! owners: A's `[fault]` keys from `service_a`, the fault headers from
//! `service_runtime::wire`, the outcomes from [`Outcome`].

use std::collections::BTreeMap;

use anyhow::bail;
use serde::Deserialize;
use service_a::fault::FaultSettings;
use service_b::BreakerState;
use service_runtime::wire::FAULT_HEADERS;

use super::{set, Action, Expect, Experiment, Phase, Scale};
use crate::experiment::outcome::Outcome;

/// The shortest phase a `--scale` may leave: below this a phase holds too few
/// calls to say anything.
const MIN_PHASE_S: f64 = 0.5;

/// The longest SIGTERM grace the runner accepts for A: it waits on A's exit
/// (up to 10 s), and a phase should not stall on it.
const MAX_GRACE_MS: i64 = 8000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExperiment {
    title: Option<String>,
    /// `"echo"`: A runs as a fault proxy in front of a real server (a
    /// second A, echoing, that no phase touches).
    behind: Option<String>,
    #[serde(default)]
    a: toml::Table,
    #[serde(default)]
    b: toml::Table,
    load: RawLoad,
    #[serde(default)]
    phase: Vec<RawPhase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLoad {
    rate: f64,
    max_in_flight: Option<u32>,
    msg: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPhase {
    name: String,
    seconds: f64,
    fault: Option<toml::Table>,
    a: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    expect: Expect,
}

/// Parses and checks an experiment; errors name the key and what is allowed.
pub fn parse(text: &str, scale: Scale) -> anyhow::Result<Experiment> {
    let raw: RawExperiment = toml::from_str(text)?;
    let mut a = raw.a;
    let b = raw.b;
    for (who, table) in [("a", &a), ("b", &b)] {
        if let Some(server) = table.get("server").and_then(toml::Value::as_table) {
            for key in ["port", "host"] {
                if server.contains_key(key) {
                    bail!("{who}.server.{key}: the runner sets it (127.0.0.1, a free port); remove it");
                }
            }
        }
        if let Some(format) = table
            .get("log")
            .and_then(|l| l.get("format"))
            .and_then(toml::Value::as_str)
        {
            if format != "logfmt" {
                bail!(
                    "{who}.log.format = {format:?}: the runner reads the logs; allowed: \"logfmt\""
                );
            }
        }
    }
    if b.get("upstream").and_then(|u| u.get("url")).is_some() {
        bail!("b.upstream.url: the runner points B at its own A; remove it");
    }
    // The runner waits for A to exit on `stop`: keep the grace below that wait.
    let grace = a
        .get("server")
        .and_then(|s| s.get("shutdown_grace_ms"))
        .and_then(toml::Value::as_integer);
    match grace {
        Some(g) if g > MAX_GRACE_MS => {
            bail!("a.server.shutdown_grace_ms = {g}: allowed 0..={MAX_GRACE_MS} in an experiment")
        }
        Some(_) => {}
        None => set(
            &mut a,
            "server",
            "shutdown_grace_ms",
            toml::Value::Integer(2000),
        ),
    }
    let a_fault = match a.remove("fault") {
        None => toml::Table::new(),
        Some(toml::Value::Table(t)) => t,
        Some(other) => bail!("a.fault = {other}: expected a table of [fault] keys"),
    };
    check_fault("a.fault", &a_fault)?;
    let timeout_ms = match b.get("upstream").and_then(|u| u.get("timeout_ms")) {
        None => 1000,
        Some(v) => match v.as_integer() {
            Some(ms) if (1..=600_000).contains(&ms) => ms as u64,
            _ => bail!("b.upstream.timeout_ms = {v}: expected 1..=600000"),
        },
    };

    let load = raw.load;
    if !(load.rate.is_finite() && (1.0..=5000.0).contains(&load.rate)) {
        bail!(
            "load.rate = {}: expected 1..=5000 calls per second",
            load.rate
        );
    }
    let max_in_flight = load.max_in_flight.unwrap_or(256);
    if !(1..=1024).contains(&max_in_flight) {
        bail!("load.max_in_flight = {max_in_flight}: expected 1..=1024");
    }
    let msg = load.msg.unwrap_or_else(|| "call".into());
    if msg.is_empty()
        || msg.len() > 100
        || !msg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("load.msg = {msg:?}: expected 1..=100 of A-Z a-z 0-9 - _ (each call adds -N)");
    }

    if raw.phase.is_empty() {
        bail!("no [[phase]]: an experiment needs at least one");
    }
    let written: f64 = raw.phase.iter().map(|p| p.seconds).sum();
    let factor = match scale {
        Scale::Full => 1.0,
        Scale::Factor(f) if f.is_finite() && f > 0.0 && f <= 10.0 => f,
        Scale::Factor(f) => bail!("--scale {f}: expected more than 0 and at most 10"),
        Scale::Seconds(s) if s.is_finite() && s > 0.0 && written > 0.0 => s / written,
        Scale::Seconds(s) => bail!("--seconds {s}: expected more than 0"),
    };
    let mut running = true;
    let mut phases = Vec::new();
    for (i, p) in raw.phase.into_iter().enumerate() {
        let at = format!("phase {} ({:?})", i + 1, p.name);
        if p.name.is_empty() || p.name.len() > 40 {
            bail!("{at}: name: expected 1..=40 characters");
        }
        if !(p.seconds.is_finite() && (0.5..=3600.0).contains(&p.seconds)) {
            bail!("{at}: seconds = {}: expected 0.5..=3600", p.seconds);
        }
        let action = match p.a.as_deref() {
            None => None,
            Some("stop") => Some(Action::Stop),
            Some("kill") => Some(Action::Kill),
            Some("start") => Some(Action::Start),
            Some(other) => bail!(
                "{at}: a = {other:?}: allowed \"stop\" (SIGTERM), \"kill\" (SIGKILL), \"start\""
            ),
        };
        match action {
            Some(Action::Stop | Action::Kill) if !running => {
                bail!(
                    "{at}: a = {:?}: A is already stopped here; allowed: \"start\"",
                    p.a.unwrap_or_default()
                )
            }
            Some(Action::Start) if running => {
                bail!("{at}: a = \"start\": A is running here; stop or kill it in an earlier phase")
            }
            Some(Action::Start) => running = true,
            Some(_) => running = false,
            None => {}
        }
        if let Some(fault) = &p.fault {
            check_fault(&format!("{at}: fault"), fault)?;
        }
        let mut headers = Vec::new();
        for (name, value) in p.headers {
            let lower = name.to_ascii_lowercase();
            if !FAULT_HEADERS.contains(&lower.as_str()) {
                bail!(
                    "{at}: headers.{name:?}: not a fault header; allowed: {}",
                    FAULT_HEADERS.join(", ")
                );
            }
            if value.is_empty()
                || value.len() > 200
                || !value.bytes().all(|b| (0x20..0x7f).contains(&b))
            {
                bail!(
                    "{at}: headers.{name} = {value:?}: expected 1..=200 printable ASCII characters"
                );
            }
            headers.push((lower, value));
        }
        check_expect(&at, &p.expect)?;
        phases.push(Phase {
            name: p.name,
            seconds: (p.seconds * factor).max(MIN_PHASE_S),
            fault: p.fault,
            action,
            headers,
            expect: p.expect,
        });
    }
    let behind_echo = match raw.behind.as_deref() {
        None => false,
        Some("echo") => true,
        Some(other) => bail!(
            "behind = {other:?}: allowed: \"echo\" (A as a proxy in front of a second A that echoes)"
        ),
    };
    if a.get("proxy").and_then(|p| p.get("upstream")).is_some() {
        bail!("a.proxy.upstream: the runner sets it (behind = \"echo\"); remove it");
    }
    Ok(Experiment {
        behind_echo,
        title: raw.title.unwrap_or_else(|| "experiment".into()),
        a,
        a_fault,
        b,
        rate: load.rate,
        max_in_flight,
        msg,
        phases,
        timeout_ms,
        scale: factor,
    })
}

fn check_fault(at: &str, fault: &toml::Table) -> anyhow::Result<()> {
    for key in fault.keys() {
        if !FaultSettings::KEYS.contains(&key.as_str()) {
            bail!(
                "{at}.{key}: not a [fault] key; allowed: {}",
                FaultSettings::KEYS.join(", ")
            );
        }
    }
    Ok(())
}

fn check_expect(at: &str, e: &Expect) -> anyhow::Result<()> {
    for (which, map) in [("share_min", &e.share_min), ("share_max", &e.share_max)] {
        for (kind, share) in map {
            if Outcome::from_name(kind).is_none() {
                bail!(
                    "{at}: expect.{which}.{kind}: not an outcome; allowed: {}",
                    Outcome::names().join(", ")
                );
            }
            if !(0.0..=1.0).contains(share) {
                bail!("{at}: expect.{which}.{kind} = {share}: expected a share, 0.0..=1.0");
            }
        }
    }
    for (key, v) in [
        ("p99_ms_max", e.p99_ms_max),
        ("p99_ms_min", e.p99_ms_min),
        ("health_p99_ms_max", e.health_p99_ms_max),
        ("a_requests_per_call_max", e.a_requests_per_call_max),
    ] {
        if let Some(v) = v {
            if !(v.is_finite() && v >= 0.0) {
                bail!("{at}: expect.{key} = {v}: expected a number >= 0");
            }
        }
    }
    for state in e.breaker.iter().chain(&e.breaker_seen) {
        let states = BreakerState::ALL.map(BreakerState::as_str);
        if !states.contains(&state.as_str()) {
            bail!(
                "{at}: expect breaker state {state:?}: allowed: {}",
                states.join(", ")
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[b.upstream]
timeout_ms = 500
[load]
rate = 10
[[phase]]
name = "healthy"
seconds = 2
[[phase]]
name = "down"
seconds = 2
a = "kill"
"#;

    /// A good file parses, with B's timeout read and phases scaled.
    #[test]
    fn parses_and_scales() {
        let e = parse(GOOD, Scale::Factor(0.5)).unwrap();
        assert_eq!(e.timeout_ms, 500);
        assert_eq!(e.phases.len(), 2);
        assert_eq!(e.phases[0].seconds, 1.0);
        assert_eq!(e.phases[1].action, Some(Action::Kill));
        let e = parse(GOOD, Scale::Seconds(8.0)).unwrap();
        assert_eq!(e.total_seconds(), 8.0);
    }

    /// Mistakes are refused with the key and what is allowed.
    #[test]
    fn errors_name_key_and_allowed() {
        let cases = [
            (GOOD.replace("rate = 10", "rate = 0"), "load.rate = 0"),
            (
                GOOD.replace("a = \"kill\"", "a = \"pause\""),
                "allowed \"stop\"",
            ),
            (
                GOOD.replace("a = \"kill\"", "a = \"start\""),
                "A is running here",
            ),
            (
                GOOD.replace("seconds = 2\n[[", "seconds = 2\nfault = { delay = 1 }\n[["),
                "fault.delay: not a [fault] key; allowed: delay_ms",
            ),
            (
                GOOD.replace("a = \"kill\"", "expect.share_min = { oops = 0.5 }"),
                "expect.share_min.oops: not an outcome; allowed: ok, timeout",
            ),
            (
                GOOD.replace("a = \"kill\"", "headers = { x-delay = \"1\" }"),
                "not a fault header",
            ),
            (
                GOOD.replace("timeout_ms = 500", "url = \"x\""),
                "b.upstream.url",
            ),
            (
                GOOD.replace("rate = 10", "rate = 10\nburst = 3"),
                "unknown field `burst`",
            ),
        ];
        for (text, expected) in cases {
            let err = format!("{:#}", parse(&text, Scale::Full).unwrap_err());
            assert!(err.contains(expected), "{expected:?} not in {err:?}");
        }
    }
}
