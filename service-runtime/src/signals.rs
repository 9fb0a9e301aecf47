//! The signals a service answers: SIGINT (Ctrl+C) and SIGTERM ask it to stop;
//! SIGHUP never kills it, and means what the service says it means (A re-reads
//! its config at once; B says it reads its config only at start, and names
//! the keys of its file that changed).
//!
//! The handlers are installed by [`install`], first thing at start, so that no
//! signal finds the default disposition (which for SIGHUP is to die) while the
//! service is still loading its config or binding.

use std::sync::Mutex;

use async_signal::{Signal, Signals};
use smol::stream::StreamExt as _;

/// The installed handlers, until [`until_stop`] takes them.
static INSTALLED: Mutex<Option<Signals>> = Mutex::new(None);

/// Installs the handlers for SIGINT, SIGTERM and SIGHUP; signals that arrive
/// before [`until_stop`] runs wait for it.
pub fn install() {
    let mut installed = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
    if installed.is_none() {
        *installed = Signals::new([Signal::Int, Signal::Term, Signal::Hup]).ok();
    }
}

/// Completes when the process receives SIGINT or SIGTERM, with the signal's
/// name; calls `on_hangup` for each SIGHUP meanwhile.
///
/// If the handlers cannot be installed (never seen on Linux) this never
/// completes, and the default dispositions stay in force.
pub async fn until_stop(on_hangup: impl Fn()) -> &'static str {
    install();
    let taken = INSTALLED.lock().unwrap_or_else(|p| p.into_inner()).take();
    let Some(mut signals) = taken else {
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
