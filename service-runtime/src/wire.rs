//! Every header and status that crosses the wire between a caller, B and A,
//! named once: A and B both use these, so the two sides cannot drift apart.

/// W3C trace context, from callers to B and from B to A: one call, one trace id.
pub const TRACEPARENT: &str = "traceparent";

/// B to A: the milliseconds B will still wait for this answer. A stops an
/// injected delay that would outlive it, and logs the request as abandoned.
pub const REQUEST_TIMEOUT_MS: &str = "x-request-timeout-ms";

/// Every per-request fault header starts so; B forwards them to A untouched.
pub const FAULT_PREFIX: &str = "x-fault-";

/// Caller to A (through B): delay this request by so many milliseconds.
pub const FAULT_DELAY_MS: &str = "x-fault-delay-ms";

/// Caller to A (through B): fail this request with this status, 100..=599,
/// or with one drawn from weights: `503:3,500:1`.
pub const FAULT_STATUS: &str = "x-fault-status";

/// Caller to A (through B): `1` closes the connection without an answer.
pub const FAULT_DROP: &str = "x-fault-drop";

/// Caller to A (through B): `1` resets the connection (RST) without an answer.
pub const FAULT_RESET: &str = "x-fault-reset";

/// Caller to A (through B): `1` answers bytes that are not HTTP, then closes.
pub const FAULT_GARBAGE: &str = "x-fault-garbage";

/// Caller to A (through B): `1` answers 200 with a body that is not the echo's JSON.
pub const FAULT_BAD_BODY: &str = "x-fault-bad-body";

/// Caller to A (through B): `1` sends half the announced body, then closes.
pub const FAULT_TRUNCATE: &str = "x-fault-truncate";

/// Caller to A (through B): send the head at once, then stall the body so many ms.
pub const FAULT_BODY_DELAY_MS: &str = "x-fault-body-delay-ms";

/// Caller to A (through B): send the body at so many bytes per second.
pub const FAULT_BODY_BYTES_PER_S: &str = "x-fault-body-bytes-per-s";

/// Caller to A (through B): a lognormal delay with this median (ms)...
pub const FAULT_DELAY_P50_MS: &str = "x-fault-delay-p50-ms";

/// ...and this 99th percentile (ms).
pub const FAULT_DELAY_P99_MS: &str = "x-fault-delay-p99-ms";

/// Caller to A (through B): with a 429 or 503, `Retry-After` of so many seconds.
pub const FAULT_RETRY_AFTER_S: &str = "x-fault-retry-after-s";

/// Every per-request fault header A honours, in the order the README's
/// table gives them. The lab checks an experiment's `headers` against this
/// list; a test in service-a checks it against what A's parser reads.
pub const FAULT_HEADERS: [&str; 12] = [
    FAULT_DELAY_MS,
    FAULT_DELAY_P50_MS,
    FAULT_DELAY_P99_MS,
    FAULT_STATUS,
    FAULT_RETRY_AFTER_S,
    FAULT_RESET,
    FAULT_DROP,
    FAULT_GARBAGE,
    FAULT_TRUNCATE,
    FAULT_BAD_BODY,
    FAULT_BODY_DELAY_MS,
    FAULT_BODY_BYTES_PER_S,
];

/// A to its caller: the faults that touched this answer (`delay`, `fail`,
/// `body_delay`, ..., comma-separated), so a client tells an injected failure
/// from a real one.
pub const FAULT_INJECTED: &str = "x-fault-injected";

/// The status logged when the client closed before its answer (nginx's 499):
/// never sent, since nobody is there to read it.
pub const CLIENT_CLOSED: u16 = 499;

#[cfg(test)]
mod tests {
    use super::*;

    /// Every fault header starts with [`FAULT_PREFIX`] (B forwards headers
    /// to A by that prefix alone: one without it would never reach A), is
    /// lowercase as HTTP/2 and the README write it, and is listed once.
    #[test]
    fn fault_headers_are_forwarded_by_their_prefix() {
        for (i, name) in FAULT_HEADERS.iter().enumerate() {
            assert!(name.starts_with(FAULT_PREFIX), "{name}");
            assert_eq!(*name, name.to_ascii_lowercase());
            assert!(!FAULT_HEADERS[..i].contains(name), "{name} listed twice");
        }
        assert!(
            !FAULT_HEADERS.contains(&FAULT_INJECTED),
            "an answer's header, not a request's"
        );
    }
}
