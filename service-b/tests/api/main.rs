//! Service B across processes: the real B in front of the real A (or a fake one),
//! on free ports with temporary configs.

mod any_upstream;
mod call_echo;
mod config;
mod failures;
mod http_edge;
mod netns;
mod observability;
mod otlp;
mod pool;
mod real_faults;
mod resilience;
mod robust;
mod soak;
mod through_proxy;

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use testkit::{binary, Launch, Proc};

/// Tests that assert timings hold this shared; the soak holds it alone, so its
/// load never skews another test's clock.
static CLOCK: RwLock<()> = RwLock::new(());

/// For a test that measures time: waits while the soak runs.
fn timing() -> RwLockReadGuard<'static, ()> {
    CLOCK.read().unwrap_or_else(|p| p.into_inner())
}

/// For the soak: waits until no timing test runs, and keeps them waiting.
fn exclusive() -> RwLockWriteGuard<'static, ()> {
    CLOCK.write().unwrap_or_else(|p| p.into_inner())
}

/// A with `fault` as its `[fault]` section, on a free port.
fn start_a(fault: &str) -> Proc {
    Launch::new(
        binary("service-a"),
        &format!("[server]\nport = 0\n\n[fault]\n{fault}\n"),
    )
    .start()
}

/// B config calling `upstream` with `timeout_ms`, on a free port.
fn b_config(upstream: &str, timeout_ms: u64) -> String {
    format!("[server]\nport = 0\n\n[upstream]\nurl = \"{upstream}\"\ntimeout_ms = {timeout_ms}\n")
}

/// B calling `upstream` with `timeout_ms`.
fn start_b(upstream: &str, timeout_ms: u64) -> Proc {
    Launch::new(
        env!("CARGO_BIN_EXE_service-b"),
        &b_config(upstream, timeout_ms),
    )
    .start()
}
