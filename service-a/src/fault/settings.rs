//! `[fault]` as written in the file (or sent to the control API): every key,
//! its limits, and the log fields that show it, `[[fault.rules]]` included
//! (a rule holds a `[fault]` of its own). Pure data: no dice, no state, and
//! no import of its siblings: the dice (`draw`), the matching of rules
//! (`rules`) and the headers read it, not the other way round.
//!
//! [`FaultSettings::KEYS`] is A's list of `[fault]` keys for others to read
//! (the lab checks an experiment's `[fault]` against it); tests tie it to the
//! struct (the keys serde writes) and to the shipped `config/service-a.toml`
//! (the keys it documents), so a key added in one place only fails a test.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use service_runtime::config::Invalid;
use service_runtime::log::Line;

/// The longest delay the file may set (one hour): anything longer is a typo.
pub(super) const MAX_DELAY_MS: u64 = 3_600_000;

/// The fastest trickle worth the name; faster is just a body.
pub(super) const MAX_BYTES_PER_S: u64 = 1_000_000;

/// The longest `Retry-After` A will announce (a day).
pub(super) const MAX_RETRY_AFTER_S: u64 = 86_400;

/// `[fault]` in config/service-a.toml: read at start and again on every save.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultSettings {
    /// Wait this long before answering.
    pub delay_ms: u64,
    /// Plus a uniform random 0..=jitter_ms.
    pub jitter_ms: u64,
    /// Instead of delay_ms/jitter_ms: a lognormal delay with this median...
    pub delay_p50_ms: u64,
    /// ...and this 99th percentile.
    pub delay_p99_ms: u64,
    /// Answer `fail_status` with `{"error":"injected failure","status":N}`.
    pub fail: bool,
    /// The status of an injected failure, any of 100..=599 (1xx are interim in HTTP: A sends the head alone and closes).
    pub fail_status: u32,
    /// Instead of `fail_status`: statuses drawn by weight, `{ 503 = 3, 500 = 1 }`.
    pub fail_statuses: BTreeMap<String, u32>,
    /// With a 429 or 503 failure, `Retry-After: N` (0: none).
    pub retry_after_s: u64,
    /// Close the connection without an answer (FIN), after the delay.
    pub drop: bool,
    /// Reset the connection (RST) without an answer, after the delay.
    pub reset: bool,
    /// Answer bytes that are not HTTP, then close.
    pub garbage: bool,
    /// Answer 200 with a body that is not `{"echo": ...}`.
    pub bad_body: bool,
    /// Announce the body's length, send half of it, then close.
    pub truncate: bool,
    /// Send the head at once, then stall the body this long.
    pub body_delay_ms: u64,
    /// Send the body at this many bytes per second (0: all at once).
    pub body_bytes_per_s: u64,
    /// Share of `/echo` requests affected, 0.0..=1.0.
    pub probability: f64,
    /// Fail only the first N requests after each (re)load, then answer normally.
    pub fail_first: u64,
    /// Seed for the random choices: the same seed, the same sequence of faults.
    pub seed: Option<u64>,
    /// Honour the `x-fault-*` request headers.
    pub allow_headers: bool,
    /// Faults for some requests only: the first rule that matches gives a
    /// request's faults instead of the keys above (`[[fault.rules]]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
}

impl Default for FaultSettings {
    fn default() -> Self {
        Self {
            delay_ms: 0,
            jitter_ms: 0,
            delay_p50_ms: 0,
            delay_p99_ms: 0,
            fail: false,
            fail_status: 500,
            fail_statuses: BTreeMap::new(),
            retry_after_s: 0,
            drop: false,
            reset: false,
            garbage: false,
            bad_body: false,
            truncate: false,
            body_delay_ms: 0,
            body_bytes_per_s: 0,
            probability: 1.0,
            fail_first: 0,
            seed: None,
            allow_headers: true,
            rules: Vec::new(),
        }
    }
}

