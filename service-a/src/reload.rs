//! Live reload of `[fault]`: A polls its config file and applies a good edit
//! within a second, without a restart.
//!
//! Polling (not inotify) because it survives every way editors save: in place,
//! or by writing a new file and renaming it over the old one. The file is tiny;
//! reading it four times a second costs nothing. A bad edit is logged
//! (`event=config_error`) and the last good settings stay in force.
//!
//! SIGHUP re-reads the file at once, even if it did not change (which also
//! restarts the seeded sequence of faults and `fail_first`).

use std::sync::Arc;
use std::time::Duration;

use service_runtime::config::ConfigSource;
use service_runtime::log::Line;
use smol::channel::Receiver;
use smol::future::FutureExt as _;
use smol::Timer;

use crate::config::Settings;
use crate::echo::App;
use crate::fault::Faults;

/// How often the file is checked: edits apply within this (well under a second).
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Watches `source` forever, swapping `app`'s faults on every good edit.
/// `running` is what A started with (only `[fault]` applies live), and
/// `last` the file's bytes it was loaded from. Each message on `hangups`
/// (a SIGHUP) reloads the file at once, changed or not.
pub async fn watch(
    source: ConfigSource,
    app: Arc<App>,
    running: Settings,
    mut last: Option<Vec<u8>>,
    hangups: Receiver<()>,
) {
    let mut said_missing = false;
    loop {
        let hangup = async {
            match hangups.recv().await {
                Ok(()) => true,
                // No sender left: no SIGHUP can come.
                Err(_) => std::future::pending().await,
            }
        };
        let forced = async {
            Timer::after(POLL_INTERVAL).await;
            false
        }
        .or(hangup)
        .await;
        let now = smol::fs::read(&source.path).await.ok();
        if now == last && !(forced && now.is_some()) {
            continue;
        }
        last = now;
        if last.is_none() {
            // Some editors remove the file for a moment while saving: say it once.
            if !said_missing {
                config_error(&source, "file is gone; keeping the last good settings");
                said_missing = true;
            }
            continue;
        }
        said_missing = false;
        match source.load::<Settings>() {
            Err(e) => config_error(&source, &e.to_string()),
            Ok(loaded) => {
                let fresh = loaded.settings;
                let sections = [
                    ("[server]", fresh.server != running.server),
                    ("[log]", fresh.log != running.log),
                    ("[trace]", fresh.trace != running.trace),
                ];
                for (section, _) in sections.iter().filter(|(_, changed)| *changed) {
                    Line::new("A")
                        .str("event", "config_restart_needed")
                        .str("file", &source.path.display().to_string())
                        .str(
                            "detail",
                            &format!("{section} changed; restart A to apply it"),
                        )
                        .emit();
                }
                let line = Line::new("A")
                    .str("event", "config_reloaded")
                    .str("file", &source.path.display().to_string());
                fresh.fault.log_fields(line).emit();
                app.faults.store(Arc::new(Faults::new(fresh.fault)));
            }
        }
    }
}

fn config_error(source: &ConfigSource, detail: &str) {
    Line::new("A")
        .str("event", "config_error")
        .str("file", &source.path.display().to_string())
        .str("error", detail)
        .emit();
}
