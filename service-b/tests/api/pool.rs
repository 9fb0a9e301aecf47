//! B's keep-alive pool: reused connections never surface as errors, and no call
//! ever receives another call's answer.

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use testkit::http::{get, get_with, Reply};
use testkit::{metric, Launch};

use crate::any_upstream::{fake, read_head};
use crate::{start_a, start_b};

/// How long the fake upstreams below take to answer a request.
const ANSWER_MS: u64 = 300;

/// Writes `{"echo": msg}` as a complete keep-alive answer.
fn answer(s: &mut TcpStream, msg: &str) -> bool {
    let body = format!("{{\"echo\":\"{msg}\"}}");
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
    s.write_all(format!("{head}{body}").as_bytes()).is_ok()
}

/// The msg of a request target `/echo?msg=X`.
fn msg_of(target: &str) -> String {
    target.rsplit('=').next().unwrap_or("").to_owned()
}

fn echo(reply: &Reply) -> String {
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["service_a"]["echo"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

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

/// An upstream answers one request twice: after `forge`, it sends a forged
/// answer to the next request at once, then that request's own answer
/// `ANSWER_MS` later. The caller whose request crossed the forged answer
/// may read it (inherent to HTTP/1.1); no later caller ever reads the
/// answer meant for the one before (the chain across callers: bob got
/// alice's answer, carol bob's).
#[test]
fn a_forged_answer_does_not_travel_from_caller_to_caller() {
    let _clock = crate::timing();
    let upstream = fake(|s, first| {
        let mut target = first.to_owned();
        let mut forge = false;
        loop {
            let msg = msg_of(&target);
            if forge && !answer(s, "FORGED") {
                return;
            }
            thread::sleep(Duration::from_millis(ANSWER_MS));
            if !answer(s, &msg) {
                return;
            }
            forge = msg == "forge";
            match read_head(s) {
                Some(next) => target = next,
                None => return,
            }
        }
    });
    let b = start_b(&upstream, 1000);
    let url = |msg: &str| format!("{}/call-echo?msg={msg}", b.url);
    assert_eq!(echo(&get(&url("forge"))), "forge");
    let crossed = echo(&get(&url("alice")));
    assert!(["alice", "FORGED"].contains(&crossed.as_str()), "{crossed}");
    for name in ["bob", "carol", "dave", "erin"] {
        assert_eq!(echo(&get(&url(name))), name, "after alice got {crossed}");
    }
}

/// An upstream closes each connection as the next request arrives on it,
/// without answering (its close crossed B's request, as an idle close or a
/// restart does): every call still succeeds, resent once on a fresh
/// connection, counted as a stale connection, not as an attempt against A.
#[test]
fn a_connection_closed_as_b_sends_is_not_an_error() {
    let _clock = crate::timing();
    let upstream = fake(|s, first| {
        answer(s, &msg_of(first));
        // The next request arrives; the upstream closes without a word.
        let _ = read_head(s);
    });
    let b = start_b(&upstream, 1000);
    for n in 0..10 {
        let msg = format!("m{n}");
        let reply = get(&format!("{}/call-echo?msg={msg}", b.url));
        assert_eq!(echo(&reply), msg);
    }
    let text = get(&format!("{}/metrics", b.url)).body;
    assert_eq!(metric(&text, "upstream_attempts_total"), 10.0, "{text}");
    assert_eq!(
        metric(&text, "upstream_stale_connections_total"),
        9.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "upstream_connections_opened_total"),
        10.0,
        "{text}"
    );
}
