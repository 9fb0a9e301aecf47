//! The lab's own failures reach its user as a plain message and a non-zero
//! exit, never as a panic: a service that is not built, a config a service
//! refuses, a port a service cannot take. Each is made real (a lab with no
//! services beside it, an environment override the service rejects, a port
//! held by the test), and the lab's stderr is checked for the message and
//! for the absence of any panic text.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The lab's `Error: ...` line on stderr, checked to be one plain message:
/// exit code 1, no panic text, no backtrace.
fn error_of(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let all = format!("{}\n{stderr}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        !all.contains("panicked at"),
        "a panic reached the user:\n{all}"
    );
    assert!(!all.contains("RUST_BACKTRACE"), "{all}");
    stderr
        .lines()
        .find(|l| l.starts_with("Error: "))
        .unwrap_or_else(|| panic!("no `Error: ` line in:\n{all}"))
        .to_owned()
}

/// A folder of this test's own under cargo's target/tmp.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("lab-failures-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `lab demo` on free ports, its report and configs in `dir`, with `env`.
fn demo(dir: &Path, env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lab"))
        .args(["demo", "--free-ports", "--timeout-ms", "200", "--report"])
        .arg(dir.join("lab-report.md"))
        .arg("--work-dir")
        .arg(dir.join("work"))
        .env("LAB_NO_BUILD", "1")
        .envs(env.iter().copied())
        .output()
        .expect("run lab demo")
}

/// A copy of the lab alone in a folder of its own (a hard link where the
/// file system allows it): no service binary beside it.
fn lonely_lab(dir: &Path) -> PathBuf {
    let lab = dir.join(format!("lab{}", std::env::consts::EXE_SUFFIX));
    if std::fs::hard_link(env!("CARGO_BIN_EXE_lab"), &lab).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_lab"), &lab).unwrap();
    }
    lab
}

/// Services that are not built: the demo and `up` each say which
/// `cargo build` makes them, and start nothing.
#[test]
fn services_not_built_are_named_with_the_build_that_makes_them() {
    let dir = scratch("not-built");
    let lab = lonely_lab(&dir);
    let missing = dir.join(format!("service-a{}", std::env::consts::EXE_SUFFIX));
    let expected = format!(
        "no built binary at {}: run `cargo build -p service-a`",
        missing.display()
    );
    let report = dir.join("lab-report.md");
    let work = dir.join("work");
    let demo: Vec<&std::ffi::OsStr> = vec![
        "demo".as_ref(),
        "--free-ports".as_ref(),
        "--report".as_ref(),
        report.as_os_str(),
        "--work-dir".as_ref(),
        work.as_os_str(),
    ];
    for args in [demo, vec!["up".as_ref()]] {
        let out = Command::new(&lab)
            .args(&args)
            .current_dir(&dir)
            .env("LAB_NO_BUILD", "1")
            .output()
            .expect("run the lonely lab");
        let error = error_of(&out);
        assert!(error.contains(&expected), "{args:?}: {error}");
    }
}

/// A config A refuses (here an environment override, which beats the
/// demo's file): the demo names A, A's exit code and A's own reason.
#[test]
fn a_config_a_refuses_is_its_reason() {
    let dir = scratch("a-refuses");
    let out = demo(&dir, &[("SERVICE_A_FAULT__PROBABILITY", "7")]);
    let error = error_of(&out);
    assert!(
        error.starts_with(
            "Error: starting A: service-a exited with code 2 before its ready line; it said: "
        ),
        "{error}"
    );
    assert!(error.contains("probability"), "{error}");
    assert!(
        !dir.join("lab-report.md").exists(),
        "a report of a run that did not happen"
    );
}

/// B's port taken by another program: the demo names B, its exit code and
/// the address it could not take.
#[test]
fn a_port_b_cannot_take_is_named() {
    let dir = scratch("b-port");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = demo(&dir, &[("SERVICE_B_SERVER__PORT", port.as_str())]);
    let error = error_of(&out);
    assert!(
        error.starts_with("Error: starting B: service-b exited with code 1 before its ready line"),
        "{error}"
    );
    assert!(error.contains(&format!("127.0.0.1:{port}")), "{error}");
    drop(taken);
}

/// An experiment whose A refuses its config says so and which experiment.
#[test]
fn an_experiment_whose_a_refuses_says_so() {
    let dir = scratch("experiment");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lab"))
        .args([
            "experiment",
            "experiments/course.toml",
            "--seconds",
            "2",
            "--out",
        ])
        .arg(dir.join("run"))
        .current_dir(root)
        .env("LAB_NO_BUILD", "1")
        .env("SERVICE_A_FAULT__PROBABILITY", "7")
        .output()
        .expect("run lab experiment");
    let error = error_of(&out);
    assert!(
        error.starts_with(
            "Error: experiments/course.toml: [a]: starting A: service-a exited with code 2"
        ),
        "{error}"
    );
}