impl FaultSettings {
    /// Every `[fault]` key, in the order the shipped file documents them.
    pub const KEYS: [&'static str; 20] = [
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

    /// Checks every `[fault]` key.
    pub fn validate(&self) -> Result<(), Invalid> {
        Invalid::check_range("fault.delay_ms", self.delay_ms, 0..=MAX_DELAY_MS)?;
        Invalid::check_range("fault.jitter_ms", self.jitter_ms, 0..=MAX_DELAY_MS)?;
        Invalid::check_range("fault.delay_p50_ms", self.delay_p50_ms, 0..=MAX_DELAY_MS)?;
        if self.delay_p50_ms > 0 {
            Invalid::check_range(
                "fault.delay_p99_ms",
                self.delay_p99_ms,
                self.delay_p50_ms..=MAX_DELAY_MS,
            )?;
            if self.delay_ms > 0 || self.jitter_ms > 0 {
                return Err(Invalid {
                    key: "fault.delay_p50_ms",
                    value: self.delay_p50_ms.to_string(),
                    expected: "0 while delay_ms or jitter_ms is set: one kind of delay at a time"
                        .to_owned(),
                });
            }
        } else if self.delay_p99_ms > 0 {
            return Err(Invalid {
                key: "fault.delay_p99_ms",
                value: self.delay_p99_ms.to_string(),
                expected: "0 unless delay_p50_ms is set too".to_owned(),
            });
        }
        if !u16::try_from(self.fail_status).is_ok_and(sendable) {
            return Err(Invalid {
                key: "fault.fail_status",
                value: self.fail_status.to_string(),
                expected: sendable_list(),
            });
        }
        for (code, weight) in &self.fail_statuses {
            let status = code.trim().parse::<u16>().ok().filter(|c| sendable(*c));
            if status.is_none() {
                return Err(Invalid {
                    key: "fault.fail_statuses",
                    value: format!("{code} = {weight}"),
                    expected: format!(
                        "statuses among {} with whole-number weights, e.g. {{ 503 = 3, 500 = 1 }}",
                        sendable_list()
                    ),
                });
            }
        }
        if !self.fail_statuses.is_empty() && self.fail_statuses.values().all(|w| *w == 0) {
            return Err(Invalid {
                key: "fault.fail_statuses",
                value: "all weights 0".to_owned(),
                expected: "at least one weight above 0".to_owned(),
            });
        }
        Invalid::check_range(
            "fault.retry_after_s",
            self.retry_after_s,
            0..=MAX_RETRY_AFTER_S,
        )?;
        Invalid::check_range("fault.body_delay_ms", self.body_delay_ms, 0..=MAX_DELAY_MS)?;
        Invalid::check_range(
            "fault.body_bytes_per_s",
            self.body_bytes_per_s,
            0..=MAX_BYTES_PER_S,
        )?;
        Invalid::check_range("fault.probability", self.probability, 0.0..=1.0)?;
        if self.rules.len() > MAX_RULES {
            return Err(Invalid {
                key: "fault.rules",
                value: format!("{} rules", self.rules.len()),
                expected: format!("at most {MAX_RULES}"),
            });
        }
        for (i, rule) in self.rules.iter().enumerate() {
            rule.validate(i)?;
        }
        Ok(())
    }

    /// Adds every setting to a log line (`delay_ms=1500 fail=false ...`).
    pub fn log_fields(&self, line: Line) -> Line {
        let statuses: Vec<String> = self
            .fail_statuses
            .iter()
            .map(|(code, weight)| format!("{code}:{weight}"))
            .collect();
        line.num("delay_ms", self.delay_ms)
            .num("jitter_ms", self.jitter_ms)
            .num("delay_p50_ms", self.delay_p50_ms)
            .num("delay_p99_ms", self.delay_p99_ms)
            .num("fail", self.fail)
            .num("fail_status", self.fail_status)
            .str("fail_statuses", &statuses.join(","))
            .num("retry_after_s", self.retry_after_s)
            .num("drop", self.drop)
            .num("reset", self.reset)
            .num("garbage", self.garbage)
            .num("bad_body", self.bad_body)
            .num("truncate", self.truncate)
            .num("body_delay_ms", self.body_delay_ms)
            .num("body_bytes_per_s", self.body_bytes_per_s)
            .num("probability", self.probability)
            .num("fail_first", self.fail_first)
            .str(
                "seed",
                &self.seed.map_or("none".to_owned(), |s| s.to_string()),
            )
            .num("allow_headers", self.allow_headers)
            .num("rules", self.rules.len())
    }

    /// True when no setting can touch a request: the hot path skips the dice.
    pub(super) fn is_inert(&self) -> bool {
        self == &Self {
            probability: self.probability,
            fail_status: self.fail_status,
            fail_statuses: self.fail_statuses.clone(),
            retry_after_s: self.retry_after_s,
            seed: self.seed,
            allow_headers: self.allow_headers,
            rules: self.rules.clone(),
            ..Self::default()
        } && (self.fail_statuses.is_empty() || !self.fail)
    }
}

/// The most rules one `[fault]` may hold: each request may try them all.
pub const MAX_RULES: usize = 64;

/// One `[[fault.rules]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// `POST`, ...; empty or absent: any method.
    #[serde(default)]
    pub method: String,
    /// A path prefix (`/orders`), or a glob over the whole path
    /// (`/orders/*/items`); empty or absent: any path.
    #[serde(default)]
    pub path: String,
    /// `name: value` (the value exactly), or `name` (present at all); empty
    /// or absent: any request.
    #[serde(default)]
    pub header: String,
    /// The faults of the requests it matches: any `[fault]` key but `rules`
    /// and `allow_headers` (the top level's).
    #[serde(default)]
    pub fault: FaultSettings,
}

