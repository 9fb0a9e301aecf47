//! Retries within the deadline and a budget, the circuit breaker, readiness,
//! deadline propagation, and connection reuse.

use std::time::{Duration, Instant};

use testkit::fake::refused_url;
use testkit::http::{get, Reply};
use testkit::{metric, Launch, Proc};

use crate::start_a;

fn b_with(upstream: &str, extra: &str) -> Proc {
    let config = format!("[server]\nport = 0\n\n[upstream]\nurl = \"{upstream}\"\n{extra}\n");
    Launch::new(env!("CARGO_BIN_EXE_service-b"), &config).start()
}

fn call(b: &Proc) -> Reply {
    get(&format!("{}/call-echo?msg=r", b.url))
}

fn metrics(p: &Proc) -> String {
    get(&format!("{}/metrics", p.url)).body
}

/// With A down, retries back off and still answer within the call's budget.
#[test]
fn retries_stay_inside_the_budget() {
    let _clock = crate::timing();
    let b = b_with(
        &refused_url(),
        "timeout_ms = 300\nretries = 3\nbackoff_base_ms = 20\nbackoff_max_ms = 80",
    );
    let reply = call(&b);
    assert_eq!(reply.json()["error"], "connection_refused");
    assert_eq!(reply.json()["attempts"], 4, "{}", reply.body);
    assert!(
        reply.elapsed < Duration::from_millis(350),
        "{:?}",
        reply.elapsed
    );
    for attempt in 1..=3 {
        b.wait_line(&[
            "event=retry",
            &format!("attempt={attempt}"),
            "error=connection_refused",
        ]);
    }
    b.wait_line(&["endpoint=/call-echo", "attempts=4"]);
}

/// A retried 5xx succeeds on the second attempt (`fail_first = 1`).
#[test]
fn retry_on_upstream_status_succeeds_second_time() {
    let _clock = crate::timing();
    let a = start_a("fail_first = 1\nfail_status = 503");
    let b = b_with(
        &a.url,
        "retries = 1\nretry_on = [\"connection_refused\", \"connection_reset\", \"upstream_status\"]",
    );
    let reply = call(&b);
    assert_eq!(reply.status, 200, "{}", reply.body);
    b.wait_line(&["event=retry", "attempt=1", "error=upstream_status"]);
    b.wait_line(&["endpoint=/call-echo", "status=ok", "attempts=2"]);
    a.wait_lines(2, &["endpoint=/echo"]);
}

/// Not listed in `retry_on` (the default list has no upstream_status): one attempt.
#[test]
fn unlisted_kinds_are_not_retried() {
    let _clock = crate::timing();
    let a = start_a("fail = true");
    let b = b_with(&a.url, "retries = 3");
    let reply = call(&b);
    assert_eq!(reply.json()["error"], "upstream_status");
    assert_eq!(reply.json()["attempts"], 1);
}

/// Under sustained failure the retry budget keeps retries near 20% of calls.
#[test]
fn retry_budget_caps_retries() {
    let _clock = crate::timing();
    let b = b_with(
        &refused_url(),
        "retries = 3\nbackoff_base_ms = 1\nbackoff_max_ms = 1",
    );
    for _ in 0..100 {
        assert_eq!(call(&b).json()["error"], "connection_refused");
    }
    let text = metrics(&b);
    let attempts = metric(&text, "upstream_attempts_total");
    // 100 calls + at most (10 reserve + 20% of 100) retries, not 100 + 300.
    assert!(
        (100.0..=130.0).contains(&attempts),
        "{attempts} attempts\n{text}"
    );
    assert!(
        metric(&text, "upstream_retries_denied_total") > 0.0,
        "{text}"
    );
}

