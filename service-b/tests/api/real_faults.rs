//! Every fault the real A can inject, once from its `[fault]` file and once
//! from a request header sent through B: B's KIND, status and detail; A's log
//! line and its metric; and the `x-fault-injected` mark A puts on answers.

use testkit::http::{get, get_with, Reply};
use testkit::{field, metric, Proc};

use crate::{start_a, start_b};

/// One fault and what each side must say about it.
struct Case {
    /// Its name in x-fault-injected, A's `fault=` and the metric label.
    name: &'static str,
    /// The `[fault]` lines that turn it on.
    file: &'static str,
    /// The headers that turn it on for one request.
    headers: &'static [(&'static str, &'static str)],
    /// B's KIND, or `None` when the call still succeeds.
    kind: Option<&'static str>,
    /// The body's `http_status` (the KIND's status).
    http_status: u16,
    /// Words B's detail must hold.
    detail: &'static str,
    /// A's `status=` for the request (`client_closed` when B gave up on a
    /// slow body and closed: A's line is written when the body ends).
    a_status: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "reset",
        file: "reset = true",
        headers: &[("x-fault-reset", "1")],
        kind: Some("connection_reset"),
        http_status: 502,
        detail: "reset by peer",
        a_status: "reset",
    },
    Case {
        name: "drop",
        file: "drop = true",
        headers: &[("x-fault-drop", "1")],
        kind: Some("connection_reset"),
        http_status: 502,
        detail: "closed the connection (FIN)",
        a_status: "dropped",
    },
    Case {
        name: "garbage",
        file: "garbage = true",
        headers: &[("x-fault-garbage", "1")],
        kind: Some("bad_response"),
        http_status: 502,
        detail: "not a valid HTTP answer",
        a_status: "garbage",
    },
    Case {
        name: "truncate",
        file: "truncate = true",
        headers: &[("x-fault-truncate", "1")],
        kind: Some("connection_reset"),
        http_status: 502,
        detail: "the body was short",
        a_status: "truncated",
    },
    Case {
        name: "bad_body",
        file: "bad_body = true",
        headers: &[("x-fault-bad-body", "1")],
        kind: Some("bad_response"),
        http_status: 502,
        detail: "not the expected",
        a_status: "ok",
    },
    Case {
        name: "trickle",
        file: "body_bytes_per_s = 4",
        headers: &[("x-fault-body-bytes-per-s", "4")],
        kind: Some("timeout"),
        http_status: 504,
        detail: "no complete answer from A within 300 ms",
        a_status: "client_closed",
    },
    Case {
        name: "body_delay",
        file: "body_delay_ms = 2000",
        headers: &[("x-fault-body-delay-ms", "2000")],
        kind: Some("timeout"),
        http_status: 504,
        detail: "no complete answer from A within 300 ms",
        a_status: "client_closed",
    },
    Case {
        name: "fail",
        file: "fail = true\nfail_statuses = { 429 = 1 }",
        headers: &[("x-fault-status", "429:1")],
        kind: Some("upstream_status"),
        http_status: 429,
        detail: "A answered 429 Too Many Requests (injected by A)",
        a_status: "error",
    },
    Case {
        name: "delay",
        file: "delay_p50_ms = 5\ndelay_p99_ms = 20",
        headers: &[
            ("x-fault-delay-p50-ms", "5"),
            ("x-fault-delay-p99-ms", "20"),
        ],
        kind: None,
        http_status: 200,
        detail: "",
        a_status: "ok",
    },
];

