//! `cargo lab experiment` end to end: the shipped experiments, shortened,
//! pass `--check` against the real binaries, and their pictures are sound.
//!
//! The five shipped runs take about a minute together, so they are
//! `#[ignore]`d here and run by `.ci/run` (`cargo test --workspace --
//! --ignored`); the quick ones (a failed expectation, a bad file) always run.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// One experiment at a time: they measure latency on a 2-core machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Runs `lab experiment FILE ARGS --out DIR` with the binaries cargo built.
fn lab(file: &Path, args: &[&str], out: &Path) -> Output {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    Command::new(env!("CARGO_BIN_EXE_lab"))
        .arg("experiment")
        .arg(file)
        .args(args)
        .arg("--out")
        .arg(out)
        .env("LAB_NO_BUILD", "1")
        .current_dir(root())
        .output()
        .expect("run lab experiment")
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The text of every `<text>` element of an SVG, which must parse as XML.
fn svg_texts(path: &Path) -> Vec<String> {
    let svg = std::fs::read_to_string(path).expect("read svg");
    let doc = roxmltree::Document::parse(&svg)
        .unwrap_or_else(|e| panic!("{} is not XML: {e}", path.display()));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert!(!svg.contains("<script"), "no script in {}", path.display());
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(|t| t.trim().to_owned())
        .collect()
}

/// Runs a shipped experiment shortened to `seconds`, with `--check`, and
/// checks its folder: the report, the CSV, and one legend entry (a series)
/// in timeline.svg per outcome that occurred.
fn shipped(name: &str, seconds: u32) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = root().join("experiments").join(format!("{name}.toml"));
    let out = lab(
        &file,
        &["--check", "--seconds", &seconds.to_string()],
        dir.path(),
    );
    let all = text(&out);
    assert!(out.status.success(), "{name} failed --check:\n{all}");
    assert!(
        all.contains("met     all: no call in a cell the contract forbids"),
        "{all}"
    );

    let report = std::fs::read_to_string(dir.path().join("report.md")).expect("report.md");
    for part in [
        "## Phases",
        "## Expectations",
        "## What A did against what B said",
    ] {
        assert!(report.contains(part), "{part} missing from\n{report}");
    }
    let mut csv = csv::Reader::from_path(dir.path().join("calls.csv")).expect("calls.csv");
    let kind = csv
        .headers()
        .expect("header")
        .iter()
        .position(|h| h == "kind")
        .expect("a kind column");
    let kinds: BTreeSet<String> = csv
        .records()
        .map(|r| r.expect("a CSV record")[kind].to_owned())
        .collect();
    assert!(!kinds.is_empty(), "no calls in {name}");
    let timeline = svg_texts(&dir.path().join("timeline.svg"));
    for k in &kinds {
        assert!(
            timeline.contains(k),
            "no series for {k} in timeline.svg: {timeline:?}"
        );
    }
    let latency = svg_texts(&dir.path().join("latency.svg"));
    for series in ["p50", "p99"] {
        assert!(
            latency.contains(&series.to_owned()),
            "no {series} in latency.svg"
        );
    }
    assert!(
        latency.iter().any(|t| t.starts_with("B's timeout")),
        "no timeout line in latency.svg: {latency:?}"
    );
}

/// The course's two failures: timeouts at the deadline, then refused, then back.
#[test]
#[ignore = "runs the shipped experiments; .ci/run runs it"]
fn course() {
    shipped("course", 14);
}

/// Flaky A with retries: the retry budget holds A's load near 1.2× the calls.
#[test]
#[ignore = "runs the shipped experiments; .ci/run runs it"]
fn retries() {
    shipped("retries", 10);
}

/// The breaker opens on a failing A and closes once A is healed.
#[test]
#[ignore = "runs the shipped experiments; .ci/run runs it"]
fn breaker() {
    shipped("breaker", 10);
}

/// A trickled body: in time it succeeds, past the deadline B times out on time.
#[test]
#[ignore = "runs the shipped experiments; .ci/run runs it"]
fn trickle() {
    shipped("trickle", 10);
}

/// Overload: B stays healthy and A's max_connections holds.
#[test]
#[ignore = "runs the shipped experiments; .ci/run runs it"]
fn overload() {
    shipped("overload", 9);
}

/// A as a fault proxy in front of a real server: a rule's injected failures
/// and A's delay reach B; the server is not called for an injected failure.
#[test]
#[ignore = "runs the shipped experiments; .ci/run runs it"]
fn proxy() {
    shipped("proxy", 10);
}

/// `--check` exits 1 when an expectation fails, and says which.
#[test]
fn check_fails_on_an_unmet_expectation() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("wrong.toml");
    std::fs::write(
        &file,
        "[load]\nrate = 20\n[[phase]]\nname = \"healthy\"\nseconds = 1\nexpect.share_min = { timeout = 0.5 }\n",
    )
    .expect("write experiment");
    let out = lab(&file, &["--check"], &dir.path().join("run"));
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("NOT MET healthy: share of timeout ≥ 0.5 (measured 0.000)"),
        "{all}"
    );
    // Without --check the same run succeeds: the report is the product.
    let out = lab(&file, &[], &dir.path().join("run2"));
    assert!(out.status.success(), "{}", text(&out));
    assert!(dir.path().join("run2/report.md").exists());
}

/// A mistake in the file stops the run before anything starts, naming the
/// file, the key and what is allowed.
#[test]
fn bad_file_is_refused_with_the_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("typo.toml");
    std::fs::write(
        &file,
        "[load]\nrate = 20\n[[phase]]\nname = \"slow\"\nseconds = 2\nfault = { delay = 1500 }\n",
    )
    .expect("write experiment");
    let out = lab(&file, &[], &dir.path().join("run"));
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains(
            "typo.toml: phase 1 (\"slow\"): fault.delay: not a [fault] key; allowed: delay_ms"
        ),
        "{all}"
    );
    assert!(
        !dir.path().join("run").exists(),
        "nothing should start: {all}"
    );
}
