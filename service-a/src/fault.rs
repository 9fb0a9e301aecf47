//! Fault injection: what `[fault]` and the `x-fault-*` headers make A do to `/echo`.
//!
//! Each (re)load of the config builds a fresh [`Faults`]: its counter (for
//! `fail_first`) and its random generator (for `probability` and `jitter_ms`,
//! seeded by `seed`) start afresh, so the same seed replays the same faults.
//! Every request draws its own [`Plan`]: faults are decided per request, never per
//! connection, so keep-alive connections do not escape them.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use http_types::{Request, StatusCode};
use serde::{Deserialize, Serialize};
use service_runtime::config::Invalid;
use service_runtime::http::ApiError;
use service_runtime::log::Line;
use smol::future::Future as _;
use smol::io::{AsyncRead, Cursor};
use smol::Timer;

/// The longest delay a request header may ask for: a header cannot park a
/// connection for more than a minute.
pub const MAX_HEADER_DELAY_MS: u64 = 60_000;

/// The longest delay the file may set (one hour): anything longer is a typo.
const MAX_DELAY_MS: u64 = 3_600_000;

pub use service_runtime::wire::{
    FAULT_DELAY_MS as HEADER_DELAY, FAULT_DROP as HEADER_DROP, FAULT_INJECTED as HEADER_INJECTED,
    FAULT_STATUS as HEADER_STATUS,
};

/// `[fault]` in config/service-a.toml: read at start and again on every save.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSettings {
    /// Wait this long before answering.
    pub delay_ms: u64,
    /// Plus a uniform random 0..=jitter_ms.
    pub jitter_ms: u64,
    /// Answer `fail_status` with `{"error":"injected failure","status":N}`.
    pub fail: bool,
    /// The status of an injected failure, 400..=599.
    pub fail_status: u32,
    /// Close the connection without an answer (after the delay).
    pub drop: bool,
    /// Send the head at once, then stall the body this long.
    pub body_delay_ms: u64,
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
            fail: false,
            fail_status: 500,
            drop: false,
            body_delay_ms: 0,
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
        Invalid::check_range("fault.body_delay_ms", self.body_delay_ms, 0..=MAX_DELAY_MS)?;
        Invalid::check_range("fault.fail_status", self.fail_status, 400..=599)?;
        Invalid::check_range("fault.probability", self.probability, 0.0..=1.0)?;
        Ok(())
    }

    /// Adds every setting to a log line (`delay_ms=1500 fail=false ...`).
    pub fn log_fields(&self, line: Line) -> Line {
        line.num("delay_ms", self.delay_ms)
            .num("jitter_ms", self.jitter_ms)
            .num("fail", self.fail)
            .num("fail_status", self.fail_status)
            .num("drop", self.drop)
            .num("body_delay_ms", self.body_delay_ms)
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
        self.delay_ms == 0
            && self.jitter_ms == 0
            && !self.fail
            && !self.drop
            && self.body_delay_ms == 0
            && self.fail_first == 0
    }

    fn fail_status(&self) -> StatusCode {
        status(self.fail_status as u16).unwrap_or(StatusCode::InternalServerError)
    }
}

/// The faults in force since the last (re)load, with their counter and dice.
#[derive(Debug)]
pub struct Faults {
    /// The settings as loaded.
    pub settings: FaultSettings,
    /// `/echo` requests seen since this load (for `fail_first`).
    seen: AtomicU64,
    /// Seeded by `seed`; locked only for the two draws of one request.
    rng: Mutex<fastrand::Rng>,
}

