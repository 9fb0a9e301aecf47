//! Metrics and log formats, as a log shipper or Prometheus sees them.

use testkit::fake::{FakeA, Misbehaviour};
use testkit::http::{encode, get};
use testkit::{metric, Launch};

use crate::{start_a, start_b};

/// /metrics is Prometheus text (0.0.4 unless OpenMetrics is asked for) and
/// counts a timeout under its KIND.
#[test]
fn metrics_count_kinds() {
    let _clock = crate::timing();
    let fake = FakeA::start(Misbehaviour::Hang);
    let b = start_b(&fake.url, 100);
    assert_eq!(
        get(&format!("{}/call-echo?msg=x", b.url)).json()["error"],
        "timeout"
    );

    let reply = get(&format!("{}/metrics", b.url));
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type").unwrap(),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = &reply.body;
    assert_eq!(
        metric(text, "upstream_calls_total{kind=\"timeout\"}"),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(
            text,
            "http_requests_total{endpoint=\"/call-echo\",code=\"503\"}"
        ),
        1.0,
        "the code label is the status sent (503), not the KIND's 504: {text}"
    );
    assert!(
        text.contains("http_request_duration_seconds_bucket{le="),
        "{text}"
    );
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "not a sample: {line}");
    }
    assert!(
        text.contains("# TYPE upstream_calls_total counter\n"),
        "{text}"
    );
}

/// A counts the faults it injects, by kind.
#[test]
fn a_counts_faults() {
    let _clock = crate::timing();
    let a = start_a("fail = true");
    get(&format!("{}/echo?msg=x", a.url));
    let text = get(&format!("{}/metrics", a.url)).body;
    assert_eq!(
        metric(&text, "faults_injected_total{fault=\"fail\"}"),
        1.0,
        "{text}"
    );
}

/// `[log] format = "json"`: one valid JSON object per line, whatever msg holds.
#[test]
fn json_logs_are_valid_json() {
    let _clock = crate::timing();
    let a = Launch::new(
        testkit::binary("service-a"),
        "[server]\nport = 0\n[log]\nformat = \"json\"\n",
    )
    .start();
    let b = Launch::new(
        env!("CARGO_BIN_EXE_service-b"),
        &format!(
            "[server]\nport = 0\n[log]\nformat = \"json\"\n[upstream]\nurl = \"{}\"\n",
            a.url
        ),
    )
    .start();
    let evil = "quote\" newline\n backslash\\ tab\t";
    let reply = get(&format!(
        "{}/call-echo?msg={}&x={}",
        b.url,
        encode(evil),
        encode(evil)
    ));
    assert_eq!(reply.status, 200);
    get(&format!("{}/{}", b.url, encode(evil)));
    b.wait_line(&["\"endpoint\":\"/quote"]);
    a.wait_line(&["\"endpoint\":\"/echo\""]);
    for line in a.lines().iter().chain(b.lines().iter()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["ts"].is_string() && v["service"].is_string(), "{line}");
    }
    let trace = |lines: Vec<String>| -> Vec<String> {
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["trace_id"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(trace(a.lines()).first(), trace(b.lines()).first());
}

/// `[trace] report = "log"` writes spans; B's call span is the parent of A's.
#[test]
fn spans_to_the_log() {
    let _clock = crate::timing();
    let a = Launch::new(
        testkit::binary("service-a"),
        "[server]\nport = 0\n[trace]\nreport = \"log\"\n",
    )
    .start();
    let b = Launch::new(
        env!("CARGO_BIN_EXE_service-b"),
        &format!(
            "[server]\nport = 0\n[trace]\nreport = \"log\"\n[upstream]\nurl = \"{}\"\n",
            a.url
        ),
    )
    .start();
    assert_eq!(get(&format!("{}/call-echo?msg=s", b.url)).status, 200);
    let b_span = b.wait_line(&["event=span", "name=B"]);
    let a_span = a.wait_line(&["event=span", "name=A"]);
    assert_eq!(
        testkit::field(&b_span, "trace_id"),
        testkit::field(&a_span, "trace_id")
    );
}
