//! The `x-fault-*` request headers: one request's own faults, over the
//! file's, within one cap on the time they may ask for.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_types::Request;
use service_runtime::http::ApiError;
use service_runtime::wire;

use super::distribution::{Delay, Statuses};
use super::plan::{Broken, Plan};
use super::settings::{sendable, sendable_list, MAX_BYTES_PER_S, MAX_RETRY_AFTER_S};

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

impl Plan {
    /// Header faults for this request only; they take precedence over the file's.
    pub(super) fn apply_headers(
        &mut self,
        req: &Request,
        rng: &mut fastrand::Rng,
    ) -> Result<(), ApiError> {
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

/// How many requests slowed by their own headers may be in flight: a share
/// ([`HEADER_SLOW_SHARE_PERCENT`]) of the connections, so the rest stay
/// free for other clients and for `/health`, `/ready` and `/metrics`.
#[derive(Debug)]
pub struct SlowBudget {
    in_flight: AtomicUsize,
    /// How many may be in flight at once.
    pub limit: usize,
}

impl SlowBudget {
    pub fn new(max_connections: usize) -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            limit: (max_connections * HEADER_SLOW_SHARE_PERCENT / 100).max(1),
        }
    }

    /// A slot, if one is free; it is given back when dropped.
    pub fn take(self: &Arc<Self>) -> Option<SlowSlot> {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if before >= self.limit {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(SlowSlot(self.clone()))
    }
}

/// One request's place in the [`SlowBudget`], held until its answer is
/// done (its body, when that is slowed too).
#[derive(Debug)]
pub struct SlowSlot(Arc<SlowBudget>);

impl Drop for SlowSlot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}
