//! Reading a request head: bounded while the bytes arrive, strict about framing.
//!
//! async-h1's server `decode` reads lines without a bound, drops what it read
//! ahead, rejects HTTP/1.0 and takes the path from `Host` (issue #11 lists what
//! that let a client do). So heads are parsed here with `httparse`, from the
//! connection's own buffer, and every rule of RFC 9112 that a client could use
//! against us is checked before a handler sees the request:
//!
//! - the head (request line and fields) is at most [`MAX_HEAD_BYTES`] and
//!   [`MAX_HEADERS`] fields: past that, 414 (the line) or 431 (the fields);
//! - every line ends in CRLF: a bare LF is a 400 at once, not a wait;
//! - one framing: `Content-Length` (digits only, all values equal) or
//!   `Transfer-Encoding: chunked`, never both (400); any other coding is a 501;
//! - HTTP/1.1 carries exactly one `Host`, a plain `host[:port]` (400
//!   otherwise); the path comes from the request target alone.
//!
//! [`parse`] is pure: bytes in, a [`Head`] or a refusal out. The connection
//! loop (`connection.rs`) calls it each time more bytes arrive.

use std::mem::MaybeUninit;

use http_types::headers::{HeaderName, HeaderValue};
use http_types::{Method, Request, StatusCode, Url};

use crate::http::ApiError;

/// The longest request head read (request line and fields, CRLFs included):
/// nginx's `large_client_header_buffers` and async-h1's own limit. A head is
/// read into a buffer of exactly this size, so no client can make a
/// connection hold more while it sends one.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;

/// The most header fields in one head (Envoy's default is 100, hyper's 100).
pub const MAX_HEADERS: usize = 128;

/// The largest request body accepted, as nginx's `client_max_body_size`: a
/// body is skipped, never kept, except by A as a proxy, which passes at most
/// this much on.
pub const MAX_BODY_BYTES: u64 = 1024 * 1024;

/// How the request's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed head, ready for a handler.
#[derive(Debug)]
pub struct Head {
    /// The request, with an empty body (the loop skips the body itself).
    pub request: Request,
    /// How its body is delimited.
    pub framing: Framing,
    /// Whether the connection stays open after the answer: HTTP/1.1 unless
    /// `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`.
    pub keep_alive: bool,
    /// HTTP/1.0: the answer must say `Connection: keep-alive` to keep it open.
    pub http10: bool,
    /// `Expect: 100-continue`: the client waits for a `100 Continue` before its body.
    pub expect_continue: bool,
    /// Bytes of the buffer the head took.
    pub len: usize,
}

/// A head the service will not serve: the answer to send, then close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The status and the message for the client.
    pub error: ApiError,
    /// The request target, when the request line could be read (for the log line).
    pub target: Option<String>,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            error: ApiError {
                status,
                message: message.into().into(),
            },
            target: None,
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BadRequest, message)
    }

    /// Names the request's path (not its query) for the log line.
    fn on(mut self, target: &str) -> Self {
        let path = target.split('?').next().unwrap_or(target);
        self.target = Some(path.chars().take(256).collect());
        self
    }
}

