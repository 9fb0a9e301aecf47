//! `cargo run --release -p lab -- bench`: requests/s and latency of A and B on the
//! happy path, beside nginx doing the same jobs (A's proxy mode beside nginx's
//! `proxy_pass` to the same upstream), and the latency of B's failure paths
//! under load.
//!
//! Every row: the server(s) pinned to core 0, wrk pinned to core 1 (with
//! `taskset`, when there are two cores), 50 connections, a bounded time, all on
//! loopback. Installs nothing: it says how to get wrk or nginx if missing.
//!
//! The happy-path rows run in interleaved rounds and report medians, and each
//! ratio is the median of per-round ratios: on a shared VM the machine's speed
//! drifts by tens of percent within minutes, so only runs seconds apart compare.
//! B's baseline is nginx proxying to an nginx upstream in another process, as B
//! calls A; nginx proxying to its own worker is shown beside it.
//!
//! # Layout
//!
//! - this file: the rows, their rounds and medians, and the table.
//! - `wrk`: one wrk run and what it measured.
//! - `nginx`: the nginx baselines, in folders of their own.
//! - `tools`: finding a tool, pinning a process to a core, a free port.

mod nginx;
mod tools;
mod wrk;

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::client::{request_head, send_and_read};
use crate::procs::{binary, Launch, Service};
use nginx::Nginx;
use service_procs::rss_kib;
use tools::{found, free_port, pin_to_core0};
use wrk::{wrk, Row, CONNECTIONS};

/// Happy-path rounds; each row gets `seconds / ROUNDS` of load per round.
const ROUNDS: u32 = 3;

const NGINX_RETURN: &str = "nginx `return 200` (A's job)";
const A_ECHO: &str = "A /echo";
const NGINX_PROXY_APART: &str = "nginx proxy_pass → nginx upstream in its own process (B's job)";
const NGINX_PROXY_SAME: &str = "nginx proxy_pass → upstream in the same worker";
const B_CALL: &str = "B /call-echo → A (two processes, as nginx apart)";
const A_PROXY: &str =
    "A proxy mode → nginx upstream in its own process (a [[fault.rules]] entry checked per request)";

/// The row of `name` over `rounds`: median req/s and percentiles, all non-2xx.
fn median_row(name: &str, rounds: &[Vec<Row>]) -> Row {
    let runs: Vec<&Row> = rounds.iter().flatten().filter(|r| r.name == name).collect();
    let of = |f: fn(&Row) -> f64| median(&mut runs.iter().map(|r| f(r)).collect::<Vec<_>>());
    Row {
        name: name.to_owned(),
        rps: of(|r| r.rps),
        p50_ms: of(|r| r.p50_ms),
        p99_ms: of(|r| r.p99_ms),
        non_2xx: runs.iter().map(|r| r.non_2xx).sum(),
        note: format!("median of {}", runs.len()),
    }
}

