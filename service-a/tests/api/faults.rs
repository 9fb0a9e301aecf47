//! Faults on a real socket: marked answers, per-request decisions on one connection.

use std::time::{Duration, Instant};

use testkit::http::{get, Conn};

use crate::start_a;

/// Faults are decided per request, even on one keep-alive connection.
#[test]
fn keep_alive_does_not_escape_faults() {
    let a = start_a("fail_first = 1");
    let mut conn = Conn::open(a.authority());
    let statuses: Vec<u16> = (0..3).map(|_| conn.get("/echo?msg=k").status).collect();
    assert_eq!(statuses, [500, 200, 200]);
}

/// A delayed answer says so, and takes at least the delay.
#[test]
fn delay_is_marked() {
    let a = start_a("delay_ms = 150");
    let reply = get(&format!("{}/echo?msg=x", a.url));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-fault-injected"), Some("delay"));
    assert!(reply.elapsed >= Duration::from_millis(150));
    a.wait_line(&["endpoint=/echo", "fault=delay"]);
    // /health is never delayed.
    assert!(get(&format!("{}/health", a.url)).elapsed < Duration::from_millis(100));
}

/// `probability` affects about that share of requests.
#[test]
fn probability_affects_a_share() {
    let a = start_a("fail = true\nprobability = 0.3\nseed = 7");
    let failed = (0..300)
        .filter(|_| get(&format!("{}/echo?msg=p", a.url)).status == 500)
        .count();
    assert!(
        (50..=130).contains(&failed),
        "{failed} of 300 failed at p=0.3"
    );
}

/// A caller that says how long it will wait (`x-request-timeout-ms`) and keeps
/// its connection open: A stops waiting on a longer injected delay soon after
/// that budget, closes, and logs the request as abandoned.
#[test]
fn a_abandons_what_its_caller_no_longer_waits_for() {
    let a = start_a("delay_ms = 5000");
    let started = Instant::now();
    let answer = testkit::http::raw(
        a.authority(),
        b"GET /echo?msg=x HTTP/1.1\r\nHost: a\r\nx-request-timeout-ms: 200\r\n\r\n",
    )
    .unwrap();
    assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
    assert!(
        (Duration::from_millis(200)..Duration::from_millis(1000)).contains(&started.elapsed()),
        "{:?}",
        started.elapsed()
    );
    let line = a.wait_line(&["endpoint=/echo", "status=abandoned"]);
    assert!(line.contains("fault=delay"), "{line}");
    let metrics = get(&format!("{}/metrics", a.url)).body;
    assert_eq!(
        testkit::metric(&metrics, "faults_injected_total{fault=\"abandoned\"}"),
        1.0
    );
}

/// An injected 204 or 304, from the header and from `fail_status`, goes out
/// as a head alone (RFC 9110: neither carries content), with no
/// `Content-Length`, and 304 with its own name, "Not Modified".
#[test]
fn no_content_statuses_carry_no_body() {
    let a = start_a("");
    for (code, line) in [("204", "204 No Content"), ("304", "304 Not Modified")] {
        let request =
            format!("GET /echo?msg=x HTTP/1.1\r\nHost: a\r\nx-fault-status: {code}\r\n\r\n");
        let bytes = testkit::http::raw(a.authority(), request.as_bytes()).expect("raw request");
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            text.starts_with(&format!("HTTP/1.1 {line}\r\n")),
            "{text:?}"
        );
        assert!(
            text.ends_with("\r\n\r\n"),
            "a body after the head: {text:?}"
        );
        assert!(
            !text.to_ascii_lowercase().contains("content-length"),
            "{text:?}"
        );
    }
    for code in [204, 304] {
        let a = start_a(&format!("fail = true\nfail_status = {code}"));
        let bytes = testkit::http::raw(a.authority(), b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
            .expect("raw request");
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.starts_with(&format!("HTTP/1.1 {code} ")), "{text:?}");
        assert!(
            text.ends_with("\r\n\r\n"),
            "a body after the head: {text:?}"
        );
    }
}
