//! Fault injection: what `[fault]` and the `x-fault-*` headers make A do to `/echo`.
//!
//! Each (re)load of the config builds a fresh [`Faults`]: its counter (for
//! `fail_first`) and its random generator (for `probability`, jitter, the
//! lognormal delay, weighted statuses and garbage bytes, seeded by `seed`)
//! start afresh, so the same seed replays the same faults. Every request
//! draws its own [`Plan`]: faults are decided per request, never per
//! connection, so keep-alive connections do not escape them.
//!
//! A fault has one name everywhere: in `x-fault-injected`, in A's log line
//! (`fault=`) and in `faults_injected_total{fault=...}` ([`Plan::names`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use http_types::Request;
use serde::{Deserialize, Serialize};
use service_runtime::config::Invalid;
use service_runtime::http::ApiError;
use service_runtime::log::Line;
use service_runtime::wire;

/// The most time the `x-fault-*` headers of one request may ask for, all
/// together: its delay, its body delay and its trickle share this one
/// minute (a delay of 40 s leaves 20 s for the body), so a header cannot
/// park a connection for more than a minute. The file's `[fault]` is the
/// operator's choice and is not capped by it.
pub const MAX_HEADER_DELAY_MS: u64 = 60_000;

/// The share of `server.max_connections`, in percent, that requests slowed
/// by their own headers (a delay, a body delay, a trickle) may hold at
/// once; the excess is answered 429 at once. The other three quarters stay
/// free for everyone else, `/health` and `/metrics` included: one client
/// sending 1 024 delayed requests cannot lock A out (nginx's `limit_conn`,
/// for the one kind of request a client can make slow on purpose).
pub const HEADER_SLOW_SHARE_PERCENT: usize = 25;

/// The longest delay the file may set (one hour): anything longer is a typo.
const MAX_DELAY_MS: u64 = 3_600_000;

/// The fastest trickle worth the name; faster is just a body.
const MAX_BYTES_PER_S: u64 = 1_000_000;

/// The longest `Retry-After` A will announce (a day).
const MAX_RETRY_AFTER_S: u64 = 86_400;

/// The z-score of the 99th percentile of a normal distribution: a lognormal
/// delay with median m and 99th percentile p has sigma = ln(p / m) / Z_99.
const Z_99: f64 = 2.326_347_874;

/// `[fault]` in config/service-a.toml: read at start and again on every save.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
        }
    }
}

impl FaultSettings {
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
    }

    /// True when no setting can touch a request: the hot path skips the dice.
    fn is_inert(&self) -> bool {
        self == &Self {
            probability: self.probability,
            fail_status: self.fail_status,
            fail_statuses: self.fail_statuses.clone(),
            retry_after_s: self.retry_after_s,
            seed: self.seed,
            allow_headers: self.allow_headers,
            ..Self::default()
        } && (self.fail_statuses.is_empty() || !self.fail)
    }

    /// The statuses a failure draws from, with their weights.
    fn statuses(&self) -> Statuses {
        if self.fail_statuses.is_empty() {
            return Statuses::One(self.fail_status as u16);
        }
        let weighted = self
            .fail_statuses
            .iter()
            .filter_map(|(code, weight)| Some((code.trim().parse().ok()?, *weight)))
            .collect();
        Statuses::Weighted(weighted)
    }

    /// The delay of an affected request, before jitter: fixed or lognormal.
    fn delay(&self) -> Delay {
        if self.delay_p50_ms > 0 {
            Delay::LogNormal {
                p50_ms: self.delay_p50_ms,
                p99_ms: self.delay_p99_ms,
                cap_ms: MAX_DELAY_MS,
            }
        } else {
            Delay::Fixed {
                ms: self.delay_ms,
                jitter_ms: self.jitter_ms,
            }
        }
    }

    /// What breaks the answer, by precedence: reset, drop, garbage, truncate, bad_body.
    fn broken(&self) -> Broken {
        [
            (self.reset, Broken::Reset),
            (self.drop, Broken::Drop),
            (self.garbage, Broken::Garbage),
            (self.truncate, Broken::Truncate),
            (self.bad_body, Broken::BadBody),
        ]
        .into_iter()
        .find_map(|(on, broken)| on.then_some(broken))
        .unwrap_or_default()
    }
}

