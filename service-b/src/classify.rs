//! Which KIND a failed call is: socket facts and A's answers in, a
//! [`CallError`] out. Every rule of the contract's KIND table is here, and the
//! list of io errors that mean "A closed early" is written once.
//!
//! Errors are read by `io::ErrorKind` and, where std has no kind for them,
//! by rustix's portable `Errno` (which names the same error `EMFILE` on
//! Linux and macOS and `WSAEMFILE` on Windows), never by raw numbers.
//! Two more rules sit on top of the table: a failure seen at or after the
//! deadline is a `timeout` ([`at_deadline`]), and a failure the caller asked
//! for with its own `x-fault-*` headers is not held against A
//! ([`asked_by_caller`]).

use std::io;

use http_types::StatusCode;
use serde::Deserialize;
use service_runtime::answer::{closed_early, cut, Failure};
use service_runtime::wire;

use crate::kind::{CallError, Kind};

/// The most bytes of A's error body quoted in a detail: enough for A's own
/// `{"error":"injected failure","status":420}` and a line of an HTML page.
const MAX_BODY_QUOTED_BYTES: usize = 200;

/// B's own limits, not A's fault: out of file descriptors (per process or
/// system-wide), of buffers, or of local ports to connect from.
fn out_of_resources(e: &io::Error) -> bool {
    use rustix::io::Errno;
    // Windows has no ENFILE: WSAEMFILE stands for both there.
    #[cfg(not(windows))]
    const OUT_OF: [Errno; 4] = [
        Errno::MFILE,
        Errno::NFILE,
        Errno::NOBUFS,
        Errno::ADDRNOTAVAIL,
    ];
    #[cfg(windows)]
    const OUT_OF: [Errno; 3] = [Errno::MFILE, Errno::NOBUFS, Errno::ADDRNOTAVAIL];
    e.kind() == io::ErrorKind::OutOfMemory
        || e.kind() == io::ErrorKind::AddrNotAvailable
        || Errno::from_io_error(e).is_some_and(|errno| OUT_OF.contains(&errno))
}

/// Who B calls, as the decoder's facts are told in B's messages.
const PEER: &str = "A";

/// The KIND of a failure the pool reported for A at `authority`.
pub fn failure(failure: &Failure, authority: &str) -> CallError {
    match failure {
        Failure::Connect(e) if e.kind() == io::ErrorKind::ConnectionRefused => CallError::new(
            Kind::ConnectionRefused,
            format!("nothing listens at {authority} (connection refused)"),
        ),
        Failure::Connect(e) if out_of_resources(e) => CallError::new(
            Kind::BOverloaded,
            format!(
                "B cannot open a connection to {authority}: B itself is out of resources ({e}); \
                 A was not called"
            ),
        ),
        Failure::Connect(e) => {
            CallError::new(Kind::Unreachable, format!("cannot reach {authority}: {e}"))
        }
        Failure::Closed(how) => CallError::new(Kind::ConnectionReset, how.describe(PEER)),
        Failure::Read(_) => CallError::new(Kind::ConnectionReset, failure.describe(PEER)),
        Failure::Malformed(_) => CallError::new(Kind::BadResponse, failure.describe(PEER)),
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
                io::ErrorKind::ConnectionRefused => Kind::ConnectionRefused,
                kind if closed_early(kind).is_some() => Kind::ConnectionReset,
                io::ErrorKind::TimedOut => Kind::Timeout,
                _ => Kind::Unreachable,
            };
            return CallError::new(kind, format!("calling {authority}: {io}"));
        }
        source = e.source();
    }
    CallError::new(Kind::BadResponse, format!("calling {authority}: {err}"))
}

/// `upstream_status` for A's non-2xx answer `code` (any of 100..=599) with
/// the reason phrase A sent, quoting the start of its body (if any), cut to
/// [`MAX_BODY_QUOTED_BYTES`] and marked when cut.
/// `injected`: A marked the answer as its own fault (`x-fault-injected`).
pub fn status(code: u16, reason: &str, injected: bool, body: &[u8]) -> CallError {
    let text = String::from_utf8_lossy(body);
    let snippet = cut(&text, MAX_BODY_QUOTED_BYTES);
    let origin = if injected { " (injected by A)" } else { "" };
    // A's own words when it sent some; else the standard name, if any.
    let reason = match reason.trim() {
        "" => StatusCode::try_from(code).map_or("", |s| s.canonical_reason()),
        said => said,
    };
    let interim = if (100..=199).contains(&code) {
        " (an interim answer, and no final one)"
    } else {
        ""
    };
    let said = if snippet.is_empty() {
        String::new()
    } else {
        format!(": {snippet}")
    };
    let err = CallError::new(
        Kind::UpstreamStatus,
        format!("A answered {code} {reason}{origin}{interim}{said}"),
    )
    .with_status(code);
    if (400..=499).contains(&code) && !injected {
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
                Kind::BadResponse,
                format!("A's answer is not the expected {{\"echo\": string}}: {e}"),
            )
        })
}

