//! `cargo lab experiment FILE`: one experiment, run against the real service
//! binaries on free loopback ports, and its report folder.
//!
//! # Layout
//!
//! The steps are modules, so each can be read (and tested) alone:
//!
//! - [`scenario`]: the TOML file, parsed and checked before anything starts.
//! - [`load`]: the open-loop calls to B, and the probe of B's `/health`.
//! - [`logs`]: A's and B's log lines, read.
//! - [`join`]: those lines joined to the calls by trace id; the matrix of
//!   what A did against what B said.
//! - [`record`]: what a run produced, as the steps after it read it.
//! - [`stats`]: the numbers per phase; [`verdict`]: the expectations met or not.
//! - [`report`] and [`charts`]: `report.md`, `calls.csv`, and the
//!   `timeline` and `latency` charts, each as SVG and PNG.
//! - [`outcome`]: `ok`, B's KINDs (read from `service_b`) and `no_answer`,
//!   with their colours: the vocabulary every step above speaks.
//!
//! This file only sequences them: start A and B, run the load while it drives
//! the phases (A's TOML rewritten as a student would, A stopped and started),
//! stop both so that every log line is out, then join and report.

pub mod charts;
pub mod join;
pub mod load;
pub mod logs;
pub mod outcome;
pub mod record;
pub mod report;
pub mod scenario;
pub mod stats;
pub mod verdict;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context as _};

use crate::procs::{Launch, Service, Stop, PATIENCE};
use record::Event;
use scenario::{Action, Experiment, Scale};

/// What the command line asked for.
#[derive(Debug)]
pub struct Options {
    pub file: PathBuf,
    pub scale: Scale,
    /// The report folder; by default `runs/<file stem>-<UTC time>`.
    pub out: Option<PathBuf>,
}

/// How often B's `/health` is probed.
const PROBE_EVERY: Duration = Duration::from_millis(100);

