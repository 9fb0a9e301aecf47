//! `cargo lab demo` end to end: the transcript names every failure as B does.

use std::process::Command;

/// The demo runs by itself, stops what it started, and its summary is right.
#[test]
fn demo_transcript() {
    let out = Command::new(env!("CARGO_BIN_EXE_lab"))
        .arg("demo")
        .env("LAB_NO_BUILD", "1")
        .output()
        .expect("run lab demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for row in [
        "| 1 | A healthy | 200 | - |",
        "| 2 | A slower than B's deadline | 503 | timeout |",
        "| 3 | A fails | 503 | upstream_status |",
        "| 4 | A drops the connection | 503 | connection_reset |",
        "| 5 | A sends headers, then stalls the body | 503 | timeout |",
        "| 6 | A delayed by a request header | 503 | timeout |",
        "| 7 | A stopped | 503 | connection_refused |",
    ] {
        assert!(text.contains(row), "missing {row:?} in\n{text}");
    }
}