impl Faults {
    /// Fresh state for freshly loaded settings.
    pub fn new(settings: FaultSettings) -> Self {
        let rng = settings
            .seed
            .map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed);
        Self {
            settings,
            seen: AtomicU64::new(0),
            rng: Mutex::new(rng),
        }
    }

    /// Decides what happens to one `/echo` request: the file's faults, then its headers.
    pub fn plan(&self, req: &Request) -> Result<Plan, ApiError> {
        let mut plan = self.draw();
        if self.settings.allow_headers {
            plan.apply_headers(req)?;
        }
        Ok(plan)
    }

    fn draw(&self) -> Plan {
        let s = &self.settings;
        if s.is_inert() {
            return Plan::default();
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        let (affected, jitter) = {
            let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
            let affected = s.probability >= 1.0 || rng.f64() < s.probability;
            let jitter = if affected && s.jitter_ms > 0 {
                rng.u64(0..=s.jitter_ms)
            } else {
                0
            };
            (affected, jitter)
        };
        let fail = if s.fail_first > 0 {
            n < s.fail_first
        } else {
            affected && s.fail
        };
        if !affected {
            return Plan {
                fail: fail.then(|| s.fail_status()),
                ..Plan::default()
            };
        }
        Plan {
            delay: Duration::from_millis(s.delay_ms + jitter),
            fail: fail.then(|| s.fail_status()),
            drop: s.drop,
            body_delay: Duration::from_millis(s.body_delay_ms),
        }
    }
}

/// What one request gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Wait before answering (or dropping).
    pub delay: Duration,
    /// Answer this status instead of the echo.
    pub fail: Option<StatusCode>,
    /// Close the connection without answering.
    pub drop: bool,
    /// Stall the body after the head.
    pub body_delay: Duration,
}

impl Plan {
    /// Header faults for this request only; they take precedence over the file's.
    fn apply_headers(&mut self, req: &Request) -> Result<(), ApiError> {
        if let Some(v) = req.header(HEADER_DELAY) {
            let ms: u64 = v.last().as_str().trim().parse().map_err(|_| {
                ApiError::bad_request(format!(
                    "{HEADER_DELAY} must be a whole number of milliseconds, got {:?}",
                    v.last().as_str()
                ))
            })?;
            self.delay = Duration::from_millis(ms.min(MAX_HEADER_DELAY_MS));
        }
        if let Some(v) = req.header(HEADER_STATUS) {
            let code = v
                .last()
                .as_str()
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|c| (400..=599).contains(c))
                .and_then(status);
            self.fail = Some(code.ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{HEADER_STATUS} must be a status in 400..=599, got {:?}",
                    v.last().as_str()
                ))
            })?);
        }
        if let Some(v) = req.header(HEADER_DROP) {
            self.drop = match v.last().as_str().trim() {
                "1" | "true" => true,
                "0" | "false" => false,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "{HEADER_DROP} must be 1 or 0, got {other:?}"
                    )))
                }
            };
        }
        Ok(())
    }

    /// The `x-fault-injected` value for an answer: `delay`, `fail`, `delay,fail`, or none.
    pub fn injected(&self) -> Option<&'static str> {
        let delayed = !self.delay.is_zero() || !self.body_delay.is_zero();
        match (delayed, self.fail.is_some()) {
            (true, true) => Some("delay,fail"),
            (true, false) => Some("delay"),
            (false, true) => Some("fail"),
            (false, false) => None,
        }
    }

    /// The faults this plan injects: `delay`, `fail`, `drop`, `body_delay`.
    pub fn kinds(&self) -> impl Iterator<Item = &'static str> {
        [
            (!self.delay.is_zero(), "delay"),
            (self.fail.is_some() && !self.drop, "fail"),
            (self.drop, "drop"),
            (!self.body_delay.is_zero(), "body_delay"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
    }

    /// The faults for the log line, e.g. `delay,drop`; none when untouched.
    pub fn log_label(&self) -> Option<String> {
        let parts: Vec<&str> = self.kinds().collect();
        (!parts.is_empty()).then(|| parts.join(","))
    }
}

/// A status code from a number, if http-types knows it.
fn status(code: u16) -> Option<StatusCode> {
    StatusCode::try_from(code).ok()
}

