//! What went wrong with a call to A, in the contract's words: the KINDs.
//!
//! The vocabulary of B, imported by every module that speaks of failures and
//! importing none of them. The lab reads it too (`service_b::kind`): its
//! list of outcomes, its charts' colours and its console's chips come from
//! [`Kind::ALL`] and [`Kind::as_str`], so a new KIND is added here
//! and nowhere else (a test fails if `ALL` misses one).

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

impl Kind {
    /// Every KIND, in the contract's order (the order of the enum).
    pub const ALL: [Kind; 8] = [
        Kind::Timeout,
        Kind::ConnectionRefused,
        Kind::ConnectionReset,
        Kind::UpstreamStatus,
        Kind::BadResponse,
        Kind::Unreachable,
        Kind::CircuitOpen,
        Kind::BOverloaded,
    ];

    /// The KIND named `name` (as [`as_str`](Self::as_str) writes it).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ALL` holds every KIND once, in the enum's order, and each KIND's
    /// name is the one serde writes. The enum's own list of variants is
    /// serde's (its derive is generated from the enum, and it names them
    /// all when refusing an unknown one), so a variant added to the enum but
    /// not to `ALL` fails here, not in the lab.
    #[test]
    fn all_lists_every_kind_once() {
        let refusal = serde_json::from_str::<Kind>("\"no such kind\"")
            .unwrap_err()
            .to_string();
        let listed = refusal
            .split_once("expected one of ")
            .map(|(_, list)| list)
            .unwrap_or_else(|| panic!("serde's refusal lists no variants: {refusal}"));
        let variants: Vec<&str> = listed
            .split(", ")
            .map(|v| v.split('`').nth(1).unwrap_or(v))
            .collect();
        let all: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(all, variants, "Kind::ALL against the enum's variants");
        for kind in Kind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(Kind::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(Kind::from_name("ok"), None);
    }
}
