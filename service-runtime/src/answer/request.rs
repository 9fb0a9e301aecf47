//! The request half of an exchange with an upstream: its head written as
//! bytes, the request line, `Host` and one field at a time. B's pool and A's
//! proxy both write their requests with it, so the two cannot drift.

/// Starts the head of a request to an upstream, the half of the exchange
/// before the answer read here: the request line (`path` and `query` as the
/// caller's URL has them, already percent-encoded) and `Host`. The caller adds
/// its fields with [`push_field`], then the blank line.
pub fn start_request(
    out: &mut Vec<u8>,
    method: &str,
    path: &str,
    query: Option<&str>,
    authority: &str,
) {
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    if let Some(query) = query {
        out.push(b'?');
        out.extend_from_slice(query.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(authority.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// One `name: value` field line of a request head.
pub fn push_field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}