/// Where a failure's status comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Statuses {
    One(u16),
    Weighted(Vec<(u16, u32)>),
}

impl Statuses {
    fn draw(&self, rng: &mut fastrand::Rng) -> u16 {
        match self {
            Statuses::One(code) => *code,
            Statuses::Weighted(weighted) => {
                let total: u64 = weighted.iter().map(|(_, w)| u64::from(*w)).sum();
                let mut pick = rng.u64(0..total.max(1));
                for (code, weight) in weighted {
                    if pick < u64::from(*weight) {
                        return *code;
                    }
                    pick -= u64::from(*weight);
                }
                weighted.last().map_or(500, |(code, _)| *code)
            }
        }
    }
}

/// How long an affected request waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delay {
    Fixed {
        ms: u64,
        jitter_ms: u64,
    },
    LogNormal {
        p50_ms: u64,
        p99_ms: u64,
        cap_ms: u64,
    },
}

impl Delay {
    fn draw(self, rng: &mut fastrand::Rng) -> Duration {
        match self {
            Delay::Fixed { ms, jitter_ms: 0 } => Duration::from_millis(ms),
            Delay::Fixed { ms, jitter_ms } => Duration::from_millis(ms + rng.u64(0..=jitter_ms)),
            Delay::LogNormal {
                p50_ms,
                p99_ms,
                cap_ms,
            } => {
                let mu = (p50_ms as f64).ln();
                let sigma = ((p99_ms as f64) / (p50_ms as f64)).ln() / Z_99;
                // Box-Muller: a standard normal from two uniforms in (0, 1].
                let (u1, u2) = (1.0 - rng.f64(), rng.f64());
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                let ms = (mu + sigma * z).exp().min(cap_ms as f64);
                Duration::from_secs_f64(ms / 1000.0)
            }
        }
    }
}

/// What happens instead of a well-formed echo (at most one per request).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Broken {
    /// Nothing: the answer is what it should be.
    #[default]
    No,
    /// Closed without an answer: FIN.
    Drop,
    /// Reset without an answer: RST.
    Reset,
    /// Bytes that are not HTTP, then closed.
    Garbage,
    /// The head, then half the announced body, then closed.
    Truncate,
    /// A 200 whose body is not the echo's JSON.
    BadBody,
}

impl Broken {
    fn name(self) -> Option<&'static str> {
        match self {
            Broken::No => None,
            Broken::Drop => Some("drop"),
            Broken::Reset => Some("reset"),
            Broken::Garbage => Some("garbage"),
            Broken::Truncate => Some("truncate"),
            Broken::BadBody => Some("bad_body"),
        }
    }

    /// Whether any answer head goes out at all.
    pub fn answers(self) -> bool {
        !matches!(self, Broken::Drop | Broken::Reset | Broken::Garbage)
    }
}

/// The faults in force since the last (re)load, with their counter and dice.
#[derive(Debug)]
pub struct Faults {
    /// The settings as loaded.
    pub settings: FaultSettings,
    /// `/echo` requests seen since this load (for `fail_first`).
    seen: AtomicU64,
    /// Seeded by `seed`; locked only for the draws of one request.
    rng: Mutex<fastrand::Rng>,
    /// No setting can touch a request: the hot path skips the dice.
    inert: bool,
}

impl Faults {
    /// Fresh state for freshly loaded settings.
    pub fn new(settings: FaultSettings) -> Self {
        let rng = settings
            .seed
            .map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed);
        Self {
            inert: settings.is_inert(),
            settings,
            seen: AtomicU64::new(0),
            rng: Mutex::new(rng),
        }
    }

    /// Decides what happens to one `/echo` request: the file's faults, then its headers.
    pub fn plan(&self, req: &Request) -> Result<Plan, ApiError> {
        let mut plan = self.draw();
        // Most requests carry no fault header: one pass over the few
        // headers there are spares a dozen lookups.
        let asks = || {
            req.iter()
                .any(|(name, _)| name.as_str().starts_with(wire::FAULT_PREFIX))
        };
        if self.settings.allow_headers && asks() {
            // A generator of its own: a header's draws never shift the
            // seeded sequence of the file's faults.
            plan.apply_headers(req, &mut fastrand::Rng::new())?;
        }
        Ok(plan.settled(req.method() == http_types::Method::Head))
    }

    fn draw(&self) -> Plan {
        let s = &self.settings;
        if self.inert {
            return Plan::default();
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        let affected = s.probability >= 1.0 || rng.f64() < s.probability;
        let failing = if s.fail_first > 0 {
            n < s.fail_first
        } else {
            affected && s.fail
        };
        let fail = failing.then(|| s.statuses().draw(&mut rng));
        let retry_after = (s.retry_after_s > 0).then_some(s.retry_after_s);
        if !affected {
            return Plan {
                fail,
                retry_after,
                ..Plan::default()
            };
        }
        Plan {
            delay: s.delay().draw(&mut rng),
            fail,
            retry_after,
            broken: s.broken(),
            garbage_seed: rng.u64(..),
            body_delay: Duration::from_millis(s.body_delay_ms),
            bytes_per_s: s.body_bytes_per_s,
            ..Plan::default()
        }
    }
}

