//! Building the services and running them as children whose output is prefixed.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Sender;
use std::thread;

use anyhow::{bail, Context as _};

/// Builds both service binaries in the profile this launcher was built with
/// (skipped when `LAB_NO_BUILD` is set: the caller built them already).
pub fn build() -> anyhow::Result<()> {
    if std::env::var_os("LAB_NO_BUILD").is_some() {
        return Ok(());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
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
    Ok(())
}

/// Whether this launcher (and so the services it builds) is a release build.
pub fn release() -> bool {
    target_dir().ends_with("release")
}

/// `target/<profile>/`: where this launcher and the services are built.
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("target/debug"))
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
    let path = testkit::binary(binary);
    let mut cmd = Command::new(&path);
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

/// Asks a child to stop as Ctrl+C would, with SIGTERM. Only for a child not
/// yet reaped (no `wait` or `try_wait` has seen it exit): until then its PID
/// cannot have been given to another process.
pub fn terminate(child: &Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}
