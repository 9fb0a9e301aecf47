//! The circuit breaker: after `failure_threshold` failed calls in a row B stops
//! calling A for `open_ms` and answers `circuit_open` at once; then one trial
//! call decides whether to close again or stay open.
//!
//! Why: a dead or drowning A gets time to recover instead of a queue of calls
//! that will time out anyway, and B's callers learn in microseconds, not after
//! a full timeout each.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;
use serde::{Deserialize, Serialize};
use service_runtime::config::Invalid;

/// `[circuit_breaker]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerSettings {
    /// Off by default: every call goes to A.
    pub enabled: bool,
    /// Failed calls in a row that open the breaker.
    pub failure_threshold: u32,
    /// How long it stays open before one trial call.
    pub open_ms: u64,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            failure_threshold: 5,
            open_ms: 5000,
        }
    }
}

impl BreakerSettings {
    /// Checks every `[circuit_breaker]` key.
    pub fn validate(&self) -> Result<(), Invalid> {
        Invalid::check_range(
            "circuit_breaker.failure_threshold",
            self.failure_threshold,
            1..=10_000,
        )?;
        Invalid::check_range("circuit_breaker.open_ms", self.open_ms, 1..=3_600_000)
    }
}

/// Where the breaker stands; also the value of the `circuit_breaker_state` gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Calls go through; counting failures in a row.
    Closed = 0,
    /// Calls are refused until the open period ends.
    Open = 1,
    /// One trial call is in flight; the others are refused.
    HalfOpen = 2,
}

impl State {
    /// Every state, in the order of the gauge's values: what the lab checks an
    /// experiment's `expect.breaker` against.
    pub const ALL: [State; 3] = [State::Closed, State::Open, State::HalfOpen];

    /// For log lines: `closed`, `open`, `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: State,
    failures: u32,
    /// When Open: until when. When HalfOpen: when the trial started.
    since: Instant,
}

/// A circuit breaker for calls to A; disabled, it admits everything.
#[derive(Debug)]
pub struct Breaker {
    enabled: bool,
    threshold: u32,
    open_for: Duration,
    inner: Mutex<Inner>,
    gauge: Gauge,
}

/// Permission to call A; `trial` when this call decides a half-open breaker.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    trial: bool,
}

