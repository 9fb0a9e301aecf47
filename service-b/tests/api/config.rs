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
/// word as in `help/` (as users have read it): each service writes its own
/// text, the runtime words the rest.
#[test]
fn help_says_what_each_service_does() {
    for (binary, expected) in [
        (
            testkit::binary("service-a"),
            include_str!("help/service-a.txt"),
        ),
        (
            env!("CARGO_BIN_EXE_service-b").into(),
            include_str!("help/service-b.txt"),
        ),
    ] {
        let out = std::process::Command::new(&binary)
            .arg("--help")
            .output()
            .expect("the service runs");
        assert!(out.status.success(), "{out:?}");
        // A checkout may have turned the files' line ends into CRLF.
        let expected = expected.replace("\r\n", "\n");
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    }
}
