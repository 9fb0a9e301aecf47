//! The descriptor limit at start: what a service needs for its
//! `max_connections` ([`DESCRIPTOR_RESERVE`] beside them), the soft limit
//! raised to it within the hard one ([`descriptor_limit`]), and the line that
//! says so, or that warns with an estimate of the connections that fit
//! ([`fits`]) when even the hard limit is too low. Running out later is the
//! accept loop's to survive (`server.rs`).

use crate::log::Line;

/// Descriptors a service needs beside those of its connections: stdin,
/// stdout and stderr, the listener, the reactors' polling handles and
/// wake-up pipes (two async-io versions), the config file being read, the
/// span exporter's socket, and headroom for what libraries open.
pub const DESCRIPTOR_RESERVE: u64 = 64;

/// Descriptors a service holds before its first connection, for the
/// estimate of how many connections fit under a low limit. An attack round
/// on Linux measured, under `ulimit -n 64`, 51 connections served by A (so
/// it held 13) and 26 by B at two each (12); rounded up for what other
/// platforms and libraries open. [`DESCRIPTOR_RESERVE`] is the headroom
/// asked for; this is what is really taken.
pub const DESCRIPTOR_BASELINE: u64 = 16;

/// What [`descriptor_limit`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DescriptorLimit {
    /// The soft limit already covers what the service needs.
    Enough,
    /// The soft limit was raised from `from` to `to`.
    Raised {
        /// The soft limit found.
        from: u64,
        /// The soft limit now.
        to: u64,
    },
    /// Even the hard limit is below what `max_connections` needs.
    Short {
        /// The soft limit now (raised to the hard limit if it was lower).
        limit: u64,
        /// What the service would need.
        needed: u64,
    },
    /// The platform has no such limit to read (Windows).
    Unknown,
}

/// Makes sure the process may open `needed` descriptors: raises the soft
/// limit (`ulimit -n`) up to the hard one if it is lower, as nginx's
/// `worker_rlimit_nofile` and many servers do, never past what is needed.
pub fn descriptor_limit(needed: u64) -> DescriptorLimit {
    #[cfg(unix)]
    {
        use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
        let now = getrlimit(Resource::Nofile);
        // `None` is "unlimited".
        let soft = now.current.unwrap_or(u64::MAX);
        let hard = now.maximum.unwrap_or(u64::MAX);
        if soft >= needed {
            return DescriptorLimit::Enough;
        }
        let to = needed.min(hard);
        let raised = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(to),
                maximum: now.maximum,
            },
        );
        let limit = if raised.is_ok() { to } else { soft };
        if limit >= needed {
            DescriptorLimit::Raised { from: soft, to }
        } else {
            DescriptorLimit::Short { limit, needed }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = needed;
        DescriptorLimit::Unknown
    }
}

/// The line that says what [`descriptor_limit`] did, if anything is worth saying.
/// `per_connection` is how many descriptors one client connection costs.
pub fn descriptor_line(
    found: DescriptorLimit,
    max_connections: u64,
    per_connection: u64,
) -> Option<Line> {
    match found {
        DescriptorLimit::Enough | DescriptorLimit::Unknown => None,
        DescriptorLimit::Raised { from, to } => Some(
            Line::event("descriptor_limit")
                .num("raised_from", from)
                .num("raised_to", to)
                .str(
                    "detail",
                    "raised the soft limit (ulimit -n) to what server.max_connections needs",
                ),
        ),
        DescriptorLimit::Short { limit, needed } => {
            let fits = fits(limit, per_connection);
            Some(
                Line::event("descriptor_limit_low")
                    .num("limit", limit)
                    .num("needed", needed)
                    .str(
                        "detail",
                        &format!(
                            "server.max_connections = {max_connections} needs about {needed} file \
                             descriptors but the limit (ulimit -n) is {limit} and cannot be raised: \
                             past about {fits} connections new ones wait (event=accept_failed); \
                             raise the hard limit or lower server.max_connections"
                        ),
                    ),
            )
        }
    }
}

/// About how many connections fit under a descriptor `limit`, at
/// `per_connection` descriptors each, beside the [`DESCRIPTOR_BASELINE`].
pub fn fits(limit: u64, per_connection: u64) -> u64 {
    limit.saturating_sub(DESCRIPTOR_BASELINE) / per_connection.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Under `ulimit -n 64` the estimate is near what was measured (A 51
    /// connections, B 26), never 0; a limit below the baseline fits none.
    #[test]
    fn estimates_the_connections_that_fit() {
        assert_eq!(fits(64, 1), 48);
        assert_eq!(fits(64, 2), 24);
        assert_eq!(fits(10, 1), 0);
        let line = descriptor_line(
            DescriptorLimit::Short {
                limit: 64,
                needed: 1088,
            },
            1024,
            1,
        )
        .unwrap();
        let line = format!("{line:?}");
        assert!(line.contains("past about 48 connections"), "{line}");
    }
}