/// Seconds of load per row and round, out of `seconds` per happy-path row.
fn round_seconds(seconds: u32) -> u32 {
    (seconds / ROUNDS).max(2)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs every row for `seconds` each and prints a Markdown table.
pub fn run(seconds: u32) -> anyhow::Result<()> {
    if !crate::procs::release() {
        eprintln!("lab | warning: a debug build; run `cargo run --release -p lab -- bench`");
    }
    crate::procs::build()?;
    if !found("wrk") {
        bail!("wrk is not installed: `apt-get install wrk` (Debian/Ubuntu) or `brew install wrk`");
    }
    let pin = found("taskset") && std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2;
    let mut rows = Vec::new();

    let nginx = if found("nginx") {
        Some(Nginx::start(pin)?)
    } else {
        eprintln!("lab | nginx not installed (`apt-get install nginx-light`): no baseline rows");
        None
    };
    let a = service("service-a", "", pin)?;
    let b = service(
        "service-b",
        &format!("[upstream]\nurl = \"{}\"\n", a.url),
        pin,
    )?;
    let (idle_a, idle_b) = (rss_kib(a.pid()), rss_kib(b.pid()));

    // The happy path: every row once per round, rounds back to back, so that
    // each ratio compares runs a few seconds apart (this VM's speed drifts by
    // tens of percent over minutes).
    let mut happy: Vec<(&str, String)> = Vec::new();
    if let Some(n) = &nginx {
        happy.push((NGINX_RETURN, format!("{}/echo?msg=hello", n.direct)));
    }
    happy.push((A_ECHO, format!("{}/echo?msg=hello", a.url)));
    if let Some(n) = &nginx {
        happy.push((
            NGINX_PROXY_APART,
            format!("{}/echo?msg=hello", n.proxy_apart),
        ));
        happy.push((NGINX_PROXY_SAME, format!("{}/echo?msg=hello", n.proxy_same)));
    }
    // A in front of the same nginx upstream as nginx's own proxy_pass, with
    // a rule that every request is checked against (and none matches).
    let a_proxy = match &nginx {
        Some(n) => Some(service(
            "service-a",
            &format!(
                "[proxy]\nupstream = \"{}\"\n[[fault.rules]]\nmethod = \"POST\"\npath = \"/orders\"\n\
                 fault = {{ fail = true }}\n",
                n.upstream
            ),
            pin,
        )?),
        None => None,
    };
    if let Some(p) = &a_proxy {
        happy.push((A_PROXY, format!("{}/echo?msg=hello", p.url)));
    }
    happy.push((B_CALL, format!("{}/call-echo?msg=hello", b.url)));
    let slice = round_seconds(seconds);
    let mut rounds: Vec<Vec<Row>> = Vec::new();
    for round in 1..=ROUNDS {
        eprintln!("lab | round {round} of {ROUNDS}");
        let mut this = Vec::new();
        for (name, url) in &happy {
            this.push(wrk(pin, name, url, slice, "")?);
        }
        rounds.push(this);
    }
    for (name, _) in &happy {
        rows.push(median_row(name, &rounds));
    }
    let (busy_a, busy_b) = (rss_kib(a.pid()), rss_kib(b.pid()));

    // Failure paths: exact under load?
    let slow_a = service("service-a", "[fault]\ndelay_ms = 300\n", pin)?;
    let b_slow = service(
        "service-b",
        &format!("[upstream]\nurl = \"{}\"\ntimeout_ms = 100\n", slow_a.url),
        pin,
    )?;
    rows.push(wrk(
        pin,
        "B, A slower than timeout_ms = 100 → timeout",
        &format!("{}/call-echo?msg=t", b_slow.url),
        seconds.min(5),
        "p50/p99 include the 100 ms timeout",
    )?);
    // A port nobody listens on: B's calls to it are refused at once.
    let dead = format!("http://127.0.0.1:{}", free_port()?);
    let b_dead = service("service-b", &format!("[upstream]\nurl = \"{dead}\"\n"), pin)?;
    rows.push(wrk(
        pin,
        "B, A stopped → connection_refused",
        &format!("{}/call-echo?msg=r", b_dead.url),
        seconds.min(5),
        "",
    )?);
    let b_open = service(
        "service-b",
        &format!("[upstream]\nurl = \"{dead}\"\n[circuit_breaker]\nenabled = true\nfailure_threshold = 1\nopen_ms = 600000\n"),
        pin,
    )?;
    // One refused call opens the breaker (failure_threshold = 1).
    let head = request_head(b_open.port(), "/call-echo?msg=o", &[]);
    let answer = send_and_read(b_open.port(), &head, Duration::from_secs(10))?;
    if answer.status != 503 {
        bail!(
            "B answered {} to a call to a stopped A, where 503 (connection_refused) \
             should open its breaker: {}",
            answer.status,
            answer.body
        );
    }
    rows.push(wrk(
        pin,
        "B, breaker open → circuit_open",
        &format!("{}/call-echo?msg=o", b_open.url),
        seconds.min(5),
        "",
    )?);

    print!("{}", table(&rows, seconds, pin));
    println!(
        "\nRSS: A {} idle, {} after its load; B {} idle, {} after its load.",
        kib(idle_a),
        kib(busy_a),
        kib(idle_b),
        kib(busy_b)
    );
    // Each ratio: the median over rounds of that round's ratio.
    let ratio = |ours: &str, theirs: &str| -> Option<f64> {
        let mut each: Vec<f64> = rounds
            .iter()
            .map(|round| {
                let rps = |name: &str| round.iter().find(|r| r.name == name).map(|r| r.rps);
                Some(rps(ours)? / rps(theirs)?)
            })
            .collect::<Option<_>>()?;
        Some(median(&mut each))
    };
    if let (Some(ra), Some(rb), Some(rs)) = (
        ratio(A_ECHO, NGINX_RETURN),
        ratio(B_CALL, NGINX_PROXY_APART),
        ratio(B_CALL, NGINX_PROXY_SAME),
    ) {
        println!(
            "Ratios (median of {ROUNDS} rounds): A / nginx return = {ra:.2}; \
             B / nginx proxy to an upstream process = {rb:.2}; \
             B / nginx proxy to its own worker = {rs:.2}."
        );
    }
    if let Some(rp) = ratio(A_PROXY, NGINX_PROXY_APART) {
        println!(
            "A proxy mode / nginx proxy_pass to the same upstream process = {rp:.2} (median of {ROUNDS} rounds)."
        );
    }
    Ok(())
}

/// A service on a free port, faults and logs as given, pinned to core 0.
fn service(name: &str, extra: &str, pin: bool) -> anyhow::Result<Service> {
    // One executor thread: the server gets one core, as nginx's one worker does.
    let config = format!("[server]\nport = 0\nthreads = 1\n{extra}");
    let proc = Launch::new(binary(name)?, &config)
        .discard_lines()
        .start()
        .with_context(|| format!("starting {name} for the benchmark"))?;
    if pin {
        pin_to_core0(proc.pid())?;
    }
    Ok(proc)
}

fn table(rows: &[Row], seconds: u32, pin: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nwrk -t1 -c{CONNECTIONS}; happy-path rows: {ROUNDS} interleaved rounds of {} s, medians; failure rows: one run of up to 5 s{}\n",
        round_seconds(seconds),
        if pin {
            ", servers on core 0, wrk on core 1"
        } else {
            ", unpinned"
        }
    );
    let _ = writeln!(out, "| row | req/s | p50 ms | p99 ms | non-2xx | note |");
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | --- |");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.2} | {:.2} | {} | {} |",
            r.name, r.rps, r.p50_ms, r.p99_ms, r.non_2xx, r.note
        );
    }
    out
}

/// A resident size for the report; "unknown" where the platform has no
/// /proc to read it from.
fn kib(rss: Option<u64>) -> String {
    rss.map_or_else(|| "unknown".to_owned(), |k| format!("{k} KiB"))
}
