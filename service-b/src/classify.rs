//! Which KIND a failed call is: socket facts and A's answers in, a
//! [`CallError`] out. Every rule of the contract's KIND table is here, and the
//! list of io errors that mean "A closed early" is written once.

use std::io;

use http_types::StatusCode;
use serde::Deserialize;

use crate::kind::{CallError, ErrorKind};

/// A fact about a failed exchange with A, as the pool saw it on the socket.
#[derive(Debug)]
pub enum Failure {
    /// No connection could be opened (refused, no route, out of descriptors).
    Connect(io::Error),
    /// The connection ended before a complete answer.
    Closed(Closed),
    /// What came back was not a valid HTTP answer.
    Malformed(String),
}

/// How a connection ended before a complete answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// A closed it cleanly (FIN): end of stream.
    Fin,
    /// A reset it (RST): "connection reset by peer".
    Reset,
    /// A closed it after part of a body whose length it had announced.
    ShortBody {
        /// Body bytes received.
        got: usize,
        /// The `Content-Length` A announced.
        announced: usize,
    },
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Closed::Fin => write!(f, "A closed the connection (FIN) before a complete answer"),
            Closed::Reset => write!(
                f,
                "A reset the connection (RST, reset by peer) before a complete answer"
            ),
            Closed::ShortBody { got, announced } => write!(
                f,
                "A closed the connection after {got} of the {announced} body bytes it announced \
                 (Content-Length): the body was short"
            ),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connect(e) => write!(f, "cannot connect: {e}"),
            Failure::Closed(how) => how.fmt(f),
            Failure::Malformed(why) => write!(f, "not a valid HTTP answer: {why}"),
        }
    }
}

impl std::error::Error for Failure {}

/// How the peer ended the connection, if this io error means it did.
pub fn closed_early(kind: io::ErrorKind) -> Option<Closed> {
    use io::ErrorKind::*;
    match kind {
        ConnectionReset | ConnectionAborted => Some(Closed::Reset),
        BrokenPipe | UnexpectedEof => Some(Closed::Fin),
        _ => None,
    }
}

/// B's own limits, not A's fault: out of file descriptors (per process or
/// system-wide), of buffers, or of local ports to connect from.
fn out_of_resources(e: &io::Error) -> bool {
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    const ENOBUFS: i32 = 105;
    const EADDRNOTAVAIL: i32 = 99;
    matches!(
        e.raw_os_error(),
        Some(EMFILE | ENFILE | ENOBUFS | EADDRNOTAVAIL)
    ) || e.kind() == io::ErrorKind::OutOfMemory
}

/// The KIND of a failure the pool reported for A at `authority`.
pub fn failure(failure: &Failure, authority: &str) -> CallError {
    match failure {
        Failure::Connect(e) if e.kind() == io::ErrorKind::ConnectionRefused => CallError::new(
            ErrorKind::ConnectionRefused,
            format!("nothing listens at {authority} (connection refused)"),
        ),
        Failure::Connect(e) if out_of_resources(e) => CallError::new(
            ErrorKind::BOverloaded,
            format!(
                "B cannot open a connection to {authority}: B itself is out of resources ({e}); \
                 A was not called"
            ),
        ),
        Failure::Connect(e) => CallError::new(
            ErrorKind::Unreachable,
            format!("cannot reach {authority}: {e}"),
        ),
        Failure::Closed(how) => CallError::new(ErrorKind::ConnectionReset, how.to_string()),
        Failure::Malformed(_) => CallError::new(ErrorKind::BadResponse, failure.to_string()),
    }
}

/// The KIND of an error surf returned. The pool's [`Failure`] reaches here
/// inside surf's error type (surf's backend trait returns only that type);
/// anything else is classified by the io errors in its chain.
pub fn surf_error(err: &surf::Error, authority: &str) -> CallError {
    if let Some(f) = err.downcast_ref::<Failure>() {
        return failure(f, authority);
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err.as_ref());
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            let kind = match io.kind() {
                io::ErrorKind::ConnectionRefused => ErrorKind::ConnectionRefused,
                kind if closed_early(kind).is_some() => ErrorKind::ConnectionReset,
                io::ErrorKind::TimedOut => ErrorKind::Timeout,
                _ => ErrorKind::Unreachable,
            };
            return CallError::new(kind, format!("calling {authority}: {io}"));
        }
        source = e.source();
    }
    CallError::new(
        ErrorKind::BadResponse,
        format!("calling {authority}: {err}"),
    )
}

