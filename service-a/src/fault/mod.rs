//! Fault injection: what `[fault]` and the `x-fault-*` headers make A do to `/echo`.
//!
//! Each (re)load of the config builds a fresh [`Faults`]: its counter (for
//! `fail_first`) and its random generator (for `probability`, jitter, the
//! lognormal delay, weighted statuses and garbage bytes, seeded by `seed`)
//! start afresh, so the same seed replays the same faults. Every request
//! draws its own [`Plan`](plan::Plan): faults are decided per request, never per
//! connection, so keep-alive connections do not escape them.
//!
//! A fault has one name everywhere: in `x-fault-injected`, in A's log line
//! (`fault=`) and in `faults_injected_total{fault=...}` ([`Plan::names`](plan::Plan::names)).
//!
//! # Layout
//!
//! - `settings`: `[fault]` as written, its limits and log fields.
//! - `distribution`: a status or a delay, as a distribution to draw from.
//! - `draw`: the dice of each load, and one request's draw.
//! - `plan`: what one request gets, settled, and the faults' names.
//! - `rules`: `[[fault.rules]]`, faults for some requests only.
//! - `headers`: the `x-fault-*` headers, their one-minute cap and budget.
//! - `apply`: a plan run around an answer, echoed or proxied.

pub mod apply;
mod distribution;
mod draw;
mod headers;
mod plan;
mod rules;
mod settings;
#[cfg(test)]
mod tests;

pub use draw::Faults;
pub use headers::SlowSlot;
pub use settings::FaultSettings;