/// Parses the head at the start of `buf`.
///
/// `Ok(None)`: not complete yet, read more (`buf` is then shorter than
/// [`MAX_HEAD_BYTES`]). A full buffer without a complete head is refused.
pub fn parse(buf: &[u8]) -> Result<Option<Head>, Refusal> {
    // Uninitialised: filling 128 empty fields would cost a 4 KiB write per request.
    let mut fields = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut fields) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            check_line_endings(buf)?;
            if buf.len() < MAX_HEAD_BYTES {
                return Ok(None);
            }
            return Err(if buf.contains(&b'\n') {
                Refusal::new(
                    StatusCode::RequestHeaderFieldsTooLarge,
                    format!("request header fields are over {MAX_HEAD_BYTES} bytes"),
                )
            } else {
                Refusal::new(
                    StatusCode::UriTooLong,
                    format!("request line is over {MAX_HEAD_BYTES} bytes"),
                )
            });
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal::new(
                StatusCode::RequestHeaderFieldsTooLarge,
                format!("more than {MAX_HEADERS} header fields"),
            ))
        }
        Err(httparse::Error::Version) if unsupported_version(buf) => {
            return Err(Refusal::new(
                StatusCode::HttpVersionNotSupported,
                "only HTTP/1.0 and HTTP/1.1 are served",
            ))
        }
        Err(e) => {
            check_line_endings(buf)?;
            return Err(Refusal::bad(format!("malformed request head ({e})")));
        }
    };
    check_line_endings(&buf[..len])?;

    // httparse sets all three on a complete head.
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(Refusal::bad("malformed request line"));
    };
    // Methods are case-sensitive (RFC 9110 §9.1): `get` is not GET.
    let registered = method.bytes().all(|b| !b.is_ascii_lowercase());
    let method: Method = method
        .parse()
        .ok()
        .filter(|_| registered)
        .ok_or(())
        .map_err(|_| {
            Refusal::new(
                StatusCode::NotImplemented,
                format!("method {method:?} is not implemented"),
            )
            .on(target)
        })?;
    let http10 = version == 0;

    let mut fields = Fields::default();
    for field in req.headers.iter() {
        fields
            .see(field.name, field.value)
            .map_err(|r| r.on(target))?;
    }
    let framing = fields.framing(http10).map_err(|r| r.on(target))?;
    let url =
        url(target, fields.host.as_deref(), fields.hosts, http10).map_err(|r| r.on(target))?;

    let mut request = Request::new(method, url);
    for field in req.headers.iter() {
        let name = HeaderName::from_string(field.name.to_owned());
        let value = HeaderValue::from_bytes(field.value.to_vec());
        let (Ok(name), Ok(value)) = (name, value) else {
            return Err(Refusal::bad(format!(
                "header {:?} has bytes that are not ASCII",
                field.name
            ))
            .on(target));
        };
        request.append_header(name, value);
    }
    let keep_alive = if http10 {
        fields.keep_alive
    } else {
        !fields.close
    };
    Ok(Some(Head {
        request,
        framing,
        keep_alive,
        http10,
        expect_continue: fields.expect_continue,
        len,
    }))
}

/// Every LF must follow a CR (RFC 9112 §2.2: a server may accept a bare LF,
/// but a proxy in front of it may not see the same request boundaries).
fn check_line_endings(head: &[u8]) -> Result<(), Refusal> {
    let bare = head
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r'));
    if bare {
        Err(Refusal::bad("line ends in a bare LF; HTTP needs CRLF"))
    } else {
        Ok(())
    }
}

/// A request line that names a version we do not speak (`HTTP/2.0`,
/// `HTTP/1.2`), as opposed to one that is not a request line at all.
fn unsupported_version(buf: &[u8]) -> bool {
    let line = buf.split(|&b| b == b'\n').next().unwrap_or(buf);
    line.split(|&b| b == b' ')
        .nth(2)
        .is_some_and(|v| v.starts_with(b"HTTP/"))
}

/// What the loop needs to know from the header fields.
#[derive(Debug, Default)]
struct Fields {
    host: Option<String>,
    hosts: usize,
    length: Option<u64>,
    chunked: Option<bool>,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
}