/// A body that says nothing until its timer fires, then reads from `bytes`:
/// the `body_delay_ms` fault (head sent at once, body stalled).
#[derive(Debug)]
pub struct StalledBody {
    timer: Option<Timer>,
    bytes: Cursor<Vec<u8>>,
}

impl StalledBody {
    /// `bytes`, after `stall`.
    pub fn new(bytes: Vec<u8>, stall: Duration) -> Self {
        Self {
            timer: Some(Timer::after(stall)),
            bytes: Cursor::new(bytes),
        }
    }
}

impl AsyncRead for StalledBody {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        if let Some(timer) = self.timer.as_mut() {
            if Pin::new(timer).poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.timer = None;
        }
        Pin::new(&mut self.bytes).poll_read(cx, buf)
    }
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
        assert_eq!(plan.injected(), None);
    }

    /// The same seed gives the same sequence of faults, afresh at each load.
    #[test]
    fn seed_replays_the_same_sequence() {
        let settings = FaultSettings {
            delay_ms: 10,
            jitter_ms: 50,
            fail: true,
            probability: 0.5,
            seed: Some(42),
            ..FaultSettings::default()
        };
        let first = draws(&Faults::new(settings.clone()), 50);
        let again = draws(&Faults::new(settings.clone()), 50);
        assert_eq!(first, again);
        let hit = first.iter().filter(|p| p.fail.is_some()).count();
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
        let unavailable = Some(StatusCode::ServiceUnavailable);
        assert_eq!(fails, [unavailable, unavailable, None, None]);
    }

    /// Headers take precedence, are capped, and a bad value is the client's 400.
    #[test]
    fn header_faults() {
        let faults = Faults::new(FaultSettings::default());
        let mut req = get();
        req.insert_header(HEADER_DELAY, "999999");
        req.insert_header(HEADER_STATUS, "418");
        req.insert_header(HEADER_DROP, "1");
        let plan = faults.plan(&req).unwrap();
        assert_eq!(plan.delay, Duration::from_millis(MAX_HEADER_DELAY_MS));
        assert_eq!(plan.fail, Some(StatusCode::ImATeapot));
        assert!(plan.drop);
        assert_eq!(plan.injected(), Some("delay,fail"));
        assert_eq!(plan.log_label().as_deref(), Some("delay,drop"));

        req.insert_header(HEADER_STATUS, "200");
        assert_eq!(
            faults.plan(&req).unwrap_err().status,
            StatusCode::BadRequest
        );

        let off = Faults::new(FaultSettings {
            allow_headers: false,
            ..FaultSettings::default()
        });
        assert_eq!(off.plan(&req).unwrap(), Plan::default());
    }

    proptest::proptest! {
        /// Whatever a client puts in the fault headers: a plan or a 400, never a panic.
        #[test]
        fn any_fault_header_is_handled(delay in ".*", status in ".*", drop in ".*") {
            let mut req = get();
            for (name, value) in [(HEADER_DELAY, &delay), (HEADER_STATUS, &status), (HEADER_DROP, &drop)] {
                if let Ok(value) = http_types::headers::HeaderValue::from_bytes(value.clone().into_bytes()) {
                    req.insert_header(name, value);
                }
            }
            match Faults::new(FaultSettings::default()).plan(&req) {
                Ok(plan) => proptest::prop_assert!(plan.delay <= Duration::from_millis(MAX_HEADER_DELAY_MS)),
                Err(e) => proptest::prop_assert_eq!(e.status, StatusCode::BadRequest),
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
            fail_status: 200,
            ..FaultSettings::default()
        });
        assert_eq!(
            (s.key, s.expected.as_str()),
            ("fault.fail_status", "400..=599")
        );
        let nan = bad(FaultSettings {
            probability: f64::NAN,
            ..FaultSettings::default()
        });
        assert_eq!(nan.key, "fault.probability");
    }
}
