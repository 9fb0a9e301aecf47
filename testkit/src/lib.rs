//! Driving the real services from outside, for both services' integration
//! tests and the lab's: test-friendly wrappers over `service-procs` (which
//! the lab uses directly), plus HTTP helpers and fake peers.
//!
//! Test helpers may panic, tools may not: every function here that can fail
//! panics with the library's message (which names the service and its last
//! output), so a test needs no `unwrap`. The lab never depends on this crate.
//!
//! # Layout
//!
//! - [`proc`]: [`Launch`], how to start a service; [`Proc`], a started
//!   service: waits that panic after [`PATIENCE`], its config, stopping it;
//!   [`assert_bad_config`].
//! - [`metrics`]: reading a sample from `/metrics` text.
//! - [`http`]: a tiny blocking HTTP/1.1 client that also sends raw bytes.
//! - [`edge`]: checks of the HTTP edge both services share (refusals, HTTP/1.0).
//! - [`fake`]: a fake A that misbehaves the ways a real peer can.
//! - [`nginx`]: a real nginx on a free port, for the proxy tests that need one.
//! - [`upstream`]: a real upstream that mirrors what it received, for A as a proxy.

#![forbid(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms)]

pub mod edge;
pub mod fake;
pub mod http;
pub mod metrics;
pub mod nginx;
pub mod proc;
pub mod upstream;

use std::path::PathBuf;

pub use metrics::metric;
pub use proc::{assert_bad_config, Exited, Launch, Proc};
pub use service_procs::{field, open_fds, rss_kib, PATIENCE};

/// A built binary of this workspace (`name.exe` on Windows), one folder up
/// from the test executable in `deps/`; panics, saying how to build it, if
/// it is not built.
pub fn binary(name: &str) -> PathBuf {
    service_procs::binary(name)
        .unwrap_or_else(|e| panic!("{e} (or run the whole suite with `cargo test --workspace`)"))
}

/// Says on stderr that a test skipped a check this platform cannot make
/// (`cargo test -- --nocapture` shows it; the test passes on what it could
/// check).
pub fn skipped(what: &str) {
    eprintln!(
        "SKIPPED on {}: {what} (no /proc here to measure it)",
        std::env::consts::OS
    );
}
