//! The report's appendix: every other call the run made, each failure with
//! the fallacy it shows, the breaker, the metrics, and a summary table.

use std::fmt::Write as _;

use super::fallacy::fallacy;
use super::seen::{Call, Seen};

/// The appendix, from what the run saw.
pub fn render(s: &Seen) -> String {
    let mut r = String::from(
        "---\n\n# Appendix\n\n\
         Everything else the run did, call by call, with the fallacy of distributed \
         computing each failure shows. Files are named relative to the project folder \
         (the demo's own configs are in `target/lab-demo/`; your `config/` is untouched).\n\n",
    );
    let mut rows: Vec<(String, u16, String, u128)> = Vec::new();
    let mut row = |situation: &str, c: &Call| {
        rows.push((situation.to_owned(), c.reply.status, c.kind(), c.ms()));
    };
    if let Some(c) = &s.ok {
        row("A healthy", c);
    }
    if let Some(c) = &s.ready {
        row("A healthy: B's /ready", c);
    }

    // A.1 the timeout in full.
    if let (Some(edit), Some(c), Some(healed)) = (&s.slow, &s.timeout, &s.healed) {
        let _ = write!(
            r,
            "## A slowed past B's deadline\n\n{}\n\n{}\n{}\nThen {}\n",
            fallacy("A slowed past B's deadline"),
            edit.said(),
            c.block(),
            healed.said()
        );
        row("A slowed past B's deadline", c);
    }
    for (situation, c) in [
        ("A stopped", &s.refused),
        ("A stopped: B's /health", &s.health),
        ("A stopped: B's /ready", &s.not_ready),
    ] {
        if let Some(c) = c {
            row(situation, c);
        }
    }
    if let Some(c) = &s.not_ready {
        let _ = write!(r, "## A stopped: B's /ready\n\n{}\n", c.block());
    }
    if let (Some(back), Some(ready)) = (&s.back, &s.ready_again) {
        let _ = write!(
            r,
            "## A restarted\n\n{}\n\nA was started again on the same port; B was not restarted.\n\n\
             ```text\nA | {}\n```\n\n{}\n",
            fallacy("A restarted"),
            s.restart_line,
            back.block()
        );
        row("A restarted", back);
        row("A restarted: B's /ready", ready);
    }
    if let (Some(c), [before, after]) = (&s.stall, s.stall_edits.as_slice()) {
        let _ = write!(
            r,
            "## A stalls its body\n\n{}\n\nA sends the status line and headers at once and the \
             body later; B's deadline covers the body too.\n\n{}\n{}\nThen {}\n",
            fallacy("A stalls its body"),
            before.said(),
            c.block(),
            after.said()
        );
        row("A stalls its body", c);
    }
    let _ = write!(
        r,
        "## Every other fault A can cause\n\nOne request each, with no file edit: B passes \
         every `x-fault-*` header on to A.\n\n"
    );
    for (situation, header, c) in &s.faults {
        let _ = write!(
            r,
            "### {situation} (`{header}`)\n\n{}\n\n{}\n",
            fallacy(situation),
            c.block()
        );
        row(situation, c);
    }

    // The breaker.
    if let (Some(edit), Some(open_line), Some(open)) =
        (&s.breaker_edit, &s.breaker_open_line, &s.breaker_open)
    {
        let failing: String = s
            .breaker_failing
            .iter()
            .enumerate()
            .map(|(i, c)| {
                format!(
                    "{}. HTTP {} `{}` in {} ms\n\n   ```text\n   B | {}\n   A | {}\n   ```\n\n",
                    i + 1,
                    c.reply.status,
                    c.kind(),
                    c.ms(),
                    c.b_line,
                    c.a_line.as_deref().unwrap_or("(none)")
                )
            })
            .collect();
        let _ = write!(
            r,
            "## B's circuit breaker opens\n\n{}\n\nB was restarted with `[circuit_breaker] \
             enabled = true` and `failure_threshold = 3` (the default is 5; 3 keeps this short), \
             and {}\nThree calls failed, each reaching A:\n\n{failing}\
             After the third, B opened its breaker:\n\n```text\nB | {open_line}\n```\n\n\
             The fourth call was not sent to A at all:\n\n{}\n",
            fallacy("B's circuit breaker opens"),
            edit.said(),
            open.block()
        );
        for c in &s.breaker_failing {
            row("A failing (breaker counting)", c);
        }
        row("B's circuit breaker opens", open);
    }

    // Metrics.
    let _ = write!(
        r,
        "## Metrics\n\nB's `/metrics` after the faults above (before B's restart for the breaker), \
         the lines for its calls to A and its answers to `/call-echo`:\n\n```text\n{}\n```\n\n\
         A's, counting the faults it injected since its restart:\n\n```text\n{}\n```\n\n",
        s.b_metrics.join("\n"),
        s.a_metrics.join("\n"),
    );

    // Summary.
    let _ = write!(
        r,
        "## Summary\n\n| # | situation | HTTP | error | time (client) |\n| --- | --- | --- | --- | --- |\n"
    );
    for (n, (situation, status, kind, ms)) in rows.iter().enumerate() {
        let _ = writeln!(
            r,
            "| {} | {situation} | {status} | {kind} | {ms} ms |",
            n + 1
        );
    }
    let _ = write!(
        r,
        "\n## Two KINDs this demo cannot show\n\n`unreachable` needs a network fault (no route \
         to A) that loopback cannot make: one test makes it in a network namespace, as root \
         with iproute2: `cargo test -p service-b --test api no_route_is_unreachable -- --ignored`. \
         `b_overloaded` is B's own limit (out of file descriptors or ports), not something A does.\n"
    );
    r
}
