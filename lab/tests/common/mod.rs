//! What the tests of `cargo lab up` share (`tests/up.rs`, `tests/console.rs`):
//! the launcher started as they start it, and its output read line by line.

use std::io::{BufRead as _, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;

/// `lab up` in `dir`, built services used as they are (`LAB_NO_BUILD`), A on
/// `a_port` and B on `b_port` calling it; stdin and stdout piped, so that a
/// test types commands and reads lines. Started so that it can be asked to
/// stop as Ctrl+C would (its own process group on Windows).
pub fn lab_up(dir: &Path, a_port: u16, b_port: u16) -> Command {
    let mut cmd = service_procs::command(env!("CARGO_BIN_EXE_lab"));
    cmd.arg("up")
        .current_dir(dir)
        .env("LAB_NO_BUILD", "1")
        .env("SERVICE_A_SERVER__PORT", a_port.to_string())
        .env("SERVICE_B_SERVER__PORT", b_port.to_string())
        .env(
            "SERVICE_B_UPSTREAM__URL",
            format!("http://127.0.0.1:{a_port}"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    cmd
}

/// The lines of `output` as they come, on a thread of their own (shown on
/// stderr too with `TEST_LOG=1`); the channel closes when the output does.
pub fn lines(output: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            if std::env::var_os("TEST_LOG").is_some() {
                eprintln!("{line}");
            }
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}
