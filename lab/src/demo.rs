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

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context as _};
use testkit::http::{parse, Reply};
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
    /// Replace the report even if it was edited.
    pub overwrite: bool,
    /// Where the services' config files go (default `target/lab-demo`).
    pub work_dir: Option<PathBuf>,
}

/// The longest answer the demo's client reads: B's answers are a few hundred
/// bytes; a bound keeps a broken server from growing the demo.
const MAX_ANSWER: usize = 64 * 1024;

/// How the report ends: the fingerprint a later run checks before replacing it.
const FINGERPRINT: &str = "<!-- cargo lab demo fingerprint ";

/// The Eight Fallacies of Distributed Computing (Deutsch, Gosling), the
/// course's optional reading: what a failure shows to be false.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallacy {
    Reliable,
    Latency,
    Bandwidth,
    Secure,
    Topology,
    /// No failure here shows it; kept so that the list is whole.
    #[allow(dead_code)]
    Administrator,
    TransportCost,
    Homogeneous,
}

impl Fallacy {
    /// The fallacy as the list words it.
    pub fn words(self) -> &'static str {
        match self {
            Self::Reliable => "The network is reliable",
            Self::Latency => "Latency is zero",
            Self::Bandwidth => "Bandwidth is infinite",
            Self::Secure => "The network is secure",
            Self::Topology => "Topology doesn't change",
            Self::Administrator => "There is one administrator",
            Self::TransportCost => "Transport cost is zero",
            Self::Homogeneous => "The network is homogeneous",
        }
    }
}

/// Each failure the demo shows: (situation, fallacy, why, in one line).
/// The README's table "Which fallacy each failure shows" says the same.
pub const FALLACIES: &[(&str, Fallacy, &str)] = &[
    ("A slowed past B's deadline", Fallacy::Latency, "a call that took 1 ms can take longer than the caller will wait"),
    ("A stopped", Fallacy::Reliable, "the other end can be gone while the caller runs on"),
    ("A restarted", Fallacy::Topology, "A came back as a new process; B must not trust connections to the old one"),
    ("A stalls its body", Fallacy::Latency, "the headers arrived at once, the body did not: a deadline must cover the whole answer"),
    ("A answers 500", Fallacy::Reliable, "a connection that works does not mean the call does"),
    ("A resets the connection (RST)", Fallacy::Reliable, "a connection can break mid-call"),
    ("A closes the connection (FIN)", Fallacy::Reliable, "an answer can simply never come"),
    ("A sends half its body", Fallacy::Reliable, "part of an answer is no answer"),
    ("A answers bytes that are not HTTP", Fallacy::Homogeneous, "the other end may not speak your protocol"),
    ("A answers an HTML page", Fallacy::Homogeneous, "a 200 can come from something that is not the service you expect"),
    ("A trickles its body", Fallacy::Bandwidth, "an answer a few bytes a second never arrives in time"),
    ("A delayed by a header", Fallacy::Secure, "A obeys any caller's `x-fault-*` header: whoever can reach a service can make it misbehave"),
    ("B's circuit breaker opens", Fallacy::TransportCost, "every call to a failing A costs; the breaker stops paying"),
];

/// The fallacy line for `situation`.
fn fallacy(situation: &str) -> String {
    FALLACIES
        .iter()
        .find(|(s, _, _)| *s == situation)
        .map(|(_, f, why)| format!("Fallacy shown: *{}*: {why}.", f.words()))
        .unwrap_or_default()
}

/// One request the demo sent and what came back.
struct Call {
    /// The `curl` command that sends the same request.
    command: String,
    /// The request, as the demo's client sent it.
    sent: String,
    /// The answer, as received.
    received: String,
    reply: Reply,
    /// B's line and, when B reached A, A's line with the same trace_id.
    b_line: String,
    a_line: Option<String>,
}

