//! The launcher's failures, each a message naming the service and what it
//! did: a binary that is not built, one that exits before its ready line
//! (its code and stderr), one that prints no ready line in time (its last
//! output).
//!
//! The "service" is this test program run again with a role in its
//! environment: a launch always passes `--config PATH`, which libtest's
//! harness would refuse, so this target has no harness (`harness = false`)
//! and runs its checks from `main`, in order.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use service_procs::{Error, Launch, Service};

/// Set in the child's environment: the role [`play`] takes.
const ROLE: &str = "SERVICE_PROCS_FAKE_ROLE";

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        play(&role);
        return;
    }
    let checks: [(&str, fn()); 4] = [
        (
            "a_ready_service_gives_its_url",
            a_ready_service_gives_its_url,
        ),
        (
            "a_refused_config_is_its_exit_code_and_reason",
            a_refused_config_is_its_exit_code_and_reason,
        ),
        (
            "a_silent_service_is_named_with_its_last_output",
            a_silent_service_is_named_with_its_last_output,
        ),
        (
            "a_binary_not_built_says_how_to_build_it",
            a_binary_not_built_says_how_to_build_it,
        ),
    ];
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let mut passed = 0;
    for (name, check) in checks {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        check();
        println!("test {name} ... ok");
        passed += 1;
    }
    // libtest's summary line, which .ci/run totals (a failed check panics
    // before it: the process exits non-zero and cargo reports it).
    println!("\ntest result: ok. {passed} passed; 0 failed; 0 ignored");
}

/// The fake service: `ready` prints a ready line and waits; `silent` prints
/// two lines and waits; anything else says why on stderr and exits 2, as a
/// service refusing its config does.
fn play(role: &str) {
    match role {
        "ready" => println!("t service=A event=start url=http://127.0.0.1:4321 config=x"),
        "silent" => println!("t service=A event=loading\nt service=A event=still_loading"),
        _ => {
            eprintln!("service.toml: server.port = 70000, expected 0..=65535");
            std::process::exit(2);
        }
    }
    std::thread::sleep(Duration::from_secs(30));
}

/// Starts this program as the fake service playing `role`.
fn start(role: &str, patience: Duration) -> Result<Service, Error> {
    Launch::new(std::env::current_exe().unwrap(), "")
        .env(ROLE, role)
        .patience(patience)
        .start()
}

/// This program's file name without extension: the name a message gives it.
fn own_name() -> String {
    let exe = std::env::current_exe().unwrap();
    exe.file_stem().unwrap().to_string_lossy().into_owned()
}

/// A ready fake starts: its URL and port come from its ready line.
fn a_ready_service_gives_its_url() {
    let s = start("ready", Duration::from_secs(10)).unwrap();
    assert_eq!(s.url, "http://127.0.0.1:4321");
    assert_eq!(s.port(), 4321);
}

/// One that exits first is an error with its exit code and what it said.
fn a_refused_config_is_its_exit_code_and_reason() {
    let e = start("refuse", Duration::from_secs(10))
        .map(|s| s.url.clone())
        .unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::Exited { code: Some(2), .. }), "{text}");
    let name = own_name();
    assert!(
        text.starts_with(&format!("{name} exited with code 2 before its ready line")),
        "{text}"
    );
    assert!(
        text.contains("server.port = 70000, expected 0..=65535"),
        "{text}"
    );
}

/// One that prints no ready line in time is an error naming it and its
/// last output; it is not waited on longer than asked.
fn a_silent_service_is_named_with_its_last_output() {
    let started = Instant::now();
    let e = start("silent", Duration::from_millis(1500))
        .map(|s| s.url.clone())
        .unwrap_err()
        .to_string();
    assert!(started.elapsed() < Duration::from_secs(8), "{e}");
    let name = own_name();
    assert!(
        e.starts_with(&format!(
            "{name} did not print its ready line within 1.5 s; its last output: "
        )),
        "{e}"
    );
    assert!(e.contains("event=still_loading"), "{e}");
}

/// A binary that is not built says which `cargo build` builds it.
fn a_binary_not_built_says_how_to_build_it() {
    let missing = PathBuf::from("target/nowhere/service-z");
    let e = Launch::new(&missing, "").start().unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "no built binary at {}: run `cargo build -p service-z`",
            missing.display()
        )
    );
}
