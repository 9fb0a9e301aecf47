//! B reads any upstream within bounds (issue 20's table): each row is a fake
//! upstream on a raw socket doing what a hostile or merely different server
//! does, and B naming it with the right KIND, status and timing, in bounded
//! memory.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use testkit::http::{get, get_with, Reply};
use testkit::{Launch, Proc};

use crate::{b_config, start_a, start_b};

/// A fake upstream: for each connection, reads request heads and runs
/// `script` with the stream and the request target of the first request.
pub(crate) fn fake(script: fn(&mut TcpStream, &str)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake upstream");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut stream = stream;
                if let Some(target) = read_head(&mut stream) {
                    script(&mut stream, &target);
                }
            });
        }
    });
    url
}

/// Reads one request head; its target, or `None` at end of stream.
pub(crate) fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let text = String::from_utf8_lossy(&head);
    text.split(' ').nth(1).map(str::to_owned)
}

/// B's failure answer: the KIND and the status in its body.
fn assert_kind(reply: &Reply, kind: &str, http_status: u16) {
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.json()["error"], kind, "{}", reply.body);
    assert_eq!(reply.json()["http_status"], http_status, "{}", reply.body);
}

fn call(b: &Proc, msg: &str) -> Reply {
    get(&format!("{}/call-echo?msg={msg}", b.url))
}

/// B's resident memory in KiB, where the platform lets a test read it.
fn rss_kib(pid: u32) -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        None
    }
}

/// Writes `bytes` again and again until B stops reading or 5 s pass: at most
/// 256 MiB, the amount that grew B to gigabytes before the decoder.
fn flood(stream: &mut TcpStream, first: &[u8], bytes: &[u8]) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let _ = stream.write_all(first);
    let until = Instant::now() + Duration::from_secs(5);
    let mut sent = 0;
    while sent < 256 << 20 && Instant::now() < until {
        if stream.write_all(bytes).is_err() {
            return;
        }
        sent += bytes.len();
    }
}

/// A status line, then a header line that never ends; or bytes with no LF at
/// all: `bad_response` as soon as the 8 KiB head cap is passed, long before
/// the deadline, and B's memory stays where it was.
#[test]
fn a_head_that_never_ends_is_refused_in_bounded_memory() {
    let _clock = crate::timing();
    let endless_header = fake(|s, _| flood(s, b"HTTP/1.1 200 OK\r\nX-Long: ", &[b'a'; 65536]));
    let no_lf = fake(|s, _| flood(s, b"HTTP/1.1 200 OK", &[b'b'; 65536]));
    for upstream in [endless_header, no_lf] {
        // The deadline that let B abort on a 4 GiB allocation before.
        let b = start_b(&upstream, 10_000);
        let before = rss_kib(b.pid());
        for _ in 0..4 {
            let reply = call(&b, "x");
            assert_kind(&reply, "bad_response", 502);
            assert!(reply.str("detail").contains("8192 bytes"), "{}", reply.body);
            assert!(
                reply.elapsed < Duration::from_secs(1),
                "{:?}",
                reply.elapsed
            );
        }
        let health = get(&format!("{}/health", b.url));
        assert!(
            health.elapsed < Duration::from_millis(100),
            "{:?}",
            health.elapsed
        );
        match (before, rss_kib(b.pid())) {
            (Some(before), Some(after)) => assert!(
                after < before + 16 * 1024,
                "B grew from {before} KiB to {after} KiB"
            ),
            _ => eprintln!("RSS not measurable on this platform: memory bound not checked"),
        }
    }
}

/// Python's `http.server` on A's port: an HTTP/1.0 404 whose body runs to
/// the close is read, and reported as `upstream_status` 404; an HTTP/1.0 200
/// read to the close is the echo.
#[test]
fn http10_answers_are_read() {
    let _clock = crate::timing();
    let not_found = fake(|s, _| {
        let _ = s.write_all(
            b"HTTP/1.0 404 File not found\r\nServer: SimpleHTTP/0.6 Python/3.11.2\r\n\
              Content-Type: text/html;charset=utf-8\r\n\r\n<html><body>Nothing matches</body></html>\n",
        );
    });
    let b = start_b(&not_found, 1000);
    let reply = call(&b, "x");
    assert_kind(&reply, "upstream_status", 404);
    assert!(
        reply
            .str("detail")
            .starts_with("A answered 404 File not found"),
        "{}",
        reply.body
    );
    assert!(
        reply.elapsed < Duration::from_millis(500),
        "{:?}",
        reply.elapsed
    );

    let echo10 = fake(|s, _| {
        let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\n{\"echo\":\"x\"}");
    });
    let b = start_b(&echo10, 1000);
    for _ in 0..3 {
        let reply = call(&b, "x");
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.json()["service_a"]["echo"], "x");
    }
}

