//! Checks of the HTTP edge that both services share (they run one server):
//! raw bytes sent and the answer read to the close, the refusal contract, HTTP/1.0's rules.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::http::{get, is_close, parse, parse_all, Conn, Reply};
use crate::{field, Proc};

/// The first 200 bytes of a request, for messages.
pub fn shorten(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned()
}

/// Sends `bytes` on a fresh connection and reads until the server closes (at
/// most `patience`); returns the answer and how long it took. The server may
/// close before it read everything: that is allowed.
pub fn send_until_close(p: &Proc, bytes: &[u8], patience: Duration) -> (Reply, Duration) {
    let mut conn = Conn::open(p.authority());
    let started = Instant::now();
    if let Err(e) = conn.stream().write_all(bytes) {
        assert!(is_close(&e), "write: {e}");
    }
    let closing = conn.read_to_close(patience);
    assert!(
        closing.closed,
        "{:?}: not closed within {patience:?}; read {:?}",
        shorten(bytes),
        closing.text()
    );
    assert!(
        closing.bytes.starts_with(b"HTTP/1.1 "),
        "{:?}: no answer before the close: {:?}",
        shorten(bytes),
        closing.text()
    );
    (parse(&closing.bytes, started.elapsed()), started.elapsed())
}

/// `status` with a JSON `{"error": ...}`, its type and its length.
pub fn assert_json_error(reply: &Reply, status: u16) {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "{reply:?}"
    );
    assert_eq!(
        reply.header("content-length"),
        Some(reply.body.len().to_string().as_str()),
        "{reply:?}"
    );
    assert!(!reply.str("error").is_empty(), "{reply:?}");
}

/// The refusal contract: the JSON error; one log line with `status=error
/// http_status=NNN` and `error=` (after line `from`); a count in `/metrics`.
pub fn assert_refusal(p: &Proc, from: usize, reply: &Reply, status: u16) {
    assert_json_error(reply, status);
    let line = p.wait_line_after(from, &[&format!("status=error http_status={status}")]);
    assert!(field(&line, "error").is_some(), "{line}");
    assert_counted(&p.url, status);
    // The /metrics request's own line proves every earlier line is written.
    p.wait_line_after(from, &["endpoint=/metrics"]);
    let logged = p.lines()[from..]
        .iter()
        .filter(|l| l.contains(&format!("http_status={status}")))
        .count();
    assert_eq!(logged, 1, "{:#?}", &p.lines()[from..]);
}

/// `/metrics` has an `http_requests_total` sample with `code="NNN"` and value >= 1.
pub fn assert_counted(url: &str, status: u16) {
    let text = get(&format!("{url}/metrics")).body;
    let code = format!("code=\"{status}\"");
    let counted = text
        .lines()
        .filter(|l| l.starts_with("http_requests_total{") && l.contains(&code))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .any(|v| v >= 1.0);
    assert!(counted, "no http_requests_total with {code} in:\n{text}");
}

/// Sends `bytes` and checks the whole refusal contract, answered within
/// `patience`; returns how long the answer took.
pub fn assert_refused(p: &Proc, bytes: &[u8], status: u16, patience: Duration) -> Duration {
    let from = p.line_count();
    let (reply, took) = send_until_close(p, bytes, patience);
    assert_eq!(reply.status, status, "{:?}: {reply:?}", shorten(bytes));
    assert_refusal(p, from, &reply, status);
    took
}

/// HTTP/1.0 without keep-alive: an answer with `content-length`, then a
/// close; with `Connection: keep-alive`, the connection serves a second request.
pub fn assert_http10_rules(p: &Proc) {
    let mut conn = Conn::open(p.authority());
    conn.write_raw(b"GET /health HTTP/1.0\r\n\r\n");
    let closing = conn.read_to_close(Duration::from_secs(1));
    assert!(closing.closed, "not closed: {:?}", closing.text());
    let replies = parse_all(&closing.bytes);
    assert_eq!(replies.len(), 1, "{:?}", closing.text());
    assert_eq!(replies[0].status, 200);
    assert!(
        replies[0].header("content-length").is_some(),
        "{:?}",
        closing.text()
    );

    let mut conn = Conn::open(p.authority());
    for _ in 0..2 {
        conn.write_raw(b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let reply = conn.read_reply(Duration::from_secs(1)).unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.header("connection").map(str::to_ascii_lowercase),
            Some("keep-alive".to_owned())
        );
    }
}

/// `ab -n 2000 -c 20` against `url`, then the same with keep-alive (`-k`):
/// every request complete, none failed, none non-2xx, and bytes that really
/// came back. Panics, naming the package, where `ab` is not installed.
pub fn assert_ab_clean(url: &str) {
    for keep_alive in [false, true] {
        let mut cmd = std::process::Command::new("ab");
        cmd.args(["-q", "-n", "2000", "-c", "20"]);
        if keep_alive {
            cmd.arg("-k");
        }
        let out = cmd
            .arg(url)
            .output()
            .unwrap_or_else(|e| panic!("`ab` (apache2-utils) is needed: {e}"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "ab (keep-alive {keep_alive}) {url}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let value = |key: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or_else(|| panic!("no {key:?} in {text}"))
        };
        assert_eq!(value("Complete requests:"), 2000, "{text}");
        assert_eq!(value("Failed requests:"), 0, "{text}");
        assert!(!text.contains("Non-2xx responses"), "{text}");
        assert!(value("Total transferred:") > 0, "{text}");
        assert!(value("HTML transferred:") > 0, "{text}");
    }
}
