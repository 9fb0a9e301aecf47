//! Watching a service's config file while it runs: a saved edit is handed
//! to the service within [`APPLY_BOUND`] (350 ms). A applies its `[fault]`
//! live; B (which applies nothing live) says which keys need a restart.
//!
//! What is guaranteed:
//!
//! - **Only a settled file is applied.** A version of the file is applied once
//!   two reads [`SETTLE`] apart found the same bytes with the same stamp
//!   (modification time and file identity): a save in progress (truncated,
//!   half written) changes between those reads and is not applied. A writer
//!   that pauses longer than [`SETTLE`] in the middle of a save can still be
//!   caught half way; write a temporary file and rename it over the config to
//!   be safe whatever the pause. A file rewritten more often than every
//!   [`SETTLE`] is applied once the rewriting stops.
//! - **An empty file is never applied live**: it is what a truncating save
//!   looks like before its bytes arrive. It is logged (`event=config_error`)
//!   and the last good settings stay (at start-up an empty file means the
//!   defaults, as before).
//! - **What is applied is exactly what was read**: the bytes compared are the
//!   bytes parsed and validated, once; the file is not read again in between.
//! - **Changes are seen by content and by stamp.** Each poll opens the path
//!   afresh, following symlinks as they are at that moment, so a Kubernetes
//!   ConfigMap update (its `..data` symlink swapped to a new directory, the
//!   file's modification time possibly unchanged, kubernetes#24215) is seen
//!   by its new bytes. A save with the same bytes (a new modification time)
//!   also reloads, which restarts the seeded sequence of faults and
//!   `fail_first`, as docs/faults.md promises for each save.
//! - **Timing**: a save that ends at time t is applied by t + [`APPLY_BOUND`]
//!   (the next poll, within [`POLL_INTERVAL`], then one [`SETTLE`]), plus the
//!   microseconds a read and a parse of a small file take.
//! - **An unchanged file is not read again**: each poll first compares the
//!   file's stamp (modification time, identity, length) with the version
//!   last read, which costs one `stat`; only a different stamp is read.
//!   (Where the platform gives no modification time, every poll reads.)
//! - **The file is read like an untrusted one** (`ConfigSource::read`):
//!   a FIFO, a device or a directory is refused with a `config_error`
//!   before it is opened, more than 1 MiB is refused unread.
//! - **The watcher is never stuck**: a read runs on a blocking thread and
//!   is given [`READ_LIMIT`]; one that takes longer (a hung network file
//!   system) is said once (`config_error`) and left to finish on its own,
//!   while the watcher goes on polling, and no second read is started
//!   until it ends. So a later good file is applied within the bound, and
//!   SIGHUP keeps working.
//! - **SIGHUP** re-reads the file at once, even if it did not change, and
//!   applies it one [`SETTLE`] later if it has not changed meanwhile.
//! - A bad edit is logged once (`event=config_error`, naming the file, the key
//!   and what is allowed) and the last good settings stay in force. A missing
//!   or unreadable file is logged once and the last good settings stay.
//! - **No file at start is not an error**: a service started on its
//!   built-in defaults (said in its start line) logs nothing while the file
//!   stays absent, and applies it once it is created. A file that was read
//!   and is then removed is said (`file is gone`).
//!
//! Polling (not inotify) because it survives every way editors save: in place,
//! by writing a new file and renaming it over the old one, or by swapping a
//! symlink. A `stat` four times a second costs nothing.

use std::time::Duration;

use smol::channel::Receiver;
use smol::future::FutureExt as _;
use smol::{Task, Timer};

use crate::config::{ConfigSource, ReadError, Snapshot, Stamp};
use crate::log::Line;

/// How often the file is looked at while nothing is pending.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// How long a new version of the file must stay the same (bytes and stamp)
/// before it is applied: far longer than a save takes, far shorter than the
/// one-second contract. While a change is pending the file is read this often.
pub const SETTLE: Duration = Duration::from_millis(100);

