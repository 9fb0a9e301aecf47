//! The dice: each (re)load's counter (for `fail_first`) and random generator
//! (for `probability`, jitter, the lognormal delay, weighted statuses and
//! garbage bytes, seeded by `seed`), and the draw of one request's plan.
//! The distributions drawn from are `distribution.rs`'s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use http_types::Request;
use service_runtime::http::ApiError;
use service_runtime::wire;

use super::distribution::{Delay, Statuses};
use super::plan::{Broken, Plan};
use super::settings::{FaultSettings, Rule, MAX_DELAY_MS};

/// The faults in force since the last (re)load (or API change): the
/// top-level dice and each rule's, each with its own counter and generator.
#[derive(Debug)]
pub struct Faults {
    /// The settings as loaded.
    pub settings: FaultSettings,
    base: Dice,
    /// In the order written: the first that matches draws.
    rules: Vec<(Rule, Dice)>,
}

/// One set of faults' counter (`/echo` or proxied requests it drew for,
/// for `fail_first`) and dice.
#[derive(Debug)]
struct Dice {
    settings: FaultSettings,
    seen: AtomicU64,
    /// Seeded by `seed`; locked only for the draws of one request.
    rng: Mutex<fastrand::Rng>,
    /// No setting can touch a request: the hot path skips the dice.
    inert: bool,
}

impl Faults {
    /// Fresh state for freshly loaded settings. A rule without a seed of
    /// its own, under a top-level seed, is seeded from it (its place added),
    /// so one seed replays every rule too.
    pub fn new(settings: FaultSettings) -> Self {
        let base = Dice::new(settings.clone(), settings.seed);
        let rules = settings
            .rules
            .iter()
            .enumerate()
            .map(|(i, rule)| {
                let seed = rule
                    .fault
                    .seed
                    .or(settings.seed.map(|s| s.wrapping_add(i as u64 + 1)));
                (rule.clone(), Dice::new(rule.fault.clone(), seed))
            })
            .collect();
        Self {
            settings,
            base,
            rules,
        }
    }

    /// Decides what happens to one request: the first rule's faults that
    /// matches it (else the top level's), then its headers.
    pub fn plan(&self, req: &Request) -> Result<Plan, ApiError> {
        let dice = self
            .rules
            .iter()
            .find(|(rule, _)| rule.matches(req))
            .map_or(&self.base, |(_, dice)| dice);
        let mut plan = dice.draw();
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
}

impl Dice {
    fn new(settings: FaultSettings, seed: Option<u64>) -> Self {
        let rng = seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed);
        Self {
            inert: settings.is_inert(),
            settings,
            seen: AtomicU64::new(0),
            rng: Mutex::new(rng),
        }
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
        let fail = failing.then(|| Statuses::of(s).draw(&mut rng));
        let retry_after = (s.retry_after_s > 0).then_some(s.retry_after_s);
        if !affected {
            return Plan {
                fail,
                retry_after,
                ..Plan::default()
            };
        }
        Plan {
            delay: Delay::of(s).draw(&mut rng),
            fail,
            retry_after,
            broken: broken(s),
            garbage_seed: rng.u64(..),
            body_delay: Duration::from_millis(s.body_delay_ms),
            bytes_per_s: s.body_bytes_per_s,
            ..Plan::default()
        }
    }
}

impl Statuses {
    /// The statuses a failure of `s` draws from, with their weights.
    fn of(s: &FaultSettings) -> Self {
        if s.fail_statuses.is_empty() {
            return Statuses::One(s.fail_status as u16);
        }
        let weighted = s
            .fail_statuses
            .iter()
            .filter_map(|(code, weight)| Some((code.trim().parse().ok()?, *weight)))
            .collect();
        Statuses::Weighted(weighted)
    }
}

impl Delay {
    /// The delay of a request `s` affects, before jitter: fixed or lognormal.
    fn of(s: &FaultSettings) -> Self {
        if s.delay_p50_ms > 0 {
            Delay::LogNormal {
                p50_ms: s.delay_p50_ms,
                p99_ms: s.delay_p99_ms,
                cap_ms: MAX_DELAY_MS,
            }
        } else {
            Delay::Fixed {
                ms: s.delay_ms,
                jitter_ms: s.jitter_ms,
            }
        }
    }
}

/// What `s` breaks in the answer, by precedence: reset, drop, garbage,
/// truncate, bad_body.
fn broken(s: &FaultSettings) -> Broken {
    [
        (s.reset, Broken::Reset),
        (s.drop, Broken::Drop),
        (s.garbage, Broken::Garbage),
        (s.truncate, Broken::Truncate),
        (s.bad_body, Broken::BadBody),
    ]
    .into_iter()
    .find_map(|(on, broken)| on.then_some(broken))
    .unwrap_or_default()
}
