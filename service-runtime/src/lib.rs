//! What both lab services run on, written once.
//!
//! # Layout
//!
//! - [`service`]: a service's life from `main`: load, bind, serve, drain, exit.
//! - [`config`]: defaults, then the TOML file, then env; every bad value named.
//! - [`server`]: the accept loop, connection limits, header timeout, graceful stop.
//! - [`exchange`]: one request's trace, clock, log line and metrics.
//! - [`http`]: JSON answers, the one error type, method checks, query decoding.
//! - [`log`]: one logfmt (or JSON) line per event, never split by a client, never blocking.
//! - [`metrics`]: `/metrics` in Prometheus text format; requests by endpoint and status.
//! - [`trace`]: W3C `traceparent` in and out, so one call has one trace id.
//! - [`cli`]: `--config PATH`, and how start-up failures exit.
//! - [`shutdown`]: SIGINT / SIGTERM.

#![forbid(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms)]
// Nothing reachable from a request may panic; tests may unwrap (clippy.toml).
#![deny(clippy::unwrap_used)]

pub mod cli;
pub mod config;
pub mod exchange;
pub mod http;
pub mod log;
pub mod metrics;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod trace;
