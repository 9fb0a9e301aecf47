//! The lab's child processes: building the services, and starting them for
//! `up` with their output prefixed. Launching a service and waiting for its
//! ready line, reading its log and stopping it per platform are the
//! `service-procs` library's (re-exported here: [`terminate`], [`Stop`]),
//! where every step returns `Result` with a message a user can act on.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Sender;
use std::thread;
use std::time::Instant;

use anyhow::{bail, Context as _};
pub use service_procs::{binary, terminate, Launch, Service, Stop, PATIENCE};

/// Builds both service binaries in the profile this launcher was built with
/// (skipped when `LAB_NO_BUILD` is set: the caller built them already), and
/// says so first: a first build takes minutes, and cargo's own progress
/// does not say what it is building for.
pub fn build() -> anyhow::Result<()> {
    if std::env::var_os("LAB_NO_BUILD").is_some() {
        return Ok(());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let profile = if release() { "release" } else { "debug" };
    println!(
        "lab | building service-a and service-b ({profile}); the first time takes \
         minutes (see the README's \"First build\"), later ones seconds"
    );
    let started = Instant::now();
    let mut cmd = Command::new(cargo);
    // Not --quiet: cargo's progress is how a student sees the build is alive.
    cmd.args(["build", "-p", "service-a", "-p", "service-b"]);
    if release() {
        cmd.arg("--release");
    }
    let status = cmd.status().context("running cargo build")?;
    if !status.success() {
        bail!("cargo build failed ({status})");
    }
    println!(
        "lab | built in {:.0} s",
        started.elapsed().as_secs_f64().ceil()
    );
    Ok(())
}

/// Whether this launcher (and so the services it builds) is a release build.
pub fn release() -> bool {
    // A launcher that cannot find its own folder builds and runs debug: the
    // binary lookup after it then says where it looked.
    service_procs::binary::target_dir()
        .unwrap_or_else(|_| PathBuf::from("target/debug"))
        .ends_with("release")
}

/// Starts `binary` with `args` and `env`; each line it prints goes to `lines`
/// as `(prefix, line)`.
pub fn spawn(
    prefix: &'static str,
    binary: &str,
    args: &[&str],
    env: &[(&str, String)],
    lines: Sender<(&'static str, String)>,
) -> anyhow::Result<Child> {
    let path = self::binary(binary)?;
    let mut cmd = service_procs::command(&path);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", path.display()))?;
    if let Some(out) = child.stdout.take() {
        forward(prefix, out, lines.clone());
    }
    if let Some(err) = child.stderr.take() {
        forward(prefix, err, lines);
    }
    Ok(child)
}

fn forward(
    prefix: &'static str,
    from: impl Read + Send + 'static,
    to: Sender<(&'static str, String)>,
) {
    thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if to.send((prefix, line)).is_err() {
                break;
            }
        }
    });
}
