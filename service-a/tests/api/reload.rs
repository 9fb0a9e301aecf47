//! Editing A's config while it runs: faults follow within a second; bad edits don't stick.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use testkit::http::{get, Conn};

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

/// A Kubernetes ConfigMap update is followed: the kubelet swaps the `..data`
/// symlink to a new directory, and the file's mtime may not change
/// (kubernetes#24215); A sees the new content within a second. Unix only:
/// a ConfigMap is a Linux node's layout, and Windows allows symlinks only
/// with Developer Mode or an administrator's right.
#[cfg(unix)]
#[test]
#[cfg(unix)]
fn configmap_symlink_swap_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name);
    let old = at("..2026_01_01_v1");
    std::fs::create_dir(&old).unwrap();
    std::fs::write(old.join("config.toml"), a_config("")).unwrap();
    std::os::unix::fs::symlink("..2026_01_01_v1", at("..data")).unwrap();
    std::os::unix::fs::symlink("..data/config.toml", at("config.toml")).unwrap();
    let a = crate::launch("").config_file(at("config.toml")).start();
    assert_eq!(get(&format!("{}/echo?msg=k", a.url)).status, 200);

    // What the kubelet does: write the new version into a new directory,
    // point a temporary symlink at it and rename that over `..data`.
    let new = at("..2026_01_01_v2");
    std::fs::create_dir(&new).unwrap();
    std::fs::write(new.join("config.toml"), a_config("fail = true")).unwrap();
    let old_mtime = std::fs::metadata(old.join("config.toml"))
        .unwrap()
        .modified()
        .unwrap();
    set_mtime(&new.join("config.toml"), old_mtime);
    std::os::unix::fs::symlink("..2026_01_01_v2", at("..data_tmp")).unwrap();
    let swapped = Instant::now();
    std::fs::rename(at("..data_tmp"), at("..data")).unwrap();
    std::fs::remove_dir_all(&old).unwrap();

    a.wait_line(&["event=config_reloaded", "fail=true"]);
    assert!(
        swapped.elapsed() < Duration::from_secs(1),
        "{:?}",
        swapped.elapsed()
    );
    assert_eq!(get(&format!("{}/echo?msg=k", a.url)).status, 500);
}

#[cfg(unix)]
fn set_mtime(path: &std::path::Path, to: std::time::SystemTime) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(to).unwrap();
}

/// Saves that truncate the file and write it in pieces, hundreds of times
/// while requests keep coming: once `fail = true` is in force no answer is
/// ever a 200, because no truncated or half-written file is applied.
#[test]
fn non_atomic_rewrites_never_apply_a_partial_file() {
    const REWRITES: usize = 600;
    const MAX_REQUESTS: usize = 20_000;
    let a = start_a("");
    let full = a_config("fail = true");
    // The empty file and the first piece alone are both valid configs without
    // a fault: were either applied, A would answer 200.
    let (head, tail) = full.split_at(full.find("[fault]").unwrap());
    a.write_config(&full);
    a.wait_line(&["event=config_reloaded", "fail=true"]);
    let from = a.line_count();

    let storming = AtomicBool::new(true);
    let statuses = std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..REWRITES {
                // Like `>` in a shell: truncate, then write.
                let mut file = std::fs::File::create(&a.config).unwrap();
                file.write_all(head.as_bytes()).unwrap();
                std::thread::sleep(Duration::from_millis(1));
                file.write_all(tail.as_bytes()).unwrap();
                drop(file);
                std::thread::sleep(Duration::from_millis(1));
            }
            storming.store(false, Ordering::Relaxed);
        });
        let mut conn = Conn::open(a.authority());
        let mut statuses = Vec::new();
        while storming.load(Ordering::Relaxed) && statuses.len() < MAX_REQUESTS {
            statuses.push(conn.get("/echo?msg=storm").status);
        }
        statuses
    });

    let ok = statuses.iter().filter(|&&s| s == 200).count();
    assert_eq!(ok, 0, "{ok} of {} answers were 200", statuses.len());
    assert!(statuses.len() >= 100, "only {} requests", statuses.len());
    // Once the storm is over the file settles, and is applied as it is.
    a.wait_line_after(from, &["event=config_reloaded", "fail=true"]);
    let lines = a.lines();
    let wrong = lines
        .iter()
        .filter(|l| l.contains("event=config_reloaded") && l.contains("fail=false"))
        .collect::<Vec<_>>();
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert_eq!(get(&format!("{}/echo?msg=x", a.url)).status, 500);
}

/// Saving the same bytes again is a save: A reloads, which restarts
/// `fail_first` and the seeded sequence of faults, as docs/faults.md promises.
#[test]
fn same_bytes_saved_again_restart_the_sequence() {
    let fault = "fail_first = 1";
    let a = start_a(fault);
    let echo = || get(&format!("{}/echo?msg=s", a.url)).status;
    assert_eq!([echo(), echo()], [500, 200]);

    let from = a.line_count();
    let saved = Instant::now();
    a.write_config(&a_config(fault));
    a.wait_line_after(from, &["event=config_reloaded", "fail_first=1"]);
    assert!(
        saved.elapsed() < Duration::from_secs(1),
        "{:?}",
        saved.elapsed()
    );
    assert_eq!([echo(), echo()], [500, 200]);

    let seeded = a_config("fail = true\nprobability = 0.5\nseed = 7");
    let mut runs = Vec::new();
    for _ in 0..2 {
        let from = a.line_count();
        a.write_config(&seeded);
        a.wait_line_after(from, &["event=config_reloaded", "seed=7"]);
        runs.push((0..16).map(|_| echo()).collect::<Vec<_>>());
    }
    assert!(runs[0].contains(&200) && runs[0].contains(&500), "{runs:?}");
    assert_eq!(runs[0], runs[1]);
}

/// Started where there is no config file (built-in defaults), A logs no
/// `config_error` (no file is not an error), and a file created later is
/// still picked up.
#[test]
fn no_file_at_start_is_not_an_error() {
    let a = crate::launch("")
        .without_file("config/service-a.toml")
        .env("SERVICE_A_SERVER__PORT", "0")
        .start();
    assert!(
        a.lines()[0].contains("built-in defaults"),
        "{:?}",
        a.lines()
    );
    // An absence has no event to wait for: give the watcher several polls.
    std::thread::sleep(service_runtime::reload::POLL_INTERVAL * 4);
    std::fs::create_dir_all(a.config.parent().unwrap()).unwrap();
    std::fs::write(&a.config, crate::a_config("fail = true")).unwrap();
    a.wait_line(&["event=config_reloaded", "fail=true"]);
    let lines = a.lines();
    assert!(
        !lines.iter().any(|l| l.contains("config_error")),
        "{lines:#?}"
    );
}