impl Breaker {
    /// From `[circuit_breaker]`, reporting its state in `gauge`.
    pub fn new(settings: &BreakerSettings, gauge: Gauge) -> Self {
        Self {
            enabled: settings.enabled,
            threshold: settings.failure_threshold,
            open_for: Duration::from_millis(settings.open_ms),
            inner: Mutex::new(Inner {
                state: State::Closed,
                failures: 0,
                since: Instant::now(),
            }),
            gauge,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// May B call A at `now`? `Err` holds how long until the next trial call.
    /// The `Option<State>` is a state change to log (open → half-open).
    ///
    /// The time is the caller's (the call's start, which it reads anyway):
    /// no second clock read per call, and tests step time instead of
    /// sleeping through `open_ms`.
    pub fn admit(&self, now: Instant) -> (Result<Ticket, Duration>, Option<State>) {
        if !self.enabled {
            return (Ok(Ticket { trial: false }), None);
        }
        let mut inner = self.lock();
        match inner.state {
            State::Closed => (Ok(Ticket { trial: false }), None),
            State::Open if now < inner.since + self.open_for => {
                (Err(inner.since + self.open_for - now), None)
            }
            // A trial that never reported (its caller went away) must not
            // keep the breaker half-open forever.
            State::HalfOpen if now < inner.since + self.open_for => (Err(self.open_for), None),
            State::Open | State::HalfOpen => {
                inner.state = State::HalfOpen;
                inner.since = now;
                self.gauge.set(State::HalfOpen as i64);
                (Ok(Ticket { trial: true }), Some(State::HalfOpen))
            }
        }
    }

    /// Records how an admitted call ended at `now`; returns a state change to log.
    pub fn record(&self, ticket: Ticket, success: bool, now: Instant) -> Option<State> {
        if !self.enabled {
            return None;
        }
        let mut inner = self.lock();
        let before = inner.state;
        if success {
            // Any success shows A answering again.
            inner.failures = 0;
            inner.state = State::Closed;
        } else {
            inner.failures = inner.failures.saturating_add(1);
            let trip =
                ticket.trial || (before == State::Closed && inner.failures >= self.threshold);
            if trip {
                inner.state = State::Open;
                inner.since = now;
            }
        }
        self.gauge.set(inner.state as i64);
        (inner.state != before).then_some(inner.state)
    }

    /// Failed calls in a row so far.
    pub fn failures(&self) -> u32 {
        self.lock().failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `State::ALL` is every state once, in the gauge's order; a new state
    /// does not compile here until it is added to `ALL` as well.
    #[test]
    fn all_lists_every_state_once() {
        for (i, state) in State::ALL.into_iter().enumerate() {
            match state {
                State::Closed | State::Open | State::HalfOpen => assert_eq!(state as usize, i),
            }
        }
        assert_eq!(State::ALL.len(), State::HalfOpen as usize + 1);
    }

    const OPEN: Duration = Duration::from_millis(30);
    const TICK: Duration = Duration::from_millis(1);

    fn breaker() -> Breaker {
        let settings = BreakerSettings {
            enabled: true,
            failure_threshold: 3,
            open_ms: OPEN.as_millis() as u64,
        };
        Breaker::new(&settings, Gauge::default())
    }

    /// One admitted call that fails at `now`; the state change it causes.
    fn fail(b: &Breaker, now: Instant) -> Option<State> {
        let ticket = b.admit(now).0.expect("admitted");
        b.record(ticket, false, now)
    }

    /// A breaker opened at `t0`, and the instant its open period ends.
    fn opened_at(t0: Instant) -> (Breaker, Instant) {
        let b = breaker();
        for _ in 0..3 {
            fail(&b, t0);
        }
        (b, t0 + OPEN)
    }

    /// Opens after the threshold, refuses for exactly open_ms (saying how
    /// long is left), half-opens then, closes on the trial's success.
    #[test]
    fn opens_half_opens_and_closes() {
        let t0 = Instant::now();
        let b = breaker();
        assert_eq!(fail(&b, t0), None);
        assert_eq!(fail(&b, t0), None);
        assert_eq!(fail(&b, t0), Some(State::Open));
        assert_eq!(b.admit(t0).0.unwrap_err(), OPEN);
        assert_eq!(b.admit(t0 + OPEN - TICK).0.unwrap_err(), TICK);

        let (trial, change) = b.admit(t0 + OPEN);
        assert_eq!(change, Some(State::HalfOpen));
        // Only one trial at a time.
        assert!(b.admit(t0 + OPEN).0.is_err());
        assert_eq!(
            b.record(trial.unwrap(), true, t0 + OPEN),
            Some(State::Closed)
        );
        assert!(b.admit(t0 + OPEN).0.is_ok());
    }

    /// A failed trial opens the breaker again at once, for open_ms from then.
    #[test]
    fn failed_trial_reopens() {
        let (b, t1) = opened_at(Instant::now());
        assert_eq!(fail(&b, t1), Some(State::Open));
        assert!(b.admit(t1 + OPEN - TICK).0.is_err());
        assert_eq!(b.admit(t1 + OPEN).1, Some(State::HalfOpen));
    }

    /// A trial that never reports (its caller went away) holds the breaker
    /// half-open for open_ms at most; then another trial goes.
    #[test]
    fn a_lost_trial_is_replaced() {
        let (b, t1) = opened_at(Instant::now());
        let (lost, _) = b.admit(t1);
        assert!(lost.is_ok());
        assert!(b.admit(t1 + OPEN - TICK).0.is_err());
        let (again, change) = b.admit(t1 + OPEN);
        assert!(again.is_ok());
        assert_eq!(change, Some(State::HalfOpen));
    }

    /// A success resets the count of failures in a row.
    #[test]
    fn success_resets_the_count() {
        let t0 = Instant::now();
        let b = breaker();
        fail(&b, t0);
        fail(&b, t0);
        let t = b.admit(t0).0.unwrap();
        b.record(t, true, t0);
        assert_eq!(fail(&b, t0), None);
        assert_eq!(b.failures(), 1);
    }

    /// Disabled, it admits everything and never changes state.
    #[test]
    fn disabled_admits_everything() {
        let t0 = Instant::now();
        let b = Breaker::new(&BreakerSettings::default(), Gauge::default());
        for _ in 0..10 {
            assert_eq!(fail(&b, t0), None);
        }
        assert!(b.admit(t0).0.is_ok());
    }
}
