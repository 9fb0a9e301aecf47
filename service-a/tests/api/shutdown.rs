//! SIGTERM: stop accepting, finish what is in flight, exit 0.

use std::time::Duration;

use testkit::http::get;

use crate::start_a;

/// A request in flight when SIGTERM arrives still gets its answer; then exit 0.
#[test]
fn sigterm_lets_requests_finish() {
    let mut a = start_a("delay_ms = 500");
    let url = format!("{}/echo?msg=inflight", a.url);
    let in_flight = std::thread::spawn(move || get(&url));
    // The request is in flight once A has read it: wait for the connection to be accepted.
    std::thread::sleep(Duration::from_millis(100));

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
    std::thread::sleep(Duration::from_millis(100));
    a.terminate();
    assert_eq!(a.wait_exit().code(), Some(0));
    a.wait_line(&["event=stopped", "drained=false"]);
}