/// `upstream_status` for A's non-2xx answer, quoting the start of its body.
/// `injected`: A marked the answer as its own fault (`x-fault-injected`).
pub fn status(status: StatusCode, injected: bool, body: &[u8]) -> CallError {
    let text = String::from_utf8_lossy(body);
    let snippet: String = text.chars().take(200).collect();
    let origin = if injected { " (injected by A)" } else { "" };
    let err = CallError::new(
        ErrorKind::UpstreamStatus,
        format!(
            "A answered {} {}{origin}: {snippet}",
            u16::from(status),
            status.canonical_reason()
        ),
    )
    .with_status(status.into());
    if status.is_client_error() && !injected {
        // A refused what the caller sent (a bad x-fault-* header): A is fine.
        err.not_against_a()
    } else {
        err
    }
}

/// A's `/echo` answer must be `{"echo": string}`; anything else is a `bad_response`.
pub fn echo_body(body: &[u8]) -> Result<String, CallError> {
    #[derive(Deserialize)]
    struct EchoAnswer {
        echo: String,
    }
    serde_json::from_slice::<EchoAnswer>(body)
        .map(|answer| answer.echo)
        .map_err(|e| {
            CallError::new(
                ErrorKind::BadResponse,
                format!("A's answer is not the expected {{\"echo\": string}}: {e}"),
            )
        })
}

/// The `timeout` of a call that had `budget_ms` in all.
pub fn timeout(budget_ms: u128) -> CallError {
    CallError::new(
        ErrorKind::Timeout,
        format!("no complete answer from A within {budget_ms} ms"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn surf(e: impl Into<anyhow::Error>) -> surf::Error {
        surf::Error::new(StatusCode::InternalServerError, e)
    }

    /// The pool's facts map onto the contract's KINDs and statuses.
    #[test]
    fn pool_failures_map_to_kinds() {
        let refused = Failure::Connect(io::ErrorKind::ConnectionRefused.into());
        let e = surf_error(&surf(refused), "127.0.0.1:1");
        assert_eq!((e.kind, e.http_status), (ErrorKind::ConnectionRefused, 503));
        assert_eq!(
            e.detail,
            "nothing listens at 127.0.0.1:1 (connection refused)"
        );

        let no_route = Failure::Connect(io::Error::other("no route"));
        assert_eq!(failure(&no_route, "x").kind, ErrorKind::Unreachable);

        let no_fds = Failure::Connect(io::Error::from_raw_os_error(24));
        let e = failure(&no_fds, "x");
        assert_eq!(
            (e.kind, e.http_status, e.against_a),
            (ErrorKind::BOverloaded, 503, false)
        );
        assert!(
            e.detail.contains("B itself is out of resources"),
            "{}",
            e.detail
        );

        let closed = Failure::Closed(Closed::Fin);
        let e = failure(&closed, "x");
        assert_eq!((e.kind, e.http_status), (ErrorKind::ConnectionReset, 502));
        assert!(
            e.detail.contains("closed the connection (FIN)"),
            "{}",
            e.detail
        );
        let reset = failure(&Failure::Closed(Closed::Reset), "x");
        assert!(reset.detail.contains("reset by peer"), "{}", reset.detail);
        let short = failure(
            &Failure::Closed(Closed::ShortBody {
                got: 8,
                announced: 16,
            }),
            "x",
        );
        assert_eq!(short.kind, ErrorKind::ConnectionReset);
        assert!(
            short.detail.contains("8 of the 16 body bytes"),
            "{}",
            short.detail
        );

        let garbage = Failure::Malformed("Unsupported HTTP version".into());
        let e = failure(&garbage, "x");
        assert_eq!((e.kind, e.http_status), (ErrorKind::BadResponse, 502));
    }

    /// Errors from elsewhere are classified by their io kind.
    #[test]
    fn io_errors_map_to_kinds() {
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(
            surf_error(&surf(reset), "x").kind,
            ErrorKind::ConnectionReset
        );
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(
            surf_error(&surf(refused), "x").kind,
            ErrorKind::ConnectionRefused
        );
    }

    /// A's non-2xx answer keeps A's status, says when A's faults caused it,
    /// and A's 4xx to a caller's own header is not held against A.
    #[test]
    fn statuses_keep_a_status() {
        let e = status(
            StatusCode::ImATeapot,
            true,
            br#"{"error":"injected failure"}"#,
        );
        assert_eq!((e.kind, e.http_status), (ErrorKind::UpstreamStatus, 418));
        assert!(
            e.detail
                .starts_with("A answered 418 I'm a teapot (injected by A)"),
            "{}",
            e.detail
        );
        assert!(e.against_a, "an injected failure counts against A");
        let refused = status(StatusCode::BadRequest, false, b"{}");
        assert!(
            !refused.against_a,
            "A's 400 to a caller's header is not A's failure"
        );
    }

    /// Only `{"echo": string}` is an echo.
    #[test]
    fn echo_bodies() {
        assert_eq!(echo_body(br#"{"echo":"x"}"#).unwrap(), "x");
        for bad in [&b"{}"[..], b"[]", b"<html>", br#"{"echo":1}"#] {
            assert_eq!(echo_body(bad).unwrap_err().kind, ErrorKind::BadResponse);
        }
    }
}
