//! What A does with a saved edit of its config file (the runtime's
//! `reload::watch` finds the edit): `[fault]` is put in force at once (over
//! whatever the control API had set);
//! any other key that changed is named in `event=config_restart_needed`,
//! since A runs with what it started with.

use std::sync::Arc;

use service_runtime::config::ConfigSource;
use service_runtime::reload::{self, Apply};

use crate::app::{App, Source};
use crate::config::Settings;
use crate::fault::Faults;

/// Applies a settled version of A's file.
pub struct Reload {
    /// The file watched, for log lines.
    pub source: ConfigSource,
    /// Where the faults in force live.
    pub app: Arc<App>,
    /// What A started with: only `[fault]` changes live.
    pub running: Settings,
}

impl Apply for Reload {
    /// Parses and validates `bytes` and, if good, puts its `[fault]` in
    /// force; otherwise says why.
    fn apply(&mut self, bytes: &[u8]) {
        let fresh = match self.source.parse::<Settings>(Some(bytes)) {
            Ok(fresh) => fresh,
            Err(e) => return reload::config_error(&self.source, &e.to_string()),
        };
        let mut as_running = fresh.clone();
        as_running.fault = self.running.fault.clone();
        let keys = reload::changed_keys(&self.running, &as_running);
        if !keys.is_empty() {
            reload::line(&self.source, "config_restart_needed")
                .str("keys", &keys.join(","))
                .str(
                    "detail",
                    "these keys apply only at start; restart A to apply them ([fault] applies now)",
                )
                .emit();
        }
        // In force before it is said: whoever reads the line finds it applied.
        self.app
            .put_faults(Faults::new(fresh.fault.clone()), Source::File);
        fresh
            .fault
            .log_fields(reload::line(&self.source, "config_reloaded"))
            .emit();
    }
}
