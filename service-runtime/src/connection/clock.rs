//! The connection loop's time: a [`Clock`] it reads and sets timers on, and
//! the one timer per connection that bounds every wait on a client
//! ([`Watchdog`]).
//!
//! Services run on [`SystemClock`] (`Instant::now` and async-io's timers, a
//! zero-sized type: no cost). Unit tests run the same loop on a clock they
//! advance by hand (`memory.rs`), so "cut off at the timeout, not a
//! millisecond before" is proved without sleeping through it.

use std::future::Future;
use std::time::{Duration, Instant};

use smol::Timer;

/// Time as the connection loop sees it.
pub trait Clock: Clone {
    /// A timer that completes at or after the instant it is set for.
    type Timer: Future + Unpin;

    /// Now.
    fn now(&self) -> Instant;

    /// A timer that completes at `at`.
    fn timer_at(&self, at: Instant) -> Self::Timer;

    /// Sets `timer` to complete at `at` instead (once fired, a timer stays
    /// pending until it is set again).
    fn set_at(&self, timer: &mut Self::Timer, at: Instant);

    /// Completes `after` from now.
    fn sleep(&self, after: Duration) -> Self::Timer {
        self.timer_at(self.now() + after)
    }
}

/// The real time: `Instant::now` and async-io's timers.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    type Timer = Timer;

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn timer_at(&self, at: Instant) -> Timer {
        Timer::at(at)
    }

    fn set_at(&self, timer: &mut Timer, at: Instant) {
        timer.set_at(at);
    }
}

/// One timer per connection for every wait on the client.
///
/// Arming a timer costs a wake-up of the reactor; arming one per request (as
/// async-h1's loop does) costs one per request. This timer is armed once and,
/// when it fires, re-armed only if progress moved the deadline meanwhile.
pub struct Watchdog<C: Clock> {
    clock: C,
    timer: C::Timer,
    /// When `timer` fires (it fires once per arming).
    armed: Instant,
    since: Instant,
    timeout: Duration,
}

impl<C: Clock> Watchdog<C> {
    /// A watchdog whose first deadline is `timeout` from now.
    pub fn new(clock: C, timeout: Duration) -> Self {
        let since = clock.now();
        Self {
            timer: clock.timer_at(since + timeout),
            clock,
            armed: since + timeout,
            since,
            timeout,
        }
    }

    /// The clock it runs on.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The client made progress: the next deadline is a full timeout away.
    pub fn progress(&mut self) {
        self.since = self.clock.now();
    }

    /// Completes once `timeout` has passed since the last progress.
    pub async fn expired(&mut self) {
        loop {
            let deadline = self.since + self.timeout;
            let now = self.clock.now();
            if now >= deadline {
                return;
            }
            if self.armed <= now {
                // It fired for an older deadline: arm it for this one.
                self.clock.set_at(&mut self.timer, deadline);
                self.armed = deadline;
            }
            (&mut self.timer).await;
        }
    }
}
