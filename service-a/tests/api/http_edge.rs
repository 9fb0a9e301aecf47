//! The HTTP edge under hostile or odd clients, byte for byte over raw sockets:
//! every refusal is a JSON answer with the right status, a log line, a metric
//! and a close; no client can exhaust, lock out or confuse A.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use testkit::edge::{
    assert_ab_clean, assert_counted, assert_http10_rules, assert_refusal, assert_refused,
    send_until_close, shorten,
};
use testkit::http::{get, is_close, Conn};
use testkit::{rss_kib, Launch, Proc};

/// The header timeout of most tests here: short, so that every test is fast.
const HEADER_TIMEOUT_MS: u64 = 300;

/// A with `server` in `[server]` and `fault` as its `[fault]` section.
fn a_with(server: &str, fault: &str) -> Proc {
    Launch::new(env!("CARGO_BIN_EXE_service-a"), &config(server, fault)).start()
}

fn config(server: &str, fault: &str) -> String {
    format!("[server]\nport = 0\n{server}\n\n[fault]\n{fault}\n")
}

/// A with a short header timeout and no faults.
fn a_quick() -> Proc {
    a_with(&format!("header_timeout_ms = {HEADER_TIMEOUT_MS}"), "")
}

/// Writes `first`, then `chunk` again and again until `max_bytes`, a write error
/// (the server closed), `stop` or `patience`; returns the bytes written and,
/// if writing stopped on a close, when.
fn flood(
    stream: &mut TcpStream,
    first: &[u8],
    chunk: &[u8],
    max_bytes: usize,
    (stop, patience): (&AtomicBool, Duration),
) -> (usize, Option<Instant>) {
    let deadline = Instant::now() + patience;
    stream
        .set_write_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    if let Err(e) = stream.write_all(first) {
        return (0, is_close(&e).then(Instant::now));
    }
    let mut written = first.len();
    while written < max_bytes && Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        match stream.write_all(chunk) {
            Ok(()) => written += chunk.len(),
            Err(e) if is_close(&e) => return (written, Some(Instant::now())),
            // Timed out: the server neither reads nor closes; keep trying until the deadline.
            Err(_) => {}
        }
    }
    (written, None)
}

/// A request line past 8 KiB is refused with 414 and the connection closed.
#[test]
fn long_request_line_is_414() {
    let a = a_quick();
    let line = format!("GET /echo?msg={}", "a".repeat(64 * 1024));

    assert_refused(&a, line.as_bytes(), 414, Duration::from_secs(2));
    assert_eq!(get(&format!("{}/health", a.url)).status, 200);
}