/// B's answer and A's line for one call; checks them against `case`.
fn check(case: &Case, a: &Proc, reply: &Reply) {
    let what = format!("{} ({})", case.name, reply.body);
    match case.kind {
        None => assert_eq!(reply.status, 200, "{what}"),
        Some(kind) => {
            assert_eq!(reply.status, 503, "{what}");
            let body = reply.json();
            assert_eq!(body["error"], kind, "{what}");
            assert_eq!(body["http_status"], case.http_status, "{what}");
            assert!(reply.str("detail").contains(case.detail), "{what}");
        }
    }
    let line = a.wait_line(&["endpoint=/echo", &format!("fault={}", case.name)]);
    assert_eq!(
        field(&line, "status").as_deref(),
        Some(case.a_status),
        "{line}"
    );
    let metrics = get(&format!("{}/metrics", a.url)).body;
    let sample = format!("faults_injected_total{{fault=\"{}\"}}", case.name);
    assert_eq!(metric(&metrics, &sample), 1.0, "{sample} in {metrics}");
}

/// Each fault from A's file: what B says, what A logs and counts.
#[test]
fn every_fault_from_the_file() {
    let _clock = crate::timing();
    for case in CASES {
        let a = start_a(case.file);
        let b = start_b(&a.url, 300);
        let reply = get(&format!("{}/call-echo?msg=hello", b.url));
        check(case, &a, &reply);
    }
}

/// Each fault from a header sent to B, which forwards it: the same answers.
#[test]
fn every_fault_from_a_header_through_b() {
    let _clock = crate::timing();
    for case in CASES {
        let a = start_a("");
        let b = start_b(&a.url, 300);
        let reply = get_with(&format!("{}/call-echo?msg=hello", b.url), case.headers);
        check(case, &a, &reply);
    }
}

/// Draws of a 50/50 status list: the chance that all of them come out the
/// same is 2 * 2^-40, about 2e-12, so a missing status is a broken draw.
const DRAWS: usize = 40;

/// Answers a fault touched carry its name in `x-fault-injected`; failures
/// can carry `Retry-After`; weighted statuses are drawn from the list.
#[test]
fn answers_are_marked_with_their_faults() {
    let a = start_a("");
    let echo = |headers: &[(&str, &str)]| get_with(&format!("{}/echo?msg=m", a.url), headers);

    let truncated = testkit::http::raw(
        a.authority(),
        b"GET /echo?msg=hello HTTP/1.1\r\nHost: a\r\nx-fault-truncate: 1\r\n\r\n",
    )
    .unwrap();
    let text = String::from_utf8_lossy(&truncated);
    assert!(text.contains("x-fault-injected: truncate\r\n"), "{text}");

    let bad = echo(&[("x-fault-bad-body", "1")]);
    assert_eq!(
        (bad.status, bad.header("x-fault-injected")),
        (200, Some("bad_body"))
    );

    let limited = echo(&[("x-fault-status", "429"), ("x-fault-retry-after-s", "3")]);
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after"), Some("3"));
    assert_eq!(limited.header("x-fault-injected"), Some("fail"));

    let slow = echo(&[("x-fault-delay-ms", "20"), ("x-fault-body-delay-ms", "20")]);
    assert_eq!(slow.header("x-fault-injected"), Some("delay,body_delay"));

    // Weighted statuses: both drawn, each answer marked `fail` with its own
    // status in its body. With even weights, all DRAWS alike has odds 2^-39.
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..DRAWS {
        let drawn = echo(&[("x-fault-status", "503:1,418:1")]);
        assert!(matches!(drawn.status, 503 | 418), "{}", drawn.status);
        assert_eq!(drawn.header("x-fault-injected"), Some("fail"));
        assert_eq!(drawn.json()["status"], drawn.status, "{}", drawn.body);
        *seen.entry(drawn.status).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "only {seen:?} in {DRAWS} even draws");
    // Any status 100..=599 is sent as asked, even one http-types cannot name;
    // one outside that range is refused where it is asked for.
    let exact = echo(&[("x-fault-status", "599")]);
    assert_eq!(exact.status, 599, "{}", exact.body);
    let refused = echo(&[("x-fault-status", "600")]);
    assert_eq!(refused.status, 400);
    assert!(
        refused.str("error").contains("100..=599"),
        "{}",
        refused.body
    );
}