/// The breaker opens after the threshold, fails fast, half-opens after open_ms,
/// closes on a successful trial and reopens on a failed one.
#[test]
fn circuit_breaker_cycle() {
    let _clock = crate::timing();
    let mut a = start_a("");
    let b = b_with(
        &a.url,
        "timeout_ms = 500\n\n[circuit_breaker]\nenabled = true\nfailure_threshold = 3\nopen_ms = 300",
    );
    assert_eq!(call(&b).status, 200);
    let port = a.port();
    let relaunch = a.relaunch(
        testkit::binary("service-a"),
        &format!("[server]\nport = {port}\n"),
    );
    a.kill();

    for _ in 0..3 {
        assert_eq!(call(&b).json()["error"], "connection_refused");
    }
    b.wait_line(&["event=circuit", "state=open", "failures=3"]);
    let fast = call(&b);
    assert_eq!(fast.json()["error"], "circuit_open", "{}", fast.body);
    assert_eq!(fast.json()["attempts"], 0);
    assert!(
        fast.elapsed < Duration::from_millis(20),
        "{:?}",
        fast.elapsed
    );
    assert_eq!(metric(&metrics(&b), "circuit_breaker_state"), 1.0);

    // A is back; after open_ms one trial call closes the breaker.
    let _a2 = relaunch.start();
    let deadline = Instant::now() + Duration::from_secs(5);
    let reply = loop {
        let reply = call(&b);
        if reply.status == 200 || Instant::now() > deadline {
            break reply;
        }
        assert_eq!(reply.json()["error"], "circuit_open", "{}", reply.body);
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(reply.status, 200, "{}", reply.body);
    b.wait_line(&["event=circuit", "state=half_open"]);
    b.wait_line(&["event=circuit", "state=closed"]);
    assert_eq!(metric(&metrics(&b), "circuit_breaker_state"), 0.0);
}

/// A failed trial opens the breaker again at once.
#[test]
fn failed_trial_reopens() {
    let _clock = crate::timing();
    let b = b_with(
        &refused_url(),
        "\n[circuit_breaker]\nenabled = true\nfailure_threshold = 1\nopen_ms = 100",
    );
    assert_eq!(call(&b).json()["error"], "connection_refused");
    b.wait_line(&["event=circuit", "state=open"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while call(&b).json()["error"] == "circuit_open" {
        assert!(Instant::now() < deadline, "never half-opened");
        std::thread::sleep(Duration::from_millis(20));
    }
    b.wait_line(&["event=circuit", "state=half_open"]);
    assert_eq!(b.wait_lines(2, &["event=circuit", "state=open"]).len(), 2);
    assert_eq!(call(&b).json()["error"], "circuit_open");
}

/// When B gives up on a call it closes that connection; A sees the close and
/// stops working on the request at once, long before its injected delay ends.
#[test]
fn a_stops_when_b_gives_up() {
    let _clock = crate::timing();
    let a = start_a("delay_ms = 5000");
    let b = b_with(&a.url, "timeout_ms = 200");
    let started = Instant::now();
    assert_eq!(call(&b).json()["error"], "timeout");
    a.wait_line(&["endpoint=/echo", "status=client_closed", "http_status=499"]);
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
}

/// 200 calls through B reuse a handful of connections to A.
#[test]
fn connections_are_reused() {
    let _clock = crate::timing();
    let a = start_a("");
    let b = b_with(&a.url, "");
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let url = format!("{}/call-echo?msg=reuse", b.url);
            std::thread::spawn(move || (0..50).all(|_| get(&url).status == 200))
        })
        .collect();
    for t in threads {
        assert!(t.join().unwrap());
    }
    let opened = metric(&metrics(&b), "upstream_connections_opened_total");
    assert!(
        (1.0..=8.0).contains(&opened),
        "{opened} connections for 200 calls"
    );
}

/// A kept connection idle past `upstream.idle_timeout_ms` is not reused: B
/// opens a fresh one rather than race A's own idle close (a race that would
/// come back as a false `connection_reset`).
#[test]
fn idle_connections_expire_before_a_closes_them() {
    let _clock = crate::timing();
    let a = Launch::new(
        testkit::binary("service-a"),
        "[server]\nport = 0\nheader_timeout_ms = 300\n",
    )
    .start();
    let b = b_with(&a.url, "idle_timeout_ms = 100");
    assert_eq!(call(&b).status, 200);
    assert_eq!(call(&b).status, 200);
    let opened = || metric(&metrics(&b), "upstream_connections_opened_total");
    assert_eq!(opened(), 1.0, "a connection in use is reused");
    // Idle longer than B's 100 ms, shorter than A's 300 ms: B's rule alone decides.
    std::thread::sleep(Duration::from_millis(180));
    assert_eq!(call(&b).status, 200);
    assert_eq!(opened(), 2.0, "an expired connection is not reused");
}
