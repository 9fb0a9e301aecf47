//! Finished spans sent to an OpenTelemetry collector as OTLP/HTTP with JSON
//! bodies (`POST <endpoint>/v1/traces`), without ever holding up a request.
//!
//! Two threads stand between a request and the collector. fastrace's own
//! collector thread hands each finished batch to [`Exporter::report`], which
//! only puts it on a bounded queue (`try_send`: when the queue is full the
//! batch is dropped). A sender thread of ours takes batches off the queue and
//! POSTs them with a blocking socket, every step bounded by `[trace]
//! timeout_ms`. So a collector that is down or slow costs requests nothing:
//! its spans are dropped and counted in `trace_spans_dropped_total`, never
//! retried, and the queue's bound caps the memory they can hold.
//!
//! The counters are process-wide statics in `metrics.rs`
//! (`SPANS_EXPORTED`, `SPANS_DROPPED`), because fastrace allows one
//! reporter per process and it is set before any service registry exists.
//!
//! This file is the exporter's thread and queue; `otlp/client.rs` is its
//! HTTP client (one POST, judged by its status line), `otlp/schema.rs` the
//! OTLP/JSON body and [`SPAN_KIND`].

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::Duration;

use fastrace::collector::{Reporter, SpanRecord};
use url::Url;

use crate::log::Line;
use crate::metrics::{SPANS_DROPPED as DROPPED, SPANS_EXPORTED as EXPORTED};

mod client;
mod schema;

use client::{post, Target};
use schema::encode;
pub use schema::SPAN_KIND;

/// Spans per POST: a busy second of a service is split into bodies of a
/// size every collector accepts (their defaults start at 4 MiB).
const BATCH_SPANS: usize = 512;

/// Batches waiting for the sender. With [`BATCH_SPANS`] this bounds what a
/// stalled collector can make the process hold: 16 × 512 spans.
const QUEUE_BATCHES: usize = 16;

/// The queue's sending end, kept for [`drain`] (fastrace owns the exporter).
static QUEUE: OnceLock<SyncSender<Job>> = OnceLock::new();

/// The export timeout, which also bounds [`drain`].
static TIMEOUT: OnceLock<Duration> = OnceLock::new();

/// What the sender thread is asked to do.
enum Job {
    Send(Vec<SpanRecord>),
    /// Answer on the channel once every batch before this one is done.
    Flush(SyncSender<()>),
}

/// The fastrace reporter for `[trace] report = "otlp"`.
pub struct Exporter {
    queue: SyncSender<Job>,
}

impl Exporter {
    /// Starts the sender thread for `service` (its `service.name`), posting to `url`.
    pub fn start(service: &'static str, url: Url, timeout: Duration) -> Self {
        let (queue, jobs) = mpsc::sync_channel(QUEUE_BATCHES);
        let _ = QUEUE.set(queue.clone());
        let _ = TIMEOUT.set(timeout);
        let sender = Sender {
            service,
            target: Target::from(&url),
            timeout,
            failing: false,
        };
        let spawned = std::thread::Builder::new()
            .name("otlp-sender".to_owned())
            .spawn(move || sender.run(jobs));
        if let Err(e) = spawned {
            // Without the thread every batch is dropped (and counted) at once.
            Line::event("trace_export_failed")
                .str("error", &format!("cannot start the sender thread: {e}"))
                .emit();
        }
        Self { queue }
    }
}

impl Reporter for Exporter {
    fn report(&mut self, spans: Vec<SpanRecord>) {
        let mut spans = spans.into_iter().peekable();
        while spans.peek().is_some() {
            let batch: Vec<SpanRecord> = spans.by_ref().take(BATCH_SPANS).collect();
            match self.queue.try_send(Job::Send(batch)) {
                Ok(()) => {}
                Err(TrySendError::Full(Job::Send(batch)))
                | Err(TrySendError::Disconnected(Job::Send(batch))) => {
                    DROPPED.inc_by(batch.len() as u64);
                }
                Err(_) => {}
            }
        }
    }
}

/// Waits until the spans handed over so far are exported or dropped, at most
/// the export timeout plus a little: at exit, after `fastrace::flush`.
pub fn drain() {
    let (Some(queue), Some(timeout)) = (QUEUE.get(), TIMEOUT.get()) else {
        return;
    };
    let (done, wait) = mpsc::sync_channel(1);
    // A full queue means a stuck collector: blocking here would hold up exit
    // for every queued batch's timeout, so give up at once instead.
    if queue.try_send(Job::Flush(done)).is_ok() {
        let _ = wait.recv_timeout(*timeout + Duration::from_millis(100));
    }
}

/// The sender thread's state.
struct Sender {
    service: &'static str,
    target: Target,
    timeout: Duration,
    /// Whether the last export failed: only a change is logged, so a dead
    /// collector costs one log line, not one per second.
    failing: bool,
}

impl Sender {
    fn run(mut self, jobs: Receiver<Job>) {
        loop {
            match jobs.recv_timeout(Duration::from_secs(3600)) {
                Ok(Job::Send(batch)) => self.export(&batch),
                Ok(Job::Flush(done)) => {
                    let _ = done.try_send(());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn export(&mut self, batch: &[SpanRecord]) {
        let body = encode(self.service, batch);
        let n = batch.len() as u64;
        match post(&self.target, &body, self.timeout) {
            Ok(()) => {
                EXPORTED.inc_by(n);
                if self.failing {
                    self.failing = false;
                    Line::event("trace_export_resumed")
                        .str("endpoint", &self.target.authority)
                        .emit();
                }
            }
            Err(e) => {
                DROPPED.inc_by(n);
                if !self.failing {
                    self.failing = true;
                    Line::event("trace_export_failed")
                        .str("endpoint", &self.target.authority)
                        .str("error", &e.to_string())
                        .str(
                            "detail",
                            "spans are dropped and counted in trace_spans_dropped_total \
                             until an export succeeds",
                        )
                        .emit();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    /// A full queue drops the batch at once and counts its spans.
    #[test]
    fn a_full_queue_drops_and_counts() {
        let (queue, _jobs) = mpsc::sync_channel(0);
        let mut exporter = Exporter { queue };
        let before = DROPPED.get();
        let span = SpanRecord {
            name: Cow::Borrowed("B"),
            ..SpanRecord::default()
        };
        exporter.report(vec![span; 3]);
        assert!(DROPPED.get() >= before + 3);
    }
}
