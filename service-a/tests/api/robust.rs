//! What no client, log reader or config file can do to A (issue 21): lock it
//! out with header faults, grow it or stop it through its log, hang its
//! config watcher, or silence it when descriptors run out. Each test is one
//! row of the table, against the real binary.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testkit::http::{get, get_with, Conn};
use testkit::{field, metric, PATIENCE};

use crate::{launch, start_a};

/// A's binary.
const A: &str = env!("CARGO_BIN_EXE_service-a");

/// A started by hand, for tests that own its stdout; killed when dropped.
struct Raw {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Raw {
    /// A on a free port with `extra` config, stdout a pipe the test holds
    /// (or closes at once when `close_stdout`), waited on until `/health` answers.
    fn start(extra: &str, close_stdout: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = testkit::fake::free_port();
        let config = dir.path().join("service.toml");
        std::fs::write(&config, format!("[server]\nport = {port}\n{extra}")).unwrap();
        let mut child = Command::new(A)
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if close_stdout {
            drop(child.stdout.take());
        }
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(format!("127.0.0.1:{port}")).is_err() {
            assert!(Instant::now() < deadline, "A never listened on {port}");
            std::thread::sleep(Duration::from_millis(10));
        }
        Self {
            child,
            url,
            _dir: dir,
        }
    }

    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the exit, up to `patience`; `None` if it is still running.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    fn wait_exit(&mut self, patience: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends signal `name` (`TERM`, `HUP`) to `pid`.
#[cfg(unix)]
fn signal(name: &str, pid: u32) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Resident memory in KiB where the platform says (Linux's /proc).
#[cfg_attr(not(unix), allow(dead_code))]
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Sends `n` requests for 8 KiB targets (404s, each logged with its target),
/// pipelined on `conns` connections, and reads every answer.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn flood_long_targets(authority: &str, n: usize, conns: usize) {
    let target = format!("/{}", "x".repeat(8000));
    let request = format!("GET {target} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
    let per = n / conns;
    let workers: Vec<_> = (0..conns)
        .map(|_| {
            let authority = authority.to_owned();
            let request = request.clone();
            std::thread::spawn(move || {
                let mut conn = Conn::open(&authority);
                // In rounds of 32, so neither side's buffers fill.
                for _ in 0..per / 32 {
                    conn.write_raw(request.repeat(32).as_bytes());
                    for _ in 0..32 {
                        let reply = conn.read_reply(PATIENCE).unwrap();
                        assert_eq!(reply.status, 404);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}

/// A client fills every slot it may with 60 s header delays (a quarter of
/// max_connections, the rest answered 429 at once with a log line), and
/// A's `/health` and `/metrics` still answer within 100 ms.
#[test]
fn header_delays_cannot_lock_out_health() {
    let a = launch("")
        .env("SERVICE_A_SERVER__MAX_CONNECTIONS", "64")
        .env("SERVICE_A_SERVER__HEADER_TIMEOUT_MS", "60000")
        .start();
    let budget = 64 / 4;
    let delayed = format!(
        "GET /echo?msg=slow HTTP/1.1\r\nHost: {}\r\nx-fault-delay-ms: 60000\r\n\r\n",
        a.authority()
    );
    // The budget's worth, held.
    let mut held: Vec<Conn> = (0..budget)
        .map(|_| {
            let mut c = Conn::open(a.authority());
            c.write_raw(delayed.as_bytes());
            c
        })
        .collect();
    a.wait_metric("faults_injected_total{fault=\"delay\"}", budget as f64);

    // Past it: 429 at once, the connection closed, the line says why.
    for _ in 0..8 {
        let mut c = Conn::open(a.authority());
        c.write_raw(delayed.as_bytes());
        let reply = c.read_reply(Duration::from_secs(1)).unwrap();
        assert_eq!(reply.status, 429, "{}", reply.body);
        assert!(reply.body.contains("x-fault-* headers"), "{}", reply.body);
        assert_eq!(reply.header("retry-after"), Some("1"));
        assert_eq!(reply.header("x-fault-injected"), None);
    }
    let line = a.wait_line(&["http_status=429", "refused=header_fault_budget"]);
    assert!(line.contains("endpoint=/echo"), "{line}");

    // Everyone else is served at once.
    for path in ["/health", "/metrics", "/echo?msg=fast"] {
        for _ in 0..5 {
            let reply = get(&format!("{}{path}", a.url));
            assert_eq!(reply.status, 200, "{path}");
            assert!(
                reply.elapsed < Duration::from_millis(100),
                "{path} took {:?}",
                reply.elapsed
            );
        }
    }
    // Header faults still work once a slot is free again.
    drop(held.pop());
    a.wait_line(&["status=client_closed", "fault=delay"]);
    let reply = get_with(
        &format!("{}/echo?msg=x", a.url),
        &[("x-fault-delay-ms", "10")],
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-fault-injected"), Some("delay"));
}

/// A flood of 8 KiB targets while nobody reads stdout: memory stays flat,
/// lost lines are counted in /metrics, and every line kept is short.
#[test]
#[cfg(target_os = "linux")]
fn long_targets_and_a_stuck_stdout_keep_memory_flat() {
    let a = Raw::start("", false);
    let authority = a.url.trim_start_matches("http://").to_owned();
    flood_long_targets(&authority, 256, 4);
    let before = rss_kib(a.pid()).expect("Linux has /proc");
    let started = Instant::now();
    flood_long_targets(&authority, 16_384, 8);
    let after = rss_kib(a.pid()).expect("Linux has /proc");
    eprintln!(
        "RSS {before} KiB -> {after} KiB over 16 384 requests for 8 KiB targets in {:?}",
        started.elapsed()
    );
    // The log queue's 4 MiB, the pipe's and the allocator's slack.
    assert!(
        after < before + 16 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    let text = get(&format!("{}/metrics", a.url)).body;
    assert!(
        metric(&text, "log_lines_dropped_total") > 0.0,
        "nothing counted as lost:\n{text}"
    );
}

/// Stdout is a pipe nobody reads and its queue is full; SIGTERM still ends A
/// within the grace (and a moment), exit code 0.
#[test]
#[cfg(target_os = "linux")]
fn sigterm_exits_with_a_stuck_stdout() {
    let mut a = Raw::start("shutdown_grace_ms = 1000\n", false);
    let authority = a.url.trim_start_matches("http://").to_owned();
    flood_long_targets(&authority, 16_384, 4);
    let text = get(&format!("{}/metrics", a.url)).body;
    assert!(
        metric(&text, "log_lines_dropped_total") > 0.0,
        "the queue never filled:\n{text}"
    );
    let sent = Instant::now();
    signal("TERM", a.pid());
    let status = a
        .wait_exit(Duration::from_secs(5))
        .expect("A did not exit with its stdout stuck");
    let took = sent.elapsed();
    assert!(status.success(), "{status:?}");
    // The grace (1 s), then at most the final flush's floor and the exit.
    assert!(took < Duration::from_millis(1500), "exit took {took:?}");
}

/// Stdout closed (`| head -c 100`): A keeps serving, and the lines it cannot
/// write are counted in /metrics.
#[test]
fn closed_stdout_is_counted() {
    let a = Raw::start("", true);
    for _ in 0..20 {
        assert_eq!(get(&format!("{}/echo?msg=x", a.url)).status, 200);
    }
    let deadline = Instant::now() + PATIENCE;
    loop {
        let text = get(&format!("{}/metrics", a.url)).body;
        if metric(&text, "log_lines_dropped_total") >= 20.0 {
            break;
        }
        assert!(Instant::now() < deadline, "lost lines not counted:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A request for an 8 KiB target is logged with its target cut to 256
/// bytes, and says how long it was.
#[test]
fn long_targets_are_cut_in_the_log() {
    let a = start_a("");
    let target = format!("/{}", "x".repeat(8000));
    assert_eq!(get(&format!("{}{target}", a.url)).status, 404);
    let line = a.wait_line(&["http_status=404"]);
    let endpoint = field(&line, "endpoint").unwrap();
    assert!(
        endpoint.ends_with("...(8001 bytes)"),
        "{} bytes logged",
        endpoint.len()
    );
    assert!(line.len() < 600, "{} bytes", line.len());
}

/// A's config path made a FIFO: refused at once with a clear config_error,
/// nothing blocks; a good file saved later is applied within 350 ms (and a
/// bit), and SIGHUP still works.
#[test]
#[cfg(unix)]
fn config_fifo_is_refused_and_the_watcher_lives_on() {
    let a = start_a("");
    std::fs::remove_file(&a.config).unwrap();
    let made = Command::new("mkfifo").arg(&a.config).status().unwrap();
    assert!(made.success());
    let line = a.wait_line(&["event=config_error", "FIFO"]);
    assert!(line.contains("not a regular file"), "{line}");
    assert_eq!(get(&format!("{}/health", a.url)).status, 200);

    std::fs::remove_file(&a.config).unwrap();
    let tmp = a.config.with_extension("new");
    std::fs::write(&tmp, crate::a_config("fail = true")).unwrap();
    let from = a.line_count();
    let saved = Instant::now();
    std::fs::rename(&tmp, &a.config).unwrap();
    a.wait_line_after(from, &["event=config_reloaded", "fail=true"]);
    let took = saved.elapsed();
    assert!(took < Duration::from_millis(450), "applied after {took:?}");
    assert_eq!(get(&format!("{}/echo?msg=x", a.url)).status, 500);

    let from = a.line_count();
    let sent = Instant::now();
    signal("HUP", a.pid());
    a.wait_line_after(from, &["event=config_reloaded", "fail=true"]);
    assert!(
        sent.elapsed() < Duration::from_millis(450),
        "{:?}",
        sent.elapsed()
    );
}

/// Started with a FIFO as its config: A exits 2 at once, saying what the
/// path is, instead of blocking in `open` before its first line.
#[test]
#[cfg(unix)]
fn a_fifo_config_at_start_is_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("service-a.toml");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let started = Instant::now();
    let exited = launch("")
        .config_file(&fifo)
        .try_start()
        .map(|a| a.url.clone());
    let exited = exited.expect_err("A started with a FIFO as its config");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(exited.code, Some(2), "{}", exited.stderr);
    assert!(
        exited
            .stderr
            .contains("is a FIFO (named pipe), not a regular file"),
        "{}",
        exited.stderr
    );
}

/// A's config path a link to /dev/zero, then a 100 MB file: each refused
/// with a config_error, neither read; memory stays flat and A keeps its
/// last good settings.
#[test]
#[cfg(unix)]
fn endless_and_huge_config_files_are_refused_unread() {
    let a = start_a("fail = true");
    // Each put in place by a rename, as a save would: never a moment without a file.
    let tmp = a.config.with_extension("new");
    std::os::unix::fs::symlink("/dev/zero", &tmp).unwrap();
    let linked = Instant::now();
    std::fs::rename(&tmp, &a.config).unwrap();
    let line = a.wait_line(&["event=config_error", "is a device, not a regular file"]);
    // Said by the next check: one poll interval (250 ms), and a moment.
    let took = linked.elapsed();
    assert!(took < Duration::from_millis(450), "said after {took:?}");
    assert!(line.contains("keeping the last good settings"), "{line}");

    let big = std::fs::File::create(&tmp).unwrap();
    big.set_len(100_000_000).unwrap();
    drop(big);
    let grown = Instant::now();
    std::fs::rename(&tmp, &a.config).unwrap();
    let line = a.wait_line(&[
        "event=config_error",
        "is 100000000 bytes, over the 1024 KiB",
    ]);
    let took = grown.elapsed();
    assert!(took < Duration::from_millis(450), "said after {took:?}");
    assert!(line.contains("keeping the last good settings"), "{line}");
    // Each said once, however long it stays.
    std::thread::sleep(Duration::from_millis(600));
    let said = a
        .lines()
        .iter()
        .filter(|l| l.contains("event=config_error"))
        .count();
    assert_eq!(said, 2, "{:#?}", a.lines());
    if let Some(rss) = rss_kib(a.pid()) {
        assert!(rss < 64 * 1024, "RSS {rss} KiB");
    }
    assert_eq!(get(&format!("{}/echo?msg=x", a.url)).status, 500);
}

/// Started with `ulimit -n 256` (hard too) and the default max_connections:
/// A warns at start; 300 idle clients exhaust its descriptors; it says so
/// once (`event=accept_failed`), counts it, and recovers when clients leave.
#[test]
#[cfg(unix)]
fn out_of_descriptors_is_said_and_survived() {
    let a = testkit::Launch::new(A, "[server]\nport = 0\nheader_timeout_ms = 60000\n")
        .descriptor_limit(256, 256)
        .start();
    let warned = a.wait_line(&["event=descriptor_limit_low"]);
    assert_eq!(field(&warned, "limit").as_deref(), Some("256"), "{warned}");

    let mut idle: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(a.authority()).unwrap())
        .collect();
    let failed = a.wait_line(&[" event=accept_failed "]);
    assert!(failed.contains("out of file descriptors"), "{failed}");

    // A newcomer waits in the backlog until descriptors free up.
    let url = a.url.clone();
    let newcomer = std::thread::spawn(move || get(&format!("{url}/health")));
    std::thread::sleep(Duration::from_millis(300));
    let freed = Instant::now();
    idle.truncate(150);
    let reply = newcomer.join().unwrap();
    assert_eq!(reply.status, 200);
    let waited = freed.elapsed();
    // The accept loop retries at least every 250 ms.
    assert!(
        waited < Duration::from_millis(1000),
        "recovered after {waited:?}"
    );
    a.wait_line(&[" event=accept_recovered "]);
    let episodes = a
        .lines()
        .iter()
        .filter(|l| l.contains(" event=accept_failed "))
        .count();
    assert_eq!(episodes, 1, "one line per episode");
    drop(idle);
    let text = get(&format!("{}/metrics", a.url)).body;
    assert!(metric(&text, "accept_failures_total") >= 1.0, "{text}");
}

/// A soft limit below what max_connections needs is raised to it, within
/// the hard limit, and said.
#[test]
#[cfg(unix)]
fn a_low_soft_limit_is_raised_and_said() {
    let a = testkit::Launch::new(A, "[server]\nport = 0\nmax_connections = 1000\n")
        .descriptor_limit(256, 4096)
        .start();
    let line = a.wait_line(&["event=descriptor_limit"]);
    assert_eq!(
        field(&line, "raised_from").as_deref(),
        Some("256"),
        "{line}"
    );
    assert_eq!(field(&line, "raised_to").as_deref(), Some("1064"), "{line}");
}

/// With JSON logs, a refused target holding U+2028, U+2029, U+0085 and
/// U+202E is escaped: the line is one line to every reader and parses back.
#[test]
fn json_lines_escape_what_splits_lines() {
    let a = launch("").env("SERVICE_A_LOG__FORMAT", "json").start();
    let target = "/a\u{2028}b\u{2029}c\u{85}d\u{202e}e";
    let mut s = TcpStream::connect(a.authority()).unwrap();
    // No Host: refused, and the refusal's line carries the target as sent.
    s.write_all(format!("GET {target} HTTP/1.1\r\n\r\n").as_bytes())
        .unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    assert!(answer.starts_with(b"HTTP/1.1 400"), "{answer:?}");
    let line = a.wait_line(&["\"http_status\":400"]);
    for raw in ['\u{2028}', '\u{2029}', '\u{85}', '\u{202e}'] {
        assert!(!line.contains(raw), "{raw:?} raw in {line}");
    }
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["endpoint"], target);
}

/// `[trace] report = "log"` in JSON: span properties are keys of their
/// own, each once, so the line parses to what it says.
#[test]
fn span_lines_have_one_key_each() {
    let a = launch("")
        .env("SERVICE_A_LOG__FORMAT", "json")
        .env("SERVICE_A_TRACE__REPORT", "log")
        .start();
    assert_eq!(get(&format!("{}/echo?msg=x", a.url)).status, 200);
    let line = a.wait_line(&["\"event\":\"span\""]);
    let v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&line).unwrap();
    for key in v.keys() {
        assert_eq!(
            line.matches(&format!("\"{key}\":")).count(),
            1,
            "{key} twice in {line}"
        );
    }
    assert_eq!(v["http.route"], "/echo", "{line}");
    assert_eq!(v["span.kind"], "server", "{line}");
    assert!(!v.contains_key("property"), "{line}");
}

/// Malformed, uppercase, all-zero or repeated traceparent headers start a
/// new trace; a valid one is continued.
#[test]
fn traceparent_is_strict() {
    let a = start_a("");
    let good = "4bf92f3577b34da6a3ce929d0e0e4736";
    let send = |headers: &[&str]| {
        let mut head = format!("GET /echo?msg=t HTTP/1.1\r\nHost: {}\r\n", a.authority());
        for h in headers {
            head.push_str(&format!("traceparent: {h}\r\n"));
        }
        head.push_str("\r\n");
        let from = a.line_count();
        let mut c = Conn::open(a.authority());
        assert_eq!(c.send(head.as_bytes()).status, 200);
        let line = a.wait_line_after(from, &["endpoint=/echo"]);
        field(&line, "trace_id").unwrap()
    };
    let valid = format!("00-{good}-00f067aa0ba902b7-01");
    assert_eq!(send(&[&valid]), good);
    for bad in [
        vec!["00-1-2-01".to_owned()],
        vec![format!("00-{}-00f067aa0ba902b7-01", good.to_uppercase())],
        vec![format!("+0-{good}-00f067aa0ba902b7-01")],
        vec![format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32))],
        vec![format!("ff-{good}-00f067aa0ba902b7-01")],
        vec![valid.clone(), valid.clone()],
    ] {
        let headers: Vec<&str> = bad.iter().map(String::as_str).collect();
        let id = send(&headers);
        assert_ne!(id, good, "{bad:?} was continued");
        assert_eq!(id.len(), 32);
    }
}
