//! What no caller or config edit can do to B (issue 21 and 22): forge the
//! trace its lines are filed under, or change B's file without B saying
//! which keys wait for a restart.

use std::time::{Duration, Instant};

use testkit::field;
use testkit::http::{get, Conn};

use crate::{b_config, start_a, start_b};

/// A traceparent that is not strictly W3C (short ids, uppercase, a leading
/// `+`, all zeros, version ff) or that comes twice starts a new trace in B,
/// and B sends A that new trace, not the caller's.
#[test]
fn bad_traceparent_means_a_new_trace_downstream_too() {
    let _clock = crate::timing();
    let a = start_a("");
    let b = start_b(&a.url, 1000);
    let good = "4bf92f3577b34da6a3ce929d0e0e4736";
    let valid = format!("00-{good}-00f067aa0ba902b7-01");
    for headers in [
        vec!["00-1-2-01".to_owned()],
        vec![format!("00-{}-00f067aa0ba902b7-01", good.to_uppercase())],
        vec![format!("+0-{good}-00f067aa0ba902b7-01")],
        vec![format!("00-{good}-{}-01", "0".repeat(16))],
        vec![format!("ff-{good}-00f067aa0ba902b7-01")],
        vec![valid.clone(), valid.clone()],
    ] {
        let mut head = format!(
            "GET /call-echo?msg=t HTTP/1.1\r\nHost: {}\r\n",
            b.authority()
        );
        for h in &headers {
            head.push_str(&format!("traceparent: {h}\r\n"));
        }
        head.push_str("\r\n");
        let (from_a, from_b) = (a.line_count(), b.line_count());
        let reply = Conn::open(b.authority()).send(head.as_bytes());
        assert_eq!(reply.status, 200, "{headers:?}");
        let b_line = b.wait_line_after(from_b, &["endpoint=/call-echo"]);
        let trace = field(&b_line, "trace_id").unwrap();
        assert_ne!(trace, good, "{headers:?} was continued");
        assert_eq!(trace.len(), 32);
        a.wait_line_after(from_a, &["endpoint=/echo", &format!("trace_id={trace}")]);
    }
}

/// Editing B's file while B runs: B applies nothing live, and says so,
/// naming the keys that changed, within the watcher's bound; a bad edit
/// is a config_error; SIGHUP reads the file at once.
#[test]
fn edits_to_b_name_the_keys_that_need_a_restart() {
    let b = start_b("http://127.0.0.1:9", 1000);
    let from = b.line_count();
    let saved = Instant::now();
    b.write_config(&format!(
        "{}\n[circuit_breaker]\nenabled = true\n",
        b_config("http://127.0.0.1:9", 500)
    ));
    let line = b.wait_line_after(from, &["event=config_restart_needed"]);
    let took = saved.elapsed();
    assert_eq!(
        field(&line, "keys").as_deref(),
        Some("circuit_breaker.enabled,upstream.timeout_ms"),
        "{line}"
    );
    assert!(took < Duration::from_millis(450), "said after {took:?}");

    let from = b.line_count();
    b.write_config("[upstream]\ntimeout_ms = 0\n");
    let line = b.wait_line_after(from, &["event=config_error"]);
    assert!(line.contains("upstream.timeout_ms = 0"), "{line}");
    assert!(line.contains("keeping the last good settings"), "{line}");

    // B still runs what it started with.
    assert_eq!(get(&format!("{}/health", b.url)).status, 200);

    #[cfg(unix)]
    {
        b.write_config(&b_config("http://127.0.0.1:9", 700));
        b.wait_line(&["event=config_restart_needed", "keys=upstream.timeout_ms"]);
        let from = b.line_count();
        let sent = Instant::now();
        let status = std::process::Command::new("kill")
            .args(["-HUP", &b.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        b.wait_line_after(from, &["event=sighup"]);
        b.wait_line_after(
            from,
            &["event=config_restart_needed", "keys=upstream.timeout_ms"],
        );
        assert!(
            sent.elapsed() < Duration::from_millis(450),
            "{:?}",
            sent.elapsed()
        );
    }
}
