//! Service B across processes: the real B in front of the real A (or a fake one),
//! on free ports with temporary configs.

mod call_echo;
mod config;
mod failures;
mod netns;
mod observability;
mod pool;
mod resilience;

use testkit::{binary, Launch, Proc};

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
