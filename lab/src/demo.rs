//! `cargo lab demo`: the lab report, written by a real run of A and B.
//!
//! It starts its own A and B (on 8080 and 8081 when they are free, else on
//! free ports, saying so) with temporary configs, so your config/ files are
//! left alone. It breaks A the ways a student does (editing A's TOML,
//! sending an `x-fault-*` header, stopping and restarting A), records each
//! call as `curl -i` shows it with A's and B's log lines paired by
//! `trace_id`, answers the course's three questions from what it saw, and
//! writes it all to a Markdown file.

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use testkit::http::{parse, raw, Reply};
use testkit::{binary, field, Launch, Proc};

/// What `cargo lab demo` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// B's `upstream.timeout_ms` (the course's is 1000).
    pub timeout_ms: u64,
    /// Where the report goes.
    pub report: PathBuf,
    /// Free ports even when 8080 and 8081 are free.
    pub free_ports: bool,
}

/// One call through B (or to B), as the report shows it.
struct Call {
    command: String,
    /// The answer as `curl -i` prints it.
    shown: String,
    reply: Reply,
    /// B's line and, when B reached A, A's line with the same trace_id.
    b_line: Option<String>,
    a_line: Option<String>,
}

impl Call {
    fn kind(&self) -> String {
        self.reply
            .json()
            .get("error")
            .and_then(|e| e.as_str())
            .unwrap_or("-")
            .to_owned()
    }

    fn ms(&self) -> u128 {
        self.reply.elapsed.as_millis()
    }
}

/// The run so far: the report's text and the facts its end draws on.
struct Lab {
    opts: Options,
    a: Proc,
    b: Proc,
    a_port: u16,
    b_port: u16,
    dir: tempfile::TempDir,
    text: String,
    rows: Vec<(String, u16, String, u128)>,
    step: usize,
    facts: Option<Facts>,
}

/// The calls the three questions are answered from.
struct Facts {
    ok: Call,
    timeout: Call,
    refused: Call,
    health: Call,
    not_ready: Call,
    back: Call,
    ready_again: Call,
    stall: Call,
}

/// Runs the walk-through and writes the report.
pub fn run(opts: Options) -> anyhow::Result<()> {
    crate::procs::build()?;
    let dir = tempfile::tempdir().context("temp dir")?;
    let course = !opts.free_ports && free(8080) && free(8081);
    let (a_port, mut b_port) = if course { (8080, 8081) } else { (0, 0) };
    let a = match try_start_a(&dir, a_port, "") {
        Some(a) => a,
        // Taken between the look and the start: free ports after all.
        None => {
            b_port = 0;
            try_start_a(&dir, 0, "").context("starting A")?
        }
    };
    let a_port = a.port();
    let b = start_b(&dir, a_port, b_port, opts.timeout_ms, false)?;
    b_port = b.port();
    let mut lab = Lab {
        opts,
        a,
        b,
        a_port,
        b_port,
        dir,
        text: String::new(),
        rows: Vec::new(),
        step: 0,
        facts: None,
    };
    lab.header(course);
    lab.walk()?;
    lab.questions();
    lab.summary();
    std::fs::write(&lab.opts.report, &lab.text)
        .with_context(|| format!("writing {}", lab.opts.report.display()))?;
    println!("\nwrote {}", lab.opts.report.display());
    Ok(())
}

fn free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn a_config(port: u16, fault: &str) -> String {
    format!("[server]\nport = {port}\n\n[fault]\n{fault}\n")
}

fn try_start_a(dir: &tempfile::TempDir, port: u16, fault: &str) -> Option<Proc> {
    let path = dir.path().join("service-a.toml");
    std::fs::write(&path, a_config(port, fault)).ok()?;
    Launch::new(binary("service-a"), "")
        .config_file(&path)
        .try_start()
        .ok()
}

fn start_b(
    dir: &tempfile::TempDir,
    a_port: u16,
    port: u16,
    timeout_ms: u64,
    breaker: bool,
) -> anyhow::Result<Proc> {
    let path = dir.path().join("service-b.toml");
    let mut toml = format!(
        "[server]\nport = {port}\n\n[upstream]\nurl = \"http://127.0.0.1:{a_port}\"\ntimeout_ms = {timeout_ms}\n"
    );
    if breaker {
        toml.push_str(
            "\n[circuit_breaker]\nenabled = true\nfailure_threshold = 3\nopen_ms = 5000\n",
        );
    }
    std::fs::write(&path, toml)?;
    Launch::new(binary("service-b"), "")
        .config_file(&path)
        .try_start()
        .map_err(|e| anyhow::anyhow!("B exited ({:?}): {}", e.code, e.stderr))
}

impl Lab {
    fn say(&mut self, text: &str) {
        self.text.push_str(text);
        self.text.push('\n');
    }

