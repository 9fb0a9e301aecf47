//! A real Prometheus reads both services' `/metrics`, and promtool finds
//! nothing wrong in them. Both need Debian's `prometheus` package, which
//! `.ci/run` installs; the README's `cargo test --workspace` skips them.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testkit::http::{encode, get, get_with};
use testkit::{binary, Launch, Proc};

const NEEDS: &str = "needs prometheus; .ci/run installs it and runs it";

/// B's deadline here: short, so the timeout lands in a bucket of its own.
const TIMEOUT_MS: u64 = 100;

/// A and B on free ports, after one success, one timeout and one refused
/// call through B (A stopped and started again on its port).
fn services_after_traffic() -> (Proc, Proc) {
    let mut a = Launch::new(binary("service-a"), "[server]\nport = 0\n").start();
    let b = Launch::new(
        binary("service-b"),
        &format!(
            "[server]\nport = 0\n[upstream]\nurl = \"{}\"\ntimeout_ms = {TIMEOUT_MS}\n",
            a.url
        ),
    )
    .start();
    let call = format!("{}/call-echo?msg=hi", b.url);
    assert_eq!(get(&call).status, 200);
    let timeout = get_with(&call, &[("x-fault-delay-ms", "1000")]);
    assert_eq!(timeout.json()["error"], "timeout");
    a.kill();
    assert_eq!(get(&call).json()["error"], "connection_refused");
    let a = a
        .relaunch(
            binary("service-a"),
            &format!("[server]\nport = {}\n", a.port()),
        )
        .start();
    (a, b)
}

/// Prometheus, killed when dropped.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Prometheus in a temp dir scraping `targets` (job, host:port)
    /// every 200 ms; waits for its "ready" log line.
    fn start(targets: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = String::from(
            "global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\nscrape_configs:\n",
        );
        for (job, target) in targets {
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
            ));
        }
        let file = dir.path().join("prometheus.yml");
        std::fs::File::create(&file)
            .unwrap()
            .write_all(config.as_bytes())
            .unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("prometheus")
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run prometheus ({e}): {NEEDS}"));
        // Its log goes to stderr; read it until ready (and keep draining it).
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + testkit::PATIENCE * 3;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("Server is ready to receive web requests") => break,
                Ok(line) => seen.push(line),
                Err(_) => panic!("prometheus not ready: {seen:#?}"),
            }
        }
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    /// The value of an instant query with one series, once it has one.
    /// Polls: a scrape is an event with no line of its own.
    fn value(&self, query: &str) -> f64 {
        let deadline = Instant::now() + testkit::PATIENCE;
        loop {
            let reply = get(&format!(
                "{}/api/v1/query?query={}",
                self.url,
                encode(query)
            ));
            let json = reply.json();
            if let Some(v) = json["data"]["result"][0]["value"][1].as_str() {
                return v.parse().expect("a number");
            }
            assert!(
                Instant::now() < deadline,
                "no result for {query}: {}",
                reply.body
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The type Prometheus recorded for `metric` from `job`'s scrapes.
    fn metric_type(&self, job: &str, metric: &str) -> String {
        let url = format!(
            "{}/api/v1/targets/metadata?match_target={}&metric={}",
            self.url,
            encode(&format!("{{job=\"{job}\"}}")),
            metric
        );
        get(&url).json()["data"][0]["type"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }
}

/// Prometheus scrapes A and B and sees, with their types: calls to A by
/// KIND, requests by the status sent, and the histograms with the timeout
/// in the bucket of B's deadline.
#[test]
#[ignore = "needs prometheus; .ci/run installs it and runs it"]
fn prometheus_scrapes_both_services() {
    let (a, b) = services_after_traffic();
    let prom = Prometheus::start(&[("a", a.authority()), ("b", b.authority())]);
    assert_eq!(prom.value("up{job=\"a\"}"), 1.0);
    assert_eq!(prom.value("up{job=\"b\"}"), 1.0);

    for (kind, n) in [("ok", 1.0), ("timeout", 1.0), ("connection_refused", 1.0)] {
        let q = format!("upstream_calls_total{{job=\"b\",kind=\"{kind}\"}}");
        assert_eq!(prom.value(&q), n, "{q}");
    }
    // The code label is the status sent: B's failures went out as 503.
    let q = "http_requests_total{job=\"b\",endpoint=\"/call-echo\",code=\"503\"}";
    assert_eq!(prom.value(q), 2.0, "{q}");
    let q = "http_requests_total{job=\"b\",endpoint=\"/call-echo\",code=\"200\"}";
    assert_eq!(prom.value(q), 1.0, "{q}");
    // A was restarted: its counters start again, its scrapes are counted.
    let q = "http_requests_total{job=\"a\",endpoint=\"/metrics\",code=\"200\"}";
    assert!(prom.value(q) >= 1.0, "{q}");

    // The timeout took B's deadline (100 ms): above the 64 ms bucket, within 128 ms.
    let bucket = |le: &str| {
        prom.value(&format!(
            "upstream_call_duration_seconds_bucket{{job=\"b\",kind=\"timeout\",le=\"{le}\"}}"
        ))
    };
    assert_eq!(bucket("0.064"), 0.0);
    assert_eq!(bucket("0.128"), 1.0);
    let sum = prom.value("upstream_call_duration_seconds_sum{job=\"b\",kind=\"timeout\"}");
    assert!((0.1..0.15).contains(&sum), "{sum}");
    let q = "http_request_duration_seconds_count{job=\"b\",endpoint=\"/call-echo\"}";
    assert_eq!(prom.value(q), 3.0, "{q}");

    // The queries of docs/observability.md run and answer.
    let p99 = prom.value(
        "histogram_quantile(0.99, sum by (le) (upstream_call_duration_seconds_bucket{job=\"b\"}))",
    );
    assert!(p99 > 0.0, "{p99}");

    for (job, metric, kind) in [
        ("b", "upstream_calls", "counter"),
        ("b", "upstream_call_duration_seconds", "histogram"),
        ("b", "circuit_breaker_state", "gauge"),
        ("a", "http_requests", "counter"),
        ("a", "http_request_duration_seconds", "histogram"),
    ] {
        // Prometheus asks for OpenMetrics first, where a counter's family has
        // no _total; the 0.0.4 text names it with _total.
        let found = [metric.to_owned(), format!("{metric}_total")]
            .iter()
            .map(|m| prom.metric_type(job, m))
            .find(|t| !t.is_empty())
            .unwrap_or_default();
        assert_eq!(found, kind, "{job} {metric}");
    }
}

/// `promtool check metrics` finds no problem in either service's
/// `/metrics` as curl gets it (the Prometheus text format), after traffic.
#[test]
#[ignore = "needs prometheus; .ci/run installs it and runs it"]
fn promtool_finds_no_problem() {
    let (a, b) = services_after_traffic();
    for service in [&a, &b] {
        let text = get(&format!("{}/metrics", service.url)).body;
        let mut promtool = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run promtool ({e}): {NEEDS}"));
        promtool
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = promtool.wait_with_output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && said.trim().is_empty(),
            "{}: {said}\n{text}",
            service.url
        );
    }
}
