//! The messages a proxy rewrites: the client's request as it goes upstream
//! (hop-by-hop and `x-fault-*` fields left behind, `Host` the upstream's, the
//! body framed by length), and the upstream's answer as A's base answer (its
//! exact status and end-to-end fields). Pure: bytes and values in and out.

use http_types::headers::{HeaderName, HeaderValue};
use http_types::{Method, Request, Response, StatusCode};
use service_runtime::answer::{push_field, start_request, Answer};
use service_runtime::wire::FAULT_PREFIX;

use super::error::UpstreamError;
use crate::fault::apply::Base;

/// Whether a field is hop-by-hop (RFC 9110 §7.6.1), framing A redoes, or
/// `Expect` (answered by A already): never passed on in either direction.
fn hop_by_hop(name: &str) -> bool {
    const FIELDS: [&str; 10] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
        "expect",
    ];
    FIELDS.iter().any(|f| name.eq_ignore_ascii_case(f))
}

/// The fields a `Connection` header names: hop-by-hop too.
fn named_by_connection(connection: Option<&str>, name: &str) -> bool {
    connection.is_some_and(|c| {
        c.split(',')
            .any(|token| token.trim().eq_ignore_ascii_case(name))
    })
}

/// The request head as it goes upstream.
pub(super) fn encode_head(req: &Request, authority: &str, body_len: usize) -> Vec<u8> {
    let url = req.url();
    let mut out = Vec::with_capacity(512);
    start_request(
        &mut out,
        req.method().as_ref(),
        url.path(),
        url.query(),
        authority,
    );
    let connection = req.header("connection").map(|v| v.as_str());
    for (name, values) in req.iter() {
        let name = name.as_str();
        if hop_by_hop(name)
            || name.starts_with(FAULT_PREFIX)
            || named_by_connection(connection, name)
        {
            continue;
        }
        for value in values.iter() {
            push_field(&mut out, name, value.as_str());
        }
    }
    let has_body =
        body_len > 0 || matches!(req.method(), Method::Post | Method::Put | Method::Patch);
    if has_body {
        out.extend_from_slice(format!("content-length: {body_len}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The upstream's answer as A's base answer: its exact status, its
/// end-to-end fields, its body.
pub(super) fn into_base(answer: Answer) -> Result<Base, UpstreamError> {
    let Answer { head, body, .. } = answer;
    let code = head.status.code;
    if code == 101 {
        return Err(UpstreamError {
            kind: "bad_response",
            detail: "the upstream switched protocols (101): A proxies HTTP/1.x requests only"
                .to_owned(),
        });
    }
    let named = StatusCode::try_from(code)
        .ok()
        .filter(|_| code >= 200)
        .unwrap_or(StatusCode::InternalServerError);
    let mut res = Response::new(named);
    let connection = head
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
        .map(str::to_owned);
    for (name, value) in head.headers {
        if hop_by_hop(&name) || named_by_connection(connection.as_deref(), &name) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_string(name),
            HeaderValue::from_bytes(value),
        ) {
            res.append_header(name, value);
        }
    }
    res.set_body(body);
    Ok(Base { res, code })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hop-by-hop fields, those `Connection` names, and `x-fault-*` stay behind.
    #[test]
    fn hop_by_hop_fields_stay_behind() {
        let mut req = Request::post("http://a:1/orders/7?x=1&y=%20");
        req.insert_header("connection", "keep-alive, x-private");
        req.insert_header("x-private", "1");
        req.insert_header("keep-alive", "timeout=5");
        req.insert_header("te", "trailers");
        req.insert_header("upgrade", "h2c");
        req.insert_header("x-fault-status", "503");
        req.insert_header("expect", "100-continue");
        req.insert_header("x-end-to-end", "kept");
        let head = String::from_utf8(encode_head(&req, "127.0.0.1:9", 3)).unwrap();
        assert!(
            head.starts_with("POST /orders/7?x=1&y=%20 HTTP/1.1\r\nhost: 127.0.0.1:9\r\n"),
            "{head}"
        );
        for gone in [
            "connection",
            "x-private",
            "keep-alive",
            "te:",
            "upgrade",
            "x-fault",
            "expect",
        ] {
            assert!(!head.contains(gone), "{gone} in {head}");
        }
        assert!(head.contains("x-end-to-end: kept\r\n"), "{head}");
        assert!(head.ends_with("content-length: 3\r\n\r\n"), "{head}");
        // A GET without a body announces none.
        let get = String::from_utf8(encode_head(&Request::get("http://a/"), "h:1", 0)).unwrap();
        assert!(!get.contains("content-length"), "{get}");
    }
}