/// Statuses http-types has no name for (nginx's 499, Cloudflare's 520s) are
/// reported with the exact code, in the body and in B's log line.
#[test]
fn unnamed_statuses_are_reported_exactly() {
    let _clock = crate::timing();
    let upstream = fake(|s, first| {
        let mut target = first.to_owned();
        loop {
            // The code is the msg: /echo?msg=420.
            let code = target.rsplit('=').next().unwrap_or("500").to_owned();
            let answer =
                format!("HTTP/1.1 {code} Whatever It Says\r\nContent-Length: 2\r\n\r\n{{}}");
            let _ = s.write_all(answer.as_bytes());
            match read_head(s) {
                Some(next) => target = next,
                None => return,
            }
        }
    });
    let b = start_b(&upstream, 1000);
    for code in [420u16, 499, 520, 521, 527, 599, 299] {
        let reply = call(&b, &code.to_string());
        if code == 299 {
            // A 2xx whose body is not the echo.
            assert_kind(&reply, "bad_response", 502);
            continue;
        }
        assert_kind(&reply, "upstream_status", code);
        assert!(
            reply
                .str("detail")
                .starts_with(&format!("A answered {code} Whatever It Says")),
            "{}",
            reply.body
        );
        b.wait_line(&["error=upstream_status", &format!("http_status={code}")]);
    }
}

/// An unasked `100 Continue` before the real answer is skipped; the
/// connection is reused only after the final answer, so no call ever reads
/// another call's echo.
#[test]
fn interim_answers_are_skipped_and_never_leak() {
    let _clock = crate::timing();
    let upstream = fake(|s, first| {
        let mut target = first.to_owned();
        loop {
            let msg = target.rsplit('=').next().unwrap_or("").to_owned();
            let body = format!("{{\"echo\":\"{msg}\"}}");
            let _ = s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
            let _ = s.flush();
            thread::sleep(Duration::from_millis(20));
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if s.write_all(answer.as_bytes()).is_err() {
                return;
            }
            match read_head(s) {
                Some(next) => target = next,
                None => return,
            }
        }
    });
    let b = start_b(&upstream, 1000);
    for n in 0..20 {
        let msg = format!("m{n}");
        let reply = call(&b, &msg);
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(
            reply.json()["service_a"]["echo"],
            msg.as_str(),
            "{}",
            reply.body
        );
    }
}

/// An SSH banner, a TLS alert or an SMTP greeting, the connection kept open:
/// `bad_response` from the first line, not a timeout after the full second.
#[test]
fn not_http_is_bad_response_at_once() {
    let _clock = crate::timing();
    let greeters: [fn(&mut TcpStream, &str); 3] = [
        |s, _| {
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
            thread::sleep(Duration::from_secs(3));
        },
        |s, _| {
            let _ = s.write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46]);
            thread::sleep(Duration::from_secs(3));
        },
        |s, _| {
            let _ = s.write_all(b"220 mail.example.org ESMTP Postfix\r\n");
            thread::sleep(Duration::from_secs(3));
        },
    ];
    for greet in greeters {
        let b = start_b(&fake(greet), 1000);
        let reply = call(&b, "x");
        assert_kind(&reply, "bad_response", 502);
        assert!(
            reply.str("detail").contains("status line"),
            "{}",
            reply.body
        );
        assert!(
            reply.elapsed < Duration::from_millis(300),
            "{:?}",
            reply.elapsed
        );
    }
}

/// The upstream closes just after B's deadline while B cannot run (stopped,
/// as a starved CPU would leave it): when B runs again the close and the
/// timer are both there, and the call is a `timeout`, never `connection_reset`.
#[cfg(unix)]
#[test]
fn a_close_seen_after_the_deadline_is_a_timeout() {
    let _clock = crate::timing();
    use std::sync::atomic::{AtomicBool, Ordering};
    static ASKED: AtomicBool = AtomicBool::new(false);
    let upstream = fake(|s, _| {
        ASKED.store(true, Ordering::SeqCst);
        thread::sleep(Duration::from_millis(600));
        let _ = s.shutdown(std::net::Shutdown::Both);
    });
    let b = start_b(&upstream, 1000);
    let pid = b.pid().to_string();
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {pid}");
    };
    // Which of the two events B handles first is a race: three rounds.
    for _ in 0..3 {
        ASKED.store(false, Ordering::SeqCst);
        let url = format!("{}/call-echo?msg=x", b.url);
        let caller = thread::spawn(move || get(&url));
        // B has sent its request (its deadline is running) before it is stopped.
        let asked_by = Instant::now() + Duration::from_secs(5);
        while !ASKED.load(Ordering::SeqCst) {
            assert!(Instant::now() < asked_by, "B never called the upstream");
            thread::sleep(Duration::from_millis(1));
        }
        signal("-STOP");
        // The upstream closes 600 ms after the request; B's deadline passes
        // within 1000 ms of it; B runs again after 1100 ms.
        thread::sleep(Duration::from_millis(1100));
        signal("-CONT");
        let reply = caller.join().expect("caller");
        assert_kind(&reply, "timeout", 504);
        assert!(
            reply.str("detail").contains("within 1000 ms"),
            "{}",
            reply.body
        );
    }
}

