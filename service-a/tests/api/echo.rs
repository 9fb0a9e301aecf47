//! A's endpoints over a real socket, as curl sees them.

use testkit::http::{encode, get, raw, request, Conn};

use crate::start_a;

/// `/health` and `/echo` answer the contract's JSON.
#[test]
fn health_and_echo() {
    let a = start_a("");
    let health = get(&format!("{}/health", a.url));
    assert_eq!(
        (health.status, health.body.as_str()),
        (200, r#"{"status":"ok"}"#)
    );
    let echo = get(&format!("{}/echo?msg=hello", a.url));
    assert_eq!(
        (echo.status, echo.body.as_str()),
        (200, r#"{"echo":"hello"}"#)
    );
    assert_eq!(echo.header("content-type"), Some("application/json"));
    assert_eq!(echo.header("x-fault-injected"), None);
    let empty = get(&format!("{}/echo", a.url));
    assert_eq!(empty.body, r#"{"echo":""}"#);
}

/// Form decoding as Flask does it, and an exact JSON round trip of any UTF-8.
#[test]
fn decoding_and_round_trip() {
    let a = start_a("");
    let echo = |query: &str| get(&format!("{}/echo?{query}", a.url));
    assert_eq!(echo("msg=a%20b+c%26d%C3%A9").str("echo"), "a b c&dé");
    assert_eq!(echo("msg=first&msg=second").str("echo"), "first");
    for msg in [
        "\"quotes\" and \\",
        "ctl\u{1}\u{1f}\n\t",
        "🎉 emoji",
        "</script>",
    ] {
        assert_eq!(echo(&format!("msg={}", encode(msg))).str("echo"), msg);
    }
    let bad = echo("msg=%C3%28");
    assert_eq!(bad.status, 400);
    assert!(bad.str("error").contains("not UTF-8"), "{}", bad.body);
}

/// Unknown paths are 404 and other methods 405 with `Allow`, both as JSON.
#[test]
fn client_errors() {
    let a = start_a("");
    let missing = get(&format!("{}/nope", a.url));
    assert_eq!(
        (missing.status, missing.body.as_str()),
        (404, r#"{"error":"not found"}"#)
    );
    let delete = request("DELETE", &format!("{}/echo", a.url), &[]);
    assert_eq!(delete.status, 405);
    assert_eq!(delete.header("allow"), Some("GET, HEAD"));
    assert!(delete.str("error").contains("DELETE"));
}

/// A `msg` full of line breaks and quotes cannot forge a log line.
#[test]
fn log_lines_never_split() {
    let a = start_a("");
    let evil = "x\nservice=A endpoint=/forged status=ok \"";
    get(&format!("{}/echo?msg={}", a.url, encode(evil)));
    get(&format!("{}/forged%0Aservice=A", a.url));
    a.wait_line(&["endpoint=\"/forged"]);
    for line in a.lines() {
        assert!(
            line.starts_with("20"),
            "a line not starting with a timestamp: {line:?}"
        );
        assert!(!line.contains(" endpoint=/forged"), "{line}");
    }
}

/// Malformed requests get a 4xx or a closed connection, and A keeps serving.
#[test]
fn malformed_requests_do_not_hurt() {
    let a = start_a("");
    let huge_uri = format!(
        "GET /echo?msg={} HTTP/1.1\r\nHost: a\r\n\r\n",
        "x".repeat(200_000)
    );
    let cases: Vec<Vec<u8>> = vec![
        b"garbage\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\n\r\n".to_vec(),
        b"GET /echo HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
        b"GET /echo HTTP/1.1\r\nContent-Length: -1\r\n\r\n".to_vec(),
        huge_uri.into_bytes(),
        b"GET /\xff\xfe HTTP/1.1\r\n\r\n".to_vec(),
    ];
    for bytes in cases {
        if let Ok(answer) = raw(a.authority(), &bytes) {
            let text = String::from_utf8_lossy(&answer);
            assert!(
                !text.starts_with("HTTP/1.1 2"),
                "accepted {:?}: {text}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(60)])
            );
        }
        assert_eq!(get(&format!("{}/health", a.url)).status, 200);
    }
}

/// A body sent with its request and never read does not disturb the next
/// request on the connection: fixed-length and chunked.
#[test]
fn unread_bodies_keep_the_connection_in_step() {
    let a = start_a("");
    let mut conn = Conn::open(a.authority());
    for request in [
        "GET /echo?msg=one HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        "GET /echo?msg=two HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "GET /echo?msg=three HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        let msg = request.split(['=', ' ']).nth(2).unwrap_or_default();
        let answer = conn.send(request.as_bytes());
        assert_eq!((answer.status, answer.str("echo")), (200, msg.to_owned()));
    }
}

/// A body that arrives after its head, in a later packet, is read and dropped
/// before the answer, so the next request on the connection is served; A never
/// takes the body for the start of the next head.
#[test]
fn a_late_body_is_skipped() {
    let a = start_a("");
    let mut conn = Conn::open(a.authority());
    conn.write_raw(b"GET /echo?msg=one HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n");
    // Keeps the head and the body out of one read; nothing A shows can be awaited.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let answer = conn.send(b"hello");
    assert_eq!((answer.status, answer.str("echo")), (200, "one".to_owned()));
    let answer = conn.send(b"GET /echo?msg=two HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!((answer.status, answer.str("echo")), (200, "two".to_owned()));
}
