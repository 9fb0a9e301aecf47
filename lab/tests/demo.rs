//! `cargo lab demo` end to end: the report it writes states the facts of its run.

use std::process::Command;

use testkit::http::{parse, Reply};

/// One call as the report shows it: the `curl -i` command, the answer and
/// the log lines under it.
#[derive(Debug)]
struct Call {
    command: String,
    status: u16,
    /// The answer, parsed back from what the report shows.
    reply: Reply,
    /// Milliseconds, as the line under the answer states them.
    ms: u64,
    b_line: String,
    a_line: Option<String>,
}

fn trace_id(line: &str) -> &str {
    line.split(" trace_id=")
        .nth(1)
        .unwrap_or("")
        .split(' ')
        .next()
        .unwrap_or("")
}

/// Every call in the report, in order, from its console and log blocks.
fn calls(report: &str) -> Vec<Call> {
    let blocks: Vec<&str> = report.split("```").collect();
    let mut out = Vec::new();
    // Odd pieces are inside fences; a console block is followed by its prose
    // (the time) and then the block of log lines.
    for (i, block) in blocks.iter().enumerate() {
        let Some(console) = block.strip_prefix("console\n$ ") else {
            continue;
        };
        let (command, answer) = console.split_once('\n').expect("command line");
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let reply = parse(answer.replace('\n', "\r\n").as_bytes(), Default::default());
        let prose = blocks[i + 1];
        let ms = prose
            .split(" in ")
            .nth(1)
            .and_then(|s| s.split(" ms").next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no time in {prose:?}"));
        let logs = blocks[i + 2];
        let b_line = logs
            .lines()
            .find(|l| l.starts_with("B | "))
            .expect("B's line")
            .to_owned();
        let a_line = logs
            .lines()
            .find(|l| l.starts_with("A | 20"))
            .map(str::to_owned);
        out.push(Call {
            command: command.to_owned(),
            status,
            reply,
            ms,
            b_line,
            a_line,
        });
    }
    out
}

/// The demo runs by itself on free ports, stops what it started, and its
/// report shows every KIND the real A can cause, the deadline kept, A and B
/// paired by trace_id, A stopped and B recovering, and the three questions
/// answered from this run's calls.
#[test]
fn demo_report() {
    const TIMEOUT_MS: u64 = 200;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.md");
    let out = Command::new(env!("CARGO_BIN_EXE_lab"))
        .args([
            "demo",
            "--free-ports",
            "--timeout-ms",
            &TIMEOUT_MS.to_string(),
            "--report",
        ])
        .arg(&path)
        .env("LAB_NO_BUILD", "1")
        .output()
        .expect("run lab demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&path.display().to_string()),
        "says where: {stdout}"
    );
    let report = std::fs::read_to_string(&path).unwrap();
    let calls = calls(&report);
    assert!(calls.len() >= 15, "{calls:#?}");

    for call in &calls {
        assert!(call.command.starts_with("curl -i "), "{call:?}");
        // B's answer and its log line agree on the KIND.
        if let Some(kind) = call.reply.json()["error"].as_str() {
            assert_eq!(call.status, 503, "{call:?}");
            assert!(call.b_line.contains(&format!(" error={kind} ")), "{call:?}");
        }
        // A's line, when shown, is the same call's.
        if let Some(a) = &call.a_line {
            assert!(a.contains("service=A "), "{call:?}");
            assert_eq!(trace_id(a), trace_id(&call.b_line), "{call:?}");
            assert!(!trace_id(a).is_empty(), "{call:?}");
        }
    }
    let echo: Vec<&Call> = calls
        .iter()
        .filter(|c| c.command.contains("/call-echo"))
        .collect();
    let kind = |c: &Call| c.reply.json()["error"].as_str().unwrap_or("-").to_owned();
    for expected in [
        "-",
        "timeout",
        "connection_refused",
        "connection_reset",
        "upstream_status",
        "bad_response",
        "circuit_open",
    ] {
        assert!(
            echo.iter().any(|c| kind(c) == expected),
            "no {expected} in {echo:#?}"
        );
    }
    // Every timeout keeps the deadline, with 504 in the body.
    for c in echo.iter().filter(|c| kind(c) == "timeout") {
        assert!((TIMEOUT_MS..TIMEOUT_MS + 150).contains(&c.ms), "{c:?}");
        assert_eq!(c.reply.json()["http_status"], 504, "{c:?}");
        assert!(c.a_line.is_some(), "A's side of a timeout is shown: {c:?}");
    }
    // A stopped: refused, B healthy but not ready; then A back and B recovered.
    let refused = calls
        .iter()
        .position(|c| kind(c) == "connection_refused" && c.command.contains("/call-echo"))
        .unwrap();
    let after = &calls[refused + 1..];
    let health = after
        .iter()
        .position(|c| c.command.contains("/health"))
        .unwrap();
    assert_eq!(after[health].status, 200);
    let ready = after
        .iter()
        .position(|c| c.command.contains("/ready"))
        .unwrap();
    assert_eq!(after[ready].status, 503);
    assert_eq!(after[ready].reply.json()["status"], "degraded");
    let back = &after[ready + 1];
    assert!(back.command.contains("/call-echo"), "{back:?}");
    assert_eq!(back.status, 200, "{back:?}");
    assert_eq!(back.reply.json()["service_a"]["echo"], "hello");
    assert!(back.a_line.is_some(), "{back:?}");

    // The questions cite this run: the timeout's trace_id and the refused call's time.
    let questions = report
        .split("## The course's three questions")
        .nth(1)
        .expect("the questions");
    let timeout = echo.iter().find(|c| kind(c) == "timeout").unwrap();
    assert!(questions.contains(trace_id(&timeout.b_line)), "{questions}");
    assert!(
        questions.contains(&format!("in {} ms", calls[refused].ms)),
        "{questions}"
    );
}
