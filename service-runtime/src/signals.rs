//! The signals a service answers: SIGINT (Ctrl+C) and SIGTERM ask it to stop;
//! SIGHUP never kills it, and means what the service says it means (A re-reads
//! its config at once; B says it reads its config only at start).

use async_signal::{Signal, Signals};
use smol::stream::StreamExt as _;

/// Completes when the process receives SIGINT or SIGTERM, with the signal's
/// name; calls `on_hangup` for each SIGHUP meanwhile.
///
/// If the handlers cannot be installed (never seen on Linux) this never
/// completes, and the default dispositions stay in force.
pub async fn until_stop(on_hangup: impl Fn()) -> &'static str {
    let Ok(mut signals) = Signals::new([Signal::Int, Signal::Term, Signal::Hup]) else {
        return std::future::pending().await;
    };
    loop {
        match signals.next().await {
            Some(Ok(Signal::Int)) => return "SIGINT",
            Some(Ok(Signal::Term)) => return "SIGTERM",
            Some(Ok(_)) => on_hangup(),
            Some(Err(_)) => {}
            None => return std::future::pending().await,
        }
    }
}
