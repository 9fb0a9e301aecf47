//! B's keep-alive pool: reused connections never surface as errors, and no call
//! ever receives another call's answer.

use testkit::http::{get, get_with};
use testkit::Launch;

use crate::{start_a, start_b};

/// A restarted on the same port behind B: B's next call succeeds, though its
/// pooled connection died with the old A.
#[test]
fn a_restarted_behind_b_is_not_an_error() {
    let _clock = crate::timing();
    let mut a = start_a("");
    let b = start_b(&a.url, 1000);
    assert_eq!(get(&format!("{}/call-echo?msg=before", b.url)).status, 200);

    let port = a.port();
    let relaunch = a.relaunch(
        testkit::binary("service-a"),
        &format!("[server]\nport = {port}\n"),
    );
    a.kill();
    let _a2 = Launch::start(relaunch);

    let reply = get(&format!("{}/call-echo?msg=after", b.url));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["service_a"]["echo"], "after");
}

/// Calls abandoned at their deadline leave their late answers unread on their
/// connections; no later call may read one of them as its own.
#[test]
fn no_call_gets_another_calls_answer() {
    let _clock = crate::timing();
    let a = start_a("");
    let b = start_b(&a.url, 200);
    let url = |msg: &str| format!("{}/call-echo?msg={msg}", b.url);

    for n in 1..=3 {
        // Late by less than A's abandon margin: A does send these answers.
        let slow = get_with(&url(&format!("slow{n}")), &[("x-fault-delay-ms", "250")]);
        assert_eq!(slow.json()["error"], "timeout", "{}", slow.body);
    }
    // B drops each abandoned connection, and A sees it. A pool that kept one
    // would leave A waiting to send its late answer there, into a later call.
    a.wait_lines(3, &["status=client_closed", "http_status=499"]);
    for n in 1..=10 {
        let msg = format!("fast{n}");
        let reply = get(&url(&msg));
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.json()["service_a"]["echo"], msg.as_str());
    }
}