impl Call {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.reply.body).unwrap_or_default()
    }

    fn kind(&self) -> String {
        self.json()
            .get("error")
            .and_then(|e| e.as_str())
            .unwrap_or("-")
            .to_owned()
    }

    fn body(&self, key: &str) -> String {
        self.json()
            .get(key)
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .unwrap_or_else(|| "?".to_owned())
    }

    fn ms(&self) -> u128 {
        self.reply.elapsed.as_millis()
    }

    fn b(&self, key: &str) -> String {
        field(&self.b_line, key).unwrap_or_else(|| "?".to_owned())
    }

    fn a(&self, key: &str) -> String {
        self.a_line
            .as_deref()
            .and_then(|l| field(l, key))
            .unwrap_or_else(|| "?".to_owned())
    }

    fn trace(&self) -> String {
        self.b("trace_id")
    }

    /// The exchange and its log lines, as a Markdown block.
    fn block(&self) -> String {
        let mut logs = format!("B | {}\n", self.b_line);
        match &self.a_line {
            Some(a) => {
                let _ = writeln!(logs, "A | {a}");
            }
            None => logs.push_str("A | (no line: B did not reach A)\n"),
        }
        format!(
            "`{}` sends the same request; the demo's client sent it and received \
             the answer in {} ms:\n\n```http\n{}{}\n```\n\n\
             B's and A's lines for this call (the same `trace_id`):\n\n```text\n{logs}```\n",
            self.command,
            self.ms(),
            self.sent,
            self.received.trim_end(),
        )
    }
}

/// A fault saved into A's TOML, and A's word that it applied it.
struct Edit {
    /// The `[fault]` lines saved; empty when the fault was cleared.
    fault: String,
    /// A's `config_reloaded` line, shortened to the keys that were saved.
    applied: String,
    /// From the save to A's line.
    after: Duration,
}

impl Edit {
    fn said(&self) -> String {
        let what = if self.fault.is_empty() {
            "A's `[fault]` section was emptied (the fault cleared: A answers normally again)"
                .to_owned()
        } else {
            format!("`{}` was saved under `[fault]` in A's TOML", self.fault)
        };
        format!(
            "{what}; A applied it without a restart, {} ms after the save \
             (its line, shortened to the keys saved):\n\n```text\nA | {}\n```\n",
            self.after.as_millis(),
            self.applied
        )
    }
}

/// Everything the run saw, from which the report is written.
#[derive(Default)]
struct Seen {
    /// How A was stopped: asked (it drained) or killed (Windows without a
    /// console to deliver Ctrl+Break).
    a_stop: Option<crate::procs::Stop>,
    ok: Option<Call>,
    ready: Option<Call>,
    slow: Option<Edit>,
    timeout: Option<Call>,
    healed: Option<Edit>,
    stop_lines: Vec<String>,
    a_last_before_stop: Option<String>,
    refused: Option<Call>,
    health: Option<Call>,
    not_ready: Option<Call>,
    a_lines_while_down: usize,
    restart_line: String,
    back: Option<Call>,
    ready_again: Option<Call>,
    stall: Option<Call>,
    stall_edits: Vec<Edit>,
    faults: Vec<(String, String, Call)>,
    b_metrics: Vec<String>,
    a_metrics: Vec<String>,
    breaker_failing: Vec<Call>,
    breaker_edit: Option<Edit>,
    breaker_open_line: Option<String>,
    breaker_open: Option<Call>,
    a_pids: Vec<u32>,
    b_pids: Vec<u32>,
}