/// One caller asking for resets with `x-fault-reset: 1` never opens the
/// breaker for everyone, and its resets are not retried; plain calls all
/// succeed. The KIND and the log line still say what happened.
#[test]
fn failures_the_caller_asked_for_do_not_count_against_a() {
    let _clock = crate::timing();
    let a = start_a("");
    let b = Launch::new(
        env!("CARGO_BIN_EXE_service-b"),
        &format!(
            "{}retries = 2\nretry_on = [\"connection_reset\"]\n\n[circuit_breaker]\n\
             enabled = true\nfailure_threshold = 3\nopen_ms = 5000\n",
            b_config(&a.url, 1000)
        ),
    )
    .start();
    let url = format!("{}/call-echo?msg=plain", b.url);
    for _ in 0..10 {
        let asked = get_with(&url, &[("x-fault-reset", "1")]);
        assert_kind(&asked, "connection_reset", 502);
        assert_eq!(asked.json()["attempts"], 1, "{}", asked.body);
        assert!(
            asked.str("detail").contains("asked for by the caller"),
            "{}",
            asked.body
        );
        let plain = get(&url);
        assert_eq!(plain.status, 200, "{}", plain.body);
    }
    assert!(
        b.lines().iter().all(|l| !l.contains("event=circuit")),
        "the breaker moved: {:?}",
        b.lines()
    );
    // A real failure (A gone) still counts: three in a row open the breaker.
    drop(a);
    for _ in 0..3 {
        let _ = get(&url);
    }
    b.wait_line(&["event=circuit", "state=open"]);
}

/// Through the real binaries: A sends 420, 499, 520, 599 (from
/// `x-fault-status` and from `fail_status`) and a lone 103; B reports each
/// as `upstream_status` with that exact code.
#[test]
fn a_sends_and_b_reports_any_status() {
    let _clock = crate::timing();
    let a = start_a("");
    let b = start_b(&a.url, 1000);
    let url = format!("{}/call-echo?msg=s", b.url);
    for code in ["420", "499", "520", "599"] {
        let reply = get_with(&url, &[("x-fault-status", code)]);
        assert_kind(&reply, "upstream_status", code.parse().unwrap());
        assert!(
            reply.str("detail").contains("(injected by A)"),
            "{}",
            reply.body
        );
        b.wait_line(&["error=upstream_status", &format!("http_status={code} ")]);
    }
    for code in [420u16, 103] {
        let a = start_a(&format!("fail = true\nfail_status = {code}\n"));
        let b = start_b(&a.url, 1000);
        let reply = call(&b, "s");
        assert_kind(&reply, "upstream_status", code);
        b.wait_line(&["error=upstream_status", &format!("http_status={code} ")]);
    }
}

