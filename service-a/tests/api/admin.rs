//! The control API (`[admin] listen`): set, patch, read and clear A's faults
//! over HTTP; each change applies to the very next request, on a kept-alive
//! connection too; a bad request changes nothing; the file wins when saved.

use testkit::http::{get, Conn, Reply};
use testkit::upstream::Mirror;
use testkit::{field, metric, Launch, Proc};

/// A in proxy mode in front of a mirror, with its control API on; the API's address.
fn start(up: &Mirror, fault: &str) -> (Proc, String) {
    let a = Launch::new(env!("CARGO_BIN_EXE_service-a"), &config(up, fault)).start();
    let line = a.wait_line(&["event=admin_start"]);
    let url = field(&line, "url").unwrap();
    (a, url.trim_start_matches("http://").to_owned())
}

fn config(up: &Mirror, fault: &str) -> String {
    format!(
        "[server]\nport = 0\n\n[proxy]\nupstream = \"{}\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n[fault]\n{fault}\n",
        up.url
    )
}

/// One call to the control API, on a connection of its own.
fn call(admin: &str, method: &str, body: &str) -> Reply {
    let mut conn = Conn::open(admin);
    conn.send(
        format!(
            "{method} /faults HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

#[test]
fn set_patch_read_clear_on_a_kept_alive_connection() {
    let up = Mirror::start();
    let (a, admin) = start(&up, "");
    let mut client = Conn::open(a.authority());
    assert_eq!(client.get("/orders").status, 200);

    let read = call(&admin, "GET", "");
    assert_eq!((read.status, read.str("source").as_str()), (200, "file"));

    // Set: the very next request on the same connection fails.
    let set = call(&admin, "PUT", r#"{"fail": true, "fail_status": 503}"#);
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(set.str("source"), "api");
    let reply = client.get("/orders");
    assert_eq!(
        (reply.status, reply.header("x-fault-injected")),
        (503, Some("fail"))
    );
    let line = a.wait_line(&["event=faults_changed", "source=api"]);
    assert!(
        line.contains("fail=true") && line.contains("fail_status=503"),
        "{line}"
    );

    // Patch: one key changes, the rest stay.
    let patched = call(
        &admin,
        "PATCH",
        r#"{"fail_status": 429, "retry_after_s": 3}"#,
    );
    assert_eq!(patched.json()["faults"]["fail"], true);
    let reply = client.get("/orders");
    assert_eq!(
        (reply.status, reply.header("retry-after")),
        (429, Some("3"))
    );

    // A bad request is a 400 naming what is wrong, and nothing changes.
    for (body, says) in [
        ("{\"fail\": ", "not JSON"),
        (r#"{"fial": true}"#, "unknown field `fial`"),
        (r#"{"probability": 2}"#, "fault.probability"),
    ] {
        let bad = call(&admin, "PATCH", body);
        assert_eq!(bad.status, 400, "{body}");
        assert!(bad.str("error").contains(says), "{body}: {}", bad.body);
    }
    assert_eq!(
        client.get("/orders").status,
        429,
        "unchanged by bad requests"
    );
    let read = call(&admin, "GET", "");
    assert_eq!(read.json()["faults"]["fail_status"], 429);

    // Visible in A's /metrics.
    let metrics = get(&format!("{}/metrics", a.url)).body;
    assert_eq!(metric(&metrics, "faults_source{source=\"api\"}"), 1.0);
    assert_eq!(
        metric(&metrics, "faults_changes_total{source=\"api\"}"),
        2.0
    );

    // Clear: the next request goes through untouched.
    let cleared = call(&admin, "DELETE", "");
    assert_eq!(cleared.json()["faults"]["fail"], false);
    let reply = client.get("/orders");
    assert_eq!(
        (reply.status, reply.header("x-upstream")),
        (200, Some("mirror"))
    );
}

/// The API's set stands until the file is saved with a change; then the file's.
#[test]
fn the_file_wins_when_saved() {
    let up = Mirror::start();
    let (a, admin) = start(&up, "");
    call(&admin, "PUT", r#"{"fail": true}"#);
    assert_eq!(get(&format!("{}/x", a.url)).status, 500);
    let from = a.line_count();
    a.write_config(&config(&up, "delay_ms = 1"));
    a.wait_line_after(from, &["event=config_reloaded", "delay_ms=1"]);
    let read = call(&admin, "GET", "");
    assert_eq!(read.str("source"), "file");
    assert_eq!(read.json()["faults"]["fail"], false);
    let reply = get(&format!("{}/x", a.url));
    assert_eq!(
        (reply.status, reply.header("x-fault-injected")),
        (200, Some("delay"))
    );
}

/// Off unless configured; a non-loopback address is refused at start.
#[test]
fn off_unless_configured_and_loopback_only() {
    let up = Mirror::start();
    let a = Launch::new(
        env!("CARGO_BIN_EXE_service-a"),
        &format!("[server]\nport = 0\n[proxy]\nupstream = \"{}\"\n", up.url),
    )
    .start();
    assert_eq!(get(&format!("{}/health", a.url)).status, 200);
    assert!(!a.lines().iter().any(|l| l.contains("event=admin_start")));
    testkit::assert_bad_config(
        env!("CARGO_BIN_EXE_service-a"),
        "[admin]\nlisten = \"0.0.0.0:8474\"\n",
        "admin.listen",
    );
}
