//! What both lab services run on, written once.
//!
//! # Layout
//!
//! - [`service`]: a service's life from `main`: load, bind, serve, drain, exit;
//!   the `Settings` trait a service's settings implement for it.
//! - [`config`]: defaults, then the TOML file, then env; every bad value named
//!   (`config/`: `invalid` the leaf every section checks against, `file` the
//!   untrusted read, `source`, `load`, `layer`, `report`, `words`).
//! - [`reload`]: the config file watched while a service runs, read like an untrusted file.
//! - [`server`]: executor threads, the accept loop, the connection limit, graceful stop;
//!   `[server]` and its limits in `server/settings.rs`.
//! - [`connection`]: one connection's requests in turn; every wait on the client bounded
//!   (`connection/`: `serve` the loop, `conn` the waits, `transport` the socket per
//!   platform, `clock` its time; unit tests over an in-memory duplex).
//! - [`head`]: a request head parsed from bounded bytes, framing checked (RFC 9112).
//! - [`answer`]: an upstream's answer read from bounded bytes, framing checked (B's calls, A's proxy).
//! - [`body`]: one body decoder for requests and answers, byte-exact, so pipelined requests stay whole.
//! - [`telemetry`]: one request's trace, clock, log line and metrics, however it ends.
//! - [`wire`]: every header and status that crosses the wire between caller, B and A.
//! - [`http`]: what a handler replies, JSON answers, the one error type, query decoding.
//! - [`log`]: one logfmt (or JSON) line per event, never split by a client, never
//!   blocking (`log/line.rs` the text, `log/writer.rs` the queue to stdout).
//! - [`metrics`]: `/metrics` in Prometheus text format; requests by endpoint and
//!   status, and the runtime's process-wide counters.
//! - [`trace`]: W3C `traceparent` in and out, so one call has one trace id; `[trace]`.
//! - [`otlp`]: finished spans to an OpenTelemetry collector, never holding up a request
//!   (`otlp/client.rs` the HTTP client, `otlp/schema.rs` the OTLP/JSON body).
//! - [`cli`]: `--config PATH`, and how start-up failures exit.
//! - [`signals`]: SIGINT / SIGTERM stop a service (Ctrl+C / Ctrl+Break on
//!   Windows); SIGHUP never does.
//!
//! Modules import one another in one direction only (no circle): the leaves
//! (`wire`, `metrics`, `config`'s `invalid`) import nothing of their
//! siblings, and `service` at the top uses the rest.

#![forbid(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms)]
// Nothing reachable from a request may panic; tests may unwrap (clippy.toml).
#![deny(clippy::unwrap_used)]

pub mod answer;
pub mod body;
pub mod cli;
pub mod config;
pub mod connection;
pub mod head;
pub mod http;
pub mod log;
pub mod metrics;
pub mod otlp;
pub mod reload;
pub mod server;
pub mod service;
pub mod signals;
pub mod telemetry;
pub mod trace;
pub mod wire;
