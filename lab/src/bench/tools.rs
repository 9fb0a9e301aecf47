//! What the benchmark needs of the machine: whether a tool is installed,
//! pinning a process to core 0 (`taskset`, Linux), and a free port.

use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};

/// Whether `tool` is an executable file in one of `PATH`'s folders (no
/// shell: `command -v` is not there on Windows).
pub fn found(tool: &str) -> bool {
    let file = format!("{tool}{}", std::env::consts::EXE_SUFFIX);
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(&file).is_file()))
}

/// Pins every thread of process `pid` to core 0.
pub fn pin_to_core0(pid: u32) -> anyhow::Result<()> {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", "0", &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .context("running taskset")?;
    if !status.success() {
        bail!("taskset failed for pid {pid}");
    }
    Ok(())
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