/// Four clients streaming MiBs of request line: each gets 414 and a close, and
/// A's memory stays within 10 MiB of idle the whole time. Memory is read
/// from /proc: elsewhere the test is listed as ignored, not passed.
#[test]
#[cfg_attr(
    not(any(target_os = "linux", target_os = "android")),
    ignore = "needs /proc to measure memory"
)]
fn endless_request_lines_do_not_grow_memory() {
    let a = a_quick();
    assert_eq!(get(&format!("{}/health", a.url)).status, 200);
    let rss = |pid| rss_kib(pid).expect("no /proc/PID/status: A's memory cannot be measured");
    let idle = rss(a.pid());
    let done = Arc::new(AtomicBool::new(false));

    let clients: Vec<_> = (0..4)
        .map(|_| {
            let authority = a.authority().to_owned();
            std::thread::spawn(move || {
                let mut conn = Conn::open(&authority);
                let chunk = vec![b'a'; 64 * 1024];
                let (written, closed) = flood(
                    conn.stream(),
                    b"GET /echo?msg=",
                    &chunk,
                    16 << 20,
                    (&AtomicBool::new(false), Duration::from_secs(5)),
                );
                let closing = conn.read_to_close(Duration::from_secs(2));
                (written, closed.is_some(), closing)
            })
        })
        .collect();
    let mut peak = idle;
    let sampler = {
        let done = done.clone();
        let pid = a.pid();
        std::thread::spawn(move || {
            let mut peak = 0;
            let deadline = Instant::now() + Duration::from_secs(10);
            while !done.load(Ordering::Relaxed) && Instant::now() < deadline {
                peak = peak.max(rss(pid));
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        })
    };
    let results: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    done.store(true, Ordering::Relaxed);
    peak = peak.max(sampler.join().unwrap()).max(rss(a.pid()));

    for (written, closed_while_writing, closing) in &results {
        assert!(
            closing.bytes.starts_with(b"HTTP/1.1 414 "),
            "wrote {written} bytes (stopped by a close: {closed_while_writing}), read {:?}",
            closing.text()
        );
        assert!(closing.closed, "not closed after 414: {:?}", closing.text());
    }
    assert!(
        peak <= idle + 10 * 1024,
        "RSS grew from {idle} KiB to {peak} KiB"
    );
    assert_eq!(get(&format!("{}/health", a.url)).status, 200);
}

/// Headers over 8 KiB in all, or more than 128 fields, are refused with 431.
#[test]
fn oversized_header_sections_are_431() {
    let a = a_quick();
    let big = format!(
        "GET /health HTTP/1.1\r\nHost: a\r\n{}\r\n",
        format!("X-Big: {}\r\n", "y".repeat(3000)).repeat(3)
    );
    let fields: String = (0..129).map(|i| format!("X-F{i}: 1\r\n")).collect();
    let many = format!("GET /health HTTP/1.1\r\nHost: a\r\n{fields}\r\n");
    assert!(many.len() < 8 * 1024);

    for head in [big, many] {
        assert_refused(&a, head.as_bytes(), 431, Duration::from_secs(2));
    }
}

/// Malformed heads get 400 at once, long before a 10 s header timeout.
#[test]
fn malformed_heads_are_400_at_once() {
    let a = a_with("header_timeout_ms = 10000", "");
    let heads: [&[u8]; 7] = [
        b"GARBAGE\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET /health HTTP/1.1\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n folded\r\n\r\n",
        b"GET /health HTTP/1.1\nHost: a\n\n",
        b"GET /health HTTP/1.1\r\nHost: a\nX-A: 1\r\n\r\n",
    ];
    for head in heads {
        let took = assert_refused(&a, head, 400, Duration::from_secs(2));
        assert!(
            took < Duration::from_secs(1),
            "{:?}: {took:?}",
            shorten(head)
        );
    }
}

/// A Host that is not host[:port] is refused, and never routed as part of the path.
#[test]
fn host_with_a_path_is_400_never_routed() {
    let a = a_quick();
    let head = b"GET /health HTTP/1.1\r\nHost: x/echo?msg=pwned&\r\nConnection: close\r\n\r\n";

    let from = a.line_count();
    let (reply, _) = send_until_close(&a, head, Duration::from_secs(2));

    assert_refusal(&a, from, &reply, 400);
    assert!(!reply.body.contains(r#"{"echo""#), "{}", reply.body);
    assert!(
        !a.lines()[from..]
            .iter()
            .any(|l| l.contains("endpoint=/echo")),
        "{:#?}",
        &a.lines()[from..]
    );
}

/// An absolute-form target is served like its origin form.
#[test]
fn absolute_form_target_is_served() {
    let a = a_quick();
    let head = format!(
        "GET http://{0}/echo?msg=hi HTTP/1.1\r\nHost: {0}\r\nConnection: close\r\n\r\n",
        a.authority()
    );

    let (reply, _) = send_until_close(&a, head.as_bytes(), Duration::from_secs(2));

    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body, r#"{"echo":"hi"}"#);
}

/// Content-Length that is doubled with another value, signed or not a number: 400.
#[test]
fn ambiguous_content_length_is_400() {
    let a = a_quick();
    let requests = [
        "GET /health HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "GET /health HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello",
        "GET /health HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\nhello",
    ];
    for request in requests {
        assert_refused(&a, request.as_bytes(), 400, Duration::from_secs(2));
    }
}

/// Transfer codings other than a lone `chunked`: 501.
#[test]
fn unsupported_transfer_codings_are_501() {
    let a = a_quick();
    for coding in ["gzip, chunked", "chunked, identity"] {
        let request = format!(
            "GET /health HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {coding}\r\n\r\n0\r\n\r\n"
        );
        assert_refused(&a, request.as_bytes(), 501, Duration::from_secs(2));
    }
}

/// Content-Length beside Transfer-Encoding: chunked (a smuggling vector): 400.
#[test]
fn content_length_with_chunked_is_400() {
    let a = a_quick();
    let request = "GET /health HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\
                   Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_refused(&a, request.as_bytes(), 400, Duration::from_secs(2));
}

/// A method A has never heard of: 501.
#[test]
fn unknown_method_is_501() {
    let a = a_quick();
    assert_refused(
        &a,
        b"FOO /health HTTP/1.1\r\nHost: a\r\n\r\n",
        501,
        Duration::from_secs(2),
    );
}

/// HTTP versions other than 1.0 and 1.1: 505.
#[test]
fn unsupported_versions_are_505() {
    let a = a_quick();
    for version in ["HTTP/2.0", "HTTP/1.2"] {
        let head = format!("GET /health {version}\r\nHost: a\r\n\r\n");
        assert_refused(&a, head.as_bytes(), 505, Duration::from_secs(2));
    }
}

/// A body announced over 1 MiB is refused from its head: 413, before any body byte.
#[test]
fn body_over_1_mib_is_413() {
    let a = a_quick();
    let head = b"GET /echo?msg=x HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n";
    assert_refused(&a, head, 413, Duration::from_secs(2));
}

/// A head that never completes: 408 and a close, within the timeout plus a few hundred ms.
#[test]
fn incomplete_head_is_408_on_time() {
    let a = a_quick();
    let took = assert_refused(
        &a,
        b"GET /echo?msg=x HTTP/1.1\r\nHost: a\r\n",
        408,
        Duration::from_secs(3),
    );
    let low = Duration::from_millis(HEADER_TIMEOUT_MS);
    let high = Duration::from_millis(HEADER_TIMEOUT_MS + 400);
    assert!((low..high).contains(&took), "{took:?}");
}

/// A keep-alive connection left idle after an answer is closed after the header
/// timeout, with no further bytes (measured on that very connection).
#[test]
fn idle_keep_alive_is_closed_silently() {
    let a = a_quick();
    let mut conn = Conn::open(a.authority());
    assert_eq!(conn.get("/health").status, 200);

    let closing = conn.read_to_close(Duration::from_secs(3));

    assert!(closing.closed, "still open after {:?}", closing.elapsed);
    assert!(closing.bytes.is_empty(), "{:?}", closing.text());
    let low = Duration::from_millis(HEADER_TIMEOUT_MS - 50);
    let high = Duration::from_millis(HEADER_TIMEOUT_MS + 400);
    assert!(
        (low..high).contains(&closing.elapsed),
        "{:?}",
        closing.elapsed
    );
}

/// Announced bodies that never come: 408 and a close after the header timeout
/// (after `100 Continue` when asked for), and with both of max_connections = 2
/// slots held by such clients a new request is still answered in time.
#[test]
fn missing_bodies_are_408_and_free_their_slots() {
    let a = a_with(
        &format!("header_timeout_ms = {HEADER_TIMEOUT_MS}\nmax_connections = 2"),
        "",
    );
    // Slot 1: a first request answered proves the connection holds a slot.
    let mut plain = Conn::open(a.authority());
    assert_eq!(plain.get("/health").status, 200);
    let plain_sent = Instant::now();
    plain.write_raw(b"GET /health HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n");
    // Slot 2: `100 Continue` proves this one is being served.
    let mut expecting = Conn::open(a.authority());
    let expecting_sent = Instant::now();
    expecting.write_raw(
        b"GET /health HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\n",
    );
    let mut continued = [0u8; 25];
    let wait = Some(Duration::from_secs(2));
    expecting.stream().set_read_timeout(wait).unwrap();
    std::io::Read::read_exact(expecting.stream(), &mut continued).expect("100 Continue");
    assert_eq!(
        String::from_utf8_lossy(&continued),
        "HTTP/1.1 100 Continue\r\n\r\n"
    );

    // A third client waits for a slot.
    let mut third = Conn::open(a.authority());
    let third_sent = Instant::now();
    third.write_raw(b"GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");

    let limit = Duration::from_millis(HEADER_TIMEOUT_MS) + Duration::from_secs(1);
    let reply = third
        .read_reply(limit)
        .expect("third client served in time");
    assert_eq!(reply.status, 200);
    assert!(third_sent.elapsed() < limit, "{:?}", third_sent.elapsed());
    for (mut conn, sent) in [(plain, plain_sent), (expecting, expecting_sent)] {
        let closing = conn.read_to_close(Duration::from_secs(3));
        let took = sent.elapsed();
        assert!(closing.closed, "not closed: {:?}", closing.text());
        assert!(
            closing.bytes.starts_with(b"HTTP/1.1 408 "),
            "{:?}",
            closing.text()
        );
        assert!(
            (Duration::from_millis(HEADER_TIMEOUT_MS - 50)..limit).contains(&took),
            "{took:?}"
        );
    }
    assert_counted(&a.url, 408);
}

/// A client that pipelines requests and never reads the answers is cut off once
/// A's writes make no progress for the header timeout (not sooner: every
/// request is well-formed); with max_connections = 1 a new client is then served.
#[test]
fn clients_that_never_read_are_cut_off() {
    let a = a_with(
        &format!("header_timeout_ms = {HEADER_TIMEOUT_MS}\nmax_connections = 1"),
        "",
    );
    // The flood's connection proves it holds the one slot before it floods.
    let mut greedy = Conn::open(a.authority());
    assert_eq!(greedy.get("/health").status, 200);
    let request = format!(
        "GET /echo?msg={} HTTP/1.1\r\nHost: a\r\n\r\n",
        "m".repeat(1024)
    );
    let batch = request.repeat(64);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let flooding = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            // At most 100 000 requests (~100 MiB) or 8 s: far more than socket buffers hold.
            let written = flood(
                greedy.stream(),
                b"",
                batch.as_bytes(),
                100_000 * request.len(),
                (&stop, Duration::from_secs(8)),
            );
            (written, greedy)
        })
    };

    let mut fresh = Conn::open(a.authority());
    fresh.write_raw(b"GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    let reply = fresh.read_reply(Duration::from_secs(5));
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let ((written, cut), mut greedy) = flooding.join().unwrap();

    let reply = reply.unwrap_or_else(|e| panic!("new client not served: {e}"));
    assert_eq!(reply.status, 200);
    assert!(
        (Duration::from_millis(HEADER_TIMEOUT_MS - 50)..Duration::from_secs(4)).contains(&took),
        "new client served after {took:?}; the flood wrote {written} bytes"
    );
    // Cut off: a write failed on the close, or reading shows it (after the answers A wrote).
    if cut.is_none() {
        let closing = greedy.read_to_close(Duration::from_secs(3));
        assert!(
            closing.closed,
            "the flood ({written} bytes) was never cut off"
        );
    }
}

/// Requests pipelined in one write, and a chunked body whose end arrives in
/// pieces, are each answered, in order, on the same connection; one log line each.
#[test]
fn pipelined_requests_are_answered_in_order() {
    let a = a_quick();
    let from = a.line_count();
    let mut conn = Conn::open(a.authority());
    conn.stream().set_nodelay(true).unwrap();

    conn.write_raw(
        b"GET /echo?msg=one HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /echo?msg=two HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /echo?msg=three HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    for msg in ["one", "two", "three"] {
        let reply = conn.read_reply(Duration::from_secs(2)).unwrap();
        assert_eq!(reply.body, format!(r#"{{"echo":"{msg}"}}"#));
    }

    // A chunked body: its last chunk and trailer in pieces, then another request.
    let pieces: [&[u8]; 5] = [
        b"GET /echo?msg=four HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        b"0\r",
        b"\nX-Trailer: 1\r\n",
        b"\r",
        b"\nGET /echo?msg=five HTTP/1.1\r\nHost: a\r\n\r\n",
    ];
    for piece in pieces {
        conn.write_raw(piece);
        // Not a wait for the server: it only keeps the pieces in separate segments.
        std::thread::sleep(Duration::from_millis(20));
    }
    for msg in ["four", "five"] {
        let reply = conn.read_reply(Duration::from_secs(2)).unwrap();
        assert_eq!(reply.body, format!(r#"{{"echo":"{msg}"}}"#));
    }

    // A later request's line proves every earlier line is written.
    drop(conn);
    assert_eq!(get(&format!("{}/health", a.url)).status, 200);
    a.wait_line_after(from, &["endpoint=/health"]);
    let echoed = a.lines()[from..]
        .iter()
        .filter(|l| l.contains("endpoint=/echo") && l.contains("status=ok"))
        .count();
    assert_eq!(echoed, 5, "{:#?}", &a.lines()[from..]);
}

/// HTTP/1.0 without keep-alive: an answer with content-length, then a close;
/// with `Connection: keep-alive` the connection stays for a second request.
#[test]
fn http_1_0_closes_unless_kept_alive() {
    assert_http10_rules(&a_with("header_timeout_ms = 10000", ""));
}

/// Counted when A starts an injected delay: the event to wait for before
/// acting on a request that is in its delay.
const DELAY_STARTED: &str = "faults_injected_total{fault=\"delay\"}";

/// Sends `request`, lets A start on it, closes, and returns when A logged
/// `status=client_closed http_status=499`, and how long after the close.
fn close_during_delay(a: &Proc, request: &[u8]) -> Duration {
    let from = a.line_count();
    let mut conn = Conn::open(a.authority());
    conn.write_raw(request);
    a.wait_metric(DELAY_STARTED, 1.0);
    drop(conn);
    let closed = Instant::now();
    let line = a.wait_line_after(from, &["status=client_closed"]);
    let took = closed.elapsed();
    assert!(
        line.contains("status=client_closed http_status=499"),
        "{line}"
    );
    assert!(line.contains("fault=delay"), "what A was doing: {line}");
    took
}

/// A client that leaves during a configured delay is noticed at once: 499 logged.
#[test]
fn client_gone_during_configured_delay_is_499() {
    let a = a_with("", "delay_ms = 3000");
    let took = close_during_delay(&a, b"GET /echo?msg=x HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(took < Duration::from_millis(600), "{took:?}");
}

/// The same for a delay asked for by header.
#[test]
fn client_gone_during_header_delay_is_499() {
    let a = a_quick();
    let took = close_during_delay(
        &a,
        b"GET /echo?msg=x HTTP/1.1\r\nHost: a\r\nx-fault-delay-ms: 3000\r\n\r\n",
    );
    assert!(took < Duration::from_millis(600), "{took:?}");
}

/// SIGTERM with a request waiting on a 10 s delay and a 300 ms grace: the
/// request is logged as aborted, then A stops, exit code 0.
#[test]
fn sigterm_aborts_requests_past_the_grace() {
    let mut a = a_with("shutdown_grace_ms = 300", "delay_ms = 10000");
    let mut conn = Conn::open(a.authority());
    conn.write_raw(b"GET /echo?msg=slow HTTP/1.1\r\nHost: a\r\n\r\n");
    a.wait_metric(DELAY_STARTED, 1.0);

    a.terminate();
    let signalled = Instant::now();

    assert_eq!(a.wait_exit().code(), Some(0));
    let took = signalled.elapsed();
    assert!(took < Duration::from_millis(1300), "exit after {took:?}");
    let aborted = a.wait_line(&["status=aborted"]);
    let stopped = a.wait_line(&["event=stopped"]);
    let lines = a.lines();
    let at = |l: &String| lines.iter().position(|x| x == l).unwrap();
    assert!(at(&aborted) < at(&stopped), "{lines:#?}");
}

/// SIGHUP re-reads the config at once, and A stays alive.
/// Unix only: Windows has no SIGHUP.
#[cfg(unix)]
#[test]
fn sighup_reloads_the_config() {
    let a = a_quick();
    a.write_config(&config(
        &format!("header_timeout_ms = {HEADER_TIMEOUT_MS}"),
        "fail = true",
    ));
    let from = a.line_count();
    let sent = Instant::now();
    a.hangup();

    let line = a.wait_line_after(from, &["event=config_reloaded"]);
    assert!(line.contains("fail=true"), "{line}");
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(get(&format!("{}/health", a.url)).status, 200);
    assert_eq!(get(&format!("{}/echo?msg=x", a.url)).status, 500);
}

/// `ab -n 2000 -c 20`, with and without keep-alive: no failed request.
#[test]
#[ignore = "needs ab (apache2-utils); .ci/run installs it and runs ignored tests"]
fn ab_load_has_no_failures() {
    let a = Launch::new(env!("CARGO_BIN_EXE_service-a"), &config("", ""))
        .discard_lines()
        .start();
    assert_ab_clean(&format!("{}/health", a.url));
}

/// A body trickled a byte at a time holds its slot no longer than one that
/// never comes: the body has the timeout in all, not per read. With
/// max_connections = 2 held by tricklers (each has had A's `100 Continue`,
/// so A holds both), a new client waits for a slot, and is served once a
/// trickler is cut (after its 408, not before), in time.
#[test]
fn trickled_bodies_do_not_hold_slots() {
    let a = a_with(
        &format!("header_timeout_ms = {HEADER_TIMEOUT_MS}\nmax_connections = 2"),
        "",
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (seen, heads_read) = std::sync::mpsc::channel();
    let tricklers: Vec<_> = (0..2)
        .map(|_| {
            let (authority, stop, seen) = (a.authority().to_owned(), stop.clone(), seen.clone());
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(&authority).unwrap();
                let head = b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\
                             Expect: 100-continue\r\n\r\n";
                let _ = s.write_all(head);
                // A answers `100 Continue` once it has read the head: it holds a slot.
                let mut answer = [0u8; 25];
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let continued = std::io::Read::read_exact(&mut s, &mut answer).is_ok()
                    && answer.starts_with(b"HTTP/1.1 100 Continue\r\n");
                let _ = seen.send(continued);
                // A byte every 100 ms: progress, but never the whole body.
                let deadline = Instant::now() + Duration::from_secs(5);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    if s.write_all(b"x").is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        })
        .collect();
    for _ in 0..2 {
        let continued = heads_read.recv_timeout(Duration::from_secs(10));
        assert_eq!(continued, Ok(true), "a trickler got no 100 Continue");
    }

    let started = Instant::now();
    let reply = get(&format!("{}/health", a.url));
    let took = started.elapsed();
    // The slots were held: /health was served only once a trickler was cut,
    // whose 408 is logged before its slot is freed.
    a.wait_line(&["endpoint=/health"]);
    let lines = a.lines();
    let first = |part: &str| lines.iter().position(|l| l.contains(part));
    let (cut, served) = (first("http_status=408"), first("endpoint=/health"));
    stop.store(true, Ordering::Relaxed);
    for t in tricklers {
        t.join().unwrap();
    }
    assert!(
        cut.is_some_and(|cut| Some(cut) < served),
        "/health served before any trickler was cut: {lines:#?}"
    );
    assert_eq!(reply.status, 200);
    let limit = Duration::from_millis(HEADER_TIMEOUT_MS) + Duration::from_secs(1);
    assert!(took < limit, "served after {took:?}");
    a.wait_lines(2, &["http_status=408", "request body not received"]);
}

/// A client that closes while A waits on a delay is noticed even when it
/// pipelined more than A's buffer holds behind that request: 499 at once.
#[test]
fn client_gone_behind_a_full_buffer_is_499() {
    let a = a_quick();
    let from = a.line_count();
    let mut request =
        b"GET /echo?msg=x HTTP/1.1\r\nHost: a\r\nx-fault-delay-ms: 5000\r\n\r\n".to_vec();
    request.extend(std::iter::repeat_n(b'X', 9000));
    let mut conn = Conn::open(a.authority());
    conn.write_raw(&request);
    a.wait_metric(DELAY_STARTED, 1.0);
    drop(conn);
    let closed = Instant::now();
    let line = a.wait_line_after(from, &["endpoint=/echo", "status=client_closed"]);
    assert!(line.contains("http_status=499"), "{line}");
    assert!(
        closed.elapsed() < Duration::from_millis(600),
        "{:?}",
        closed.elapsed()
    );
}

/// A request target whose bytes would cut a UTF-8 character where A looks
/// for `http://` is a 400 like any other, with its log line: not a panic.
#[test]
fn utf8_targets_are_400_not_a_panic() {
    let a = a_quick();
    for head in [
        "GET abcdef\u{e9}x HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET abcdefg\u{e9}x HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        assert_refused(&a, head.as_bytes(), 400, Duration::from_secs(2));
    }
    assert!(a.stderr().is_empty(), "{}", a.stderr());
}

/// Chunked framing a lenient parser would read differently (a bare LF in an
/// extension, an empty size line, a request line as a trailer) is a 400.
#[test]
fn lenient_chunk_framing_is_400() {
    let a = a_quick();
    for body in [
        "0;\n\r\nGET /health HTTP/1.1\r\nHost: a\r\n\r\n",
        "\r\n\r\n",
        "0\r\nGET /health HTTP/1.1\r\n\r\n",
    ] {
        let request =
            format!("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
        assert_refused(&a, request.as_bytes(), 400, Duration::from_secs(2));
    }
}

/// A stalled body's line is written when the body is done: a client that
/// leaves after the head is logged 499, with the fault it left during.
#[test]
fn client_gone_during_a_stalled_body_is_499() {
    let a = a_quick();
    let from = a.line_count();
    let mut conn = Conn::open(a.authority());
    conn.write_raw(b"GET /echo?msg=x HTTP/1.1\r\nHost: a\r\nx-fault-body-delay-ms: 5000\r\n\r\n");
    let mut head = [0u8; 12];
    std::io::Read::read_exact(conn.stream(), &mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    drop(conn);
    let closed = Instant::now();
    let line = a.wait_line_after(from, &["endpoint=/echo", "status=client_closed"]);
    assert!(
        line.contains("http_status=499") && line.contains("fault=body_delay"),
        "{line}"
    );
    assert!(
        closed.elapsed() < Duration::from_millis(600),
        "{:?}",
        closed.elapsed()
    );
    assert!(
        !a.lines()[from..]
            .iter()
            .any(|l| l.contains("endpoint=/echo") && l.contains("status=ok")),
        "{:#?}",
        &a.lines()[from..]
    );
}

/// A stalled body read to its end is logged `status=ok`, once, with the
/// time the body took: the line comes when the last byte is handed over.
#[test]
fn a_stalled_body_read_to_the_end_is_ok() {
    let a = a_quick();
    let from = a.line_count();
    let reply = testkit::http::get_with(
        &format!("{}/echo?msg=x", a.url),
        &[("x-fault-body-delay-ms", "100")],
    );
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, r#"{"echo":"x"}"#)
    );
    let line = a.wait_line_after(from, &["endpoint=/echo"]);
    assert!(
        line.contains("status=ok") && line.contains("fault=body_delay"),
        "{line}"
    );
    let latency: u64 = testkit::field(&line, "latency_ms")
        .unwrap()
        .parse()
        .unwrap();
    assert!(latency >= 100, "{line}");
    // The /metrics request's line proves every earlier line is written.
    testkit::http::get(&format!("{}/metrics", a.url));
    a.wait_line_after(from, &["endpoint=/metrics"]);
    let echoes = a.lines()[from..]
        .iter()
        .filter(|l| l.contains("endpoint=/echo"))
        .count();
    assert_eq!(echoes, 1, "{:#?}", &a.lines()[from..]);
}