/// A save is applied at most this long after it ends: [`POLL_INTERVAL`] +
/// [`SETTLE`], well within the one second docs/faults.md promises.
pub const APPLY_BOUND: Duration = POLL_INTERVAL.saturating_add(SETTLE);

// The contract is one second; a change of the constants above must keep it.
const _: () = assert!(APPLY_BOUND.as_millis() < 1000);

/// The longest a read of the file may take before the watcher stops
/// waiting for it: a local file of at most 1 MiB is read in microseconds.
pub const READ_LIMIT: Duration = Duration::from_millis(1000);

/// What a watched service does with its file.
pub trait Apply {
    /// A settled, non-empty version of the file: parse it, check it, put
    /// what can change live in force, and say what happened.
    fn apply(&mut self, bytes: &[u8]);
}

impl<F: FnMut(&[u8])> Apply for F {
    fn apply(&mut self, bytes: &[u8]) {
        self(bytes)
    }
}

/// Watches `source` forever, handing every settled save to `target`.
/// `started` is the file as read at start; each message on `hangups` (a
/// SIGHUP) reads the file again, changed or not.
pub async fn watch(
    source: ConfigSource,
    started: Option<Snapshot>,
    hangups: Receiver<()>,
    mut target: impl Apply,
) {
    // The version last applied or rejected: only a different one is tried.
    let mut seen = started;
    // A different version read once, to be applied if the next read agrees.
    let mut pending: Option<Snapshot> = None;
    // A SIGHUP asked for a reload even if nothing changed.
    let mut forced = false;
    // The last read error logged, so that each is said once.
    let mut trouble: Option<String> = None;
    // A read that outlived READ_LIMIT, still running on its thread.
    let mut slow: Option<Task<Result<Option<Snapshot>, ReadError>>> = None;
    loop {
        if pending.is_some() {
            Timer::after(SETTLE).await;
        } else {
            forced |= poll_or_hangup(&hangups).await;
        }
        // SIGHUPs that came meanwhile are answered by the read below.
        while hangups.try_recv().is_ok() {
            forced = true;
        }
        let mut task = match slow.take() {
            Some(task) => task,
            None => {
                let source = source.clone();
                // An unchanged file is not read again (a pending version is:
                // it must be read twice to be applied).
                let known = seen
                    .as_ref()
                    .filter(|_| pending.is_none() && !forced)
                    .map(|s| s.stamp);
                smol::unblock(move || read_if_changed(&source, known))
            }
        };
        let read = async { Some((&mut task).await) }
            .or(async {
                Timer::after(READ_LIMIT).await;
                None
            })
            .await;
        let Some(read) = read else {
            let detail = format!(
                "reading the file took over {} ms (a hung network file system?); \
                 still waiting for it",
                READ_LIMIT.as_millis()
            );
            if trouble.as_deref() != Some(&detail) {
                config_error(&source, &detail);
                trouble = Some(detail);
            }
            slow = Some(task);
            pending = None;
            continue;
        };
        let read = match read {
            Ok(None) => {
                trouble = None;
                continue;
            }
            Ok(Some(now)) => Ok(now),
            Err(e) => Err(e),
        };
        let now = match read {
            Ok(now) => now,
            // No file at start, and none yet: the built-in defaults the start
            // line named are in force, which is no error. Polling goes on, so
            // a file created later is applied.
            Err(ReadError::Missing) if seen.is_none() => {
                trouble = None;
                pending = None;
                continue;
            }
            Err(e) => {
                // Some editors remove the file for a moment while saving.
                let detail = match e {
                    ReadError::Missing => "file is gone".to_owned(),
                    e => e.to_string(),
                };
                if trouble.as_deref() != Some(&detail) {
                    config_error(&source, &detail);
                    trouble = Some(detail);
                }
                pending = None;
                continue;
            }
        };
        trouble = None;
        match pending.take() {
            Some(before) if before == now => {
                if now.bytes.is_empty() {
                    config_error(&source, "file is empty (a save in progress?)");
                } else {
                    target.apply(&now.bytes);
                }
                seen = Some(now);
                forced = false;
            }
            _ if forced || seen.as_ref() != Some(&now) => pending = Some(now),
            _ => {}
        }
    }
}

