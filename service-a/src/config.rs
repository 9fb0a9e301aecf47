//! Service A's settings: `[server]`, `[proxy]` and `[admin]` (restart to change) and `[fault]` (live).

use serde::{Deserialize, Serialize};
use service_runtime::config::Invalid;
use service_runtime::log::LogSettings;
use service_runtime::server::ServerSettings;
use service_runtime::trace::TraceSettings;

use crate::admin::AdminSettings;
use crate::fault::FaultSettings;
use crate::proxy::settings::ProxySettings;

/// Everything in config/service-a.toml.
///
/// Env overrides: `SERVICE_A_SERVER__PORT=0`, `SERVICE_A_FAULT__DELAY_MS=1500`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where A listens.
    pub server: ServerSettings,
    /// How log lines are written.
    pub log: LogSettings,
    /// Where spans go.
    pub trace: TraceSettings,
    /// What A does to `/echo` requests (or, as a proxy, to proxied ones).
    pub fault: FaultSettings,
    /// The service A stands in front of; none: A echoes.
    pub proxy: ProxySettings,
    /// The control API's listener; none: no API.
    pub admin: AdminSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            server: ServerSettings::on_port(8080),
            log: LogSettings::default(),
            trace: TraceSettings::default(),
            fault: FaultSettings::default(),
            proxy: ProxySettings::default(),
            admin: AdminSettings::default(),
        }
    }
}

impl service_runtime::config::Validate for Settings {
    fn validate(&self) -> Result<(), Invalid> {
        self.server.validate()?;
        self.trace.validate()?;
        self.fault.validate()?;
        self.proxy.validate()?;
        self.admin.validate()
    }
}

impl service_runtime::service::Settings for Settings {
    fn server(&self) -> &ServerSettings {
        &self.server
    }

    fn log(&self) -> &LogSettings {
        &self.log
    }

    fn trace(&self) -> &TraceSettings {
        &self.trace
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use service_runtime::config::ConfigSource;

    /// The shipped config/service-a.toml is valid and writes out exactly the defaults.
    #[test]
    fn shipped_config_is_the_defaults() {
        let source = ConfigSource {
            path: concat!(env!("CARGO_MANIFEST_DIR"), "/../config/service-a.toml").into(),
            explicit: true,
            env_prefix: "SERVICE_A_TEST_UNUSED_",
        };
        let loaded = source
            .load::<Settings>()
            .expect("config/service-a.toml loads");
        assert_eq!(loaded.settings, Settings::default());
    }
}
