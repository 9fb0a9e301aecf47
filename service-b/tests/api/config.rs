//! B's config: env beats the file; bad values stop B before it binds.

use testkit::fake::{FakeA, Misbehaviour};
use testkit::http::get;
use testkit::Launch;

use crate::b_config;

/// `SERVICE_B_UPSTREAM__TIMEOUT_MS` beats the file's `timeout_ms`.
#[test]
fn env_beats_file() {
    let _clock = crate::timing();
    let fake = FakeA::start(Misbehaviour::Hang);
    let b = Launch::new(env!("CARGO_BIN_EXE_service-b"), &b_config(&fake.url, 5000))
        .env("SERVICE_B_UPSTREAM__TIMEOUT_MS", "100")
        .start();
    let reply = get(&format!("{}/call-echo?msg=x", b.url));
    assert_eq!(reply.json()["error"], "timeout");
    assert!(reply.elapsed.as_millis() < 1000, "{:?}", reply.elapsed);
}

/// Bad upstream settings: exit 2 naming the file, the key and what is allowed.
#[test]
fn bad_upstream_settings_exit_2() {
    let cases = [
        ("url = \"https://127.0.0.1:8080\"", "upstream.url"),
        ("url = \"127.0.0.1:8080\"", "upstream.url"),
        (
            "timeout_ms = 0",
            "upstream.timeout_ms = 0, expected 1..=600000",
        ),
        ("retry = 3", "upstream.retry: unknown field"),
    ];
    for (line, expected) in cases {
        let config = format!("[server]\nport = 0\n[upstream]\n{line}\n");
        testkit::assert_bad_config(env!("CARGO_BIN_EXE_service-b"), &config, expected);
    }
}

/// Each service's `--help` says what it does (B's with its KINDs), where its
/// config is, how env overrides it and what its exit codes mean, word for
/// word: each writes its own text, the runtime words the rest.
#[test]
fn help_says_what_each_service_does() {
    for (binary, expected) in [
        (testkit::binary("service-a"), HELP_A),
        (env!("CARGO_BIN_EXE_service-b").into(), HELP_B),
    ] {
        let out = std::process::Command::new(&binary)
            .arg("--help")
            .output()
            .expect("the service runs");
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    }
}

/// A's `--help`, as users have read it.
const HELP_A: &str = "\
Service A of the failure lab: echoes GET /echo?msg=... on 127.0.0.1:8080, and misbehaves as [fault] in its config says (slow, failing, dropping, stalling). Edits of [fault] apply while it runs, within 350 ms of a save.

Usage: service-a [OPTIONS]

Options:
      --config <PATH>  TOML config file [default: config/<binary>.toml, looked for in the working directory and then in each folder above it, as cargo finds Cargo.toml; built-in defaults if there is none]
  -h, --help           Print help
  -V, --version        Print version

Endpoints: GET / lists them.
Config: config/service-a.toml lists every key with its default and range.
Environment: SERVICE_A_<SECTION>__<KEY> overrides a key of the file, e.g. SERVICE_A_FAULT__DELAY_MS=1500; SERVICE_A_SERVER__PORT=0 picks a free port.
Exit codes: 0 stopped by SIGINT/SIGTERM (Ctrl+C/Ctrl+Break on Windows), 1 cannot listen, 2 bad config.
";

/// B's `--help`, as users have read it.
const HELP_B: &str = "\
Service B of the failure lab: GET /call-echo?msg=... on 127.0.0.1:8081 calls A with a deadline (upstream.timeout_ms, 1000 ms) and names what went wrong with a KIND: timeout, connection_refused, connection_reset, upstream_status, bad_response, unreachable, circuit_open, b_overloaded.

Usage: service-b [OPTIONS]

Options:
      --config <PATH>  TOML config file [default: config/<binary>.toml, looked for in the working directory and then in each folder above it, as cargo finds Cargo.toml; built-in defaults if there is none]
  -h, --help           Print help
  -V, --version        Print version

Endpoints: GET / lists them.
Config: config/service-b.toml lists every key with its default and range.
Environment: SERVICE_B_<SECTION>__<KEY> overrides a key of the file, e.g. SERVICE_B_UPSTREAM__TIMEOUT_MS=500; SERVICE_B_SERVER__PORT=0 picks a free port.
Exit codes: 0 stopped by SIGINT/SIGTERM (Ctrl+C/Ctrl+Break on Windows), 1 cannot listen, 2 bad config.
";
