//! Every way A can fail, and B naming it: the right KIND, the right status, on time.

use std::time::Duration;

use testkit::fake::{refused_url, FakeA, Misbehaviour};
use testkit::http::{get, get_with, Reply};

use crate::{start_a, start_b};

const TIMEOUT_MS: u64 = 300;

/// The contract's answer for a failure: 503, the KIND and its status, a detail.
fn assert_failure(reply: &Reply, kind: &str, http_status: u16) {
    assert_eq!(reply.status, 503, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["service_b"], "ok");
    assert_eq!(body["service_a"], "unavailable");
    assert_eq!(body["error"], kind, "{}", reply.body);
    assert_eq!(body["http_status"], http_status, "{}", reply.body);
    assert_eq!(body["attempts"], 1);
    assert!(!reply.str("detail").is_empty());
}

/// A timeout answers between timeout_ms and timeout_ms + 50 ms.
fn assert_on_time(reply: &Reply) {
    let low = Duration::from_millis(TIMEOUT_MS);
    let high = Duration::from_millis(TIMEOUT_MS + 50);
    assert!(
        (low..high).contains(&reply.elapsed),
        "timeout answered after {:?}, expected {low:?}..{high:?}",
        reply.elapsed
    );
}

fn call(b: &testkit::Proc) -> Reply {
    get(&format!("{}/call-echo?msg=x", b.url))
}

/// A killed: `connection_refused` in well under 100 ms, and B itself stays healthy.
#[test]
fn a_stopped_is_connection_refused_fast() {
    let _clock = crate::timing();
    let mut a = start_a("");
    let b = start_b(&a.url, 1000);
    assert_eq!(call(&b).status, 200);

    a.kill();
    let reply = call(&b);

    assert_failure(&reply, "connection_refused", 503);
    assert!(
        reply.elapsed < Duration::from_millis(100),
        "{:?}",
        reply.elapsed
    );
    assert_eq!(get(&format!("{}/health", b.url)).status, 200);
    let ready = get(&format!("{}/ready", b.url));
    assert_eq!(ready.status, 503);
    assert_eq!(
        ready.body,
        r#"{"status":"degraded","service_a":"unavailable","error":"connection_refused"}"#
    );
    let line = b.wait_line(&["endpoint=/call-echo", "error=connection_refused"]);
    assert!(line.contains("status=error http_status=503"), "{line}");
}

/// Nothing ever listened there: the same answer.
#[test]
fn nothing_listening_is_connection_refused() {
    let _clock = crate::timing();
    let b = start_b(&refused_url(), 1000);
    assert_failure(&call(&b), "connection_refused", 503);
}

/// A slower than the deadline: `timeout` on time, logged with its latency.
#[test]
fn slow_a_is_a_timeout_on_time() {
    let _clock = crate::timing();
    let a = start_a("delay_ms = 1000");
    let b = start_b(&a.url, TIMEOUT_MS);

    let reply = call(&b);

    assert_failure(&reply, "timeout", 504);
    assert_on_time(&reply);
    assert_eq!(
        reply.str("detail"),
        format!("no complete answer from A within {TIMEOUT_MS} ms")
    );
    let line = b.wait_line(&["error=timeout"]);
    assert!(line.contains("status=error http_status=504"), "{line}");
    let latency: u64 = testkit::field(&line, "latency_ms")
        .unwrap()
        .parse()
        .unwrap();
    assert!((TIMEOUT_MS..TIMEOUT_MS + 50).contains(&latency), "{line}");
}

/// A's head on time but its body stalled: still a `timeout`, on time.
#[test]
fn stalled_body_from_a_is_a_timeout() {
    let _clock = crate::timing();
    let a = start_a("body_delay_ms = 1000");
    let b = start_b(&a.url, TIMEOUT_MS);
    let reply = call(&b);
    assert_failure(&reply, "timeout", 504);
    assert_on_time(&reply);
}

/// `fail`: `upstream_status` carrying A's own status.
#[test]
fn failing_a_is_upstream_status() {
    let _clock = crate::timing();
    let a = start_a("fail = true\nfail_status = 502");
    let b = start_b(&a.url, 1000);
    let reply = call(&b);
    assert_failure(&reply, "upstream_status", 502);
    assert!(reply.str("detail").contains("injected"), "{}", reply.body);
}

/// `drop`: A closes without answering, which B calls `connection_reset`.
#[test]
fn dropping_a_is_connection_reset() {
    let _clock = crate::timing();
    let a = start_a("drop = true");
    let b = start_b(&a.url, 1000);
    assert_failure(&call(&b), "connection_reset", 502);
}

/// Header faults reach A through B: no file edit needed.
#[test]
fn header_faults_pass_through_b() {
    let _clock = crate::timing();
    let a = start_a("");
    let b = start_b(&a.url, TIMEOUT_MS);
    let url = format!("{}/call-echo?msg=x", b.url);

    let slow = get_with(&url, &[("x-fault-delay-ms", "1000")]);
    assert_failure(&slow, "timeout", 504);
    assert_on_time(&slow);
    assert_failure(
        &get_with(&url, &[("x-fault-status", "418")]),
        "upstream_status",
        418,
    );
    assert_failure(
        &get_with(&url, &[("x-fault-drop", "1")]),
        "connection_reset",
        502,
    );
    assert_eq!(get(&url).status, 200);
}

/// Each way a peer can misbehave on the wire, and the KIND B gives it.
#[test]
fn misbehaving_peers_are_classified() {
    let _clock = crate::timing();
    let cases = [
        (Misbehaviour::Hang, "timeout", 504),
        (Misbehaviour::StallBody, "timeout", 504),
        (Misbehaviour::Trickle, "timeout", 504),
        (Misbehaviour::Reset, "connection_reset", 502),
        (Misbehaviour::CloseEarly, "connection_reset", 502),
        (Misbehaviour::CloseMidBody, "connection_reset", 502),
        (Misbehaviour::Garbage, "bad_response", 502),
        (Misbehaviour::NotJson, "bad_response", 502),
    ];
    for (how, kind, status) in cases {
        let fake = FakeA::start(how);
        let b = start_b(&fake.url, TIMEOUT_MS);
        let reply = call(&b);
        assert_failure(&reply, kind, status);
        if kind == "timeout" {
            assert_on_time(&reply);
        } else {
            assert!(
                reply.elapsed < Duration::from_millis(200),
                "{how:?}: {:?}",
                reply.elapsed
            );
        }
    }
}