/// What one request gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Wait before answering (or breaking the connection).
    pub delay: Duration,
    /// Answer this status instead of the echo.
    pub fail: Option<u16>,
    /// With a 429 or 503 failure, `Retry-After` in seconds.
    pub retry_after: Option<u64>,
    /// What breaks the answer, if anything.
    pub broken: Broken,
    /// Seeds the garbage bytes, so a seed replays them too.
    pub garbage_seed: u64,
    /// Stall the body after the head.
    pub body_delay: Duration,
    /// Send the body at this many bytes per second (0: at once).
    pub bytes_per_s: u64,
    /// What the request's own headers made slow: counted against the
    /// budget of [`HEADER_SLOW_SHARE_PERCENT`].
    pub slowed_by_headers: bool,
    /// The longest the trickle may take: what the header cap
    /// ([`MAX_HEADER_DELAY_MS`]) leaves after the delays, when a header
    /// asked for the trickle.
    pub trickle_within: Option<Duration>,
}

impl Plan {
    /// Header faults for this request only; they take precedence over the file's.
    fn apply_headers(&mut self, req: &Request, rng: &mut fastrand::Rng) -> Result<(), ApiError> {
        let value = |name: &str| {
            req.header(name)
                .map(|v| v.last().as_str().trim().to_owned())
        };
        // Which of the slow faults the headers set: they share one cap.
        let mut asked_delay = false;
        if let Some(v) = value(wire::FAULT_DELAY_MS) {
            self.delay = Duration::from_millis(millis(wire::FAULT_DELAY_MS, &v)?);
            asked_delay = true;
        }
        let p50 = value(wire::FAULT_DELAY_P50_MS);
        let p99 = value(wire::FAULT_DELAY_P99_MS);
        if p50.is_some() || p99.is_some() {
            let (Some(p50), Some(p99)) = (p50, p99) else {
                return Err(ApiError::bad_request(format!(
                    "{} and {} go together",
                    wire::FAULT_DELAY_P50_MS,
                    wire::FAULT_DELAY_P99_MS
                )));
            };
            let p50_ms = millis(wire::FAULT_DELAY_P50_MS, &p50)?.max(1);
            let p99_ms = millis(wire::FAULT_DELAY_P99_MS, &p99)?.max(p50_ms);
            let delay = Delay::LogNormal {
                p50_ms,
                p99_ms,
                cap_ms: MAX_HEADER_DELAY_MS,
            };
            self.delay = delay.draw(rng);
            asked_delay = true;
        }
        if let Some(v) = value(wire::FAULT_STATUS) {
            self.fail = Some(statuses(&v)?.draw(rng));
        }
        if let Some(v) = value(wire::FAULT_RETRY_AFTER_S) {
            let s = v
                .parse::<u64>()
                .ok()
                .filter(|s| *s <= MAX_RETRY_AFTER_S)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "{} must be whole seconds, 0..={MAX_RETRY_AFTER_S}, got {v:?}",
                        wire::FAULT_RETRY_AFTER_S
                    ))
                })?;
            self.retry_after = (s > 0).then_some(s);
        }
        // In precedence order: the first header that is on wins, as in the file.
        let mut chosen = None;
        for (name, broken) in [
            (wire::FAULT_RESET, Broken::Reset),
            (wire::FAULT_DROP, Broken::Drop),
            (wire::FAULT_GARBAGE, Broken::Garbage),
            (wire::FAULT_TRUNCATE, Broken::Truncate),
            (wire::FAULT_BAD_BODY, Broken::BadBody),
        ] {
            if let Some(v) = value(name) {
                match flag(name, &v)? {
                    true => chosen = chosen.or(Some(broken)),
                    false if self.broken == broken => self.broken = Broken::No,
                    false => {}
                }
            }
        }
        if let Some(broken) = chosen {
            self.broken = broken;
        }
        let mut asked_body_delay = false;
        if let Some(v) = value(wire::FAULT_BODY_DELAY_MS) {
            self.body_delay = Duration::from_millis(millis(wire::FAULT_BODY_DELAY_MS, &v)?);
            asked_body_delay = true;
        }
        let asked_trickle = value(wire::FAULT_BODY_BYTES_PER_S).is_some();
        if let Some(v) = value(wire::FAULT_BODY_BYTES_PER_S) {
            self.bytes_per_s = v
                .parse::<u64>()
                .ok()
                .filter(|n| *n <= MAX_BYTES_PER_S)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "{} must be a whole number of bytes per second, 0..={MAX_BYTES_PER_S}, got {v:?}",
                        wire::FAULT_BODY_BYTES_PER_S
                    ))
                })?;
        }
        // One cap for the whole request: what the headers asked for, in
        // the order it happens, shares MAX_HEADER_DELAY_MS.
        let mut left = Duration::from_millis(MAX_HEADER_DELAY_MS);
        if asked_delay {
            self.delay = self.delay.min(left);
            left -= self.delay;
        }
        if asked_body_delay {
            self.body_delay = self.body_delay.min(left);
            left -= self.body_delay;
        }
        if asked_trickle && self.bytes_per_s > 0 {
            self.trickle_within = Some(left);
        }
        self.slowed_by_headers = (asked_delay && !self.delay.is_zero())
            || (asked_body_delay && !self.body_delay.is_zero())
            || (asked_trickle && self.bytes_per_s > 0);
        Ok(())
    }

    /// Drops what cannot apply alongside the rest, so the names say what
    /// happened: no answer, no failure status; a failure's body is not
    /// replaced by a bad one; a cut body goes out at once; an answer to HEAD
    /// has no body to slow or cut.
    fn settled(mut self, head: bool) -> Self {
        if head {
            self.body_delay = Duration::ZERO;
            self.bytes_per_s = 0;
            if matches!(self.broken, Broken::Truncate | Broken::BadBody) {
                self.broken = Broken::No;
            }
        }
        if self.broken == Broken::Truncate {
            self.body_delay = Duration::ZERO;
            self.bytes_per_s = 0;
        }
        if !self.broken.answers() {
            self.fail = None;
            self.retry_after = None;
            self.body_delay = Duration::ZERO;
            self.bytes_per_s = 0;
        }
        if self.fail.is_some() && self.broken == Broken::BadBody {
            self.broken = Broken::No;
        }
        if !matches!(self.fail, Some(429 | 503)) {
            self.retry_after = None;
        }
        if self.bytes_per_s == 0 {
            self.trickle_within = None;
        }
        if self.delay.is_zero() && self.body_delay.is_zero() && self.bytes_per_s == 0 {
            self.slowed_by_headers = false;
        }
        self
    }

    /// The name of every fault this plan injects, in one order everywhere:
    /// `delay`, `fail`, then what broke the answer, then `body_delay`, `trickle`.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        [
            (!self.delay.is_zero()).then_some("delay"),
            self.fail.is_some().then_some("fail"),
            self.broken.name(),
            (!self.body_delay.is_zero()).then_some("body_delay"),
            (self.bytes_per_s > 0).then_some("trickle"),
        ]
        .into_iter()
        .flatten()
    }

    /// The `x-fault-injected` value (and the log's `fault=`), e.g. `delay,fail`;
    /// none when the request was untouched.
    pub fn label(&self) -> Option<String> {
        let names: Vec<&str> = self.names().collect();
        (!names.is_empty()).then(|| names.join(","))
    }
}

