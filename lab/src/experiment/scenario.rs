//! An experiment file, parsed and checked before anything starts.
//!
//! Every mistake is caught here, with the file, the key and what is allowed,
//! rather than half way through a run whose services are already up: a run
//! that dies at minute two on a typo in its last phase wastes the student's
//! time and leaves a half-written report.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::bail;
use serde::Deserialize;

/// The outcomes a call can have: `ok`, B's KINDs, and `no_answer` (the load
/// generator got no HTTP answer from B at all: B's own failure).
pub const OUTCOMES: &[&str] = &[
    "ok",
    "timeout",
    "connection_refused",
    "connection_reset",
    "upstream_status",
    "bad_response",
    "unreachable",
    "circuit_open",
    "b_overloaded",
    "no_answer",
];

/// A's `[fault]` keys (README, "Breaking A: [fault]").
const FAULT_KEYS: &[&str] = &[
    "delay_ms",
    "jitter_ms",
    "delay_p50_ms",
    "delay_p99_ms",
    "fail",
    "fail_status",
    "fail_statuses",
    "retry_after_s",
    "fail_first",
    "reset",
    "drop",
    "garbage",
    "truncate",
    "bad_body",
    "body_delay_ms",
    "body_bytes_per_s",
    "probability",
    "seed",
    "allow_headers",
    "rules",
];

/// The headers A honours for one request (README, "Breaking A: [fault]").
const FAULT_HEADERS: &[&str] = &[
    "x-fault-delay-ms",
    "x-fault-delay-p50-ms",
    "x-fault-delay-p99-ms",
    "x-fault-status",
    "x-fault-retry-after-s",
    "x-fault-reset",
    "x-fault-drop",
    "x-fault-garbage",
    "x-fault-truncate",
    "x-fault-bad-body",
    "x-fault-body-delay-ms",
    "x-fault-body-bytes-per-s",
];

/// Breaker states as B logs them (`event=circuit state=...`).
const BREAKER_STATES: &[&str] = &["closed", "open", "half_open"];

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

/// What a phase must show; every field is optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Smallest share (0..=1) of the phase's calls per outcome.
    #[serde(default)]
    pub share_min: BTreeMap<String, f64>,
    /// Largest share (0..=1) of the phase's calls per outcome.
    #[serde(default)]
    pub share_max: BTreeMap<String, f64>,
    /// p99 latency bounds (from the scheduled start), in ms.
    pub p99_ms_max: Option<f64>,
    /// Lower bound: a deadline that fires early is a bug too.
    pub p99_ms_min: Option<f64>,
    /// Every probe of B's `/health` in the phase answered 200.
    pub b_health: Option<bool>,
    /// p99 of the `/health` probes, in ms.
    pub health_p99_ms_max: Option<f64>,
    /// B's breaker state at the end of the phase.
    pub breaker: Option<String>,
    /// Breaker states B entered during the phase, each at least once.
    #[serde(default)]
    pub breaker_seen: Vec<String>,
    /// Requests A received per call (retry amplification), at most.
    pub a_requests_per_call_max: Option<f64>,
    /// Requests A worked on at once, from its log lines, at most.
    pub a_in_flight_max: Option<u32>,
}

/// What happens to A's process at a phase's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// SIGTERM: A finishes what is in flight (up to its grace) and exits.
    Stop,
    /// SIGKILL: A vanishes mid-request.
    Kill,
    /// A started again on the same port.
    Start,
}

impl Action {
    /// The word in the file and the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Stop => "stop",
            Action::Kill => "kill",
            Action::Start => "start",
        }
    }
}

/// One phase, checked, its duration already scaled.
#[derive(Debug, Clone)]
pub struct Phase {
    pub name: String,
    pub seconds: f64,
    /// The whole `[fault]` section to write to A's TOML at the phase's start.
    pub fault: Option<toml::Table>,
    pub action: Option<Action>,
    pub headers: Vec<(String, String)>,
    pub expect: Expect,
}

/// A checked experiment.
#[derive(Debug, Clone)]
pub struct Experiment {
    pub title: String,
    /// A is a proxy in front of a second A that echoes (`behind = "echo"`).
    pub behind_echo: bool,
    /// A's config without `[fault]` (the runner adds the port and the fault).
    pub a: toml::Table,
    /// A's `[fault]` before the first phase.
    pub a_fault: toml::Table,
    /// B's config (the runner adds the port and A's URL).
    pub b: toml::Table,
    /// Calls per second.
    pub rate: f64,
    pub max_in_flight: u32,
    pub msg: String,
    pub phases: Vec<Phase>,
    /// B's `upstream.timeout_ms`.
    pub timeout_ms: u64,
    /// The factor phase durations were multiplied by.
    pub scale: f64,
}

impl Experiment {
    /// Seconds from the start of the run to the end of its last phase.
    pub fn total_seconds(&self) -> f64 {
        self.phases.iter().map(|p| p.seconds).sum()
    }

    /// Start of each phase, in seconds from the start of the run.
    pub fn phase_starts(&self) -> Vec<f64> {
        let mut at = 0.0;
        self.phases
            .iter()
            .map(|p| {
                let start = at;
                at += p.seconds;
                start
            })
            .collect()
    }

    /// Puts A in front of `url` (`[proxy] upstream`).
    pub fn proxy_to(&mut self, url: &str) {
        set(
            &mut self.a,
            "proxy",
            "upstream",
            toml::Value::String(url.into()),
        );
    }

