//! The one failure type of this crate, worded for the person who reads it:
//! each variant names the service, what was expected of it, and what it did
//! instead (its exit code, its last output), so that the message alone says
//! what to fix.
//!
//! A leaf module: it imports nothing of its siblings.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// What went wrong with a child process, in words a user can act on.
#[derive(Debug)]
pub enum Error {
    /// The binary is not built (or not where this executable expects it).
    NotBuilt {
        /// Where it was looked for.
        path: PathBuf,
        /// The cargo package that builds it.
        package: String,
    },
    /// It exited before printing its ready line: usually a config it
    /// refuses (exit code 2) or a port already taken (exit code 1).
    Exited {
        /// The binary's name, e.g. `service-a`.
        service: String,
        /// Its exit code; `None` when a signal ended it.
        code: Option<i32>,
        /// What it printed on stderr (its reason, for the services).
        stderr: String,
    },
    /// It printed no line that was waited for within the patience.
    Silent {
        /// The binary's name.
        service: String,
        /// What was waited for, e.g. `its ready line`.
        waited_for: String,
        /// How long.
        patience: Duration,
        /// Its last lines of output, for the reader to see what it did.
        last_output: String,
    },
    /// Its output ended (it exited) before the line that was waited for.
    Ended {
        /// The binary's name.
        service: String,
        /// What was waited for.
        waited_for: String,
        /// Its last lines of output.
        last_output: String,
    },
    /// It was still running `patience` after it was asked to stop.
    StillRunning {
        /// The binary's name.
        service: String,
        /// How long it was given.
        patience: Duration,
    },
    /// A system call failed: `doing` says which step, in words.
    Io {
        /// The step, e.g. `writing /tmp/x/service.toml`.
        doing: String,
        /// The operating system's reason.
        source: io::Error,
    },
}

impl Error {
    /// An [`Error::Io`] for the step `doing`.
    pub fn io(doing: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            doing: doing.into(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotBuilt { path, package } => write!(
                f,
                "no built binary at {}: run `cargo build -p {package}`",
                path.display()
            ),
            Self::Exited {
                service,
                code,
                stderr,
            } => {
                let how = match code {
                    Some(code) => format!("exited with code {code}"),
                    None => "was ended by a signal".to_owned(),
                };
                let said = match stderr.trim() {
                    "" => "(it printed nothing on stderr)".to_owned(),
                    text => format!("it said: {text}"),
                };
                write!(f, "{service} {how} before its ready line; {said}")
            }
            Self::Silent {
                service,
                waited_for,
                patience,
                last_output,
            } => write!(
                f,
                "{service} did not print {waited_for} within {} s; its last output: {}",
                patience.as_secs_f64(),
                or_nothing(last_output)
            ),
            Self::Ended {
                service,
                waited_for,
                last_output,
            } => write!(
                f,
                "{service} closed its output (it exited) before printing {waited_for}; \
                 its last output: {}",
                or_nothing(last_output)
            ),
            Self::StillRunning { service, patience } => write!(
                f,
                "{service} was still running {} s after it was asked to stop",
                patience.as_secs_f64()
            ),
            Self::Io { doing, source } => write!(f, "{doing}: {source}"),
        }
    }
}

fn or_nothing(output: &str) -> &str {
    match output.trim() {
        "" => "(none)",
        text => text,
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each message names the service and what to do or what it said.
    #[test]
    fn messages_name_the_service_and_the_way_out() {
        let e = Error::NotBuilt {
            path: "target/debug/service-a".into(),
            package: "service-a".into(),
        };
        assert_eq!(
            e.to_string(),
            "no built binary at target/debug/service-a: run `cargo build -p service-a`"
        );
        let e = Error::Exited {
            service: "service-a".into(),
            code: Some(2),
            stderr: "x.toml: server.port = 70000, expected 0..=65535\n".into(),
        };
        assert_eq!(
            e.to_string(),
            "service-a exited with code 2 before its ready line; it said: \
             x.toml: server.port = 70000, expected 0..=65535"
        );
        let e = Error::Silent {
            service: "service-b".into(),
            waited_for: "its ready line".into(),
            patience: Duration::from_secs(10),
            last_output: String::new(),
        };
        assert_eq!(
            e.to_string(),
            "service-b did not print its ready line within 10 s; its last output: (none)"
        );
    }
}
