//! `cargo run --release -p lab -- bench`: requests/s and latency of A and B on the
//! happy path, beside nginx doing the same jobs, and the latency of B's failure
//! paths under load.
//!
//! Every row: the server(s) pinned to core 0, wrk pinned to core 1 (with
//! `taskset`, when there are two cores), 50 connections, a bounded time, all on
//! loopback. Installs nothing: it says how to get wrk or nginx if missing.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _};
use testkit::{binary, rss_kib, Launch, Proc};

/// Connections kept open by wrk.
const CONNECTIONS: u32 = 50;

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
    if let Some(n) = &nginx {
        rows.push(wrk(
            pin,
            "nginx `return 200` (A's job)",
            &format!("{}/echo?msg=hello", n.direct),
            seconds,
            "",
        )?);
    }
    let a = service("service-a", "", pin)?;
    let idle_a = rss_kib(a.pid());
    rows.push(wrk(
        pin,
        "A /echo",
        &format!("{}/echo?msg=hello", a.url),
        seconds,
        "",
    )?);
    if let Some(n) = &nginx {
        let row = wrk(
            pin,
            "nginx proxy_pass, keepalive upstream (B's job)",
            &format!("{}/echo?msg=hello", n.proxy),
            seconds,
            "",
        )?;
        rows.push(row);
    }
    let b = service(
        "service-b",
        &format!("[upstream]\nurl = \"{}\"\n", a.url),
        pin,
    )?;
    let idle_b = rss_kib(b.pid());
    rows.push(wrk(
        pin,
        "B /call-echo (A on the same core)",
        &format!("{}/call-echo?msg=hello", b.url),
        seconds,
        "",
    )?);
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
        "\nRSS: A {idle_a} KiB idle, {busy_a} KiB after its load; B {idle_b} KiB idle, {busy_b} KiB after its load."
    );
    let ratio = |a: &str, b: &str| -> Option<f64> {
        let x = rows.iter().find(|r| r.name.starts_with(a))?.rps;
        let y = rows.iter().find(|r| r.name.starts_with(b))?.rps;
        Some(x / y)
    };
    if let (Some(ra), Some(rb)) = (
        ratio("A /echo", "nginx `return"),
        ratio("B /call-echo", "nginx proxy"),
    ) {
        println!("Ratios: A / nginx return = {ra:.2}; B / nginx proxy = {rb:.2}.");
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
        "\nwrk -t1 -c{CONNECTIONS}, {seconds} s a row (failure rows up to 5 s){}\n",
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

/// nginx in a temp folder on free ports: one server answering A's JSON, one
/// proxying to it with a keepalive upstream.
struct Nginx {
    child: Child,
    direct: String,
    proxy: String,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(pin: bool) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let (p1, p2) = (free_port()?, free_port()?);
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
    upstream a {{ server 127.0.0.1:{p1}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{p1};
        location / {{ default_type application/json; return 200 '{{"echo":"hello"}}'; }}
    }}
    server {{
        listen 127.0.0.1:{p2};
        location / {{ proxy_pass http://a; proxy_http_version 1.1; proxy_set_header Connection ""; }}
    }}
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
        wait_port(p1)?;
        wait_port(p2)?;
        if pin {
            // The master and its worker: pin every nginx process of this config.
            for pid in pids_of(dir.path()) {
                pin_to_core0(pid)?;
            }
        }
        Ok(Self {
            child,
            direct: format!("http://127.0.0.1:{p1}"),
            proxy: format!("http://127.0.0.1:{p2}"),
            _dir: dir,
        })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT-free stop: killing the master leaves the worker; stop both.
        for pid in pids_of(self._dir.path()) {
            let _ = Command::new("kill").arg(pid.to_string()).status();
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