    fn header(&mut self, course: bool) {
        let t = self.opts.timeout_ms;
        self.say("# Lab report: service B facing a misbehaving service A\n");
        self.say(&format!(
            "Written by `cargo lab demo` from a real run of this repository's A and B.\n\n\
             - A at `http://127.0.0.1:{}`, B at `http://127.0.0.1:{}`{}.\n\
             - B's deadline for each call to A: `upstream.timeout_ms = {t}`{}.\n\
             - Every answer below is what `curl -i` prints for the command shown; the time is\n  \
               measured by the client, as curl's `%{{time_total}}`. B's own `latency_ms` in its\n  \
               log line is measured inside B, so it is a millisecond or so less.\n\
             - Under each call: B's log line, and A's line for the same call, found by the\n  \
               `trace_id` they share (`grep trace_id=...` in each service's output).\n",
            self.a_port,
            self.b_port,
            if course {
                ", the course's ports"
            } else {
                " (8080 or 8081 was taken, or --free-ports was given: the demo used free ports)"
            },
            if t == 1000 {
                ", the course's".to_owned()
            } else {
                ", shortened with --timeout-ms (the course's is 1000)".to_owned()
            },
        ));
        println!(
            "A on port {}, B on port {}, timeout_ms = {t}",
            self.a_port, self.b_port
        );
    }

    fn section(&mut self, title: &str, how: &str) {
        self.step += 1;
        println!("{}. {title}", self.step);
        let n = self.step;
        self.say(&format!("## {n}. {title}\n\n{how}\n"));
    }

    /// Rewrites A's `[fault]` section and waits until A has applied it.
    fn set_fault(&mut self, fault: &str) {
        let from = self.a.line_count();
        self.a.write_config(&a_config(self.a_port, fault));
        let line = self.a.wait_line_after(from, &["event=config_reloaded"]);
        let shown = if fault.is_empty() {
            "(nothing)".to_owned()
        } else {
            fault.to_owned()
        };
        self.say(&format!(
            "Saved under `[fault]` in A's TOML:\n\n```toml\n{shown}\n```\n\nA applied it without a restart:\n\n```\nA | {line}\n```\n"
        ));
    }

