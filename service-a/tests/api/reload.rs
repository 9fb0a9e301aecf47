//! Editing A's config while it runs: faults follow within a second; bad edits don't stick.

use std::time::{Duration, Instant};

use testkit::http::get;

use crate::{a_config, start_a};

/// Turning a fault on, then off again, by saving the file.
#[test]
fn fault_on_and_off_without_restart() {
    let a = start_a("");
    let echo = || get(&format!("{}/echo?msg=r", a.url));
    assert_eq!(echo().status, 200);

    let saved = Instant::now();
    a.write_config(&a_config("fail = true\nfail_status = 503"));
    a.wait_line(&["event=config_reloaded", "fail=true", "fail_status=503"]);
    assert!(
        saved.elapsed() < Duration::from_secs(1),
        "{:?}",
        saved.elapsed()
    );
    assert_eq!(echo().status, 503);

    let from = a.line_count();
    a.write_config(&a_config(""));
    a.wait_line_after(from, &["event=config_reloaded", "fail=false"]);
    assert_eq!(echo().status, 200);
}

/// An invalid edit is logged with file, key and reason; the last good settings stay.
#[test]
fn invalid_edit_keeps_last_good() {
    let a = start_a("fail = true");
    a.write_config(&a_config("fail = false\nprobability = 7"));
    let line = a.wait_line(&["event=config_error"]);
    assert!(
        line.contains("fault.probability = 7.0, expected 0.0..=1.0"),
        "{line}"
    );
    assert!(line.contains("service.toml"), "{line}");
    assert_eq!(get(&format!("{}/echo?msg=x", a.url)).status, 500);

    a.write_config("[fault\n");
    let from = a.line_count();
    a.wait_line_after(from.saturating_sub(1), &["event=config_error", "line 1"]);
    assert_eq!(get(&format!("{}/echo?msg=x", a.url)).status, 500);
}

/// Editors that write a new file and rename it over the old one are followed too.
#[test]
fn replaced_file_is_followed() {
    let a = start_a("");
    let tmp = a.config.with_extension("swp");
    std::fs::write(&tmp, a_config("fail = true")).unwrap();
    std::fs::rename(&tmp, &a.config).unwrap();
    a.wait_line(&["event=config_reloaded", "fail=true"]);
    assert_eq!(get(&format!("{}/echo?msg=x", a.url)).status, 500);
}

/// A changed `[server]` is not applied live; A says a restart is needed.
#[test]
fn server_change_needs_restart() {
    let a = start_a("");
    a.write_config("[server]\nport = 0\nmax_connections = 10\n");
    let line = a.wait_line(&["event=config_restart_needed"]);
    assert!(line.contains("restart"), "{line}");
    assert_eq!(get(&format!("{}/health", a.url)).status, 200);
}