/// Runs the experiment; returns whether every expectation was met.
pub fn run(opts: &Options) -> anyhow::Result<bool> {
    let mut e = scenario::file::load(&opts.file, opts.scale)?;
    let (bin_dir, build) = binaries()?;
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let stem = opts
        .file
        .file_stem()
        .map_or("experiment".into(), |s| s.to_string_lossy().to_string());
    let out = opts.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(format!("{stem}-{}", stamp.replace(':', "")))
    });
    std::fs::create_dir_all(&out)
        .with_context(|| format!("cannot create the report folder {}", out.display()))?;

    let exe = std::env::consts::EXE_SUFFIX;
    let a_bin = bin_dir.join(format!("service-a{exe}"));
    let b_bin = bin_dir.join(format!("service-b{exe}"));
    let mut fault = e.a_fault.clone();
    // `behind = "echo"`: the real server A stands in front of, for the whole run.
    let _server = match e.behind_echo {
        false => None,
        true => {
            let server = Launch::new(&a_bin, "[server]\nport = 0\n")
                .discard_lines()
                .start()
                .context("starting the echo server behind A")?;
            e.proxy_to(&server.url);
            Some(server)
        }
    };
    let a = Launch::new(&a_bin, &e.a_toml(0, &fault)?)
        .start()
        .with_context(|| format!("{}: [a]: starting A", opts.file.display()))?;
    let a_port = a.port();
    let b = Launch::new(&b_bin, &e.b_toml(&a.url)?)
        .start()
        .with_context(|| format!("{}: [b]: starting B", opts.file.display()))?;
    let b_addr: SocketAddr = b
        .authority()
        .parse()
        .with_context(|| format!("B's start line gave no address: {}", b.url))?;
    eprintln!(
        "lab | {}: A at {}, B at {}; {} phases, {:.1} s; report in {}",
        e.title,
        a.url,
        b.url,
        e.phases.len(),
        e.total_seconds(),
        out.display()
    );

    let starts = e.phase_starts();
    let plan = load::Plan {
        b: b_addr,
        rate: e.rate,
        max_in_flight: e.max_in_flight,
        msg: e.msg.clone(),
        phases: e
            .phases
            .iter()
            .zip(&starts)
            .map(|(p, s)| (*s, s + p.seconds, p.headers.clone()))
            .collect(),
        // B answers within its budget; past it plus a margin B is stuck.
        patience: Duration::from_millis(e.timeout_ms + 5000),
        run_id: run_id(),
    };
    let mut a_procs = vec![a];
    let mut events = Vec::new();
    let mut kills = Vec::new();
    let stop_probe = AtomicBool::new(false);
    let wall0 = SystemTime::now();
    let t0 = Instant::now();
    let limit = Duration::from_secs_f64(e.total_seconds() + 60.0);
    let (calls, probes, driven) = std::thread::scope(|s| {
        let load = s.spawn(|| load::run(&plan, t0));
        let probe = s.spawn(|| load::probe_health(b_addr, t0, PROBE_EVERY, &stop_probe, limit));
        let driven = drive(
            &e,
            &a_bin,
            a_port,
            &mut a_procs,
            &mut fault,
            t0,
            &mut events,
            &mut kills,
        );
        let calls = load.join();
        stop_probe.store(true, Ordering::Relaxed);
        let probes = probe.join();
        (calls, probes, driven)
    });
    // Stop both, so that every line (A's late ones included) is written.
    let mut b = b;
    stop(&mut b);
    for a in &mut a_procs {
        stop(a);
    }
    driven?;
    // A panicked thread is a bug in the lab: an error, never "0 calls".
    let calls = calls.map_err(|_| {
        anyhow::anyhow!("the load generator failed (a bug in the lab: see the panic above)")
    })?;
    let probes = probes.map_err(|_| {
        anyhow::anyhow!("the probe of B's /health failed (a bug in the lab: see the panic above)")
    })?;

    let a_lines: Vec<String> = a_procs.iter().flat_map(Service::lines).collect();
    let logs = logs::parse_logs(&a_lines, &b.lines(), wall0);
    for (at, line) in &logs.a_config {
        let what = if line.contains("event=config_error") {
            format!(
                "A refused its new config: {}",
                service_procs::field(line, "error").unwrap_or_default()
            )
        } else {
            "A applied its new [fault] (event=config_reloaded)".to_owned()
        };
        if *at >= 0.0 {
            events.push(Event { at_ms: *at, what });
        }
    }
    events.sort_by(|x, y| x.at_ms.total_cmp(&y.at_ms));
    let joined = join::join(&calls, &logs, &kills, e.timeout_ms);
    let run = record::Run {
        experiment: &e,
        file: &opts.file,
        calls: &calls,
        joined: &joined,
        logs: &logs,
        probes: &probes,
        events: &events,
        build,
        started: stamp,
    };
    let stats = stats::phase_stats(&run);
    let matrix = join::Matrix::of(calls.iter().zip(&joined));
    let verdicts = verdict::verdicts(&run, &stats, &matrix);
    report::write(&out, &run, &stats, &matrix, &verdicts)?;
    charts::write(&out, &e, &calls)?;

    println!("{}", report::phase_table(&run, &stats));
    let mut all = true;
    for v in &verdicts {
        all &= v.met;
        println!(
            "{} {}: {} (measured {})",
            if v.met { "met    " } else { "NOT MET" },
            v.phase,
            v.what,
            v.measured
        );
    }
    println!("\nreport: {}", out.join("report.md").display());
    Ok(all)
}

