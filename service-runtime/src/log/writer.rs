//! The writer thread between log lines and stdout, that neither a slow
//! reader nor a flood of lines can make block a request or grow the process.
//!
//! Lines go to the writer through a queue bounded in bytes ([`QUEUE_BYTES`]):
//! past the bound, new lines are dropped. Every line lost, to a full queue or
//! to a failed write (stdout closed), is counted in `/metrics`
//! (`log_lines_dropped_total`) and, once a write succeeds again, said in an
//! `event=log_dropped lines=N` line. The writer writes whatever is waiting in
//! one write, as fast as stdout takes it. [`flush_within`] at exit writes the
//! rest, but never waits longer than it is told: a stdout nobody reads does
//! not keep a stopped service alive.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::OnceLock;
use std::time::Duration;

use crate::log::line::{in_a_service, Line};
use crate::metrics::LOG_LINES_DROPPED as LOST;

/// Bytes of rendered lines that may wait for the writer thread (the batch
/// being written included) before new lines are dropped: a few seconds of
/// lines at full load, and a bound on what logging can add to a process's
/// memory however slow stdout is. Sized with the k8s manifests' memory
/// limits (`deploy/k8s`).
pub const QUEUE_BYTES: usize = 4 * 1024 * 1024;

/// The most bytes the writer hands to stdout in one write.
const BATCH_BYTES: usize = 256 * 1024;

enum Message {
    Line(String),
    /// Write everything queued so far, then answer.
    Flush(SyncSender<()>),
}

/// The queue to the writer thread, started on first use.
static QUEUE: OnceLock<Sender<Message>> = OnceLock::new();
/// Bytes queued or being written, bounded by [`QUEUE_BYTES`].
static QUEUED: AtomicUsize = AtomicUsize::new(0);
/// Lines lost and not yet said in an `event=log_dropped` line.
static UNREPORTED: AtomicU64 = AtomicU64::new(0);
/// Counts `n` lines lost.
fn lost(n: u64) {
    LOST.inc_by(n);
    UNREPORTED.fetch_add(n, Ordering::Relaxed);
}

fn queue() -> &'static Sender<Message> {
    QUEUE.get_or_init(|| {
        let (tx, rx) = channel();
        let spawned = std::thread::Builder::new()
            .name("log-writer".to_owned())
            .spawn(move || write_lines(rx));
        if spawned.is_err() {
            // No thread: the receiver is gone and every line is counted as lost.
            lost(1);
        }
        tx
    })
}

/// Queues `message` for the writer; false if there is no writer.
fn send(message: Message) -> bool {
    queue().send(message).is_ok()
}

/// How long the writer lets lines gather after the first one, when the queue
/// holds less than a batch: under a light load it then wakes at most 200 times
/// a second, never once per request (a thread wake-up per line costs more than
/// serving the request it logs). With a batch or more waiting it never waits:
/// the writer goes as fast as stdout takes the bytes.
const GATHER: std::time::Duration = std::time::Duration::from_millis(5);

/// The writer thread: everything waiting, in one write; then the lost count.
fn write_lines(rx: Receiver<Message>) {
    let mut out = std::io::stdout().lock();
    let mut batch = Vec::with_capacity(BATCH_BYTES);
    while let Ok(first) = rx.recv() {
        if matches!(first, Message::Line(_)) && QUEUED.load(Ordering::Relaxed) < BATCH_BYTES {
            std::thread::sleep(GATHER);
        }
        let mut acks = Vec::new();
        let mut lines = 0u64;
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Line(line) => {
                    batch.extend_from_slice(line.as_bytes());
                    lines += 1;
                }
                Message::Flush(ack) => acks.push(ack),
            }
            next = if batch.len() < BATCH_BYTES {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        let queued = batch.len();
        let unreported = UNREPORTED.swap(0, Ordering::Relaxed);
        if unreported > 0 {
            let line = Line::event("log_dropped").num("lines", unreported).str(
                "detail",
                "stdout was too slow or closed; see log_lines_dropped_total",
            );
            batch.extend_from_slice(line.render().as_bytes());
        }
        if out.write_all(&batch).and_then(|()| out.flush()).is_err() {
            // Stdout closed or broken: the lines are lost, and counted; the
            // `log_dropped` line will say so once a write succeeds.
            LOST.inc_by(lines);
            UNREPORTED.fetch_add(lines + unreported, Ordering::Relaxed);
        }
        QUEUED.fetch_sub(queued, Ordering::Relaxed);
        batch.clear();
        if batch.capacity() > BATCH_BYTES * 2 {
            batch.shrink_to(BATCH_BYTES);
        }
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

/// How long [`flush`] waits at most: for start-up failures, where no grace
/// was configured yet.
pub const FLUSH_LIMIT: Duration = Duration::from_secs(1);

/// Waits until every line emitted so far is written, or [`FLUSH_LIMIT`].
pub fn flush() {
    flush_within(FLUSH_LIMIT);
}

/// Waits until every line emitted so far is written, but no longer than
/// `limit`: true if they were. A stdout nobody reads then costs the lines
/// still queued (counted), never the exit.
pub fn flush_within(limit: Duration) -> bool {
    let (ack, done) = sync_channel(1);
    send(Message::Flush(ack)) && done.recv_timeout(limit).is_ok()
}

/// Emitting is the writer's job, so it is defined here, beside the queue.
impl Line {
    /// Queues the line for stdout; never blocks (see the module doc).
    pub fn emit(self) {
        if !in_a_service() {
            // Not a running service (a unit test calling a handler): print in
            // place, where the test harness captures it.
            print!("{}", self.render());
            return;
        }
        let line = self.render();
        let bytes = line.len();
        if QUEUED.fetch_add(bytes, Ordering::Relaxed) + bytes > QUEUE_BYTES {
            QUEUED.fetch_sub(bytes, Ordering::Relaxed);
            lost(1);
            return;
        }
        if !send(Message::Line(line)) {
            QUEUED.fetch_sub(bytes, Ordering::Relaxed);
            lost(1);
        }
    }
}
