//! The launcher's lines into the console: [`tee`] hands over each line the
//! launcher prints and never blocks (a bounded queue, the newest dropped
//! when it is full, and counted); [`say`] prints a line of the console's
//! own, as the launcher's are, and shows it on the page too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::OnceLock;

/// Where [`tee`] sends lines, once a console runs.
static TEE: OnceLock<SyncSender<String>> = OnceLock::new();
/// Lines [`tee`] dropped because the console was behind.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Hands the console one line as the launcher printed it (`A | ...`,
/// `B | ...`, `lab | ...`). Never blocks; does nothing without a console.
pub fn tee(printed: &str) {
    if let Some(tx) = TEE.get() {
        if let Err(TrySendError::Full(_)) = tx.try_send(printed.to_owned()) {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Prints a line of the console's own, as the launcher's are, and shows it
/// on the page too.
pub fn say(text: &str) {
    use std::io::Write as _;
    let line = format!("lab | console: {text}");
    let _ = writeln!(std::io::stdout(), "{line}");
    tee(&line);
}

/// Where [`tee`] is to send from now on; `false` if a console already runs
/// in this process.
pub fn install(tx: SyncSender<String>) -> bool {
    TEE.set(tx).is_ok()
}

/// Lines [`tee`] dropped since the last call (the console fell behind).
pub fn take_dropped() -> u64 {
    DROPPED.swap(0, Ordering::Relaxed)
}
