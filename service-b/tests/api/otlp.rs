//! `[trace] report = "otlp"`: one call's spans reach a real OTLP decoder,
//! and a collector that is down or silent costs requests nothing.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};

use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::http::get;
use testkit::{binary, metric, Launch, Proc, PATIENCE};

/// `[trace]` sending to `endpoint`, on a free port.
fn otlp(endpoint: &str, timeout_ms: u64) -> String {
    format!(
        "[server]\nport = 0\n[trace]\nreport = \"otlp\"\nendpoint = \"{endpoint}\"\n\
         timeout_ms = {timeout_ms}\n"
    )
}

/// `otlp_receiver.py` running, and the lines it prints.
struct Collector {
    child: Child,
    lines: Receiver<String>,
    port: u16,
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Collector {
    /// Starts the receiver; panics, saying what to install, if it cannot.
    fn start() -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/otlp_receiver.py");
        let mut child = Command::new("python3")
            .arg("-u")
            .arg(script)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 runs (needs python3 with opentelemetry-proto; .ci/run installs it)");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = lines.recv_timeout(PATIENCE);
        let port = match first
            .as_deref()
            .ok()
            .and_then(|l| l.strip_prefix("listening "))
        {
            Some(port) => port.parse().expect("a port"),
            None => {
                let _ = child.kill();
                let mut err = String::new();
                use std::io::Read as _;
                let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
                panic!(
                    "the OTLP receiver did not start (pip install opentelemetry-proto; \
                     .ci/run does): {first:?}\n{err}"
                );
            }
        };
        Self { child, lines, port }
    }

    /// Waits until the spans printed so far satisfy `done`; returns them.
    fn spans_until(&self, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        let mut spans = Vec::new();
        while !done(&spans) {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("spans so far: {spans:#?}"));
            assert!(!line.starts_with("error"), "the receiver refused: {line}");
            spans.push(serde_json::from_str(&line).expect("a span line"));
        }
        spans
    }
}

/// One /call-echo yields B's SERVER and CLIENT spans and A's SERVER span, in
/// one trace, each the parent of the next, decoded by opentelemetry-proto.
#[test]
#[ignore = "needs python3 with opentelemetry-proto; .ci/run installs it and runs it"]
fn one_call_is_one_trace_in_the_collector() {
    let receiver = Collector::start();
    let endpoint = format!("http://127.0.0.1:{}", receiver.port);
    let a = Launch::new(binary("service-a"), &otlp(&endpoint, 2000)).start();
    let b = Launch::new(
        env!("CARGO_BIN_EXE_service-b"),
        &format!("{}[upstream]\nurl = \"{}\"\n", otlp(&endpoint, 2000), a.url),
    )
    .start();

    let reply = get(&format!("{}/call-echo?msg=traced", b.url));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let trace_id = testkit::field(&b.wait_line(&["endpoint=/call-echo"]), "trace_id").unwrap();

    let in_trace = |spans: &[Value]| -> Vec<Value> {
        spans
            .iter()
            .filter(|s| s["trace_id"] == trace_id.as_str())
            .cloned()
            .collect()
    };
    let spans = in_trace(&receiver.spans_until(|s| in_trace(s).len() >= 3));
    let find = |service: &str, kind: &str| {
        spans
            .iter()
            .find(|s| s["service"] == service && s["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} span of {service} in {spans:#?}"))
    };
    let b_server = find("B", "SPAN_KIND_SERVER");
    let b_client = find("B", "SPAN_KIND_CLIENT");
    let a_server = find("A", "SPAN_KIND_SERVER");
    assert_eq!(b_server["parent_span_id"], "", "B started the trace");
    assert_eq!(b_client["parent_span_id"], b_server["span_id"]);
    assert_eq!(a_server["parent_span_id"], b_client["span_id"]);
    assert_eq!(b_client["name"], "GET /echo");
    for span in [b_server, b_client, a_server] {
        assert_eq!(span["span_id"].as_str().map(str::len), Some(16), "{span}");
        assert!(span["duration_ns"].as_u64() > Some(0), "{span}");
    }
    b.wait_metric("trace_spans_exported_total", 2.0);
    a.wait_metric("trace_spans_exported_total", 1.0);
}

/// Calls through B while its collector refuses connections: every call is
/// answered as fast as without tracing, the spans are counted as dropped,
/// and the outage is logged once, not once per batch.
#[test]
fn a_down_collector_drops_spans_and_says_so_once() {
    let _clock = crate::timing();
    // A port nothing listens on: bound, then closed.
    let down = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", down.local_addr().unwrap());
    drop(down);
    let a = crate::start_a("");
    let b = start_b_tracing(&endpoint, 500, &a);

    for _ in 0..3 {
        call_quickly(&b);
        // Each wait spans a report interval: the three calls go out as
        // separate exports, each of them refused.
        let dropped = metric(
            &get(&format!("{}/metrics", b.url)).body,
            "trace_spans_dropped_total",
        );
        b.wait_metric("trace_spans_dropped_total", dropped + 2.0);
    }
    let failures = b
        .lines()
        .iter()
        .filter(|l| l.contains("event=trace_export_failed"))
        .count();
    assert_eq!(failures, 1, "{:#?}", b.lines());
    assert_eq!(
        metric(
            &get(&format!("{}/metrics", b.url)).body,
            "trace_spans_exported_total"
        ),
        0.0
    );
}

/// A collector that accepts and never answers holds no request up: calls stay
/// fast while exports wait out their timeout one after another, and the
/// spans of those exports are dropped and counted.
#[test]
fn a_silent_collector_never_slows_a_request() {
    let _clock = crate::timing();
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let a = crate::start_a("");
    let b = start_b_tracing(&endpoint, 300, &a);

    // Calls go on across several report intervals, until two exports (two
    // spans per call) have timed out.
    let deadline = Instant::now() + PATIENCE;
    let mut calls = 0;
    while metric(
        &get(&format!("{}/metrics", b.url)).body,
        "trace_spans_dropped_total",
    ) < 4.0
    {
        assert!(
            Instant::now() < deadline,
            "no export timed out after {calls} calls"
        );
        call_quickly(&b);
        calls += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    b.wait_line(&[
        "event=trace_export_failed",
        "no answer within trace.timeout_ms = 300 ms",
    ]);
    drop(silent);
}

fn start_b_tracing(endpoint: &str, timeout_ms: u64, a: &Proc) -> Proc {
    Launch::new(
        env!("CARGO_BIN_EXE_service-b"),
        &format!(
            "{}[upstream]\nurl = \"{}\"\n",
            otlp(endpoint, timeout_ms),
            a.url
        ),
    )
    .start()
}

/// One /call-echo, answered 200 well within the export timeout.
fn call_quickly(b: &Proc) {
    let started = Instant::now();
    let reply = get(&format!("{}/call-echo?msg=x", b.url));
    let took = started.elapsed();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(took < Duration::from_millis(200), "a call took {took:?}");
}