impl Fields {
    fn see(&mut self, name: &str, value: &[u8]) -> Result<(), Refusal> {
        let text = || String::from_utf8_lossy(value);
        if name.eq_ignore_ascii_case("host") {
            self.hosts += 1;
            self.host = Some(text().trim().to_owned());
        } else if name.eq_ignore_ascii_case("content-length") {
            // `Content-Length: 5, 5` is one length; `5, 6`, `+5` or `abc` is none.
            for item in value.split(|&b| b == b',') {
                let item = item.trim_ascii();
                let n = std::str::from_utf8(item)
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| {
                        Refusal::bad(format!("Content-Length {:?} is not a number", text()))
                    })?;
                if self.length.is_some_and(|seen| seen != n) {
                    return Err(Refusal::bad("Content-Length values differ"));
                }
                self.length = Some(n);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Only `chunked`, alone: any other coding is one we cannot undo.
            let only_chunked = value.trim_ascii().eq_ignore_ascii_case(b"chunked");
            if !only_chunked || self.chunked.is_some() {
                return Err(Refusal::new(
                    StatusCode::NotImplemented,
                    format!(
                        "Transfer-Encoding {:?} is not implemented; only \"chunked\"",
                        text()
                    ),
                ));
            }
            self.chunked = Some(true);
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                self.close |= token.eq_ignore_ascii_case(b"close");
                self.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("expect") {
            self.expect_continue = value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        }
        Ok(())
    }

    fn framing(&self, http10: bool) -> Result<Framing, Refusal> {
        match (self.length, self.chunked.is_some()) {
            (Some(_), true) => Err(Refusal::bad(
                "both Content-Length and Transfer-Encoding: the body's end is ambiguous",
            )),
            (None, true) if http10 => Err(Refusal::bad("Transfer-Encoding in an HTTP/1.0 request")),
            (None, true) => Ok(Framing::Chunked),
            (Some(n), false) if n > MAX_BODY_BYTES => Err(Refusal::new(
                StatusCode::PayloadTooLarge,
                format!("request body of {n} bytes is over {MAX_BODY_BYTES}"),
            )),
            (Some(0) | None, false) => Ok(Framing::Empty),
            (Some(n), false) => Ok(Framing::Length(n)),
        }
    }
}

/// The request's URL, from its target alone: origin-form (`/echo?msg=x`) with
/// the validated Host, or absolute-form (`http://host/echo?msg=x`).
fn url(target: &str, host: Option<&str>, hosts: usize, http10: bool) -> Result<Url, Refusal> {
    let host = match host {
        Some(_) if hosts > 1 => return Err(Refusal::bad("more than one Host header")),
        Some(h) if valid_authority(h) => h,
        Some(h) => {
            return Err(Refusal::bad(format!(
                "Host {h:?} is not a valid host[:port]"
            )))
        }
        None if http10 => "localhost",
        None => return Err(Refusal::bad("HTTP/1.1 request without a Host header")),
    };
    let host = if host.is_empty() { "localhost" } else { host };
    let parsed = if target.starts_with('/') {
        let mut text = String::with_capacity(7 + host.len() + target.len());
        text.push_str("http://");
        text.push_str(host);
        text.push_str(target);
        Url::parse(&text)
    } else if starts_with_ignore_case(target, "http://")
        || starts_with_ignore_case(target, "https://")
    {
        let url = Url::parse(target);
        if url
            .as_ref()
            .is_ok_and(|u| !u.username().is_empty() || u.password().is_some())
        {
            return Err(Refusal::bad("request target carries userinfo (user@host)"));
        }
        url
    } else {
        return Err(Refusal::bad(format!(
            "request target {target:?} is neither a path nor an http URL"
        )));
    };
    parsed.map_err(|e| Refusal::bad(format!("request target is not a valid URL ({e})")))
}

/// Whether `text` starts with ASCII `prefix`, in any case (compared as bytes:
/// a target may hold UTF-8 that a `str` slice could cut in the middle of).
fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.as_bytes()
        .get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// `host[:port]`: a name, an IPv4 address or a bracketed IPv6 address, and
/// digits after a colon. Nothing that could start a path, query or userinfo.
fn valid_authority(value: &str) -> bool {
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => ("v6", None),
            _ => match after.strip_prefix(':') {
                Some(port) => ("v6", Some(port)),
                None => return false,
            },
        }
    } else {
        match value.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (value, None),
        }
    };
    let host_ok = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    let port_ok = port.is_none_or(|p| p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(head: &str) -> u16 {
        parse(head.as_bytes()).unwrap_err().error.status.into()
    }

    /// A complete head gives the request, its framing and its connection rules.
    #[test]
    fn parses_a_plain_get() {
        let head = parse(b"GET /echo?msg=hi HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\nNEXT")
            .unwrap()
            .unwrap();
        assert_eq!(head.request.url().path(), "/echo");
        assert_eq!(head.request.url().query(), Some("msg=hi"));
        assert_eq!(head.framing, Framing::Empty);
        assert!(head.keep_alive);
        assert_eq!(head.len, 51);
    }

    /// Half a head asks for more bytes.
    #[test]
    fn partial_heads_wait() {
        assert!(parse(b"GET /echo HTTP/1.1\r\nHost: a\r\n")
            .unwrap()
            .is_none());
        assert!(parse(b"GET /ec").unwrap().is_none());
    }

    /// A full buffer without a complete head: 414 for the line, 431 for the fields.
    #[test]
    fn full_buffers_are_refused() {
        let line = format!("GET /{}", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(refused(&line[..MAX_HEAD_BYTES]), 414);
        let fields = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(refused(&fields[..MAX_HEAD_BYTES]), 431);
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "X-A: 1\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(refused(&many), 431);
    }

    /// Each framing rule of RFC 9112 §6, and the statuses nginx gives.
    #[test]
    fn framing_is_strict() {
        let with = |field: &str| format!("POST /echo HTTP/1.1\r\nHost: a\r\n{field}\r\n\r\n");
        assert_eq!(
            refused(&with("Content-Length: 5\r\nContent-Length: 6")),
            400
        );
        assert_eq!(refused(&with("Content-Length: +5")), 400);
        assert_eq!(refused(&with("Content-Length: abc")), 400);
        assert_eq!(refused(&with("Transfer-Encoding: gzip, chunked")), 501);
        assert_eq!(refused(&with("Transfer-Encoding: chunked, identity")), 501);
        assert_eq!(
            refused(&with("Content-Length: 5\r\nTransfer-Encoding: chunked")),
            400
        );
        assert_eq!(refused(&with("Content-Length: 2000000")), 413);
        let same = parse(with("Content-Length: 5, 5").as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(same.framing, Framing::Length(5));
        let chunked = parse(with("Transfer-Encoding: Chunked").as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(chunked.framing, Framing::Chunked);
    }

    /// Malformed heads are a 400 at once, and other versions a 505.
    #[test]
    fn malformed_heads_are_refused() {
        assert_eq!(refused("GARBAGE\r\n\r\n"), 400);
        assert_eq!(refused("GET /health HTTP/1.1\nHost: a\n\n"), 400);
        assert_eq!(refused("GET /health HTTP/1.1\r\nHost: a\n"), 400);
        assert_eq!(
            refused("GET /health HTTP/1.1\r\nX: a\r\n  folded\r\nHost: a\r\n\r\n"),
            400
        );
        assert_eq!(refused("GET /health HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(refused("GET /health HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
        assert_eq!(refused("GET /health HTTP/1.2\r\nHost: a\r\n\r\n"), 505);
        assert_eq!(refused("FOO /health HTTP/1.1\r\nHost: a\r\n\r\n"), 501);
        assert_eq!(refused("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(refused("get /health HTTP/1.1\r\nHost: a\r\n\r\n"), 501);
        assert_eq!(
            refused("GET http://u:p@a/health HTTP/1.1\r\nHost: a\r\n\r\n"),
            400
        );
        // A target whose 7th byte is inside a UTF-8 character: a 400, not a panic.
        assert_eq!(
            refused("GET abcdef\u{e9}x HTTP/1.1\r\nHost: a\r\n\r\n"),
            400
        );
        assert_eq!(
            refused("GET abcdefg\u{e9}x HTTP/1.1\r\nHost: a\r\n\r\n"),
            400
        );
    }

    /// Host never changes the path; a Host that is not host[:port] is a 400.
    #[test]
    fn host_is_checked_and_never_routes() {
        assert_eq!(
            refused("GET /health HTTP/1.1\r\nHost: x/echo?msg=pwned&\r\n\r\n"),
            400
        );
        assert_eq!(refused("GET /health HTTP/1.1\r\nHost: u@x\r\n\r\n"), 400);
        assert_eq!(
            refused("GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            400
        );
        for host in ["a", "127.0.0.1:8080", "[::1]:8081", "my-host.example", ""] {
            let head = format!("GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n");
            let parsed = parse(head.as_bytes()).unwrap().unwrap();
            assert_eq!(parsed.request.url().path(), "/health", "{host}");
        }
        let absolute = parse(b"GET http://a:1/echo?msg=x HTTP/1.1\r\nHost: a:1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(absolute.request.url().path(), "/echo");
    }

    /// HTTP/1.0 needs no Host, and keeps the connection only when asked to.
    #[test]
    fn http10_rules() {
        let plain = parse(b"GET /health HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(plain.http10 && !plain.keep_alive);
        let kept = parse(b"GET /health HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(kept.keep_alive);
        let closed = parse(b"GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!closed.keep_alive);
    }
}
