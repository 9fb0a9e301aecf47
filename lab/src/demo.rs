//! `cargo lab demo`: every failure B can name, one after another, as a Markdown
//! transcript a student can paste into a lab report.
//!
//! It starts its own A and B on free ports with temporary configs (your
//! config/ files and ports 8080/8081 are left alone), breaks A the way a user
//! would (editing its TOML, sending a header, stopping it), and stops
//! everything it started.

use testkit::http::{get_with, Reply};
use testkit::{binary, field, Launch, Proc};

/// B's deadline in the demo: short, so the walk-through is quick.
const TIMEOUT_MS: u64 = 500;

struct Step {
    title: &'static str,
    /// How the user breaks A, in words.
    how: String,
    headers: Vec<(&'static str, &'static str)>,
}

/// Runs the walk-through and prints the transcript on stdout.
pub fn run() -> anyhow::Result<()> {
    crate::procs::build()?;
    let mut a = Launch::new(binary("service-a"), &a_config("")).start();
    let b = Launch::new(
        binary("service-b"),
        &format!(
            "[server]\nport = 0\n\n[upstream]\nurl = \"{}\"\ntimeout_ms = {TIMEOUT_MS}\n",
            a.url
        ),
    )
    .start();

    println!("# Service B facing a misbehaving A\n");
    println!(
        "A at {}, B at {}, B's deadline `timeout_ms = {TIMEOUT_MS}`.\n",
        a.url, b.url
    );
    let faults = [
        ("A healthy", ""),
        ("A slower than B's deadline", "delay_ms = 800"),
        ("A fails", "fail = true\nfail_status = 503"),
        ("A drops the connection", "drop = true"),
        (
            "A sends headers, then stalls the body",
            "body_delay_ms = 800",
        ),
    ];
    let mut rows = Vec::new();
    for (n, (title, fault)) in faults.into_iter().enumerate() {
        if n > 0 {
            set_fault(&a, fault);
        }
        let how = if fault.is_empty() {
            "no fault".to_owned()
        } else {
            format!("in A's TOML `[fault]`: `{}`", fault.replace('\n', "`, `"))
        };
        rows.push(step(
            &b,
            n + 1,
            &Step {
                title,
                how,
                headers: vec![],
            },
        ));
    }
    set_fault(&a, "");
    rows.push(step(
        &b,
        6,
        &Step {
            title: "A delayed by a request header",
            how: "no file edit: `-H 'x-fault-delay-ms: 800'`, which B passes on to A".to_owned(),
            headers: vec![("x-fault-delay-ms", "800")],
        },
    ));
    a.kill();
    rows.push(step(
        &b,
        7,
        &Step {
            title: "A stopped",
            how: "A's process killed".to_owned(),
            headers: vec![],
        },
    ));

    println!("## Summary\n");
    println!("| # | situation | B's status | error | B's latency |");
    println!("| --- | --- | --- | --- | --- |");
    for (n, (title, status, kind, ms)) in rows.iter().enumerate() {
        println!("| {} | {title} | {status} | {kind} | {ms} ms |", n + 1);
    }
    Ok(())
}

/// Rewrites A's `[fault]` section and waits until A has applied it.
fn set_fault(a: &Proc, fault: &str) {
    let from = a.line_count();
    a.write_config(&a_config(fault));
    a.wait_line_after(from, &["event=config_reloaded"]);
}

fn a_config(fault: &str) -> String {
    format!("[server]\nport = 0\n\n[fault]\n{fault}\n")
}

/// One call through B, printed; returns the summary row.
fn step(b: &Proc, n: usize, step: &Step) -> (&'static str, u16, String, String) {
    let url = format!("{}/call-echo?msg=hello", b.url);
    let from = b.line_count();
    let reply: Reply = get_with(&url, &step.headers);
    let line = b.wait_line_after(from, &["endpoint=/call-echo"]);
    let kind = reply.json()["error"].as_str().unwrap_or("-").to_owned();
    let latency = field(&line, "latency_ms").unwrap_or_default();

    let headers: String = step
        .headers
        .iter()
        .map(|(k, v)| format!(" -H '{k}: {v}'"))
        .collect();
    println!("## {n}. {}\n", step.title);
    println!("How: {}.\n", step.how);
    println!(
        "```console\n$ curl -s{headers} '{url}'\n{}\n```\n",
        reply.body
    );
    println!(
        "HTTP {} in {} ms. B's log line:\n",
        reply.status,
        reply.elapsed.as_millis()
    );
    println!("```\n{line}\n```\n");
    (step.title, reply.status, kind, latency)
}
