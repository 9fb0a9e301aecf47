//! `cargo lab demo`: the lab report a student hands in, written by a real run
//! of A and B.
//!
//! It starts its own A and B (on 8080 and 8081 when they are free, else on
//! free ports, saying which port was taken) with configs of its own in
//! `target/lab-demo/`, so your `config/` files are left alone (and no
//! temporary path ends up in the report). It breaks A
//! the ways a student does (editing A's TOML, sending an `x-fault-*` header,
//! stopping and restarting A), and writes what it saw.
//!
//! What the report guarantees:
//!
//! - **The course's deliverable first, a page or two**: how to run it
//!   locally (the commands this run used, for this platform), the success
//!   proof, the failure proof (A stopped: B's 503, B's error line, A's
//!   absence), the three course questions answered from this run's evidence,
//!   and a *draft* of "What makes this distributed?" built from the run's
//!   facts. Every fault, the breaker and the metrics follow in an appendix.
//! - **Only true output.** The requests are sent by the demo's own client,
//!   and the report says so and shows the bytes it sent beside the answer it
//!   received; nothing is labelled as curl's output. A log line shortened for
//!   reading is marked as shortened and keeps its own words.
//! - **The student's work is never lost.** The report ends with a
//!   fingerprint of its text. A later run replaces the file only while that
//!   fingerprint still matches (nobody edited it); otherwise it refuses,
//!   before starting anything, and says how to write elsewhere or overwrite.
//! - Each failure names the fallacy of distributed computing it shows
//!   ([`Fallacy`]), as the course's reading lists them.

//!
//! # Layout
//!
//! - this file: the run, step by step, as a student would take them.
//! - `seen`: what the run saw, and how one call is shown.
//! - `report` and `appendix`: the report's two parts, from what was seen.
//! - `fallacy`: which fallacy of distributed computing each failure shows.
//! - `replace`: the fingerprint rule that keeps a student's edits.
//! - `paths`: where the demo writes, and paths as the report names them.

mod appendix;
mod fallacy;
mod paths;
mod replace;
mod report;
mod seen;

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use service_procs::{field, Launch, Service};
use service_runtime::wire;

use crate::client::{metrics, request_head, send_and_read};
use crate::procs::{binary, Stop, PATIENCE};
use replace::{check_replaceable, sealed};
use seen::{shorten_reload, Call, Edit, Seen};

/// What `cargo lab demo` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// B's `upstream.timeout_ms` (the course's is 1000).
    pub timeout_ms: u64,
    /// Where the report goes.
    pub report: PathBuf,
    /// Free ports even when 8080 and 8081 are free.
    pub free_ports: bool,
    /// Replace the report even if it was edited.
    pub overwrite: bool,
    /// Where the services' config files go (default `target/lab-demo`).
    pub work_dir: Option<PathBuf>,
}

/// Runs the walk-through and writes the report.
pub fn run(opts: Options) -> anyhow::Result<()> {
    // Refuse before starting anything: the student's edits come first.
    check_replaceable(&opts.report, opts.overwrite)?;
    crate::procs::build()?;
    let work = paths::work_dir(opts.work_dir.as_deref())?;
    let taken: Vec<u16> = [8080, 8081].into_iter().filter(|p| !free(*p)).collect();
    let course = !opts.free_ports && taken.is_empty();
    let (a_port, mut b_port) = if course { (8080, 8081) } else { (0, 0) };
    let mut ports_note = ports_note(opts.free_ports, &taken);
    let a = match start_a(&work, a_port) {
        Ok(a) => a,
        // 8080 taken between the look and the start (A exits 1 when its
        // port is taken): free ports after all.
        Err(StartA::Refused(e)) if course && e.code == Some(1) => {
            b_port = 0;
            ports_note = "free ports, because 8080 was taken as the demo started".to_owned();
            start_a(&work, 0).map_err(|e| e.into_error("starting A"))?
        }
        Err(e) => return Err(e.into_error("starting A")),
    };
    let a_port = a.port();
    let b = start_b(&work, a_port, b_port, opts.timeout_ms, false)?;
    let b_port = b.port();
    println!(
        "A on port {a_port}, B on port {b_port} ({ports_note}), timeout_ms = {}",
        opts.timeout_ms
    );
    let mut lab = Lab {
        opts,
        a,
        b,
        a_port,
        b_port,
        work,
        seen: Seen::default(),
    };
    lab.walk()?;
    let facts = report::Facts {
        timeout_ms: lab.opts.timeout_ms,
        free_ports: lab.opts.free_ports,
        report: &lab.opts.report,
        a_port,
        b_port,
        ports_note: &ports_note,
    };
    let text = paths::shorten_paths(&report::render(&lab.seen, &facts), &lab.work);
    check_replaceable(&lab.opts.report, lab.opts.overwrite)?;
    std::fs::write(&lab.opts.report, sealed(&text))
        .with_context(|| format!("writing {}", lab.opts.report.display()))?;
    println!("\nwrote {}", lab.opts.report.display());
    Ok(())
}

