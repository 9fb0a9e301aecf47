//! The report's first part, the course's deliverable: where it ran, how
//! to run it locally, the success and failure proofs, the three questions
//! answered from this run's evidence, and the draft paragraph. The appendix
//! ([`super::appendix`]) follows it.

use std::fmt::Write as _;
use std::path::Path;
use std::time::SystemTime;

use super::appendix;
use super::fallacy::fallacy;
use super::seen::Seen;

/// What the report says of the run beside what it saw: its settings.
pub struct Facts<'a> {
    /// B's `upstream.timeout_ms`.
    pub timeout_ms: u64,
    /// Whether `--free-ports` was given.
    pub free_ports: bool,
    /// Where the report is written (shown when it is not the default).
    pub report: &'a Path,
    /// The ports A and B listened on.
    pub a_port: u16,
    /// B's port.
    pub b_port: u16,
    /// Which ports the run used and why.
    pub ports_note: &'a str,
}

/// The whole report, from what the run saw.
pub fn render(s: &Seen, facts: &Facts<'_>) -> String {
    let (Some(ok), Some(timeout), Some(refused), Some(health), Some(not_ready), Some(back)) = (
        &s.ok,
        &s.timeout,
        &s.refused,
        &s.health,
        &s.not_ready,
        &s.back,
    ) else {
        return "# Lab report\n\nThe run stopped before its first steps.\n".to_owned();
    };
    let t = facts.timeout_ms;
    let (a_port, b_port) = (facts.a_port, facts.b_port);
    let ports_note = facts.ports_note;
    let mut r = String::new();

    // Title and where it was run.
    let when = humantime::format_rfc3339_seconds(SystemTime::now());
    let cores = std::thread::available_parallelism()
        .map_or_else(|_| "an unknown number of".to_owned(), |n| n.to_string());
    let build = if crate::procs::release() {
        "release"
    } else {
        "debug"
    };
    let _ = write!(
        r,
        "# Lab report: service B facing a misbehaving service A\n\n\
         Written by `cargo lab demo` from a real run of this repository's A and B, \
         {when} (UTC), on {} {} ({cores} cores), {build} build. \
         A at `http://127.0.0.1:{a_port}`, B at `http://127.0.0.1:{b_port}` ({ports_note}); \
         B's deadline for each call to A: `upstream.timeout_ms = {t}`{}.\n\n\
         The requests below were sent by the demo's own HTTP client, not by curl: each \
         shows the bytes it sent and the answer it received, and names the `curl` command \
         that sends the same request, to try yourself. Times are measured by that client.\n\n",
        os_name(),
        std::env::consts::ARCH,
        if t == 1000 {
            ", the course's".to_owned()
        } else {
            ", shortened with --timeout-ms (the course's is 1000)".to_owned()
        },
    );

    // How to run locally.
    let mut command = "cargo lab demo".to_owned();
    if facts.free_ports {
        command.push_str(" --free-ports");
    }
    if t != 1000 {
        let _ = write!(command, " --timeout-ms {t}");
    }
    if facts.report != Path::new("lab-report.md") {
        let _ = write!(command, " --report {}", facts.report.display());
    }
    // B's deadline by hand is the one this run used: the course's 1000 ms
    // is B's default, any other is an environment override.
    let b_run = match (t, cfg!(windows)) {
        (1000, _) => format!("{:<28}", "cargo run -p service-b"),
        (t, false) => format!("SERVICE_B_UPSTREAM__TIMEOUT_MS={t} cargo run -p service-b   "),
        (t, true) => {
            format!("$env:SERVICE_B_UPSTREAM__TIMEOUT_MS={t}; cargo run -p service-b   ")
        }
    };
    let curl = if cfg!(windows) { "curl.exe" } else { "curl" };
    let stop = if cfg!(windows) {
        "Ctrl+C in terminal 1 (PowerShell)"
    } else {
        "Ctrl+C in terminal 1"
    };
    let _ = write!(
        r,
        "## How to run locally\n\n\
         On {os}, with the Rust toolchain installed. This report was written by:\n\n\
         ```sh\n{command}\n```\n\n\
         The same steps by hand, in three terminals:\n\n\
         ```sh\n\
         cargo run -p service-a      # terminal 1: A on 127.0.0.1:8080\n\
         {b_run}# terminal 2: B on 127.0.0.1:8081\n\
         {curl} -i \"http://127.0.0.1:8081/call-echo?msg=hello\"   # terminal 3\n\
         ```\n\n\
         To break A, set `delay_ms = {}` under `[fault]` in `config/service-a.toml` and save \
         (A applies it without a restart); to stop A, {stop}; to start it again, \
         `cargo run -p service-a` again.\n\n",
        t + 500,
        os = os_name(),
        b_run = b_run,
    );

    // Success proof.
    let _ = write!(
        r,
        "## Success proof\n\nBoth services running, no fault. B called A and passed on its echo:\n\n{}\n",
        ok.block()
    );

    // Failure proof.
    let stopped: String = s.stop_lines.iter().map(|l| format!("A | {l}\n")).collect();
    let absent = if s.a_lines_while_down == 0 {
        format!(
            "A logged nothing after these lines: it was gone (its process {} had exited), \
             and nothing listened on port {a_port}.",
            s.a_pids.first().map_or("?".to_owned(), u32::to_string)
        )
    } else {
        format!(
            "A printed {} more lines after stopping.",
            s.a_lines_while_down
        )
    };
    let how_stopped = match s.a_stop {
        Some(crate::procs::Stop::Killed) => {
            "A was killed: Ctrl+Break could not be delivered here, so A did not drain \
             (Ctrl+C in A's own terminal does drain it)"
                .to_owned()
        }
        Some(crate::procs::Stop::Asked(signal)) => {
            format!("A was stopped with {signal}, as Ctrl+C in its terminal does")
        }
        None => "A was stopped".to_owned(),
    };
    let _ = write!(
        r,
        "## Failure proof\n\n{how_stopped}; B kept running. \
         A's last lines:\n\n```text\n{stopped}```\n\n\
         Then B was called:\n\n{}\n{absent} B itself stayed up: `/health` answered {} while \
         `/ready` answered {} (`{}`).\n\n{}\n\n",
        refused.block(),
        health.reply.status,
        not_ready.reply.status,
        not_ready.reply.body.trim(),
        fallacy("A stopped"),
    );

    // The three questions.
    let a_did = match timeout.a("status").as_str() {
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
    let (stall_status, stall_kind, stall_ms) =
        s.stall.as_ref().map_or((0, "?".to_owned(), 0), |c| {
            (c.reply.status, c.kind(), c.ms())
        });
    let ready_again = s.ready_again.as_ref().map_or(0, |c| c.reply.status);
    let _ = write!(
        r,
        "## The course's three questions\n\n\
         **What happens on timeout?** With A slowed to {} ms, past the {t} ms deadline, B \
         answered HTTP {} with `\"error\":\"timeout\",\"http_status\":{}` after {} ms (B's \
         own `latency_ms={}`). B's detail: \"{}\". A's line for the same `trace_id` says \
         `status={} latency_ms={}`: {a_did}. A body stalled after the headers was caught by the \
         same deadline: HTTP {stall_status}, `{stall_kind}` after {stall_ms} ms. {}\n\n\
         **What happens if A is down?** B answered HTTP {} with `\"error\":\"{}\"` in {} ms \
         (\"{}\"): nothing listens, so the connection is refused at once and no deadline is \
         waited out. B stayed up (`/health` {}), said it was not ready (`/ready` {}), and once \
         A was started again B's very next call answered {} in {} ms and `/ready` {ready_again}, \
         without restarting B.\n\n\
         **What do the logs show?** One line per request in each service. B's line names \
         what went wrong (`error=` the KIND, `detail=`, `latency_ms=`); A's says what A did \
         (`status=`, `fault=`). Both carry the same `trace_id`, so `grep trace_id={}` in A's \
         output finds A's side of B's timeout:\n\n```text\nB | {}\nA | {}\n```\n\n\
         B answers 503 whatever went wrong, as the course's Flask B does; the body and the \
         log keep the status that names the KIND (504 for a timeout).\n\n",
        t + 500,
        timeout.reply.status,
        timeout.body("http_status"),
        timeout.ms(),
        timeout.b("latency_ms"),
        timeout.body("detail"),
        timeout.a("status"),
        timeout.a("latency_ms"),
        fallacy("A slowed past B's deadline"),
        refused.reply.status,
        refused.kind(),
        refused.ms(),
        refused.body("detail"),
        health.reply.status,
        not_ready.reply.status,
        back.reply.status,
        back.ms(),
        timeout.trace(),
        timeout.b_line,
        timeout.a_line.as_deref().unwrap_or("(none)"),
    );

    // The draft paragraph.
    let a_pids: Vec<String> = s.a_pids.iter().map(u32::to_string).collect();
    let _ = write!(
        r,
        "## What makes this distributed? (DRAFT: rewrite it in your own words)\n\n\
         > *Draft built from this run's facts; the course asks for your own paragraph.*\n>\n\
         > A and B are two separate processes (A was process {}, then {} after its restart; \
         B was process {}), each listening on its own port ({a_port} and {b_port}). B does its \
         work only by calling A over the network, an HTTP request over TCP, and the two \
         share nothing but those messages and a `trace_id`. They fail independently: while A \
         was stopped, B kept running and answered `/health` {} while its calls to A failed \
         with `{}`; while A was slow, B gave up after its own {t} ms deadline, not A's. \
         Neither can tell from inside whether the other is slow, stopped or unreachable; B \
         can only name what it saw (`timeout`, `connection_refused`), which is why it needs a \
         deadline and why every failure above is B's answer about A, not A's about itself.\n\n",
        a_pids.first().map_or("?", String::as_str),
        a_pids.get(1).map_or("?", String::as_str),
        s.b_pids.first().map_or("?".to_owned(), u32::to_string),
        health.reply.status,
        refused.kind(),
    );

    r.push_str(&appendix::render(s));
    r
}

/// The operating system, as a student would name it.
fn os_name() -> &'static str {
    match std::env::consts::OS {
        "linux" => "Linux",
        "macos" => "macOS",
        "windows" => "Windows",
        other => other,
    }
}