/// Runs the phases' actions at their start times; returns when the last
/// phase ends. A's processes go into `a_procs` (their lines are needed).
#[allow(clippy::too_many_arguments)]
fn drive(
    e: &Experiment,
    a_bin: &Path,
    a_port: u16,
    a_procs: &mut Vec<Service>,
    fault: &mut toml::Table,
    t0: Instant,
    events: &mut Vec<Event>,
    kills: &mut Vec<f64>,
) -> anyhow::Result<()> {
    let now_ms = || t0.elapsed().as_secs_f64() * 1000.0;
    let mut running = true;
    for (phase, start) in e.phases.iter().zip(e.phase_starts()) {
        sleep_until(t0, start);
        if let Some(f) = &phase.fault {
            *fault = f.clone();
            if running {
                // As a student saves the file: A notices within 350 ms.
                if let Some(a) = a_procs.last() {
                    std::fs::write(&a.config, e.a_toml(a_port, fault)?)
                        .context("rewriting A's config")?;
                }
                events.push(Event {
                    at_ms: now_ms(),
                    what: "A's TOML saved with the new [fault]".into(),
                });
            }
        }
        match phase.action {
            None => {}
            Some(Action::Stop) => {
                if let Some(a) = a_procs.last_mut() {
                    let how = a.terminate().context("stopping A")?;
                    events.push(Event {
                        at_ms: now_ms(),
                        what: match how {
                            Stop::Asked(signal) => format!("{signal} to A"),
                            Stop::Killed => "A killed (no way to ask it to stop here)".into(),
                        },
                    });
                    a.wait_exit(PATIENCE)?;
                    events.push(Event {
                        at_ms: now_ms(),
                        what: "A exited".into(),
                    });
                }
                running = false;
            }
            Some(Action::Kill) => {
                if let Some(a) = a_procs.last_mut() {
                    kills.push(now_ms());
                    a.kill();
                    events.push(Event {
                        at_ms: now_ms(),
                        what: "A killed (SIGKILL)".into(),
                    });
                }
                running = false;
            }
            Some(Action::Start) => {
                let Some(old) = a_procs.last() else {
                    bail!("no A to restart")
                };
                let again = Launch::beside(old, a_bin, &e.a_toml(a_port, fault)?)
                    .start()
                    .with_context(|| format!("starting A again on port {a_port}"))?;
                events.push(Event {
                    at_ms: now_ms(),
                    what: format!("A started again on port {a_port}"),
                });
                a_procs.push(again);
                running = true;
            }
        }
    }
    sleep_until(t0, e.total_seconds());
    Ok(())
}

fn sleep_until(t0: Instant, at_s: f64) {
    let at = Duration::from_secs_f64(at_s);
    let now = t0.elapsed();
    if at > now {
        std::thread::sleep(at - now);
    }
}

/// Asks it to stop (SIGTERM, Ctrl+Break on Windows), then waits until it
/// has exited and its stdout is closed: every line is in. One that cannot
/// be asked, or does not exit, is killed, and the user told.
fn stop(p: &mut Service) {
    // One that exited already (killed by a phase) is only waited on.
    let asked = match p.has_exited() {
        true => Ok(()),
        false => p.terminate().map(drop),
    };
    let stopped = asked.and_then(|()| p.wait_exit(PATIENCE));
    if let Err(e) = stopped {
        eprintln!("lab | warning: {e}; killed it, so some of its log lines may be missing");
        p.kill();
    }
}

/// A number that differs between runs, for trace ids.
fn run_id() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (nanos ^ (u64::from(std::process::id()) << 32)) | 1
}

/// Where the service binaries are, and which build they are. By default the
/// release binaries, built first (`cargo build --release`); with
/// `LAB_NO_BUILD` set, those next to this launcher, as built (the tests use
/// the debug ones cargo test already built).
fn binaries() -> anyhow::Result<(PathBuf, &'static str)> {
    let exe = std::env::current_exe().context("finding the lab's own executable")?;
    let here = exe
        .parent()
        .map(Path::to_path_buf)
        .context("the lab's executable has no folder")?;
    // `deps/` when run from a test harness.
    let here = if here.ends_with("deps") {
        here.parent().map(Path::to_path_buf).unwrap_or(here)
    } else {
        here
    };
    if std::env::var_os("LAB_NO_BUILD").is_some() {
        let build = if here.ends_with("release") {
            "release"
        } else {
            "debug"
        };
        return Ok((here, build));
    }
    // Not --quiet: the first release build takes minutes, and cargo's
    // progress shows it is working.
    eprintln!(
        "lab | building the release binaries of service-a and service-b (the first time \
         takes minutes: see the README's \"First build\"; later ones seconds)"
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "service-a", "-p", "service-b"])
        .status()
        .context("running cargo build --release")?;
    if !status.success() {
        bail!("cargo build --release -p service-a -p service-b failed ({status})");
    }
    let release = here
        .parent()
        .map(|t| t.join("release"))
        .context("no target folder above the lab's executable")?;
    Ok((release, "release"))
}
