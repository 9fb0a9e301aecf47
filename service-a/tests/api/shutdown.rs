//! SIGTERM: stop accepting, finish what is in flight, exit 0.

use testkit::http::get;

use crate::start_a;

/// Counted when A starts an injected delay: the request is then in flight.
const DELAY_STARTED: &str = "faults_injected_total{fault=\"delay\"}";

/// A request in flight when SIGTERM arrives still gets its answer; then exit 0.
#[test]
fn sigterm_lets_requests_finish() {
    let mut a = start_a("delay_ms = 500");
    let url = format!("{}/echo?msg=inflight", a.url);
    let in_flight = std::thread::spawn(move || get(&url));
    // In flight: A has read it and started its delay.
    a.wait_metric(DELAY_STARTED, 1.0);

    a.terminate();
    let reply = in_flight.join().unwrap();

    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, r#"{"echo":"inflight"}"#)
    );
    assert_eq!(a.wait_exit().code(), Some(0));
    a.wait_line(&["event=stopped", "drained=true"]);
}

/// Past the grace, A exits anyway (still 0), not hanging on a slow request.
#[test]
fn grace_bounds_the_wait() {
    let mut a = testkit::Launch::new(
        env!("CARGO_BIN_EXE_service-a"),
        "[server]\nport = 0\nshutdown_grace_ms = 100\n[fault]\ndelay_ms = 5000\n",
    )
    .start();
    let url = format!("{}/echo?msg=slow", a.url);
    std::thread::spawn(move || get(&url));
    a.wait_metric(DELAY_STARTED, 1.0);
    a.terminate();
    assert_eq!(a.wait_exit().code(), Some(0));
    a.wait_line(&["event=stopped", "drained=false"]);
}