/// Which ports the run used and why, naming the course port that was taken.
fn ports_note(free_ports: bool, taken: &[u16]) -> String {
    if free_ports {
        return "free ports, as --free-ports asked".to_owned();
    }
    if taken.is_empty() {
        return "the course's ports".to_owned();
    }
    let names: Vec<String> = taken.iter().map(u16::to_string).collect();
    format!(
        "free ports, because {} {} already taken on 127.0.0.1 by another program, perhaps another A or B",
        names.join(" and "),
        if taken.len() == 1 { "was" } else { "were" }
    )
}

fn free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn a_config(port: u16, fault: &str) -> String {
    format!(
        "# Written by `cargo lab demo`; your config/service-a.toml is not touched.\n\
         [server]\nport = {port}\n\n[fault]\n{fault}\n"
    )
}

/// Why A did not start: it refused (exited before its ready line, with
/// its code), or anything else.
enum StartA {
    Refused(Refused),
    Other(anyhow::Error),
}

/// A's exit before its ready line.
struct Refused {
    code: Option<i32>,
    error: service_procs::Error,
}

impl StartA {
    /// The error, under `doing` (e.g. `starting A`).
    fn into_error(self, doing: &'static str) -> anyhow::Error {
        match self {
            Self::Refused(r) => anyhow::Error::new(r.error).context(doing),
            Self::Other(e) => e.context(doing),
        }
    }
}

/// Starts A on `port` with no fault, its config in `work`.
fn start_a(work: &Path, port: u16) -> Result<Service, StartA> {
    let path = work.join("service-a.toml");
    std::fs::write(&path, a_config(port, ""))
        .with_context(|| format!("writing {}", path.display()))
        .map_err(StartA::Other)?;
    let binary = binary("service-a").map_err(|e| StartA::Other(e.into()))?;
    Launch::new(binary, "")
        .config_file(&path)
        .start()
        .map_err(|error| match error {
            service_procs::Error::Exited { code, .. } => StartA::Refused(Refused { code, error }),
            other => StartA::Other(other.into()),
        })
}

fn start_b(
    work: &Path,
    a_port: u16,
    port: u16,
    timeout_ms: u64,
    breaker: bool,
) -> anyhow::Result<Service> {
    let path = work.join("service-b.toml");
    let mut toml = format!(
        "# Written by `cargo lab demo`; your config/service-b.toml is not touched.\n\
         [server]\nport = {port}\n\n[upstream]\nurl = \"http://127.0.0.1:{a_port}\"\ntimeout_ms = {timeout_ms}\n"
    );
    if breaker {
        toml.push_str(
            "\n[circuit_breaker]\nenabled = true\nfailure_threshold = 3\nopen_ms = 5000\n",
        );
    }
    std::fs::write(&path, toml).with_context(|| format!("writing {}", path.display()))?;
    Launch::new(binary("service-b")?, "")
        .config_file(&path)
        .start()
        .context("starting B")
}

/// The run's two services and what it has seen so far.
struct Lab {
    opts: Options,
    a: Service,
    b: Service,
    a_port: u16,
    b_port: u16,
    work: PathBuf,
    seen: Seen,
}

