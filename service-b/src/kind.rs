//! What went wrong with a call to A, in the contract's words: the KINDs.
//!
//! The vocabulary of B, imported by every module that speaks of failures and
//! importing none of them.

use serde::{Deserialize, Serialize};

/// What went wrong with a call to A: the contract's KINDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// No complete answer (connect, head and body) within the budget.
    Timeout,
    /// Nothing listens at A's address.
    ConnectionRefused,
    /// A closed or reset the connection before a complete answer.
    ConnectionReset,
    /// A answered a non-2xx status.
    UpstreamStatus,
    /// A's 2xx answer is not the JSON expected, or not valid HTTP.
    BadResponse,
    /// Any other failure to connect (name lookup, no route).
    Unreachable,
    /// The circuit breaker is open: A was not called.
    CircuitOpen,
    /// B itself is out of file descriptors or local ports: A was not called,
    /// and is not to blame.
    BOverloaded,
}

impl Kind {
    /// The name in answers, logs and metrics: `timeout`, `connection_refused`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Timeout => "timeout",
            Kind::ConnectionRefused => "connection_refused",
            Kind::ConnectionReset => "connection_reset",
            Kind::UpstreamStatus => "upstream_status",
            Kind::BadResponse => "bad_response",
            Kind::Unreachable => "unreachable",
            Kind::CircuitOpen => "circuit_open",
            Kind::BOverloaded => "b_overloaded",
        }
    }

    /// The status B's answer reports for this kind (`upstream_status` takes
    /// A's own instead).
    fn http_status(self) -> u16 {
        match self {
            Kind::Timeout => 504,
            Kind::ConnectionReset | Kind::BadResponse => 502,
            Kind::ConnectionRefused
            | Kind::Unreachable
            | Kind::UpstreamStatus
            | Kind::CircuitOpen
            | Kind::BOverloaded => 503,
        }
    }
}

/// A failed call: its kind, the status that kind stands for, and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    /// What went wrong.
    pub kind: Kind,
    /// 504 for a timeout, 502 for reset or bad answer, A's own status for
    /// `upstream_status`, 503 otherwise.
    pub http_status: u16,
    /// A sentence for a human.
    pub detail: String,
    /// Whether this failure says something about A's health (for the
    /// breaker). Not so for B's own trouble, nor for A's 4xx to a caller's
    /// bad header: A answered, correctly.
    pub against_a: bool,
}

impl CallError {
    /// An error of `kind` with the status that kind stands for.
    pub fn new(kind: Kind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            http_status: kind.http_status(),
            detail: detail.into(),
            against_a: kind != Kind::BOverloaded,
        }
    }

    /// The same error with another status (A's own, for `upstream_status`).
    pub fn with_status(mut self, http_status: u16) -> Self {
        self.http_status = http_status;
        self
    }

    /// The same error, not counted as A's failure by the breaker.
    pub fn not_against_a(mut self) -> Self {
        self.against_a = false;
        self
    }
}
