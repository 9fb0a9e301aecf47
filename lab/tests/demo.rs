//! `cargo lab demo` end to end: the report it writes is the course's
//! deliverable, states only the facts of its run, and never replaces a
//! report its student edited.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testkit::http::{parse, Reply};

/// B's deadline in these runs: short, so a run takes seconds.
const TIMEOUT_MS: u64 = 200;

/// One call as the report shows it: the request sent, the answer received,
/// and the log lines under it.
#[derive(Debug)]
struct Call {
    command: String,
    sent: String,
    received: String,
    reply: Reply,
    /// Milliseconds, as the line above the exchange states them.
    ms: u64,
    b_line: String,
    a_line: Option<String>,
}

impl Call {
    fn kind(&self) -> String {
        self.reply.json()["error"]
            .as_str()
            .unwrap_or("-")
            .to_owned()
    }
}

fn trace_id(line: &str) -> &str {
    line.split(" trace_id=")
        .nth(1)
        .unwrap_or("")
        .split(' ')
        .next()
        .unwrap_or("")
}

/// Every call in `text`, in order: an `http` block (the request, a blank
/// line, the answer) after the line naming its curl command and its time,
/// then the block of log lines.
fn calls(text: &str) -> Vec<Call> {
    let blocks: Vec<&str> = text.split("```").collect();
    let mut out = Vec::new();
    // Odd pieces are inside fences.
    for (i, block) in blocks.iter().enumerate() {
        let Some(exchange) = block.strip_prefix("http\n") else {
            continue;
        };
        let at = exchange
            .find("\nHTTP/1.1 ")
            .expect("an answer after the request");
        let (sent, received) = (&exchange[..=at], &exchange[at + 1..]);
        let prose = blocks[i - 1];
        let command = prose
            .rsplit_once('`')
            .and_then(|(before, _)| before.rsplit_once('`'))
            .map(|(_, c)| c.to_owned())
            .unwrap_or_else(|| panic!("no command before {exchange:?}"));
        let ms = prose
            .rsplit(" in ")
            .next()
            .and_then(|s| s.split(" ms").next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no time in {prose:?}"));
        let reply = parse(
            received.replace('\n', "\r\n").as_bytes(),
            Default::default(),
        );
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
            command,
            sent: sent.to_owned(),
            received: received.to_owned(),
            reply,
            ms,
            b_line,
            a_line,
        });
    }
    out
}

/// `lab demo` on free ports with the short deadline, writing `report`.
fn demo(report: &Path, work: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lab"))
        .args([
            "demo",
            "--free-ports",
            "--timeout-ms",
            &TIMEOUT_MS.to_string(),
        ])
        .arg("--report")
        .arg(report)
        .arg("--work-dir")
        .arg(work_dir(work))
        .args(extra)
        .env("LAB_NO_BUILD", "1")
        .output()
        .expect("run lab demo")
}

/// A folder for the demo's configs under cargo's own target/tmp, as the
/// real run's target/lab-demo: never the system's temporary folder.
fn work_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("lab-demo-{name}"))
}

fn all(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The text of a `## title` section, up to the next heading of level 1 or 2.
fn section<'a>(text: &'a str, title: &str) -> &'a str {
    let start = text
        .find(&format!("\n## {title}"))
        .unwrap_or_else(|| panic!("no section {title:?}"));
    let rest = &text[start + 1..];
    let end = rest[3..]
        .find("\n## ")
        .into_iter()
        .chain(rest[3..].find("\n# "))
        .min()
        .map_or(rest.len(), |e| e + 3);
    &rest[..end]
}

