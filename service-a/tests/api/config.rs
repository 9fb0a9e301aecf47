//! A's start-up: the start line, env overrides, and every way to get it wrong.

use testkit::http::get;
use testkit::Launch;

use crate::{a_config, launch};

/// Each bad config exits 2 before binding, naming the file, the key and what is allowed.
#[test]
fn bad_configs_exit_2() {
    let cases = [
        (
            "[server]\nport = 70000\n",
            "server.port = 70000, expected 0..=65535",
        ),
        (
            "[fault]\nprobability = 1.5\n",
            "fault.probability = 1.5, expected 0.0..=1.0",
        ),
        (
            "[fault]\nfail_status = 600\n",
            "fault.fail_status = 600, expected 100..=599",
        ),
        ("[fault]\ndelay = 5\n", "fault.delay: unknown field"),
        ("[faults]\n", "faults: unknown field"),
        ("[server]\nhost = \"localhost\"\n", "server.host"),
        ("[fault]\ndelay_ms = \"slow\"\n", "fault.delay_ms"),
        ("[fault\n", "line 1"),
        ("[trace]\nreport = \"jaeger\"\n", "trace.report"),
        (
            "[trace]\nendpoint = \"127.0.0.1:4318\"\n",
            "trace.endpoint = \"127.0.0.1:4318\", expected an http:// URL",
        ),
        (
            "[trace]\ntimeout_ms = 0\n",
            "trace.timeout_ms = 0, expected 1..=60000",
        ),
    ];
    for (toml, expected) in cases {
        testkit::assert_bad_config(env!("CARGO_BIN_EXE_service-a"), toml, expected);
    }
}

/// An out-of-range env override names the variable.
#[test]
fn bad_env_names_the_variable() {
    let exited = launch("")
        .env("SERVICE_A_FAULT__PROBABILITY", "2")
        .try_start()
        .unwrap_err();
    assert_eq!(exited.code, Some(2));
    assert!(
        exited
            .stderr
            .contains("env SERVICE_A_FAULT__PROBABILITY: fault.probability = 2.0"),
        "{}",
        exited.stderr
    );
}

/// Env beats the file.
#[test]
fn env_beats_file() {
    let a = launch("fail = true")
        .env("SERVICE_A_FAULT__FAIL", "false")
        .start();
    assert_eq!(get(&format!("{}/echo?msg=x", a.url)).status, 200);
}

/// A missing `--config` file is an error, not silent defaults.
#[test]
fn missing_explicit_config_exits_2() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_service-a"))
        .args(["--config", "/nonexistent/a.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/a.toml: no such file"),
        "{stderr}"
    );
}

/// A taken port exits 1 naming the address, without a panic.
#[test]
fn taken_port_exits_1() {
    let first = launch("").start();
    let port = first.port();
    let exited = Launch::new(
        env!("CARGO_BIN_EXE_service-a"),
        &format!("[server]\nport = {port}\n"),
    )
    .try_start()
    .unwrap_err();
    assert_eq!(exited.code, Some(1));
    assert!(
        exited
            .stderr
            .contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{}",
        exited.stderr
    );
    assert!(!exited.stderr.contains("panicked"), "{}", exited.stderr);
}

/// The start line comes first and names the real URL and the config.
#[test]
fn start_line() {
    let a = launch("").start();
    let first = &a.lines()[0];
    assert!(
        first.contains("service=A event=start url=http://127.0.0.1:"),
        "{first}"
    );
    assert!(!first.contains(":0 "), "{first}");
    assert!(first.contains("config="), "{first}");
    let _ = a_config("");
}

/// `--version` prints the binary's own name and the workspace version, and exits 0.
#[test]
fn version_names_the_binary() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_service-a"))
        .arg("--version")
        .output()
        .expect("run service-a --version");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("service-a {}\n", env!("CARGO_PKG_VERSION"))
    );
}
