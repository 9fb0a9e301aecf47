//! The console's traffic to B: one call on a button, and a steady open-loop
//! load switched on and off, both with the experiment's generator
//! (`experiment::load`), so the console's calls are the experiment's calls.
//!
//! The steady load runs in one-second slices: each slice is a `load::run` of
//! `rate` calls due over its second, started on the second whatever the
//! slices before it are still waiting for, so the load stays open-loop across
//! slices too. Bounds: at most [`MAX_RATE`] calls a second, at most
//! [`MAX_IN_FLIGHT`] calls of a slice waiting at once, at most [`MAX_SLICES`]
//! slices alive (a slice ends at most [`PATIENCE`] after its second); a
//! slice that would pass that is skipped and counted, never queued.
//!
//! The live view comes from the services' log lines, not from here; only
//! calls B never answered (`no_answer`, B stopped) are reported back, since
//! no log line tells of them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::experiment::load::{self, Call, Plan};
use crate::experiment::outcome::Outcome;

/// The fastest steady load the switch offers: enough to fill the charts,
/// little enough for a laptop running both services and a browser.
pub const MAX_RATE: u32 = 200;
/// Calls of one slice waiting on B at once (each holds a thread).
pub const MAX_IN_FLIGHT: u32 = 64;
/// Slices alive at once: a slice lasts its second plus at most [`PATIENCE`].
pub const MAX_SLICES: usize = 1 + PATIENCE.as_secs() as usize;
/// How long a call waits for B: past B's own deadline (1 s by default) and
/// its 50 ms of slack, so B's verdict is seen rather than our impatience.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// The query every console call sends (`msg=console-N`).
const MSG: &str = "console";

/// Calls with distinct trace ids across the run: each `load::run` gets its own.
fn run_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    (base << 20) | NEXT.fetch_add(1, Ordering::Relaxed)
}

fn plan(b: SocketAddr, rate: u32) -> Plan {
    Plan {
        b,
        rate: f64::from(rate.max(1)),
        max_in_flight: MAX_IN_FLIGHT,
        msg: MSG.to_owned(),
        phases: vec![(0.0, 1.0, Vec::new())],
        patience: PATIENCE,
        run_id: run_id(),
    }
}

/// One call to B's `/call-echo`, as the experiment makes it.
pub fn one_call(b: SocketAddr) -> Option<Call> {
    load::run(&plan(b, 1), Instant::now()).into_iter().next()
}

/// The steady load's switch: a rate, and the thread that starts its slices.
#[derive(Debug, Default)]
pub struct Steady {
    rate: Arc<AtomicU32>,
    driving: Arc<Mutex<bool>>,
    skipped: Arc<AtomicU64>,
}

impl Steady {
    /// Calls a second now (0: off).
    pub fn rate(&self) -> u32 {
        self.rate.load(Ordering::Relaxed)
    }

    /// Slices skipped because [`MAX_SLICES`] were still alive (B too slow
    /// for the rate).
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Sets the rate (capped at [`MAX_RATE`]; 0 stops after the calls in
    /// flight). `b` says where B is now (it may move on a restart);
    /// `no_answer` hears of calls B never answered.
    pub fn set(
        &self,
        rate: u32,
        b: impl Fn() -> Option<SocketAddr> + Send + 'static,
        no_answer: impl Fn(&Call) + Send + Sync + 'static,
    ) -> u32 {
        let rate = rate.min(MAX_RATE);
        self.rate.store(rate, Ordering::Relaxed);
        let mut driving = self.driving.lock().unwrap_or_else(|p| p.into_inner());
        if rate == 0 || *driving {
            return rate;
        }
        *driving = true;
        let (rate_now, driving, skipped) = (
            self.rate.clone(),
            self.driving.clone(),
            self.skipped.clone(),
        );
        let no_answer = Arc::new(no_answer);
        std::thread::spawn(move || {
            let alive = Arc::new(AtomicUsize::new(0));
            let start = Instant::now();
            for k in 0u64.. {
                let rate = rate_now.load(Ordering::Relaxed);
                if rate == 0 {
                    // Under the lock `set` takes: a rate set meanwhile is seen.
                    let mut driving = driving.lock().unwrap_or_else(|p| p.into_inner());
                    if rate_now.load(Ordering::Relaxed) == 0 {
                        *driving = false;
                        break;
                    }
                    continue;
                }
                let t0 = start + Duration::from_secs(k);
                match b() {
                    Some(b) if alive.load(Ordering::Relaxed) < MAX_SLICES => {
                        alive.fetch_add(1, Ordering::Relaxed);
                        let (alive, no_answer) = (alive.clone(), no_answer.clone());
                        std::thread::spawn(move || {
                            for call in load::run(&plan(b, rate), t0) {
                                if call.kind == Outcome::NoAnswer.as_str() {
                                    no_answer(&call);
                                }
                            }
                            alive.fetch_sub(1, Ordering::Relaxed);
                        });
                    }
                    Some(_) => {
                        skipped.fetch_add(1, Ordering::Relaxed);
                    }
                    // B has not said where it listens yet: nothing to call.
                    None => {}
                }
                let next = start + Duration::from_secs(k + 1);
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        });
        rate
    }
}
