//! The distributions a fault's numbers are drawn from: a failure's status
//! (one, or a weighted list) and a delay (fixed with jitter, or lognormal).
//!
//! A leaf: the settings and the headers describe these, the dice draw from
//! them, and none of those needs the others to do so.

use std::time::Duration;

/// The z-score of the 99th percentile of a normal distribution: a lognormal
/// delay with median m and 99th percentile p has sigma = ln(p / m) / Z_99.
const Z_99: f64 = 2.326_347_874;

/// Where a failure's status comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Statuses {
    One(u16),
    Weighted(Vec<(u16, u32)>),
}

impl Statuses {
    pub(super) fn draw(&self, rng: &mut fastrand::Rng) -> u16 {
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
pub(super) enum Delay {
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
    pub(super) fn draw(self, rng: &mut fastrand::Rng) -> Duration {
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
