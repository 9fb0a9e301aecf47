//! The happy path: B returns A's echo of exactly what it was sent.

use testkit::http::{encode, get, get_with};

use crate::{start_a, start_b};

/// `/call-echo?msg=hello` answers A's echo inside B's envelope, and both log it
/// under one trace id.
#[test]
fn echo_through_b() {
    let _clock = crate::timing();
    let a = start_a("");
    let b = start_b(&a.url, 1000);

    let reply = get(&format!("{}/call-echo?msg=hello", b.url));

    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.body,
        r#"{"service_a":{"echo":"hello"},"service_b":"ok"}"#
    );
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let b_line = b.wait_line(&["endpoint=/call-echo", "status=ok"]);
    let trace = testkit::field(&b_line, "trace_id").unwrap();
    assert_eq!(trace.len(), 32);
    a.wait_line(&["endpoint=/echo", &format!("trace_id={trace}")]);
}

/// Whatever `msg` holds reaches A and comes back unchanged.
#[test]
fn tricky_messages_round_trip() {
    let _clock = crate::timing();
    let a = start_a("");
    let b = start_b(&a.url, 1000);
    let long = "x".repeat(2000);
    let tricky = [
        "a&b=c",
        "#frag",
        "100%",
        "1+1=2",
        "two  spaces",
        "\"quoted\"",
        "back\\slash",
        "line\nbreak\r\ttab",
        "émoji 🎉 中文",
        "%41 not decoded twice",
        "",
        long.as_str(),
    ];
    for msg in tricky {
        let reply = get(&format!("{}/call-echo?msg={}", b.url, encode(msg)));
        assert_eq!(reply.status, 200, "{msg:?}: {}", reply.body);
        assert_eq!(reply.json()["service_a"]["echo"], msg, "{msg:?}");
    }
    // `+` in the query is a space, as in a form: B passes on what it decoded.
    let reply = get(&format!("{}/call-echo?msg=a+b%2Bc", b.url));
    assert_eq!(reply.json()["service_a"]["echo"], "a b+c");
}

/// A caller's traceparent is continued by B and then by A.
#[test]
fn traceparent_reaches_a() {
    let _clock = crate::timing();
    let a = start_a("");
    let b = start_b(&a.url, 1000);
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";

    let reply = get_with(
        &format!("{}/call-echo?msg=t", b.url),
        &[("traceparent", &format!("00-{trace}-00f067aa0ba902b7-01"))],
    );

    assert_eq!(reply.status, 200);
    b.wait_line(&["endpoint=/call-echo", &format!("trace_id={trace}")]);
    a.wait_line(&["endpoint=/echo", &format!("trace_id={trace}")]);
}

/// B's own endpoints: health always, ready when A is, JSON errors for the rest.
#[test]
fn health_ready_and_client_errors() {
    let _clock = crate::timing();
    let a = start_a("");
    let b = start_b(&a.url, 1000);

    assert_eq!(get(&format!("{}/health", b.url)).body, r#"{"status":"ok"}"#);
    let ready = get(&format!("{}/ready", b.url));
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (200, r#"{"status":"ok","service_a":"ok"}"#)
    );
    let missing = get(&format!("{}/nope", b.url));
    assert_eq!(
        (missing.status, missing.body.as_str()),
        (404, r#"{"error":"not found"}"#)
    );
    let post = testkit::http::request(
        "POST",
        &format!("{}/call-echo", b.url),
        &[("content-length", "0")],
    );
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    let bad = get(&format!("{}/call-echo?msg=%FF", b.url));
    assert_eq!(bad.status, 400);
}

/// Malformed requests get a 4xx or a closed connection from B too, and B keeps serving.
#[test]
fn malformed_requests_do_not_hurt_b() {
    let _clock = crate::timing();
    let a = start_a("");
    let b = start_b(&a.url, 1000);
    let cases: Vec<Vec<u8>> = vec![
        b"garbage\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\n\r\n".to_vec(),
        b"GET /call-echo HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec(),
        b"GET /call-echo HTTP/1.1\r\nContent-Length: -1\r\n\r\n".to_vec(),
        format!(
            "GET /call-echo?msg={} HTTP/1.1\r\n\r\n",
            "x".repeat(200_000)
        )
        .into_bytes(),
        format!(
            "GET /call-echo HTTP/1.1\r\n{}\r\n",
            "X-A: 1\r\n".repeat(5000)
        )
        .into_bytes(),
        b"GET /call-echo?msg=\xff\xfe HTTP/1.1\r\n\r\n".to_vec(),
    ];
    for bytes in cases {
        if let Ok(answer) = testkit::http::raw(b.authority(), &bytes) {
            let text = String::from_utf8_lossy(&answer);
            assert!(!text.starts_with("HTTP/1.1 2"), "accepted: {text}");
        }
        assert_eq!(get(&format!("{}/call-echo?msg=ok", b.url)).status, 200);
    }
}