/// A header's whole milliseconds, capped at [`MAX_HEADER_DELAY_MS`].
fn millis(name: &str, value: &str) -> Result<u64, ApiError> {
    let ms: u64 = value.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "{name} must be a whole number of milliseconds, got {value:?}"
        ))
    })?;
    Ok(ms.min(MAX_HEADER_DELAY_MS))
}

/// A header's `1`/`0` (or `true`/`false`).
fn flag(name: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        other => Err(ApiError::bad_request(format!(
            "{name} must be 1 or 0, got {other:?}"
        ))),
    }
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

/// `x-fault-status`: `503`, or weights `503:3,500:1`; every status [`sendable`].
fn statuses(value: &str) -> Result<Statuses, ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "{} must be a status among {}, or weighted statuses like 503:3,500:1, got {value:?}",
            wire::FAULT_STATUS,
            sendable_list()
        ))
    };
    let status = |s: &str| {
        s.trim()
            .parse::<u16>()
            .ok()
            .filter(|c| sendable(*c))
            .ok_or_else(bad)
    };
    if !value.contains([':', ',']) {
        return Ok(Statuses::One(status(value)?));
    }
    let mut weighted = Vec::new();
    for item in value.split(',') {
        let (code, weight) = item.split_once(':').unwrap_or((item, "1"));
        let weight: u32 = weight.trim().parse().map_err(|_| bad())?;
        weighted.push((status(code)?, weight));
    }
    if weighted.iter().all(|(_, w)| *w == 0) {
        return Err(bad());
    }
    Ok(Statuses::Weighted(weighted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get() -> Request {
        Request::get("http://a/echo")
    }

    fn draws(faults: &Faults, n: usize) -> Vec<Plan> {
        (0..n).map(|_| faults.plan(&get()).unwrap()).collect()
    }

    /// No settings, no faults, no header on the answer.
    #[test]
    fn defaults_touch_nothing() {
        let plan = Faults::new(FaultSettings::default()).plan(&get()).unwrap();
        assert_eq!(plan, Plan::default());
        assert_eq!(plan.label(), None);
    }

    /// A header's random draws do not shift the seeded sequence of the file's.
    #[test]
    fn headers_leave_the_seeded_sequence_alone() {
        let settings = FaultSettings {
            fail: true,
            probability: 0.5,
            seed: Some(42),
            ..FaultSettings::default()
        };
        let plain = draws(&Faults::new(settings.clone()), 40);
        let faults = Faults::new(settings);
        let mixed: Vec<Plan> = (0..40)
            .map(|i| {
                let mut req = get();
                if i % 5 == 0 {
                    req.insert_header(wire::FAULT_DELAY_P50_MS, "5");
                    req.insert_header(wire::FAULT_DELAY_P99_MS, "50");
                }
                faults.plan(&req).unwrap()
            })
            .collect();
        let fails = |plans: &[Plan]| plans.iter().map(|p| p.fail).collect::<Vec<_>>();
        assert_eq!(fails(&plain), fails(&mixed));
    }

    /// The same seed gives the same sequence of faults, afresh at each load.
    #[test]
    fn seed_replays_the_same_sequence() {
        let settings = FaultSettings {
            delay_ms: 10,
            jitter_ms: 50,
            fail: true,
            fail_statuses: [("503".to_owned(), 3), ("500".to_owned(), 1)].into(),
            garbage: true,
            probability: 0.5,
            seed: Some(42),
            ..FaultSettings::default()
        };
        let first = draws(&Faults::new(settings.clone()), 50);
        let again = draws(&Faults::new(settings.clone()), 50);
        assert_eq!(first, again);
        let hit = first.iter().filter(|p| p.broken == Broken::Garbage).count();
        assert!((10..=40).contains(&hit), "{hit} of 50 affected at p=0.5");
        let other = draws(
            &Faults::new(FaultSettings {
                seed: Some(43),
                ..settings
            }),
            50,
        );
        assert_ne!(first, other);
    }

    /// `fail_first` fails exactly the first N, then answers normally.
    #[test]
    fn fail_first_then_succeed() {
        let faults = Faults::new(FaultSettings {
            fail_first: 2,
            fail_status: 503,
            ..FaultSettings::default()
        });
        let fails: Vec<_> = draws(&faults, 4).into_iter().map(|p| p.fail).collect();
        assert_eq!(fails, [Some(503), Some(503), None, None]);
    }

    /// Weighted statuses come out in about their proportions.
    #[test]
    fn weighted_statuses() {
        let faults = Faults::new(FaultSettings {
            fail: true,
            fail_statuses: [("503".to_owned(), 3), ("500".to_owned(), 1)].into(),
            retry_after_s: 7,
            seed: Some(1),
            ..FaultSettings::default()
        });
        let plans = draws(&faults, 400);
        let n503 = plans.iter().filter(|p| p.fail == Some(503)).count();
        let n500 = plans.iter().filter(|p| p.fail == Some(500)).count();
        assert_eq!(n503 + n500, 400);
        assert!((260..=340).contains(&n503), "{n503} of 400 were 503 at 3:1");
        assert!(plans
            .iter()
            .all(|p| (p.retry_after == Some(7)) == (p.fail == Some(503))));
    }

    /// The lognormal delay has the median and 99th percentile asked for.
    #[test]
    fn lognormal_delay_percentiles() {
        let faults = Faults::new(FaultSettings {
            delay_p50_ms: 100,
            delay_p99_ms: 1000,
            seed: Some(7),
            ..FaultSettings::default()
        });
        let mut ms: Vec<f64> = draws(&faults, 20_000)
            .iter()
            .map(|p| p.delay.as_secs_f64() * 1000.0)
            .collect();
        ms.sort_by(f64::total_cmp);
        let (p50, p99) = (ms[10_000], ms[19_800]);
        assert!((90.0..110.0).contains(&p50), "p50 {p50}");
        assert!((900.0..1100.0).contains(&p99), "p99 {p99}");
    }

    /// Headers take precedence, are capped, and a bad value is the client's 400.
    #[test]
    fn header_faults() {
        let faults = Faults::new(FaultSettings::default());
        let mut req = get();
        req.insert_header(wire::FAULT_DELAY_MS, "999999");
        req.insert_header(wire::FAULT_STATUS, "418");
        let plan = faults.plan(&req).unwrap();
        assert_eq!(plan.delay, Duration::from_millis(MAX_HEADER_DELAY_MS));
        assert_eq!(plan.fail, Some(418));
        assert_eq!(plan.label().as_deref(), Some("delay,fail"));

        req.insert_header(wire::FAULT_RESET, "1");
        let plan = faults.plan(&req).unwrap();
        assert_eq!((plan.broken, plan.fail), (Broken::Reset, None));
        assert_eq!(plan.label().as_deref(), Some("delay,reset"));

        // Several breakers: the first in the file's order wins, as there.
        let mut both = get();
        both.insert_header(wire::FAULT_GARBAGE, "1");
        both.insert_header(wire::FAULT_RESET, "1");
        both.insert_header(wire::FAULT_TRUNCATE, "1");
        assert_eq!(faults.plan(&both).unwrap().broken, Broken::Reset);

        // A cut body goes out at once: no trickle to name.
        let mut cut = get();
        cut.insert_header(wire::FAULT_TRUNCATE, "1");
        cut.insert_header(wire::FAULT_BODY_BYTES_PER_S, "5");
        assert_eq!(
            faults.plan(&cut).unwrap().label().as_deref(),
            Some("truncate")
        );

        for (name, bad) in [
            (wire::FAULT_STATUS, "600"),
            (wire::FAULT_STATUS, "503:x"),
            (wire::FAULT_RESET, "yes"),
            (wire::FAULT_BODY_BYTES_PER_S, "-1"),
            (wire::FAULT_DELAY_P50_MS, "10"),
        ] {
            let mut req = get();
            req.insert_header(name, bad);
            let err = faults.plan(&req).unwrap_err();
            assert_eq!(
                err.status,
                http_types::StatusCode::BadRequest,
                "{name}: {bad}"
            );
        }

        let off = Faults::new(FaultSettings {
            allow_headers: false,
            ..FaultSettings::default()
        });
        assert_eq!(off.plan(&req).unwrap(), Plan::default());
    }

    /// The headers of one request share one minute: delay, then body delay,
    /// then what is left for the trickle; the file's own delays are not capped.
    #[test]
    fn header_faults_share_one_cap() {
        let faults = Faults::new(FaultSettings::default());
        let mut req = get();
        req.insert_header(wire::FAULT_DELAY_MS, "40000");
        req.insert_header(wire::FAULT_BODY_DELAY_MS, "40000");
        req.insert_header(wire::FAULT_BODY_BYTES_PER_S, "1");
        let plan = faults.plan(&req).unwrap();
        assert_eq!(plan.delay, Duration::from_secs(40));
        assert_eq!(plan.body_delay, Duration::from_secs(20));
        assert_eq!(plan.trickle_within, Some(Duration::ZERO));
        assert!(plan.slowed_by_headers);

        let mut quick = get();
        quick.insert_header(wire::FAULT_STATUS, "503");
        assert!(!faults.plan(&quick).unwrap().slowed_by_headers);

        let file = Faults::new(FaultSettings {
            delay_ms: 120_000,
            body_delay_ms: 120_000,
            ..FaultSettings::default()
        });
        let plan = file.plan(&quick).unwrap();
        assert_eq!(plan.delay + plan.body_delay, Duration::from_secs(240));
        assert!(
            !plan.slowed_by_headers,
            "the file's delays are the operator's"
        );
    }

    /// One name per fault, the same in the header, the log and the metric.
    #[test]
    fn names_are_one_list() {
        let plan = Plan {
            delay: Duration::from_millis(1),
            body_delay: Duration::from_millis(1),
            bytes_per_s: 5,
            broken: Broken::Truncate,
            ..Plan::default()
        };
        assert_eq!(
            plan.label().as_deref(),
            Some("delay,truncate,body_delay,trickle")
        );
    }

    proptest::proptest! {
        /// Whatever a client puts in the fault headers: a plan or a 400, never a panic.
        #[test]
        fn any_fault_header_is_handled(values in proptest::collection::vec(".*", 12)) {
            let names = [
                wire::FAULT_DELAY_MS, wire::FAULT_STATUS, wire::FAULT_DROP, wire::FAULT_RESET,
                wire::FAULT_GARBAGE, wire::FAULT_BAD_BODY, wire::FAULT_TRUNCATE,
                wire::FAULT_BODY_DELAY_MS, wire::FAULT_BODY_BYTES_PER_S,
                wire::FAULT_DELAY_P50_MS, wire::FAULT_DELAY_P99_MS, wire::FAULT_RETRY_AFTER_S,
            ];
            let mut req = get();
            for (name, value) in names.iter().zip(&values) {
                if let Ok(value) = http_types::headers::HeaderValue::from_bytes(value.clone().into_bytes()) {
                    req.insert_header(*name, value);
                }
            }
            match Faults::new(FaultSettings::default()).plan(&req) {
                Ok(plan) => {
                    proptest::prop_assert!(plan.delay + plan.body_delay <= Duration::from_millis(MAX_HEADER_DELAY_MS));
                    proptest::prop_assert!(plan.fail.is_none_or(|c| (100..=599).contains(&c)));
                }
                Err(e) => proptest::prop_assert_eq!(e.status, http_types::StatusCode::BadRequest),
            }
        }
    }

    /// Every out-of-range key is named with what is allowed.
    #[test]
    fn validation_names_the_key() {
        let bad = |s: FaultSettings| s.validate().unwrap_err();
        let p = bad(FaultSettings {
            probability: 1.5,
            ..FaultSettings::default()
        });
        assert_eq!(
            (p.key, p.value.as_str(), p.expected.as_str()),
            ("fault.probability", "1.5", "0.0..=1.0")
        );
        let s = bad(FaultSettings {
            fail_status: 600,
            ..FaultSettings::default()
        });
        assert_eq!(s.key, "fault.fail_status");
        assert_eq!(s.expected, "100..=599");
        for code in [100, 103, 200, 420, 499, 520, 599] {
            let unnamed = FaultSettings {
                fail_status: code,
                ..FaultSettings::default()
            };
            assert!(unnamed.validate().is_ok(), "{code} is sendable");
        }
        let nan = bad(FaultSettings {
            probability: f64::NAN,
            ..FaultSettings::default()
        });
        assert_eq!(nan.key, "fault.probability");
        let weights = bad(FaultSettings {
            fail_statuses: [("99".to_owned(), 1)].into(),
            ..FaultSettings::default()
        });
        assert_eq!(weights.key, "fault.fail_statuses");
        let both = bad(FaultSettings {
            delay_ms: 5,
            delay_p50_ms: 10,
            delay_p99_ms: 20,
            ..FaultSettings::default()
        });
        assert_eq!(both.key, "fault.delay_p50_ms");
    }
}
