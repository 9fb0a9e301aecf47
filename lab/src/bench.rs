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

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _};
use testkit::{binary, rss_kib, Launch, Proc};

/// Connections kept open by wrk.
const CONNECTIONS: u32 = 50;

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

/// One measured row.
struct Row {
    name: String,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
    note: String,
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
    let dead = testkit::fake::refused_url();
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
    let _ = testkit::http::get(&format!("{}/call-echo?msg=o", b_open.url));
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

fn found(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A service on a free port, faults and logs as given, pinned to core 0.
fn service(name: &str, extra: &str, pin: bool) -> anyhow::Result<Proc> {
    // One executor thread: the server gets one core, as nginx's one worker does.
    let config = format!("[server]\nport = 0\nthreads = 1\n{extra}");
    let proc = Launch::new(binary(name), &config).discard_lines().start();
    if pin {
        pin_to_core0(proc.pid())?;
    }
    Ok(proc)
}

fn pin_to_core0(pid: u32) -> anyhow::Result<()> {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", "0", &pid.to_string()])
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("taskset failed for pid {pid}");
    }
    Ok(())
}

/// One wrk run against `url`.
fn wrk(pin: bool, name: &str, url: &str, seconds: u32, note: &str) -> anyhow::Result<Row> {
    let mut cmd = if pin {
        let mut c = Command::new("taskset");
        c.args(["-c", "1", "wrk"]);
        c
    } else {
        Command::new("wrk")
    };
    let out = cmd
        .args([
            "-t1",
            &format!("-c{CONNECTIONS}"),
            &format!("-d{seconds}s"),
            "--latency",
            url,
        ])
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output:\n{text}"))?;
    let pct = |p: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(p))
            .map_or(f64::NAN, |v| millis(v.trim()))
    };
    let non_2xx = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    eprintln!("lab | {name}: {rps:.0} req/s");
    Ok(Row {
        name: name.to_owned(),
        rps,
        p50_ms: pct("50%"),
        p99_ms: pct("99%"),
        non_2xx,
        note: note.to_owned(),
    })
}

/// wrk's `312.00us`, `1.20ms`, `1.01s` in milliseconds.
fn millis(v: &str) -> f64 {
    let (num, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (v, f64::NAN)
    };
    num.parse::<f64>().map_or(f64::NAN, |n| n * scale)
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

/// nginx in temp folders on free ports, one worker each: a front answering A's
/// JSON itself and proxying to it in the same worker, and an upstream in a
/// process of its own that the front also proxies to (as B calls A).
struct Nginx {
    _front: Instance,
    _upstream: Instance,
    direct: String,
    proxy_same: String,
    proxy_apart: String,
    /// The upstream nginx itself, for A's proxy mode.
    upstream: String,
}

impl Nginx {
    fn start(pin: bool) -> anyhow::Result<Self> {
        let [direct, same, apart, upstream] =
            [free_port()?, free_port()?, free_port()?, free_port()?];
        let answer =
            r#"location / { default_type application/json; return 200 '{"echo":"hello"}'; }"#;
        let upstream_conf = format!("server {{ listen 127.0.0.1:{upstream}; {answer} }}");
        let front_conf = format!(
            r#"upstream same {{ server 127.0.0.1:{direct}; keepalive 64; }}
    upstream apart {{ server 127.0.0.1:{upstream}; keepalive 64; }}
    server {{ listen 127.0.0.1:{direct}; {answer} }}
    server {{
        listen 127.0.0.1:{same};
        location / {{ proxy_pass http://same; proxy_http_version 1.1; proxy_set_header Connection ""; }}
    }}
    server {{
        listen 127.0.0.1:{apart};
        location / {{ proxy_pass http://apart; proxy_http_version 1.1; proxy_set_header Connection ""; }}
    }}"#
        );
        let upstream_nginx = Instance::start(&upstream_conf, &[upstream], pin)?;
        let front = Instance::start(&front_conf, &[direct, same, apart], pin)?;
        let url = |port: u16| format!("http://127.0.0.1:{port}");
        Ok(Self {
            _front: front,
            _upstream: upstream_nginx,
            direct: url(direct),
            proxy_same: url(same),
            proxy_apart: url(apart),
            upstream: url(upstream),
        })
    }
}

/// One nginx master and worker, with its config, pid and temp files in `dir`.
struct Instance {
    child: Child,
    dir: tempfile::TempDir,
}

impl Instance {
    fn start(servers: &str, ports: &[u16], pin: bool) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let conf = format!(
            r#"worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir};
    proxy_temp_path {dir};
    fastcgi_temp_path {dir};
    uwsgi_temp_path {dir};
    scgi_temp_path {dir};
    {servers}
}}
"#,
            dir = dir.path().display()
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf)?;
        let child = Command::new("nginx")
            .args([
                "-c",
                &path.display().to_string(),
                "-p",
                &dir.path().display().to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nginx")?;
        for &port in ports {
            wait_port(port)?;
        }
        if pin {
            // The master and its worker: pin every nginx process of this config.
            for pid in pids_of(dir.path()) {
                pin_to_core0(pid)?;
            }
        }
        Ok(Self { child, dir })
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // Killing the master leaves the worker; stop both.
        for pid in pids_of(self.dir.path()) {
            let _ = crate::procs::terminate_pid(pid);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx processes started with the config in `dir`.
fn pids_of(dir: &Path) -> Vec<u32> {
    let out = Command::new("pgrep")
        .args(["-f", &dir.display().to_string()])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    let mut pids: Vec<u32> = out.lines().filter_map(|l| l.trim().parse().ok()).collect();
    // The worker's command line is "nginx: worker process": find it as a child.
    for parent in pids.clone() {
        let kids = Command::new("pgrep")
            .args(["-P", &parent.to_string()])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default();
        pids.extend(kids.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    }
    pids
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn wait_port(port: u16) -> anyhow::Result<()> {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    bail!("nginx did not listen on {port}")
}

/// A resident size for the report; "unknown" where the platform has no
/// /proc to read it from.
fn kib(rss: Option<u64>) -> String {
    rss.map_or_else(|| "unknown".to_owned(), |k| format!("{k} KiB"))
}