/// Starves a process as an overloaded machine would: stopped (SIGSTOP) for
/// `off`, then let run for `on`, until dropped; it always lets it run again.
#[cfg(unix)]
struct Starver {
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

#[cfg(unix)]
impl Starver {
    fn start(pids: Vec<(u32, Duration, Duration)>) -> Self {
        use std::sync::atomic::Ordering;
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = done.clone();
        let thread = thread::spawn(move || {
            let signal = |sig: &str, pid: u32| {
                let _ = std::process::Command::new("kill")
                    .args([sig, &pid.to_string()])
                    .stderr(std::process::Stdio::null())
                    .status();
            };
            while !stop.load(Ordering::Relaxed) {
                for &(pid, off, on) in &pids {
                    signal("-STOP", pid);
                    thread::sleep(off);
                    signal("-CONT", pid);
                    thread::sleep(on);
                }
            }
            for &(pid, _, _) in &pids {
                signal("-CONT", pid);
            }
        });
        Self {
            done,
            thread: Some(thread),
        }
    }
}

#[cfg(unix)]
impl Drop for Starver {
    fn drop(&mut self) {
        self.done.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The course's failures (A slower than the deadline, then A stopped) with
/// both services starved of CPU: B frozen for 150 ms at a time, A for 20 ms.
/// A gives up on its delayed requests just after B's deadline and closes, so
/// B often wakes to A's close and its own timer at once. The matrix of what
/// A did × what B said has no forbidden cell: while A is slow, only `timeout`;
/// while A is stopped, only `connection_refused` (or `timeout`, if starved
/// past the deadline).
#[cfg(unix)]
#[test]
fn the_course_starved_has_no_forbidden_cell() {
    use std::collections::BTreeMap;
    let _clock = crate::exclusive();
    let mut a = start_a("");
    let b = start_b(&a.url, 1000);
    assert_eq!(call(&b, "warm").status, 200);
    let a_config = |fault: &str| format!("[server]\nport = {}\n\n[fault]\n{fault}\n", a.port());

    let mut matrix: BTreeMap<(&str, String), usize> = BTreeMap::new();
    let mut run_phase = |phase: &'static str, seconds: u64, b: &Proc| {
        let until = Instant::now() + Duration::from_secs(seconds);
        let callers: Vec<_> = (0..6)
            .map(|_| {
                let url = format!("{}/call-echo?msg=s", b.url);
                thread::spawn(move || {
                    let mut kinds = Vec::new();
                    while Instant::now() < until {
                        let reply = get(&url);
                        kinds.push(match reply.status {
                            200 => "ok".to_owned(),
                            _ => reply.json()["error"].as_str().unwrap_or("?").to_owned(),
                        });
                    }
                    kinds
                })
            })
            .collect();
        for caller in callers {
            for kind in caller.join().expect("caller") {
                *matrix.entry((phase, kind)).or_default() += 1;
            }
        }
    };

    let starved = Starver::start(vec![
        (
            b.pid(),
            Duration::from_millis(150),
            Duration::from_millis(50),
        ),
        (
            a.pid(),
            Duration::from_millis(20),
            Duration::from_millis(30),
        ),
    ]);
    a.write_config(&a_config("delay_ms = 1500"));
    a.wait_line(&["event=config_reloaded", "delay_ms=1500"]);
    run_phase("A slow", 8, &b);
    // A's pid leaves the starver before A dies: a reused pid is never signalled.
    drop(starved);
    a.kill();
    let starved = Starver::start(vec![(
        b.pid(),
        Duration::from_millis(150),
        Duration::from_millis(50),
    )]);
    run_phase("A stopped", 3, &b);
    drop(starved);

    let allowed = |phase: &str, kind: &str| match phase {
        "A slow" => kind == "timeout",
        _ => kind == "connection_refused" || kind == "timeout",
    };
    let forbidden: Vec<_> = matrix
        .iter()
        .filter(|((phase, kind), _)| !allowed(phase, kind))
        .collect();
    eprintln!("matrix (phase, B said) -> calls: {matrix:?}");
    assert!(
        forbidden.is_empty(),
        "forbidden cells: {forbidden:?}; all: {matrix:?}"
    );
    let slow_calls: usize = matrix
        .iter()
        .filter(|((p, _), _)| *p == "A slow")
        .map(|(_, n)| n)
        .sum();
    assert!(slow_calls >= 12, "too few calls to judge: {matrix:?}");
}

/// What B quotes of an upstream stays short and clean in the detail (and so
/// in every log line): a 7000-byte reason phrase is cut to 64 bytes and
/// marked; a lone interim answer's detail does not end in an empty ": "; a
/// malformed chunk-size line is quoted without its CR.
#[test]
fn what_b_quotes_of_an_upstream_is_short_and_clean() {
    let _clock = crate::timing();
    let long_reason = fake(|s, _| {
        let mut answer = b"HTTP/1.1 500 ".to_vec();
        answer.resize(answer.len() + 7000, b'R');
        answer.extend_from_slice(b"\r\nContent-Length: 2\r\n\r\n{}");
        let _ = s.write_all(&answer);
    });
    let b = start_b(&long_reason, 1000);
    let reply = call(&b, "x");
    assert_kind(&reply, "upstream_status", 500);
    let detail = reply.str("detail");
    assert!(
        detail.starts_with(&format!(
            "A answered 500 {}...(7000 bytes): {{}}",
            "R".repeat(64)
        )),
        "{detail}"
    );
    let line = b.wait_line(&["error=upstream_status", "http_status=500"]);
    assert!(line.len() < 1024, "a {}-byte log line: {line}", line.len());

    let lone_interim = fake(|s, _| {
        let _ = s.write_all(b"HTTP/1.1 102 Processing\r\n\r\n");
    });
    let b = start_b(&lone_interim, 1000);
    let reply = call(&b, "x");
    assert_kind(&reply, "upstream_status", 102);
    assert_eq!(
        reply.str("detail"),
        "A answered 102 Processing (an interim answer, and no final one)"
    );

    let bad_chunk = fake(|s, _| {
        let _ = s.write_all(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        );
        thread::sleep(Duration::from_millis(500));
    });
    let b = start_b(&bad_chunk, 1000);
    let reply = call(&b, "x");
    assert_kind(&reply, "bad_response", 502);
    assert!(
        reply
            .str("detail")
            .ends_with(r#"malformed chunk size line "zz""#),
        "{}",
        reply.body
    );
}