/// The `timeout` of a call that had `budget_ms` in all.
pub fn timeout(budget_ms: u128) -> CallError {
    CallError::new(
        Kind::Timeout,
        format!("no complete answer from A within {budget_ms} ms"),
    )
}

/// A failure seen at or after the deadline is a `timeout`: whatever A did
/// then (closed, reset, answered garbage), B had already stopped waiting, and
/// which of the two events B processed first is an accident of scheduling
/// (under CPU starvation A's close and B's timer land in the same wakeup).
/// The detail still says what came at the deadline.
pub fn at_deadline(err: CallError, budget_ms: u128) -> CallError {
    if err.kind == Kind::Timeout {
        return err;
    }
    let mut late = timeout(budget_ms);
    late.detail = format!(
        "{} ({} at the deadline: {})",
        late.detail,
        err.kind.as_str(),
        err.detail
    );
    late.against_a = err.against_a;
    late
}

/// Which KINDs each per-request fault header can cause, by A's design.
const CALLER_FAULTS: &[(&str, &[Kind])] = &[
    (wire::FAULT_DELAY_MS, &[Kind::Timeout]),
    (wire::FAULT_DELAY_P50_MS, &[Kind::Timeout]),
    (wire::FAULT_BODY_DELAY_MS, &[Kind::Timeout]),
    (wire::FAULT_BODY_BYTES_PER_S, &[Kind::Timeout]),
    (wire::FAULT_STATUS, &[Kind::UpstreamStatus]),
    (wire::FAULT_DROP, &[Kind::ConnectionReset]),
    (wire::FAULT_RESET, &[Kind::ConnectionReset]),
    (wire::FAULT_TRUNCATE, &[Kind::ConnectionReset]),
    (wire::FAULT_GARBAGE, &[Kind::BadResponse]),
    (wire::FAULT_BAD_BODY, &[Kind::BadResponse]),
];

/// Whether the caller asked for this failure with one of its `x-fault-*`
/// headers (`faults`, as forwarded to A): a header that can cause exactly
/// this KIND was sent. Such a failure says nothing about A's health, so it
/// counts neither for the breaker nor for the retry budget (as A's 4xx to a
/// caller's bad header, and as Envoy's fault-filter aborts never reach its
/// outlier detection). A refused or unreachable A is never the caller's doing.
pub fn asked_by_caller(faults: &[(String, String)], kind: Kind) -> bool {
    faults.iter().any(|(name, _)| {
        CALLER_FAULTS
            .iter()
            .any(|(header, kinds)| name.eq_ignore_ascii_case(header) && kinds.contains(&kind))
    })
}

/// The same failure, marked as the caller's own doing: not against A, and
/// said so in the detail.
pub fn caller_asked(mut err: CallError) -> CallError {
    err.detail
        .push_str(" (asked for by the caller: not held against A)");
    err.not_against_a()
}

#[cfg(test)]
mod tests {
    use super::*;
    use service_runtime::answer::Closed;

    fn surf(e: impl Into<anyhow::Error>) -> surf::Error {
        surf::Error::new(StatusCode::InternalServerError, e)
    }

    /// The pool's facts map onto the contract's KINDs and statuses.
    #[test]
    fn pool_failures_map_to_kinds() {
        let refused = Failure::Connect(io::ErrorKind::ConnectionRefused.into());
        let e = surf_error(&surf(refused), "127.0.0.1:1");
        assert_eq!((e.kind, e.http_status), (Kind::ConnectionRefused, 503));
        assert_eq!(
            e.detail,
            "nothing listens at 127.0.0.1:1 (connection refused)"
        );

        let no_route = Failure::Connect(io::Error::other("no route"));
        assert_eq!(failure(&no_route, "x").kind, Kind::Unreachable);

        let no_fds = Failure::Connect(rustix::io::Errno::MFILE.into());
        let e = failure(&no_fds, "x");
        assert_eq!(
            (e.kind, e.http_status, e.against_a),
            (Kind::BOverloaded, 503, false)
        );
        assert!(
            e.detail.contains("B itself is out of resources"),
            "{}",
            e.detail
        );

        let closed = Failure::Closed(Closed::Fin);
        let e = failure(&closed, "x");
        assert_eq!((e.kind, e.http_status), (Kind::ConnectionReset, 502));
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
        assert_eq!(short.kind, Kind::ConnectionReset);
        assert!(
            short.detail.contains("8 of the 16 body bytes"),
            "{}",
            short.detail
        );

        let garbage = Failure::Malformed("Unsupported HTTP version".into());
        let e = failure(&garbage, "x");
        assert_eq!((e.kind, e.http_status), (Kind::BadResponse, 502));
    }

