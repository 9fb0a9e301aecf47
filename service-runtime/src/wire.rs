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

/// Caller to A (through B): fail this request with this status, 400..=599.
pub const FAULT_STATUS: &str = "x-fault-status";

/// Caller to A (through B): `1` closes the connection without an answer.
pub const FAULT_DROP: &str = "x-fault-drop";

/// A to its caller: the faults that touched this answer (`delay`, `fail`, ...,
/// comma-separated), so a client tells an injected failure from a real one.
pub const FAULT_INJECTED: &str = "x-fault-injected";

/// The status logged when the client closed before its answer (nginx's 499):
/// never sent, since nobody is there to read it.
pub const CLIENT_CLOSED: u16 = 499;
