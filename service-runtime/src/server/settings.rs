//! `[server]`: where and how a service listens, and the limits the server
//! loop takes from it ([`Limits`]). Changes need a restart.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Invalid;

/// `[server]`: where and how a service listens. Changes need a restart.
///
/// No serde `default`: the service's own defaults are merged first by
/// [`ConfigSource::load`](crate::config::ConfigSource::load).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to bind; loopback by default so a lab never listens on a network.
    pub host: String,
    /// Port to bind; 0 lets the OS pick (the start line gives the real one).
    pub port: u32,
    /// Executor threads; 0 means one per core.
    pub threads: u32,
    /// On SIGINT/SIGTERM, how long requests in flight may take to finish.
    pub shutdown_grace_ms: u64,
    /// The longest wait on a client, in all, not per read: for a whole
    /// request head (so also how long an idle keep-alive connection is kept),
    /// for the rest of a request after its head (a body), and for the client
    /// to take each answer, or each piece of a streamed one.
    ///
    /// Called `header_timeout_ms` before it was seen to bound more than the
    /// head; that name is still accepted, in the file and in env (the loader
    /// gives it the new name: `config/layer.rs`, `RENAMED`), and both at
    /// once are refused.
    #[serde(alias = "header_timeout_ms")]
    pub client_timeout_ms: u64,
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: u32,
}

impl ServerSettings {
    /// The defaults, listening on 127.0.0.1:`port`.
    pub fn on_port(port: u32) -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port,
            threads: 0,
            shutdown_grace_ms: 5000,
            client_timeout_ms: 10_000,
            max_connections: 1024,
        }
    }

    /// Checks every `[server]` key.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.host.parse::<IpAddr>().is_err() {
            return Err(Invalid {
                key: "server.host",
                value: format!("{:?}", self.host),
                expected: "an IP address such as \"127.0.0.1\" or \"::1\"".to_owned(),
            });
        }
        Invalid::check_range("server.port", self.port, 0..=65535)?;
        Invalid::check_range("server.threads", self.threads, 0..=256)?;
        Invalid::check_range(
            "server.shutdown_grace_ms",
            self.shutdown_grace_ms,
            0..=600_000,
        )?;
        Invalid::check_range(
            "server.client_timeout_ms",
            self.client_timeout_ms,
            1..=600_000,
        )?;
        Invalid::check_range(
            "server.max_connections",
            self.max_connections,
            1..=1_000_000,
        )?;
        Ok(())
    }

    /// The address to bind (valid once [`validate`](Self::validate) passed).
    pub fn addr(&self) -> SocketAddr {
        let ip = self.host.parse().unwrap_or(IpAddr::from([127, 0, 0, 1]));
        SocketAddr::new(ip, self.port as u16)
    }

    /// Executor threads to run: `threads`, or one per core when 0.
    pub fn thread_count(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        }
    }

    /// The client timeout as a `Duration`.
    pub fn client_timeout(&self) -> Duration {
        Duration::from_millis(self.client_timeout_ms)
    }

    /// The shutdown grace as a `Duration`.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

/// The limits the loop enforces, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; others wait in the listen backlog.
    pub max_connections: usize,
    /// On shutdown, how long requests in flight may take to finish.
    pub shutdown_grace: Duration,
}

impl From<&ServerSettings> for Limits {
    fn from(s: &ServerSettings) -> Self {
        Self {
            max_connections: s.max_connections as usize,
            shutdown_grace: s.shutdown_grace(),
        }
    }
}

#[cfg(test)]
// figment's Jail closures return its (large) error type; that is its API.
#[allow(clippy::result_large_err)]
mod tests {
    use figment::providers::{Format, Toml};
    use figment::Figment;

    use super::*;
    use crate::config::{ConfigSource, Validate};

    /// A settings type with only `[server]`, loaded as a service's are.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Only {
        server: ServerSettings,
    }

    impl Default for Only {
        fn default() -> Self {
            Self {
                server: ServerSettings::on_port(8080),
            }
        }
    }

    impl Validate for Only {
        fn validate(&self) -> Result<(), Invalid> {
            self.server.validate()
        }
    }

    fn source() -> ConfigSource {
        ConfigSource {
            path: "demo.toml".into(),
            explicit: true,
            env_prefix: "DEMO_",
        }
    }

    fn parse(toml: &str) -> Result<Only, String> {
        source().parse(Some(toml.as_bytes())).map_err(|e| e.0)
    }

    /// `header_timeout_ms`, the key's old name, still loads, from the file
    /// and from env, and means what `client_timeout_ms` means.
    #[test]
    fn the_old_name_still_loads_and_means_the_same() {
        // In a Jail, which holds the lock on the environment.
        figment::Jail::expect_with(|jail| {
            let new = parse("[server]\nclient_timeout_ms = 300\n").unwrap();
            assert_eq!(new.server.client_timeout(), Duration::from_millis(300));
            assert_eq!(parse("[server]\nheader_timeout_ms = 300\n").unwrap(), new);
            jail.set_env("DEMO_SERVER__HEADER_TIMEOUT_MS", "300");
            assert_eq!(source().parse::<Only>(None).unwrap(), new);
            // A reader that deserializes the section by itself, without the
            // loader, takes the old name too (the serde alias).
            let direct: ServerSettings = Figment::from(Toml::string(
                "host = \"127.0.0.1\"\nport = 8080\nthreads = 0\nshutdown_grace_ms = 5000\n\
                 header_timeout_ms = 300\nmax_connections = 1024\n",
            ))
            .extract()
            .unwrap();
            assert_eq!(direct, new.server);
            Ok(())
        });
    }

    /// Both names in one file are refused, naming both, rather than one
    /// silently winning; a bad value under the old name names both too.
    #[test]
    fn both_names_at_once_are_refused() {
        figment::Jail::expect_with(|jail| {
            let both = "[server]\nclient_timeout_ms = 300\nheader_timeout_ms = 400\n";
            assert_eq!(
                parse(both).unwrap_err(),
                "demo.toml: server.client_timeout_ms is set twice, as client_timeout_ms and as \
                 header_timeout_ms (its old name); keep client_timeout_ms"
            );
            assert_eq!(
                parse("[server]\nheader_timeout_ms = 0\n").unwrap_err(),
                "demo.toml: server.client_timeout_ms = 0, expected 1..=600000 \
                 (server.header_timeout_ms is its old name)"
            );
            // In different layers the usual order holds: env beats the file.
            jail.set_env("DEMO_SERVER__CLIENT_TIMEOUT_MS", "500");
            let only: Only = source()
                .parse(Some(b"[server]\nheader_timeout_ms = 300\n"))
                .unwrap();
            assert_eq!(only.server.client_timeout_ms, 500);
            Ok(())
        });
    }
}