impl Lab {
    /// Rewrites A's `[fault]` section and waits until A has applied it.
    fn set_fault(&mut self, fault: &str) -> anyhow::Result<Edit> {
        let from = self.a.line_count();
        let saved = Instant::now();
        self.a.write_config(&a_config(self.a_port, fault))?;
        let line = self
            .a
            .wait_line_after(from, &["event=config_reloaded"])
            .context("A did not apply its new [fault]")?;
        let keys: Vec<&str> = fault
            .lines()
            .filter_map(|l| l.split('=').next())
            .map(str::trim)
            .collect();
        Ok(Edit {
            fault: fault.trim().to_owned(),
            applied: shorten_reload(&line, &keys),
            after: saved.elapsed(),
        })
    }

    /// Calls `path` on B and records it with the log lines of the same call.
    fn call(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        a_answers: bool,
    ) -> anyhow::Result<Call> {
        let url = format!("http://127.0.0.1:{}{path}", self.b_port);
        let curl = if cfg!(windows) { "curl.exe" } else { "curl" };
        let mut command = format!("{curl} -i");
        for (k, v) in headers {
            let _ = write!(command, " -H '{k}: {v}'");
        }
        let _ = write!(command, " \"{url}\"");
        let head = request_head(self.b_port, path, headers);
        let from_b = self.b.line_count();
        let from_a = self.a.line_count();
        let patience = Duration::from_millis(self.opts.timeout_ms + 10_000);
        let reply = send_and_read(self.b_port, &head, patience)
            .with_context(|| format!("calling B's {path}"))?;
        // `split` always yields a first piece: the path before any query.
        let endpoint = path.split('?').next().unwrap_or(path);
        let b_line = self
            .b
            .wait_line_after(from_b, &[&format!("endpoint={endpoint} ")])
            .with_context(|| format!("B did not log its answer to {path}"))?;
        let trace = field(&b_line, "trace_id")
            .with_context(|| format!("B's line for {path} has no trace_id: {b_line}"))?;
        let a_line = match a_answers {
            true => Some(
                self.a
                    .wait_line_after(from_a, &[&format!("trace_id={trace}")])
                    .with_context(|| format!("A did not log B's call for {path}"))?,
            ),
            false => None,
        };
        println!(
            "   {endpoint} {headers:?} -> {} in {} ms",
            reply.status,
            reply.elapsed.as_millis()
        );
        Ok(Call {
            command,
            sent: head.replace("\r\n", "\n"),
            received: String::from_utf8_lossy(&reply.bytes).replace("\r\n", "\n"),
            reply,
            b_line,
            a_line,
        })
    }