    /// Calls `path` on B as `curl -i` would and records it with the log lines.
    fn call(&mut self, path: &str, headers: &[(&str, &str)], a_answers: bool) -> Call {
        let url = format!("http://127.0.0.1:{}{path}", self.b_port);
        let mut command = "curl -i".to_owned();
        for (k, v) in headers {
            let _ = write!(command, " -H '{k}: {v}'");
        }
        let _ = write!(command, " \"{url}\"");
        let mut head = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUser-Agent: curl/8\r\nAccept: */*\r\nConnection: close\r\n",
            self.b_port
        );
        for (k, v) in headers {
            let _ = write!(head, "{k}: {v}\r\n");
        }
        head.push_str("\r\n");
        let from_b = self.b.line_count();
        let from_a = self.a.line_count();
        let started = Instant::now();
        let bytes = raw(self.b.authority(), head.as_bytes()).expect("B answers");
        let reply = parse(&bytes, started.elapsed());
        let shown = String::from_utf8_lossy(&bytes).replace("\r\n", "\n");
        let endpoint = path.split('?').next().unwrap_or(path);
        let b_line = self
            .b
            .wait_line_after(from_b, &[&format!("endpoint={endpoint} ")]);
        let trace = field(&b_line, "trace_id").unwrap_or_default();
        let a_line = a_answers.then(|| {
            self.a
                .wait_line_after(from_a, &[&format!("trace_id={trace}")])
        });
        Call {
            command,
            shown,
            reply,
            b_line: Some(b_line),
            a_line,
        }
    }

    /// Writes a call into the report and its row into the summary.
    fn show(&mut self, call: &Call, situation: &str) {
        let mut logs = String::new();
        if let Some(b) = &call.b_line {
            let _ = writeln!(logs, "B | {b}");
        }
        match &call.a_line {
            Some(a) => {
                let _ = writeln!(logs, "A | {a}");
            }
            None => logs.push_str("A | (none: B did not call A)\n"),
        }
        self.say(&format!(
            "```console\n$ {}\n{}\n```\n\nHTTP {} in {} ms. The log lines of this call, paired by `trace_id`:\n\n```\n{logs}```\n",
            call.command,
            call.shown.trim_end(),
            call.reply.status,
            call.ms(),
        ));
        println!(
            "   {} -> {} {} in {} ms",
            call.command,
            call.reply.status,
            call.kind(),
            call.ms()
        );
        self.rows.push((
            situation.to_owned(),
            call.reply.status,
            call.kind(),
            call.ms(),
        ));
    }

    /// Every step; the facts the three questions need are returned in `Facts`.
    fn walk(&mut self) -> anyhow::Result<()> {
        let t = self.opts.timeout_ms;
        let slow = t + 500;

        self.section("A healthy", "Both services running, no fault.");
        let ok = self.call("/call-echo?msg=hello", &[], true);
        self.show(&ok, "A healthy");
        let ready = self.call("/ready", &[], true);
        self.show(&ready, "A healthy: B's /ready");

        self.section(
            "A slowed past B's deadline",
            &format!("A waits {slow} ms before answering; B gives it {t} ms."),
        );
        self.set_fault(&format!("delay_ms = {slow}"));
        let timeout = self.call("/call-echo?msg=hello", &[], true);
        self.show(&timeout, "A slower than the deadline");
        self.set_fault("");

        self.section(
            "A stopped",
            "A is stopped as Ctrl+C in its terminal would (SIGTERM; Ctrl+Break on Windows). B keeps running.",
        );
        let how = crate::procs::terminate(self.a.child_mut())?;
        if how == crate::procs::Stop::Killed {
            self.say(&format!(
                "A was {}.\n",
                how.describe().trim_matches(['(', ')'])
            ));
        }
        self.a.wait_exit();
        let stopped = self
            .a
            .lines()
            .into_iter()
            .filter(|l| l.contains("event=stopp"))
            .map(|l| format!("A | {l}\n"))
            .collect::<String>();
        self.say(&format!("```\n{stopped}```\n"));
        let refused = self.call("/call-echo?msg=hello", &[], false);
        self.show(&refused, "A stopped");
        let health = self.call("/health", &[], false);
        self.show(&health, "A stopped: B's /health");
        let not_ready = self.call("/ready", &[], false);
        self.show(&not_ready, "A stopped: B's /ready");

        self.section(
            "A restarted, B recovering",
            "A is started again on the same port. B was not restarted.",
        );
        self.a = try_start_a(&self.dir, self.a_port, "").context("restarting A")?;
        let start = self.a.wait_line(&["event=start"]);
        self.say(&format!("```\nA | {start}\n```\n"));
        let back = self.call("/call-echo?msg=hello", &[], true);
        self.show(&back, "A restarted");
        let ready_again = self.call("/ready", &[], true);
        self.show(&ready_again, "A restarted: B's /ready");

        self.section(
            "A sends its headers, then stalls the body",
            &format!("A sends the status line and headers at once, and the body {slow} ms later. B's deadline covers the body too."),
        );
        self.set_fault(&format!("body_delay_ms = {slow}"));
        let stall = self.call("/call-echo?msg=hello", &[], true);
        self.show(&stall, "A stalls the body");
        self.set_fault("");

        self.section(
            "Every other fault A can cause",
            "One request each, with no file edit: B passes every `x-fault-*` header on to A.",
        );
        let slow = slow.to_string();
        let faults = [
            ("x-fault-status", "500", "A answers 500"),
            ("x-fault-reset", "1", "A resets the connection (RST)"),
            ("x-fault-drop", "1", "A closes the connection (FIN)"),
            ("x-fault-truncate", "1", "A sends half its body"),
            ("x-fault-garbage", "1", "A answers bytes that are not HTTP"),
            ("x-fault-bad-body", "1", "A answers an HTML page"),
            // A few bytes a second: the body cannot arrive in time.
            ("x-fault-body-bytes-per-s", "10", "A trickles its body"),
            ("x-fault-delay-ms", slow.as_str(), "A delayed by a header"),
        ];
        for (header, value, situation) in faults {
            self.say(&format!("### {situation}\n"));
            let call = self.call("/call-echo?msg=hello", &[(header, value)], true);
            self.show(&call, situation);
        }

        self.section(
            "B's circuit breaker",
            "B restarted with `[circuit_breaker] enabled = true, failure_threshold = 3`, and A failing every call (`fail = true`). Three calls fail with `upstream_status`; the fourth is not sent to A.",
        );
        crate::procs::terminate(self.b.child_mut())?;
        self.b.wait_exit();
        self.b = start_b(&self.dir, self.a_port, self.b_port, t, true)?;
        self.set_fault("fail = true");
        for _ in 0..3 {
            let failing = self.call("/call-echo?msg=hello", &[], true);
            self.rows.push((
                "A failing (breaker counting)".to_owned(),
                failing.reply.status,
                failing.kind(),
                failing.ms(),
            ));
        }
        let open = self.call("/call-echo?msg=hello", &[], false);
        self.show(&open, "breaker open");
        self.set_fault("");

        self.section(
            "Two KINDs this demo cannot show",
            "`unreachable` needs a network fault (no route to A): the network-namespace tests (`cargo test -p service-b -- --ignored`, as root) make one. `b_overloaded` is B's own limit (out of file descriptors or ports), not something A does.",
        );
        self.facts = Some(Facts {
            ok,
            timeout,
            refused,
            health,
            not_ready,
            back,
            ready_again,
            stall,
        });
        Ok(())
    }

    /// The course's three questions, answered from this run's calls.
    fn questions(&mut self) {
        let Some(f) = self.facts.take() else { return };
        let t = self.opts.timeout_ms;
        let b_field = |c: &Call, k: &str| {
            c.b_line
                .as_deref()
                .and_then(|l| field(l, k))
                .unwrap_or_else(|| "?".to_owned())
        };
        let a_field = |c: &Call, k: &str| {
            c.a_line
                .as_deref()
                .and_then(|l| field(l, k))
                .unwrap_or_else(|| "?".to_owned())
        };
        let body = |c: &Call, k: &str| {
            c.reply
                .json()
                .get(k)
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .unwrap_or_else(|| "?".to_owned())
        };
        let a_did = match a_field(&f.timeout, "status").as_str() {
            "abandoned" => {
                "A stopped waiting on its injected delay once the budget B had sent it \
                 (`x-request-timeout-ms`) ran out, and never answered"
            }
            "client_closed" => {
                "B closed its connection at the deadline, A noticed at once and stopped \
                 working on the request (`http_status=499`, as nginx logs a client that left)"
            }
            _ => {
                "A answered after B had given up; B had closed that connection, so the late \
                 answer was never read"
            }
        };
        let mut q = String::new();
        let _ = write!(
            q,
            "## The course's three questions\n\n\
             **What happens on timeout?** With A slowed past the deadline, B answered HTTP {} \
             with `\"error\":\"timeout\",\"http_status\":{}` after {} ms (B's own `latency_ms={}`; \
             the deadline is {t} ms). B's detail: \"{}\". A's line for the same `trace_id` says \
             `status={} latency_ms={}`: {a_did}. The stalled body was caught by the same \
             deadline: HTTP {}, `{}` after {} ms, although A had sent `200` and its headers at once.\n\n",
            f.timeout.reply.status,
            body(&f.timeout, "http_status"),
            f.timeout.ms(),
            b_field(&f.timeout, "latency_ms"),
            body(&f.timeout, "detail"),
            a_field(&f.timeout, "status"),
            a_field(&f.timeout, "latency_ms"),
            f.stall.reply.status,
            f.stall.kind(),
            f.stall.ms(),
        );
        let _ = write!(
            q,
            "**What happens if A is down?** With A stopped, B answered HTTP {} with \
             `\"error\":\"{}\"` in {} ms (\"{}\"): nothing listens, so the connection is \
             refused at once and no deadline is waited out. B itself stayed up: `/health` \
             answered {}, and `/ready` answered {} (`\"status\":\"{}\"`), so a load balancer \
             would take B out of rotation without restarting it. Once A was started again, \
             B's very next call answered {} in {} ms and `/ready` {}: B recovered without a \
             restart.\n\n",
            f.refused.reply.status,
            f.refused.kind(),
            f.refused.ms(),
            body(&f.refused, "detail"),
            f.health.reply.status,
            f.not_ready.reply.status,
            body(&f.not_ready, "status"),
            f.back.reply.status,
            f.back.ms(),
            f.ready_again.reply.status,
        );
        let _ = write!(
            q,
            "**What do the logs show, and how do you debug?** Each request is one line in each \
             service's log. B's line names what went wrong (`error=` the KIND, `detail=`, \
             `attempts=`, `latency_ms=`); A's line says what A did (`status=`, `fault=`). Both \
             carry the same `trace_id`, so `grep trace_id=<id>` in A's output finds A's side of \
             any call B logged. The timeout above, both sides:\n\n```\nB | {}\nA | {}\n```\n\n\
             and a call that worked:\n\n```\nB | {}\nA | {}\n```\n\n\
             B answers 503 whatever went wrong, as the course's Flask B does, while its body \
             and log carry the KIND's own status (504 for a timeout, 502 for a bad answer...).\n",
            f.timeout.b_line.as_deref().unwrap_or(""),
            f.timeout.a_line.as_deref().unwrap_or(""),
            f.ok.b_line.as_deref().unwrap_or(""),
            f.ok.a_line.as_deref().unwrap_or(""),
        );
        self.say(&q);
    }

    /// One row per call, for a quick look.
    fn summary(&mut self) {
        let mut table = String::from(
            "## Summary\n\n| # | situation | HTTP | error | time (client) |\n| --- | --- | --- | --- | --- |\n",
        );
        for (n, (situation, status, kind, ms)) in self.rows.iter().enumerate() {
            let _ = writeln!(
                table,
                "| {} | {situation} | {status} | {kind} | {ms} ms |",
                n + 1
            );
        }
        print!("\n{table}");
        self.say(&table);
    }
}