    /// Errors from elsewhere are classified by their io kind.
    #[test]
    fn io_errors_map_to_kinds() {
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(surf_error(&surf(reset), "x").kind, Kind::ConnectionReset);
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(
            surf_error(&surf(refused), "x").kind,
            Kind::ConnectionRefused
        );
    }

    /// A's non-2xx answer keeps A's status, says when A's faults caused it,
    /// and A's 4xx to a caller's own header is not held against A.
    #[test]
    fn statuses_keep_a_status() {
        let e = status(418, "", true, br#"{"error":"injected failure"}"#);
        assert_eq!((e.kind, e.http_status), (Kind::UpstreamStatus, 418));
        assert!(
            e.detail
                .starts_with("A answered 418 I'm a teapot (injected by A)"),
            "{}",
            e.detail
        );
        assert!(e.against_a, "an injected failure counts against A");
        let refused = status(400, "Bad Request", false, b"{}");
        assert!(
            !refused.against_a,
            "A's 400 to a caller's header is not A's failure"
        );
    }

    /// Statuses http-types cannot name keep their code and A's reason.
    #[test]
    fn unnamed_statuses_keep_their_code() {
        let e = status(420, "Enhance Your Calm", false, b"");
        assert_eq!((e.kind, e.http_status), (Kind::UpstreamStatus, 420));
        assert!(
            e.detail.starts_with("A answered 420 Enhance Your Calm"),
            "{}",
            e.detail
        );
        let e = status(599, "", true, b"");
        assert_eq!(e.http_status, 599);
        let e = status(103, "Early Hints", false, b"");
        assert_eq!(
            e.detail,
            "A answered 103 Early Hints (an interim answer, and no final one)"
        );
    }

    /// Running out of descriptors, buffers or ports is B's own trouble on
    /// every platform, read through the portable errno names.
    #[test]
    fn out_of_resources_is_portable() {
        use rustix::io::Errno;
        for errno in [Errno::MFILE, Errno::NOBUFS, Errno::ADDRNOTAVAIL] {
            let e = failure(&Failure::Connect(errno.into()), "x");
            assert_eq!(e.kind, Kind::BOverloaded, "{errno:?}");
        }
        let e = failure(&Failure::Connect(Errno::NETUNREACH.into()), "x");
        assert_eq!(e.kind, Kind::Unreachable);
    }

    /// A failure at the deadline is a timeout that says what came then.
    #[test]
    fn failures_at_the_deadline_are_timeouts() {
        let reset = CallError::new(Kind::ConnectionReset, "A reset");
        let e = at_deadline(reset, 1000);
        assert_eq!((e.kind, e.http_status), (Kind::Timeout, 504));
        assert!(
            e.detail
                .contains("connection_reset at the deadline: A reset"),
            "{}",
            e.detail
        );
    }

    /// Only a header that can cause the KIND makes a failure the caller's.
    #[test]
    fn caller_asked_failures() {
        let faults = vec![("x-fault-reset".to_owned(), "1".to_owned())];
        assert!(asked_by_caller(&faults, Kind::ConnectionReset));
        assert!(!asked_by_caller(&faults, Kind::ConnectionRefused));
        assert!(!asked_by_caller(&faults, Kind::Timeout));
        assert!(!asked_by_caller(&[], Kind::ConnectionReset));
        let e = caller_asked(CallError::new(Kind::ConnectionReset, "reset"));
        assert!(!e.against_a);
    }

    /// Only `{"echo": string}` is an echo.
    #[test]
    fn echo_bodies() {
        assert_eq!(echo_body(br#"{"echo":"x"}"#).unwrap(), "x");
        for bad in [&b"{}"[..], b"[]", b"<html>", br#"{"echo":1}"#] {
            assert_eq!(echo_body(bad).unwrap_err().kind, Kind::BadResponse);
        }
    }
}
