//! When B calls A again after a failure: which failures, how long it waits, and
//! how many retries it allows itself overall.
//!
//! - Only failures listed in `upstream.retry_on` are retried; a `timeout` never
//!   is (the budget is spent).
//! - Backoff is exponential with full jitter (AWS architecture blog, "Exponential
//!   Backoff And Jitter"): a random wait in `0..=min(max, base * 2^n)`, so
//!   callers that failed together do not retry together. A retry that could not
//!   finish within the call's deadline is not started.
//! - The retry budget (as Envoy, Linkerd and tower have it): retries may be at
//!   most 20% of the calls in the last ten seconds, plus a small reserve so a
//!   quiet B can still retry. A dead A then sees about 1.2x the calls, not 1+retries x.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::kind::{CallError, Kind};

/// Share of recent calls that may be retries.
pub const BUDGET_RATIO: f64 = 0.2;
/// Retries allowed in any window regardless of traffic, so a quiet B can retry.
pub const BUDGET_RESERVE: f64 = 10.0;
/// What "recent" means for the budget.
pub const BUDGET_WINDOW: Duration = Duration::from_secs(10);

/// The retry settings and the shared budget.
#[derive(Debug)]
pub struct Retry {
    retries: u32,
    retry_on: Vec<Kind>,
    base: Duration,
    max: Duration,
    budget: Budget,
}

impl Retry {
    /// At most `retries` retries of the kinds in `retry_on`, with backoff
    /// from `base` doubling up to `max` (from `[upstream]`).
    pub fn new(retries: u32, retry_on: Vec<Kind>, base: Duration, max: Duration) -> Self {
        Self {
            retries,
            retry_on,
            base,
            max,
            budget: Budget::default(),
        }
    }

    /// Notes a new call (not a retry): it earns the budget a fifth of a retry.
    pub fn count_call(&self) {
        self.budget.record(Instant::now(), false);
    }

    /// After `attempts` calls ending in `err`, how long to wait before the next
    /// one, or why not to make one.
    pub fn next(
        &self,
        attempts: u32,
        err: &CallError,
        deadline: Instant,
    ) -> Result<Duration, Stop> {
        if attempts > self.retries {
            return Err(Stop::NoRetriesLeft);
        }
        // A failure the caller asked for (or B's own) would only be asked for
        // again: it is not retried, and so takes nothing from the budget.
        let retryable = err.against_a
            && err.kind != Kind::Timeout
            && self.retry_on.contains(&err.kind)
            && (err.kind != Kind::UpstreamStatus || err.http_status >= 500);
        if !retryable {
            return Err(Stop::NotRetryable);
        }
        let wait = self.backoff(attempts);
        if Instant::now() + wait >= deadline {
            return Err(Stop::NoTimeLeft);
        }
        if !self.budget.try_withdraw(Instant::now()) {
            return Err(Stop::BudgetSpent);
        }
        Ok(wait)
    }

    /// Full jitter: uniform in `0..=min(max, base * 2^(attempt-1))`.
    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(self.max);
        Duration::from_micros(fastrand::u64(0..=ceiling.as_micros() as u64))
    }
}

/// Why a failed call was not retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// `upstream.retries` attempts were made already.
    NoRetriesLeft,
    /// This KIND is not in `retry_on` (or is a timeout, or A's 4xx, or the
    /// caller asked for it with its `x-fault-*` headers).
    NotRetryable,
    /// The backoff would end past the call's deadline.
    NoTimeLeft,
    /// Retries are already 20% of recent calls.
    BudgetSpent,
}

impl Stop {
    /// For the log line.
    pub fn as_str(self) -> &'static str {
        match self {
            Stop::NoRetriesLeft => "no_retries_left",
            Stop::NotRetryable => "not_retryable",
            Stop::NoTimeLeft => "no_time_left",
            Stop::BudgetSpent => "retry_budget_spent",
        }
    }
}

/// Calls and retries in the last [`BUDGET_WINDOW`].
#[derive(Debug, Default)]
struct Budget {
    /// (when, was it a retry), oldest first.
    events: Mutex<VecDeque<(Instant, bool)>>,
}

impl Budget {
    fn record(&self, now: Instant, retry: bool) {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        Self::expire(&mut events, now);
        events.push_back((now, retry));
    }

    fn try_withdraw(&self, now: Instant) -> bool {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        Self::expire(&mut events, now);
        let retries = events.iter().filter(|(_, retry)| *retry).count() as f64;
        let calls = events.len() as f64 - retries;
        if retries + 1.0 > BUDGET_RESERVE + BUDGET_RATIO * calls {
            return false;
        }
        events.push_back((now, true));
        true
    }

    fn expire(events: &mut VecDeque<(Instant, bool)>, now: Instant) {
        while events
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > BUDGET_WINDOW)
        {
            events.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(retries: u32) -> Retry {
        let kinds = vec![Kind::ConnectionRefused, Kind::UpstreamStatus];
        Retry::new(
            retries,
            kinds,
            Duration::from_millis(25),
            Duration::from_millis(250),
        )
    }

    fn err(kind: Kind, http_status: u16) -> CallError {
        CallError::new(kind, "test").with_status(http_status)
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    /// Only listed kinds are retried: never a timeout, never A's 4xx.
    #[test]
    fn what_is_retried() {
        let r = retry(3);
        assert!(r.next(1, &err(Kind::ConnectionRefused, 503), far()).is_ok());
        assert!(r.next(1, &err(Kind::UpstreamStatus, 502), far()).is_ok());
        let no = Err(Stop::NotRetryable);
        assert_eq!(r.next(1, &err(Kind::Timeout, 504), far()), no);
        assert_eq!(r.next(1, &err(Kind::UpstreamStatus, 429), far()), no);
        assert_eq!(r.next(1, &err(Kind::BadResponse, 502), far()), no);
        let asked = err(Kind::ConnectionRefused, 503).not_against_a();
        assert_eq!(
            r.next(1, &asked, far()),
            no,
            "a failure the caller asked for"
        );
        assert_eq!(
            r.next(4, &err(Kind::ConnectionRefused, 503), far()),
            Err(Stop::NoRetriesLeft)
        );
    }

    /// Backoff grows but never past the cap, and never past the deadline.
    #[test]
    fn backoff_is_capped_and_bounded_by_the_deadline() {
        let r = retry(10);
        for attempt in 1..=10 {
            assert!(r.backoff(attempt) <= r.max);
        }
        let soon = Instant::now();
        assert_eq!(
            r.next(1, &err(Kind::ConnectionRefused, 503), soon),
            Err(Stop::NoTimeLeft)
        );
    }

    /// Under sustained failure retries stay near 20% of calls (plus the reserve).
    #[test]
    fn budget_caps_retries() {
        let r = retry(3);
        let refused = err(Kind::ConnectionRefused, 503);
        let mut retries = 0;
        for _ in 0..200 {
            r.count_call();
            for attempt in 1..=3 {
                match r.next(attempt, &refused, far()) {
                    Ok(_) => retries += 1,
                    Err(_) => break,
                }
            }
        }
        let cap = (BUDGET_RESERVE + BUDGET_RATIO * 200.0) as usize;
        assert!(
            (cap - 1..=cap).contains(&retries),
            "{retries} retries, cap {cap}"
        );
    }
}
