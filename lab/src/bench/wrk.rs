//! One wrk run and what it measured: requests per second, p50 and p99
//! latency, and the answers that were not 2xx, read from wrk's text output.

use std::process::Command;

use anyhow::Context as _;

/// Connections kept open by wrk.
pub const CONNECTIONS: u32 = 50;

/// One measured row.
pub struct Row {
    pub name: String,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub non_2xx: u64,
    pub note: String,
}

/// One wrk run against `url`.
pub fn wrk(pin: bool, name: &str, url: &str, seconds: u32, note: &str) -> anyhow::Result<Row> {
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
        // wrk prints the line only when there were some.
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