/// Runs the walk-through and writes the report.
pub fn run(opts: Options) -> anyhow::Result<()> {
    // Refuse before starting anything: the student's edits come first.
    check_replaceable(&opts.report, opts.overwrite)?;
    crate::procs::build()?;
    let work = work_dir(&opts)?;
    let taken: Vec<u16> = [8080, 8081].into_iter().filter(|p| !free(*p)).collect();
    let course = !opts.free_ports && taken.is_empty();
    let (a_port, mut b_port) = if course { (8080, 8081) } else { (0, 0) };
    let mut ports_note = ports_note(opts.free_ports, &taken);
    let a = match try_start_a(&work, a_port, "") {
        Some(a) => a,
        // Taken between the look and the start: free ports after all.
        None => {
            b_port = 0;
            ports_note = "free ports, because 8080 was taken as the demo started".to_owned();
            try_start_a(&work, 0, "").context("starting A")?
        }
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
    let text = shorten_paths(&lab.report(&ports_note), &lab.work);
    check_replaceable(&lab.opts.report, lab.opts.overwrite)?;
    std::fs::write(&lab.opts.report, sealed(&text))
        .with_context(|| format!("writing {}", lab.opts.report.display()))?;
    println!("\nwrote {}", lab.opts.report.display());
    Ok(())
}

/// The report names files as a student knows them: the services ran in
/// folders of their own, so their lines carry absolute paths (the demo's
/// config folder, the report given with `--report`); here they are shown
/// relative to the project folder (`target/lab-demo/service-a.toml`), and the
/// report says so. A path outside the project stays as it is.
fn shorten_paths(report: &str, work: &Path) -> String {
    let mut text = report.to_owned();
    let mut roots: Vec<(String, String)> = Vec::new();
    if let Some(project) = target_root().parent() {
        let project = std::fs::canonicalize(project).unwrap_or_else(|_| project.to_owned());
        if let Ok(rel) = work.strip_prefix(&project) {
            roots.push((work.display().to_string(), rel.display().to_string()));
        }
        for project in [
            project.clone(),
            target_root().parent().unwrap_or(&project).to_owned(),
        ] {
            let mut prefix = project.display().to_string();
            prefix.push(std::path::MAIN_SEPARATOR);
            roots.push((prefix, String::new()));
        }
    }
    for (from, to) in roots {
        if !from.is_empty() && from != std::path::MAIN_SEPARATOR.to_string() {
            text = text.replace(&from, &to);
        }
    }
    text
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

/// The text with its fingerprint line appended.
fn sealed(text: &str) -> String {
    format!("{text}\n{FINGERPRINT}{:016x} -->\n", fingerprint(text))
}

/// FNV-1a over the text: enough to see an edit (this is not about attackers).
fn fingerprint(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Whether `existing` is a report this demo wrote and nobody changed since.
fn unedited(existing: &str) -> bool {
    let Some(at) = existing.rfind(FINGERPRINT) else {
        return false;
    };
    let (text, seal) = existing.split_at(at);
    let Some(text) = text.strip_suffix('\n') else {
        return false;
    };
    seal.trim_end() == format!("{FINGERPRINT}{:016x} -->", fingerprint(text))
}

/// Err, with what to do instead, when `report` exists and was edited (or is
/// not one of the demo's reports) and `overwrite` is not set.
fn check_replaceable(report: &Path, overwrite: bool) -> anyhow::Result<()> {
    if overwrite {
        return Ok(());
    }
    let existing = match std::fs::read_to_string(report) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => bail!("cannot read {} to check it: {e}", report.display()),
    };
    if unedited(&existing) {
        return Ok(());
    }
    let free_name = (2..)
        .map(|n| {
            let stem = report
                .file_stem()
                .map_or("lab-report".into(), |s| s.to_string_lossy().to_string());
            report.with_file_name(format!("{stem}-{n}.md"))
        })
        .find(|p| !p.exists())
        .unwrap_or_else(|| PathBuf::from("lab-report-new.md"));
    bail!(
        "{} has changes of yours (or was not written by `cargo lab demo`), so the demo \
         will not replace it. Write the new report elsewhere: `cargo lab demo --report {}`; \
         or replace this one, losing those changes: `cargo lab demo --overwrite`",
        report.display(),
        free_name.display()
    )
}

/// Where the demo's own configs go: `target/lab-demo` beside the lab's
/// build, as an absolute path (the services run in folders of their own).
fn work_dir(opts: &Options) -> anyhow::Result<PathBuf> {
    let dir = match &opts.work_dir {
        Some(d) => d.clone(),
        None => target_root().join("lab-demo"),
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the demo's folder {}", dir.display()))?;
    Ok(std::fs::canonicalize(&dir).unwrap_or(dir))
}

/// `target/`: two folders above the lab's executable (`target/debug/lab`).
fn target_root() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("target"))
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

fn try_start_a(work: &Path, port: u16, fault: &str) -> Option<Proc> {
    let path = work.join("service-a.toml");
    std::fs::write(&path, a_config(port, fault)).ok()?;
    Launch::new(binary("service-a"), "")
        .config_file(&path)
        .try_start()
        .ok()
}

fn start_b(
    work: &Path,
    a_port: u16,
    port: u16,
    timeout_ms: u64,
    breaker: bool,
) -> anyhow::Result<Proc> {
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
    Launch::new(binary("service-b"), "")
        .config_file(&path)
        .try_start()
        .map_err(|e| anyhow::anyhow!("B exited ({:?}): {}", e.code, e.stderr))
}

/// `GET path` as `curl -i` sends it, but for the User-Agent, which says
/// who really sent it.
fn request_head(port: u16, path: &str, headers: &[(&str, &str)]) -> String {
    let mut head = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: cargo-lab-demo\r\nAccept: */*\r\n"
    );
    for (k, v) in headers {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    head.push_str("\r\n");
    head
}

/// Sends `head` and reads one answer (head, then its Content-Length body,
/// or to the close), at most [`MAX_ANSWER`] bytes and `patience` long.
fn exchange(port: u16, head: &str, patience: Duration) -> anyhow::Result<(Vec<u8>, Duration)> {
    let started = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .with_context(|| format!("connecting to 127.0.0.1:{port}"))?;
    s.set_read_timeout(Some(patience))?;
    s.write_all(head.as_bytes())?;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if len.is_some_and(|len| bytes.len() >= end + 4 + len) {
                break;
            }
        }
        if bytes.len() > MAX_ANSWER {
            bail!("the answer from 127.0.0.1:{port} is over {MAX_ANSWER} bytes");
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) => bail!("reading the answer from 127.0.0.1:{port}: {e}"),
        }
    }
    if !bytes.windows(4).any(|w| w == b"\r\n\r\n") {
        bail!("127.0.0.1:{port} closed before a complete answer");
    }
    Ok((bytes, started.elapsed()))
}

/// A `config_reloaded` line with only the fields a reader needs: when, who,
/// the event, the file, and the keys that were saved.
fn shorten_reload(line: &str, keys: &[&str]) -> String {
    let mut words = line.split(' ');
    let mut out: Vec<String> = words.next().map(str::to_owned).into_iter().collect();
    let mut cut = false;
    for w in words {
        let key = w.split('=').next().unwrap_or("");
        if ["service", "event", "file"].contains(&key) || keys.contains(&key) {
            out.push(w.to_owned());
        } else {
            cut = true;
        }
    }
    if cut {
        out.push("…".to_owned());
    }
    out.join(" ")
}

/// The run's two services and what it has seen so far.
struct Lab {
    opts: Options,
    a: Proc,
    b: Proc,
    a_port: u16,
    b_port: u16,
    work: PathBuf,
    seen: Seen,
}

impl Lab {
    /// Rewrites A's `[fault]` section and waits until A has applied it.
    fn set_fault(&mut self, fault: &str) -> Edit {
        let from = self.a.line_count();
        let saved = Instant::now();
        self.a.write_config(&a_config(self.a_port, fault));
        let line = self.a.wait_line_after(from, &["event=config_reloaded"]);
        let keys: Vec<&str> = fault
            .lines()
            .filter_map(|l| l.split('=').next())
            .map(str::trim)
            .collect();
        Edit {
            fault: fault.trim().to_owned(),
            applied: shorten_reload(&line, &keys),
            after: saved.elapsed(),
        }
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
        let (bytes, elapsed) = exchange(self.b_port, &head, patience)?;
        let reply = parse(&bytes, elapsed);
        let endpoint = path.split('?').next().unwrap_or(path);
        let b_line = self
            .b
            .wait_line_after(from_b, &[&format!("endpoint={endpoint} ")]);
        let trace = field(&b_line, "trace_id").unwrap_or_default();
        let a_line = a_answers.then(|| {
            self.a
                .wait_line_after(from_a, &[&format!("trace_id={trace}")])
        });
        let step = path.split('?').next().unwrap_or(path);
        println!(
            "   {step} {headers:?} -> {} in {} ms",
            reply.status,
            elapsed.as_millis()
        );
        Ok(Call {
            command,
            sent: head.replace("\r\n", "\n"),
            received: String::from_utf8_lossy(&bytes).replace("\r\n", "\n"),
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
        self.seen.slow = Some(self.set_fault(&format!("delay_ms = {slow}")));
        self.seen.timeout = Some(self.call("/call-echo?msg=hello", &[], true)?);
        self.seen.healed = Some(self.set_fault(""));

        println!("3. A stopped");
        self.seen.a_last_before_stop = self.a.lines().last().cloned();
        let how = crate::procs::terminate(self.a.child_mut())?;
        self.seen.a_stop = Some(how);
        if how == crate::procs::Stop::Killed {
            println!("   A was {}", how.describe().trim_matches(['(', ')']));
        }
        self.a.wait_exit();
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
        // Everything A printed after its stop lines (its stdout's end marker aside).
        self.seen.a_lines_while_down = self.a.lines()[a_lines_at_stop..]
            .iter()
            .filter(|l| l.as_str() != "<eof>")
            .count();

        println!("4. A restarted");
        self.a = try_start_a(&self.work, self.a_port, "").context("restarting A")?;
        self.seen.a_pids.push(self.a.pid());
        self.seen.restart_line = self.a.wait_line(&["event=start"]);
        self.seen.back = Some(self.call("/call-echo?msg=hello", &[], true)?);
        self.seen.ready_again = Some(self.call("/ready", &[], true)?);

        println!("5. A stalls its body");
        let edit = self.set_fault(&format!("body_delay_ms = {slow}"));
        self.seen.stall_edits.push(edit);
        self.seen.stall = Some(self.call("/call-echo?msg=hello", &[], true)?);
        let edit = self.set_fault("");
        self.seen.stall_edits.push(edit);

        println!("6. Every other fault, by header");
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
        crate::procs::terminate(self.b.child_mut())?;
        self.b.wait_exit();
        self.b = start_b(&self.work, self.a_port, self.b_port, t, true)?;
        self.seen.b_pids.push(self.b.pid());
        self.seen.breaker_edit = Some(self.set_fault("fail = true"));
        let from = self.b.line_count();
        for _ in 0..3 {
            let failing = self.call("/call-echo?msg=hello", &[], true)?;
            self.seen.breaker_failing.push(failing);
        }
        self.seen.breaker_open_line = Some(
            self.b
                .wait_line_after(from, &["event=circuit", "state=open"]),
        );
        self.seen.breaker_open = Some(self.call("/call-echo?msg=hello", &[], false)?);
        let _ = self.set_fault("");
        Ok(())
    }

    /// The whole report, from what the run saw.
    fn report(&mut self, ports_note: &str) -> String {
        let s = std::mem::take(&mut self.seen);
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
        let t = self.opts.timeout_ms;
        let (a_port, b_port) = (self.a_port, self.b_port);
        let mut r = String::new();

        // Title and where it was run.
        let when = humantime::format_rfc3339_seconds(SystemTime::now());
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
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
        if self.opts.free_ports {
            command.push_str(" --free-ports");
        }
        if t != 1000 {
            let _ = write!(command, " --timeout-ms {t}");
        }
        if self.opts.report != Path::new("lab-report.md") {
            let _ = write!(command, " --report {}", self.opts.report.display());
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
                s.a_pids.first().copied().unwrap_or(0)
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
            s.b_pids.first().copied().unwrap_or(0),
            health.reply.status,
            refused.kind(),
        );

        r.push_str(&self.appendix(&s));
        r
    }

    fn appendix(&self, s: &Seen) -> String {
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

/// The sample lines of `/metrics` on `port` that start with one of `prefixes`.
fn metrics(port: u16, prefixes: &[&str]) -> anyhow::Result<Vec<String>> {
    let head = request_head(port, "/metrics", &[]);
    let (bytes, _) = exchange(port, &head, Duration::from_secs(10))?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(text
        .lines()
        .filter(|l| prefixes.iter().any(|p| l.starts_with(p)))
        .map(str::to_owned)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report the demo wrote may be replaced; one edited by hand may not.
    #[test]
    fn only_an_unedited_report_is_replaceable() {
        let written = sealed("# Lab report\n\nfacts\n");
        assert!(unedited(&written));
        let edited = written.replace("facts\n", "facts\n\nMy own paragraph.\n");
        assert!(!unedited(&edited));
        assert!(!unedited("# A file the demo did not write\n"));
    }

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

    /// Only the keys saved are kept from A's long reload line, and the cut is marked.
    #[test]
    fn reload_lines_are_shortened_to_the_keys_saved() {
        let line = "2026-12-02T03:00:00.000Z service=A event=config_reloaded file=target/lab-demo/service-a.toml delay_ms=1500 jitter_ms=0 fail=false";
        assert_eq!(
            shorten_reload(line, &["delay_ms"]),
            "2026-12-02T03:00:00.000Z service=A event=config_reloaded file=target/lab-demo/service-a.toml delay_ms=1500 …"
        );
    }

    /// Every situation the demo shows has its fallacy line.
    #[test]
    fn every_failure_names_a_fallacy() {
        for (situation, _, _) in FALLACIES {
            assert!(fallacy(situation).starts_with("Fallacy shown: *"));
        }
    }
}
