//! Live reload of `[fault]`: A polls its config file and applies a saved edit
//! within [`APPLY_BOUND`] (350 ms), without a restart.
//!
//! What is guaranteed:
//!
//! - **Only a settled file is applied.** A version of the file is applied once
//!   two reads [`SETTLE`] apart found the same bytes with the same stamp
//!   (modification time and file identity): a save in progress (truncated,
//!   half written) changes between those reads and is not applied. A writer
//!   that pauses longer than [`SETTLE`] in the middle of a save can still be
//!   caught half way; write a temporary file and rename it over the config to
//!   be safe whatever the pause. A file rewritten more often than every
//!   [`SETTLE`] is applied once the rewriting stops.
//! - **An empty file is never applied live**: it is what a truncating save
//!   looks like before its bytes arrive. It is logged (`event=config_error`)
//!   and the last good settings stay (at start-up an empty file means the
//!   defaults, as before).
//! - **What is applied is exactly what was read**: the bytes compared are the
//!   bytes parsed and validated, once; the file is not read again in between.
//! - **Changes are seen by content and by stamp.** Each poll opens the path
//!   afresh, following symlinks as they are at that moment, so a Kubernetes
//!   ConfigMap update (its `..data` symlink swapped to a new directory, the
//!   file's modification time possibly unchanged, kubernetes#24215) is seen
//!   by its new bytes. A save with the same bytes (a new modification time)
//!   also reloads, which restarts the seeded sequence of faults and
//!   `fail_first`, as the README promises for each save.
//! - **Timing**: a save that ends at time t is applied by t + [`APPLY_BOUND`]
//!   (the next poll, within [`POLL_INTERVAL`], then one [`SETTLE`]), plus the
//!   microseconds a read and a parse of a small file take.
//! - **SIGHUP** re-reads the file at once, even if it did not change, and
//!   applies it one [`SETTLE`] later if it has not changed meanwhile.
//! - A bad edit is logged once (`event=config_error`, naming the file, the key
//!   and what is allowed) and the last good settings stay in force. A missing
//!   or unreadable file is logged once and the last good settings stay.
//!
//! Polling (not inotify) because it survives every way editors save: in place,
//! by writing a new file and renaming it over the old one, or by swapping a
//! symlink. The file is tiny; reading it four times a second costs nothing.

use std::sync::Arc;
use std::time::Duration;

use service_runtime::config::{ConfigSource, Snapshot};
use service_runtime::log::Line;
use smol::channel::Receiver;
use smol::future::FutureExt as _;
use smol::Timer;

use crate::config::Settings;
use crate::echo::App;
use crate::fault::Faults;

/// How often the file is read while nothing is pending.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// How long a new version of the file must stay the same (bytes and stamp)
/// before it is applied: far longer than a save takes, far shorter than the
/// one-second contract. While a change is pending the file is read this often.
pub const SETTLE: Duration = Duration::from_millis(100);

/// A save is applied at most this long after it ends: [`POLL_INTERVAL`] +
/// [`SETTLE`], well within the one second the README promises.
pub const APPLY_BOUND: Duration = POLL_INTERVAL.saturating_add(SETTLE);

// The contract is one second; a change of the constants above must keep it.
const _: () = assert!(APPLY_BOUND.as_millis() < 1000);

/// Watches `source` forever, swapping `app`'s faults on every settled save.
/// `service` names A in log lines; `running` is what A started with (only
/// `[fault]` applies live), and `started` the file as read for it. Each
/// message on `hangups` (a SIGHUP) reloads the file, changed or not.
pub async fn watch(
    service: &'static str,
    source: ConfigSource,
    app: Arc<App>,
    running: Settings,
    started: Option<Snapshot>,
    hangups: Receiver<()>,
) {
    let watcher = Watcher {
        service,
        source,
        app,
        running,
    };
    // The version last applied or rejected: only a different one is tried.
    let mut seen = started;
    // A different version read once, to be applied if the next read agrees.
    let mut pending: Option<Snapshot> = None;
    // A SIGHUP asked for a reload even if nothing changed.
    let mut forced = false;
    // The last read error logged, so that each is said once.
    let mut trouble: Option<String> = None;
    loop {
        if pending.is_some() {
            Timer::after(SETTLE).await;
        } else {
            forced |= poll_or_hangup(&hangups).await;
        }
        // SIGHUPs that came meanwhile are answered by the read below.
        while hangups.try_recv().is_ok() {
            forced = true;
        }
        let read = {
            let source = watcher.source.clone();
            smol::unblock(move || source.read()).await
        };
        let now = match read {
            Ok(now) => now,
            Err(e) => {
                // Some editors remove the file for a moment while saving.
                let detail = match e.kind() {
                    std::io::ErrorKind::NotFound => "file is gone".to_owned(),
                    _ => format!("cannot read: {e}"),
                };
                if trouble.as_deref() != Some(&detail) {
                    watcher.config_error(&detail);
                    trouble = Some(detail);
                }
                pending = None;
                continue;
            }
        };
        trouble = None;
        match pending.take() {
            Some(before) if before == now => {
                watcher.apply(&now.bytes);
                seen = Some(now);
                forced = false;
            }
            _ if forced || seen.as_ref() != Some(&now) => pending = Some(now),
            _ => {}
        }
    }
}

/// Waits one [`POLL_INTERVAL`]; true if a SIGHUP cut it short.
async fn poll_or_hangup(hangups: &Receiver<()>) -> bool {
    let hangup = async {
        match hangups.recv().await {
            Ok(()) => true,
            // No sender left: no SIGHUP can come.
            Err(_) => std::future::pending().await,
        }
    };
    async {
        Timer::after(POLL_INTERVAL).await;
        false
    }
    .or(hangup)
    .await
}

/// What applying a version needs.
struct Watcher {
    service: &'static str,
    source: ConfigSource,
    app: Arc<App>,
    running: Settings,
}

impl Watcher {
    /// Parses and validates `bytes` (a settled version of the file) and, if
    /// good, puts its `[fault]` in force; otherwise says why.
    fn apply(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            self.config_error("file is empty (a save in progress?)");
            return;
        }
        let fresh = match self.source.parse::<Settings>(Some(bytes)) {
            Ok(fresh) => fresh,
            Err(e) => {
                self.config_error(&e.to_string());
                return;
            }
        };
        let sections = [
            ("[server]", fresh.server != self.running.server),
            ("[log]", fresh.log != self.running.log),
            ("[trace]", fresh.trace != self.running.trace),
        ];
        for (section, _) in sections.iter().filter(|(_, changed)| *changed) {
            self.line("config_restart_needed")
                .str(
                    "detail",
                    &format!("{section} changed; restart {} to apply it", self.service),
                )
                .emit();
        }
        // In force before it is said: whoever reads the line finds it applied.
        self.app
            .faults
            .store(Arc::new(Faults::new(fresh.fault.clone())));
        fresh.fault.log_fields(self.line("config_reloaded")).emit();
    }

    /// Says what is wrong with the file, and that nothing changed: a student
    /// reading the line must know A still runs the settings it had.
    fn config_error(&self, detail: &str) {
        self.line("config_error")
            .str(
                "error",
                &format!("{detail}; keeping the last good settings"),
            )
            .emit();
    }

    fn line(&self, event: &str) -> Line {
        Line::new(self.service)
            .str("event", event)
            .str("file", &self.source.path.display().to_string())
    }
}
