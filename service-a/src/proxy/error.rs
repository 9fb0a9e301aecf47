//! An upstream that gave no usable answer, as A's own answer: the KIND (as B
//! names the same failures) and a 502, or a 504 for a timeout. Never taken
//! for an injected fault: no `x-fault-injected`.

use std::io;

use http_types::{Response, StatusCode};
use serde::Serialize;
use service_runtime::answer::Failure;
use service_runtime::http::json;

/// Why the upstream gave no usable answer: A's own 502 or 504.
#[derive(Debug)]
pub struct UpstreamError {
    /// The KIND, as B names the same failures: `connection_refused`,
    /// `unreachable`, `connection_reset`, `bad_response`, `timeout`.
    pub kind: &'static str,
    /// What happened, in words.
    pub detail: String,
}

impl UpstreamError {
    /// A's answer for it: 504 for a timeout, else 502, JSON.
    pub fn into_response(self, upstream: &str) -> Response {
        #[derive(Serialize)]
        struct Body<'a> {
            error: &'a str,
            kind: &'a str,
            upstream: &'a str,
        }
        let status = if self.kind == "timeout" {
            StatusCode::GatewayTimeout
        } else {
            StatusCode::BadGateway
        };
        json(
            status,
            &Body {
                error: &self.detail,
                kind: self.kind,
                upstream,
            },
        )
    }

    pub(super) fn from_failure(failure: &Failure, authority: &str) -> Self {
        let peer = "the upstream";
        let (kind, detail) = match failure {
            Failure::Connect(e) if e.kind() == io::ErrorKind::ConnectionRefused => (
                "connection_refused",
                format!("nothing listens at {authority} (connection refused)"),
            ),
            Failure::Connect(e) => ("unreachable", format!("cannot reach {authority}: {e}")),
            Failure::Closed(_) | Failure::Read(_) => ("connection_reset", failure.describe(peer)),
            Failure::Malformed(_) => ("bad_response", failure.describe(peer)),
        };
        Self { kind, detail }
    }
}