    /// A's TOML: its settings, `port`, and `fault` as its `[fault]`.
    pub fn a_toml(&self, port: u16, fault: &toml::Table) -> String {
        let mut table = self.a.clone();
        set(
            &mut table,
            "server",
            "port",
            toml::Value::Integer(port.into()),
        );
        table.insert("fault".into(), toml::Value::Table(fault.clone()));
        toml::to_string(&table).unwrap_or_default()
    }

    /// B's TOML: its settings, port 0 and A's URL.
    pub fn b_toml(&self, a_url: &str) -> String {
        let mut table = self.b.clone();
        set(&mut table, "server", "port", toml::Value::Integer(0));
        set(
            &mut table,
            "upstream",
            "url",
            toml::Value::String(a_url.into()),
        );
        toml::to_string(&table).unwrap_or_default()
    }
}

/// Sets `section.key`, making the section if needed.
fn set(table: &mut toml::Table, section: &str, key: &str, value: toml::Value) {
    let entry = table
        .entry(section)
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(t) = entry {
        t.insert(key.into(), value);
    }
}

/// Reads and checks `path`; `scale` multiplies every phase's duration.
pub fn load(path: &Path, scale: Scale) -> anyhow::Result<Experiment> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            anyhow::bail!("{}", not_found(path, Path::new(EXPERIMENTS)))
        }
        Err(e) => anyhow::bail!("cannot read experiment file {}: {e}", path.display()),
    };
    parse(&text, scale).map_err(|e| anyhow::anyhow!("{}: {e:#}", path.display()))
}

/// Where the shipped experiments are, relative to the repository's root.
const EXPERIMENTS: &str = "experiments";

/// What to say when `path` does not exist: a bare name (`course`, the
/// `just experiment course` habit) or a near miss gets "did you mean", and
/// the files in `folder` are listed.
fn not_found(path: &Path, folder: &Path) -> String {
    let mut known: Vec<String> = std::fs::read_dir(folder)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .filter_map(|p| Some(p.file_stem()?.to_string_lossy().to_string()))
        .collect();
    known.sort();
    let asked = path
        .file_stem()
        .map_or(String::new(), |s| s.to_string_lossy().to_lowercase());
    let near = known.iter().find(|k| **k == asked).or_else(|| {
        known.iter().find(|k| {
            k.starts_with(&asked) || asked.starts_with(k.as_str()) || edits(k, &asked) <= 2
        })
    });
    let file = |name: &str| folder.join(format!("{name}.toml")).display().to_string();
    let hint = match near {
        Some(name) => format!(
            "; did you mean `{}`? (`cargo lab experiment {}`, or `just experiment {name}`)",
            file(name),
            file(name)
        ),
        None => String::new(),
    };
    let listed = if known.is_empty() {
        format!(
            " (no experiment files in {} here: run it from the repository's root)",
            folder.display()
        )
    } else {
        let files: Vec<String> = known.iter().map(|k| file(k)).collect();
        format!(". The experiments: {}", files.join(", "))
    };
    format!("no experiment file {}{hint}{listed}", path.display())
}

/// Levenshtein distance: how many letters to add, drop or change.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(here + 1);
            prev = here;
        }
    }
    row[b.len()]
}

/// How to shorten a run.
#[derive(Debug, Clone, Copy)]
pub enum Scale {
    /// As written.
    Full,
    /// Every phase times this factor (0 < F <= 1 shortens).
    Factor(f64),
    /// Scaled so that the whole run lasts about this many seconds.
    Seconds(f64),
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
        if !FAULT_KEYS.contains(&key.as_str()) {
            bail!(
                "{at}.{key}: not a [fault] key; allowed: {}",
                FAULT_KEYS.join(", ")
            );
        }
    }
    Ok(())
}

fn check_expect(at: &str, e: &Expect) -> anyhow::Result<()> {
    for (which, map) in [("share_min", &e.share_min), ("share_max", &e.share_max)] {
        for (kind, share) in map {
            if !OUTCOMES.contains(&kind.as_str()) {
                bail!(
                    "{at}: expect.{which}.{kind}: not an outcome; allowed: {}",
                    OUTCOMES.join(", ")
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
        if !BREAKER_STATES.contains(&state.as_str()) {
            bail!(
                "{at}: expect breaker state {state:?}: allowed: {}",
                BREAKER_STATES.join(", ")
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

    /// A bare name, as `just experiment course` takes it, gets the file it
    /// meant; a near miss too; a name that matches nothing gets the list.
    #[test]
    fn a_bare_name_gets_a_did_you_mean() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["course", "breaker"] {
            std::fs::write(dir.path().join(format!("{name}.toml")), "").unwrap();
        }
        let folder = dir.path();
        let said = not_found(Path::new("course"), folder);
        let meant = folder.join("course.toml").display().to_string();
        assert!(
            said.starts_with("no experiment file course; did you mean `"),
            "{said}"
        );
        assert!(said.contains(&format!("did you mean `{meant}`?")), "{said}");
        let said = not_found(Path::new("experiments/brea.toml"), folder);
        assert!(said.contains("breaker.toml`?"), "{said}");
        let said = not_found(Path::new("experiments/corse.toml"), folder);
        assert!(said.contains(&format!("did you mean `{meant}`?")), "{said}");
        let said = not_found(Path::new("nothing"), folder);
        assert!(!said.contains("did you mean"), "{said}");
        assert!(said.contains(&meant), "the list: {said}");
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
