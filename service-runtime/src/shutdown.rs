//! Waiting for SIGINT (Ctrl+C) or SIGTERM, the two ways a service is asked to stop.

use async_signal::{Signal, Signals};
use smol::stream::StreamExt as _;

/// Completes when the process receives SIGINT or SIGTERM, with the signal's name.
///
/// If the handlers cannot be installed (never seen on Linux) this never completes,
/// and the default disposition (exit at once) stays in force.
pub async fn signal() -> &'static str {
    let Ok(mut signals) = Signals::new([Signal::Int, Signal::Term]) else {
        return std::future::pending().await;
    };
    match signals.next().await {
        Some(Ok(Signal::Int)) => "SIGINT",
        Some(Ok(_)) => "SIGTERM",
        _ => std::future::pending().await,
    }
}