/// The file, unless its stamp is still `known` (then `None`, for one `stat`).
fn read_if_changed(
    source: &ConfigSource,
    known: Option<Stamp>,
) -> Result<Option<Snapshot>, ReadError> {
    if let (Some(known), Ok(stamp)) = (known, source.stamp()) {
        if stamp.same_version(&known) {
            return Ok(None);
        }
    }
    source.read().map(Some)
}

/// Waits one [`POLL_INTERVAL`]; true if a SIGHUP cut it short.
async fn poll_or_hangup(hangups: &Receiver<()>) -> bool {
    let hangup = async {
        match hangups.recv().await {
            Ok(()) => true,
            // No sender left: no SIGHUP can come.
            Err(_) => std::future::pending().await,
        }
    };
    async {
        Timer::after(POLL_INTERVAL).await;
        false
    }
    .or(hangup)
    .await
}

/// A line about the config file: `event=EVENT file=PATH`.
pub fn line(source: &ConfigSource, event: &str) -> Line {
    Line::event(event).str("file", &source.path.display().to_string())
}

/// Says what is wrong with the file, and that nothing changed: a student
/// reading the line must know the service still runs the settings it had.
pub fn config_error(source: &ConfigSource, detail: &str) {
    line(source, "config_error")
        .str(
            "error",
            &format!("{detail}; keeping the last good settings"),
        )
        .emit();
}

/// The dotted keys whose values differ between `running` and `fresh`
/// (`server.port`, `upstream.timeout_ms`), sorted.
pub fn changed_keys<T: serde::Serialize>(running: &T, fresh: &T) -> Vec<String> {
    fn walk(prefix: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
        use serde_json::Value;
        match (a, b) {
            (Value::Object(a), Value::Object(b)) => {
                let mut keys: Vec<&String> = a.keys().collect();
                keys.extend(b.keys().filter(|k| !a.contains_key(*k)));
                for key in keys {
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    let null = Value::Null;
                    walk(
                        &path,
                        a.get(key).unwrap_or(&null),
                        b.get(key).unwrap_or(&null),
                        out,
                    );
                }
            }
            (a, b) if a != b => out.push(prefix.to_owned()),
            _ => {}
        }
    }
    let (Ok(a), Ok(b)) = (serde_json::to_value(running), serde_json::to_value(fresh)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    walk("", &a, &b, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Changed keys are named by their dotted path, nested maps included.
    #[test]
    fn names_changed_keys() {
        let a = serde_json::json!({"server": {"port": 1, "host": "x"}, "upstream": {"timeout_ms": 1000, "retry_on": ["a"]}});
        let b = serde_json::json!({"server": {"port": 2, "host": "x"}, "upstream": {"timeout_ms": 500, "retry_on": ["a", "b"]}});
        assert_eq!(
            changed_keys(&a, &b),
            ["server.port", "upstream.retry_on", "upstream.timeout_ms"]
        );
        assert!(changed_keys(&a, &a).is_empty());
    }

    /// An unchanged file costs a `stat`, not a read; a changed one is read.
    #[test]
    fn unchanged_file_is_not_read_again() {
        let path = std::env::temp_dir().join(format!("reload-stamp-{}.toml", std::process::id()));
        std::fs::write(&path, "a = 1\n").unwrap();
        let source = ConfigSource {
            path: path.clone(),
            explicit: true,
            env_prefix: "NONE_",
        };
        let first = source.read().unwrap();
        let unchanged = read_if_changed(&source, Some(first.stamp)).unwrap();
        std::fs::write(&path, "a = 22\n").unwrap();
        let changed = read_if_changed(&source, Some(first.stamp)).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(unchanged.is_none());
        assert_eq!(changed.unwrap().bytes, b"a = 22\n");
    }
}