impl Rule {
    /// Checks one rule, `i` counted from 0 in the order written.
    pub fn validate(&self, i: usize) -> Result<(), Invalid> {
        let bad = |key: &'static str, value: &str, expected: &str| Invalid {
            key,
            value: format!("rule {i}: {value:?}"),
            expected: expected.to_owned(),
        };
        if !self.method.bytes().all(is_tchar) {
            return Err(bad(
                "fault.rules.method",
                &self.method,
                "a method such as \"POST\" (letters only), or empty for any",
            ));
        }
        if !self.path.is_empty() && !self.path.starts_with('/') {
            return Err(bad(
                "fault.rules.path",
                &self.path,
                "a path starting with /: a prefix (\"/orders\") or a glob (\"/orders/*/items\")",
            ));
        }
        let name = self.header.split(':').next().unwrap_or_default().trim();
        if !self.header.is_empty() && (name.is_empty() || !name.bytes().all(is_tchar)) {
            return Err(bad(
                "fault.rules.header",
                &self.header,
                "\"name: value\" or \"name\", e.g. \"x-tenant: blue\"",
            ));
        }
        if !self.fault.rules.is_empty() {
            return Err(bad(
                "fault.rules.fault.rules",
                "nested rules",
                "no rules inside a rule: list them all under [[fault.rules]]",
            ));
        }
        self.fault.validate()
    }
}

/// A byte of an HTTP token (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether A can send `code` as an injected failure: any three-digit status
/// HTTP allows, 100..=599. A writes the ones http-types cannot name (420, 499,
/// 599) itself, and B reads every one back exactly.
pub fn sendable(code: u16) -> bool {
    (100..=599).contains(&code)
}

/// The statuses [`sendable`] accepts, for messages.
pub fn sendable_list() -> String {
    "100..=599".to_owned()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The shipped file: its `[fault]` section documents every key.
    const SHIPPED: &str = include_str!("../../../config/service-a.toml");

    /// `KEYS` are the keys the struct reads and writes: those serde writes
    /// for a `[fault]` with a rule (`rules` is left out when empty), and
    /// nothing else is accepted.
    #[test]
    fn keys_are_the_structs() {
        let with_a_rule = FaultSettings {
            rules: vec![Rule {
                method: String::new(),
                path: String::new(),
                header: String::new(),
                fault: FaultSettings::default(),
            }],
            ..FaultSettings::default()
        };
        let json = serde_json::to_value(&with_a_rule).unwrap();
        let written: BTreeSet<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let keys: BTreeSet<&str> = FaultSettings::KEYS.into_iter().collect();
        assert_eq!(keys.len(), FaultSettings::KEYS.len(), "a key listed twice");
        assert_eq!(
            keys, written,
            "FaultSettings::KEYS against the struct's fields"
        );
        let unknown = serde_json::from_str::<FaultSettings>(r#"{"no_such_key": 1}"#).unwrap_err();
        for key in FaultSettings::KEYS {
            assert!(
                unknown.to_string().contains(&format!("`{key}`")),
                "{unknown}"
            );
        }
    }

    /// The shipped `config/service-a.toml` documents every key, in `KEYS`'
    /// order: set (`delay_ms = 0`), commented out (`# seed = 42`), or, for
    /// `rules`, an example `[[fault.rules]]`.
    #[test]
    fn keys_are_the_shipped_files() {
        let section = SHIPPED
            .split_once("\n[fault]\n")
            .map(|(_, rest)| rest)
            .expect("config/service-a.toml has a [fault] section");
        let (keys, rules) = section
            .split_once("[[fault.rules]]")
            .expect("config/service-a.toml shows an example [[fault.rules]]");
        let mut documented: Vec<&str> = keys
            .lines()
            .filter_map(|line| {
                let line = line.strip_prefix("# ").unwrap_or(line);
                let (key, _) = line.split_once(" = ")?;
                let key = key.trim_end();
                key.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                    .then_some(key)
            })
            .collect();
        if !rules.is_empty() {
            documented.push("rules");
        }
        assert_eq!(
            documented,
            FaultSettings::KEYS,
            "[fault] in config/service-a.toml"
        );
    }
}