/// The demo runs by itself on free ports and writes the course's
/// deliverable first: how to run it, the success and failure proofs, the
/// three questions and a draft paragraph, all from this run; every other
/// fault, the breaker and the metrics in the appendix, each failure with
/// its fallacy. Only true output: requests shown as sent, no temp paths.
#[test]
fn demo_report() {
    let path = work_dir("report").join("report.md");
    let _ = std::fs::remove_file(&path);
    let out = demo(&path, "report", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", all(&out));
    assert!(
        stdout.contains(&path.display().to_string()),
        "says where: {stdout}"
    );
    let report = std::fs::read_to_string(&path).unwrap();
    let (first, appendix) = report.split_once("\n# Appendix").expect("an appendix");

    // The course's sections, first and short.
    for title in [
        "How to run locally",
        "Success proof",
        "Failure proof",
        "The course's three questions",
        "What makes this distributed? (DRAFT",
    ] {
        assert!(
            first.contains(&format!("\n## {title}")),
            "no {title:?} in\n{first}"
        );
    }
    assert!(
        first.lines().count() < 140,
        "the first part is {} lines",
        first.lines().count()
    );
    let how = section(first, "How to run locally");
    assert!(how.contains("cargo lab demo --free-ports"), "{how}");
    assert!(how.contains("cargo run -p service-a"), "{how}");
    let success = calls(section(first, "Success proof"));
    assert_eq!(success.len(), 1, "{success:?}");
    assert_eq!(success[0].reply.status, 200);
    assert_eq!(success[0].reply.json()["service_a"]["echo"], "hello");

    // The failure proof: A's stop, B's 503 and error line, A's absence.
    let failure = section(first, "Failure proof");
    assert!(failure.contains("event=stopped"), "{failure}");
    let refused = calls(failure);
    let refused = refused.first().expect("a call in the failure proof");
    assert_eq!(refused.reply.status, 503, "{refused:?}");
    assert_eq!(refused.kind(), "connection_refused");
    assert!(refused.b_line.contains(" status=error "), "{refused:?}");
    assert!(
        refused.b_line.contains(" error=connection_refused "),
        "{refused:?}"
    );
    assert!(refused.a_line.is_none(), "{refused:?}");
    assert!(
        failure.contains("A logged nothing after these lines"),
        "{failure}"
    );
    assert!(
        failure.contains("Fallacy shown: *The network is reliable*"),
        "{failure}"
    );

    // Only true output: no client named that did not send, the bytes sent
    // shown, and `connection: close` only where the client asked for it.
    assert!(!report.contains("what `curl -i` prints"), "{report}");
    let all_calls = calls(&report);
    assert!(all_calls.len() >= 15, "{all_calls:#?}");
    for call in &all_calls {
        assert!(call.command.starts_with("curl"), "{call:?}");
        assert!(call.sent.starts_with("GET /"), "{call:?}");
        assert!(
            call.sent.contains("User-Agent: cargo-lab-demo\n"),
            "{call:?}"
        );
        let asked = call.sent.to_ascii_lowercase().contains("connection: close");
        let got = call
            .received
            .to_ascii_lowercase()
            .contains("connection: close");
        assert!(
            !got || asked,
            "connection: close that nobody sent: {call:?}"
        );
        // B's answer and its log line agree on the KIND.
        if let Some(kind) = call.reply.json()["error"].as_str() {
            assert_eq!(call.reply.status, 503, "{call:?}");
            assert!(call.b_line.contains(&format!(" error={kind} ")), "{call:?}");
        }
        // A's line, when shown, is the same call's.
        if let Some(a) = &call.a_line {
            assert!(a.contains("service=A "), "{call:?}");
            assert_eq!(trace_id(a), trace_id(&call.b_line), "{call:?}");
            assert!(!trace_id(a).is_empty(), "{call:?}");
        }
    }

    // No temporary path; a cleared fault said in words; reload lines short.
    let tmp = std::env::temp_dir();
    let tmp = tmp.to_string_lossy();
    for before in [" ", "="] {
        let path = format!("{before}{}", tmp.trim_end_matches(['/', '\\']));
        assert!(!report.contains(&path), "a temp path ({path}) in\n{report}");
    }
    assert!(!report.contains("/.tmp"), "a temp path in\n{report}");
    assert!(!report.contains("(nothing)"), "{report}");
    assert!(report.contains("the fault cleared"), "{report}");
    for line in report
        .lines()
        .filter(|l| l.contains("event=config_reloaded"))
    {
        assert!(line.len() < 200, "a long reload line: {line}");
    }

    // Every KIND the real A can cause, and the deadline kept.
    let echo: Vec<&Call> = all_calls
        .iter()
        .filter(|c| c.command.contains("/call-echo"))
        .collect();
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
            echo.iter().any(|c| c.kind() == expected),
            "no {expected} in {echo:#?}"
        );
    }
    for c in echo.iter().filter(|c| c.kind() == "timeout") {
        assert!((TIMEOUT_MS..TIMEOUT_MS + 150).contains(&c.ms), "{c:?}");
        assert_eq!(c.reply.json()["http_status"], 504, "{c:?}");
        assert!(c.a_line.is_some(), "A's side of a timeout is shown: {c:?}");
    }

    // The questions cite this run: the timeout's trace_id, the refused call's time.
    let questions = section(first, "The course's three questions");
    let timeout = echo.iter().find(|c| c.kind() == "timeout").unwrap();
    assert!(questions.contains(trace_id(&timeout.b_line)), "{questions}");
    assert!(
        questions.contains(&format!("in {} ms", refused.ms)),
        "{questions}"
    );
    let draft = section(first, "What makes this distributed?");
    assert!(draft.contains("own words"), "{draft}");
    assert!(draft.contains("connection_refused"), "{draft}");

    // The appendix: the breaker's three failures, its state=open line, the fourth.
    let breaker = section(appendix, "B's circuit breaker opens");
    let failing = breaker
        .lines()
        .filter(|l| l.contains("B | ") && l.contains(" error=upstream_status "))
        .count();
    assert_eq!(failing, 3, "{breaker}");
    assert!(breaker.contains("event=circuit state=open"), "{breaker}");
    let open = calls(breaker);
    assert_eq!(
        open.last().map(Call::kind).as_deref(),
        Some("circuit_open"),
        "{breaker}"
    );
    assert!(
        appendix.contains("upstream_calls_total{kind=\"timeout\"}"),
        "{appendix}"
    );

    // A fallacy named for each failure shown in the appendix.
    let parts: Vec<&str> = appendix.split("\n#").skip(1).collect();
    let mut failures = 0;
    for part in parts {
        let failed = calls(part).iter().any(|c| c.reply.status >= 500);
        if failed && !part.starts_with("# A stopped") {
            failures += 1;
            assert!(part.contains("Fallacy shown: *"), "no fallacy in\n#{part}");
        }
    }
    assert!(failures >= 11, "{failures} failure sections");

    // The manual's fallacy table (docs/faults.md) names every fallacy the
    // report does.
    let faults = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/faults.md"))
        .expect("docs/faults.md");
    let table = faults
        .split("\n## Which fallacy each failure shows")
        .nth(1)
        .and_then(|rest| rest.split("\n#").next())
        .expect("the fallacy table of docs/faults.md");
    for named in report.split("Fallacy shown: *").skip(1) {
        let fallacy = named.split('*').next().unwrap();
        assert!(
            table.contains(&format!("*{fallacy}*")),
            "the fallacy table of docs/faults.md lacks {fallacy:?}"
        );
    }
}

/// A second run never replaces a report its student edited: it refuses,
/// says how to write elsewhere or overwrite, and the edit survives.
#[test]
fn an_edited_report_survives_a_second_run() {
    let path = work_dir("twice").join("lab-report.md");
    let _ = std::fs::remove_file(&path);
    let out = demo(&path, "twice", &[]);
    assert!(out.status.success(), "{}", all(&out));

    let mine = "\nMy own paragraph: what makes this distributed, in my words.\n";
    let mut edited = std::fs::read_to_string(&path).unwrap();
    edited.insert_str(edited.find("\n## Success proof").unwrap(), mine);
    std::fs::write(&path, &edited).unwrap();

    let again = demo(&path, "twice", &[]);
    assert!(!again.status.success(), "{}", all(&again));
    let said = all(&again);
    assert!(said.contains("--overwrite"), "{said}");
    assert!(said.contains("--report"), "{said}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), edited);
}