    /// Every step, in the order a student would take them.
    fn walk(&mut self) -> anyhow::Result<()> {
        let t = self.opts.timeout_ms;
        let slow = t + 500;
        self.seen.a_pids.push(self.a.pid());
        self.seen.b_pids.push(self.b.pid());

        println!("1. A healthy");
        self.seen.ok = Some(self.call("/call-echo?msg=hello", &[], true)?);
        self.seen.ready = Some(self.call("/ready", &[], true)?);

        println!("2. A slowed past B's deadline");
        self.seen.slow = Some(self.set_fault(&format!("delay_ms = {slow}"))?);
        self.seen.timeout = Some(self.call("/call-echo?msg=hello", &[], true)?);
        self.seen.healed = Some(self.set_fault("")?);

        println!("3. A stopped");
        self.seen.a_last_before_stop = self.a.lines().last().cloned();
        let how = self.a.terminate().context("stopping A")?;
        self.seen.a_stop = Some(how);
        if how == Stop::Killed {
            println!("   A was {}", how.describe().trim_matches(['(', ')']));
        }
        self.a.wait_exit(PATIENCE)?;
        self.seen.stop_lines = self
            .a
            .lines()
            .into_iter()
            .filter(|l| l.contains("event=stopp"))
            .collect();
        let a_lines_at_stop = self.a.line_count();
        self.seen.refused = Some(self.call("/call-echo?msg=hello", &[], false)?);
        self.seen.health = Some(self.call("/health", &[], false)?);
        self.seen.not_ready = Some(self.call("/ready", &[], false)?);
        // Everything A printed after its stop lines.
        self.seen.a_lines_while_down = self.a.line_count().saturating_sub(a_lines_at_stop);

        println!("4. A restarted");
        self.a = start_a(&self.work, self.a_port).map_err(|e| e.into_error("restarting A"))?;
        self.seen.a_pids.push(self.a.pid());
        self.seen.restart_line = self.a.wait_line_after(0, &["event=start"])?;
        self.seen.back = Some(self.call("/call-echo?msg=hello", &[], true)?);
        self.seen.ready_again = Some(self.call("/ready", &[], true)?);

        println!("5. A stalls its body");
        let edit = self.set_fault(&format!("body_delay_ms = {slow}"))?;
        self.seen.stall_edits.push(edit);
        self.seen.stall = Some(self.call("/call-echo?msg=hello", &[], true)?);
        let edit = self.set_fault("")?;
        self.seen.stall_edits.push(edit);

        println!("6. Every other fault, by header");
        let slow = slow.to_string();
        let faults = [
            (wire::FAULT_STATUS, "500", "A answers 500"),
            (wire::FAULT_RESET, "1", "A resets the connection (RST)"),
            (wire::FAULT_DROP, "1", "A closes the connection (FIN)"),
            (wire::FAULT_TRUNCATE, "1", "A sends half its body"),
            (
                wire::FAULT_GARBAGE,
                "1",
                "A answers bytes that are not HTTP",
            ),
            (wire::FAULT_BAD_BODY, "1", "A answers an HTML page"),
            // A few bytes a second: the body cannot arrive in time.
            (wire::FAULT_BODY_BYTES_PER_S, "10", "A trickles its body"),
            (wire::FAULT_DELAY_MS, slow.as_str(), "A delayed by a header"),
        ];
        for (header, value, situation) in faults {
            let call = self.call("/call-echo?msg=hello", &[(header, value)], true)?;
            self.seen
                .faults
                .push((situation.to_owned(), format!("{header}: {value}"), call));
        }

        println!("7. Metrics");
        self.seen.b_metrics = metrics(
            self.b_port,
            &[
                "upstream_calls_total{",
                "http_requests_total{endpoint=\"/call-echo\"",
            ],
        )?;
        self.seen.a_metrics = metrics(self.a_port, &["faults_injected_total{"])?;

        println!("8. B's circuit breaker");
        self.b.terminate().context("stopping B")?;
        self.b.wait_exit(PATIENCE)?;
        self.b = start_b(&self.work, self.a_port, self.b_port, t, true)?;
        self.seen.b_pids.push(self.b.pid());
        self.seen.breaker_edit = Some(self.set_fault("fail = true")?);
        let from = self.b.line_count();
        for _ in 0..3 {
            let failing = self.call("/call-echo?msg=hello", &[], true)?;
            self.seen.breaker_failing.push(failing);
        }
        self.seen.breaker_open_line = Some(
            self.b
                .wait_line_after(from, &["event=circuit", "state=open"])
                .context("B did not open its breaker after three failures")?,
        );
        self.seen.breaker_open = Some(self.call("/call-echo?msg=hello", &[], false)?);
        // A is left without a fault, as the student's next run expects.
        self.set_fault("")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The report says which course port was taken, not "8080 or 8081".
    #[test]
    fn the_taken_port_is_named() {
        assert_eq!(ports_note(false, &[]), "the course's ports");
        assert_eq!(ports_note(true, &[]), "free ports, as --free-ports asked");
        let one = ports_note(false, &[8081]);
        assert!(
            one.starts_with("free ports, because 8081 was already taken"),
            "{one}"
        );
        assert!(!one.contains("8080"), "{one}");
        let both = ports_note(false, &[8080, 8081]);
        assert!(both.contains("8080 and 8081 were already taken"), "{both}");
    }
}
