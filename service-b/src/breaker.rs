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

    /// May B call A now? `Err` holds how long until the next trial call.
    /// The `Option<State>` is a state change to log (open → half-open).
    pub fn admit(&self) -> (Result<Ticket, Duration>, Option<State>) {
        if !self.enabled {
            return (Ok(Ticket { trial: false }), None);
        }
        let mut inner = self.lock();
        let now = Instant::now();
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

    /// Records how an admitted call ended; returns a state change to log.
    pub fn record(&self, ticket: Ticket, success: bool) -> Option<State> {
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
                inner.since = Instant::now();
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

    fn breaker(open_ms: u64) -> Breaker {
        let settings = BreakerSettings {
            enabled: true,
            failure_threshold: 3,
            open_ms,
        };
        Breaker::new(&settings, Gauge::default())
    }

    fn fail(b: &Breaker) -> Option<State> {
        let ticket = b.admit().0.expect("admitted");
        b.record(ticket, false)
    }

    /// Opens after the threshold, refuses, half-opens after open_ms, closes on success.
    #[test]
    fn opens_half_opens_and_closes() {
        let b = breaker(30);
        assert_eq!(fail(&b), None);
        assert_eq!(fail(&b), None);
        assert_eq!(fail(&b), Some(State::Open));
        assert!(b.admit().0.is_err());

        std::thread::sleep(Duration::from_millis(40));
        let (trial, change) = b.admit();
        assert_eq!(change, Some(State::HalfOpen));
        // Only one trial at a time.
        assert!(b.admit().0.is_err());
        assert_eq!(b.record(trial.unwrap(), true), Some(State::Closed));
        assert!(b.admit().0.is_ok());
    }

    /// A failed trial opens the breaker again at once.
    #[test]
    fn failed_trial_reopens() {
        let b = breaker(10);
        for _ in 0..3 {
            fail(&b);
        }
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(fail(&b), Some(State::Open));
        assert!(b.admit().0.is_err());
    }

    /// A success resets the count of failures in a row.
    #[test]
    fn success_resets_the_count() {
        let b = breaker(10);
        fail(&b);
        fail(&b);
        let t = b.admit().0.unwrap();
        b.record(t, true);
        assert_eq!(fail(&b), None);
        assert_eq!(b.failures(), 1);
    }
}
